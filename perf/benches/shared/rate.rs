//! What the Redis harnesses share: operations per second of many tasks on one store, and the
//! median of rounds.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use ws_session::{RedisStore, SessionStore};

/// Tasks in a rate run.
pub const TASKS: usize = 32;

/// What each task does, over and over.
#[derive(Clone, Copy)]
pub enum Op {
    /// `set_session_data` of its session.
    Write,
    /// `get_session` of its session.
    Read,
    /// `create_session` of another session of its user, then `remove_session` of it.
    CreateRemove,
}

/// Operations per second of `TASKS` tasks, each on a session of its own, for `secs`.
pub async fn per_second(store: &RedisStore, op: Op, secs: Duration) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        let (done, stop) = (Arc::clone(&done), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let user = format!("u{task}");
            let id = store.new_session_id(&user);
            store.create_session(&id, &user).await.expect("create");
            store
                .set_session_data(&id, "theme", json!("dark"))
                .await
                .expect("write");
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                match op {
                    Op::Write => store
                        .set_session_data(&id, "n", json!(n))
                        .await
                        .expect("write"),
                    Op::Read => {
                        store.get_session(&id).await.expect("read").expect("there");
                    }
                    Op::CreateRemove => {
                        let other = store.new_session_id(&user);
                        store.create_session(&other, &user).await.expect("create");
                        store.remove_session(&other).await.expect("remove");
                    }
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (start, before) = (Instant::now(), done.load(Ordering::Relaxed));
    tokio::time::sleep(secs).await;
    let rate = (done.load(Ordering::Relaxed) - before) as f64 / start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.expect("task");
    }
    rate
}

/// The median of `values`.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}
