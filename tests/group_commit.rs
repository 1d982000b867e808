//! The Redis store's group commit: concurrent writes share script calls, and each caller still
//! gets exactly its own result: under mixed outcomes, on a pool of several connections, when a
//! call runs out of time, after `SCRIPT FLUSH`, and when Redis restarts mid-batch. Every test
//! talks to a real Redis server.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use redis::aio::MultiplexedConnection;
use serde_json::json;
use ws_session::{Error, InvalidInput, Limits, RedisStore, SessionData, SessionStore};

use support::redis_server::{RedisServer, keys_under, raw_connection, unique_prefix};

const HOUR: Duration = Duration::from_secs(3600);
/// The key limit of the stores here: small, so that sessions reach it.
const MAX_KEYS: usize = 3;

/// `INFO commandstats` calls of `command` (lower case).
async fn calls(conn: &mut MultiplexedConnection, command: &str) -> u64 {
    let stats: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    let prefix = format!("cmdstat_{command}:calls=");
    stats
        .lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .and_then(|rest| rest.split(',').next())
        .map_or(0, |n| n.parse().unwrap())
}

/// What a session is to the model.
#[derive(Clone, Debug)]
enum Model {
    /// Live, with these data keys.
    Live(HashSet<String>),
    /// Never created, or expired before the writes: every write is `NotFound`.
    Missing,
}

/// One write of a task, and what the model says it returns.
#[derive(Clone, Debug)]
enum Op {
    Set(String),
    Update(Vec<String>),
    Delete(String),
    Clear,
    /// A touch of the task's session and of an id that never existed.
    Touch,
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Ok,
    NotFound,
    TooManyKeys,
    /// A touch's missing ids.
    Missing(Vec<String>),
}

fn outcome(result: Result<(), Error>) -> Outcome {
    match result {
        Ok(()) => Outcome::Ok,
        Err(Error::NotFound { .. }) => Outcome::NotFound,
        Err(Error::InvalidInput(InvalidInput::TooManyKeys { .. })) => Outcome::TooManyKeys,
        Err(other) => panic!("an error the model has no place for: {other:?}"),
    }
}

/// Applies `op` to the model of a session and returns what the store must answer.
fn expect(model: &mut Model, op: &Op, ghost: &str) -> Outcome {
    let Model::Live(keys) = model else {
        return match op {
            Op::Touch => Outcome::Missing(vec!["self".into(), ghost.to_owned()]),
            _ => Outcome::NotFound,
        };
    };
    match op {
        Op::Set(key) => {
            if !keys.contains(key) && keys.len() >= MAX_KEYS {
                return Outcome::TooManyKeys;
            }
            keys.insert(key.clone());
            Outcome::Ok
        }
        Op::Update(new) => {
            // The update is a map: a key named twice is one key.
            let new: HashSet<&String> = new.iter().collect();
            let fresh = new.iter().filter(|k| !keys.contains(**k)).count();
            if keys.len() + fresh > MAX_KEYS {
                return Outcome::TooManyKeys;
            }
            keys.extend(new.into_iter().cloned());
            Outcome::Ok
        }
        Op::Delete(key) => {
            keys.remove(key);
            Outcome::Ok
        }
        Op::Clear => {
            keys.clear();
            Outcome::Ok
        }
        Op::Touch => Outcome::Missing(vec![ghost.to_owned()]),
    }
}

fn random_op(rng: &mut StdRng) -> Op {
    let key = |rng: &mut StdRng| format!("k{}", rng.random_range(0..5));
    match rng.random_range(0..10) {
        0..=3 => Op::Set(key(rng)),
        4 => Op::Update(vec![key(rng), key(rng)]),
        5 | 6 => Op::Delete(key(rng)),
        7 => Op::Clear,
        _ => Op::Touch,
    }
}

/// Runs `op` on session `id` and returns what the store answered, with the value it wrote.
async fn run(store: &RedisStore, id: &str, ghost: &str, op: &Op, stamp: u64) -> Outcome {
    match op {
        Op::Set(key) => outcome(store.set_session_data(id, key, json!([id, stamp])).await),
        Op::Update(keys) => {
            let data: SessionData = keys
                .iter()
                .map(|k| (k.clone(), json!([id, stamp])))
                .collect();
            outcome(store.update_session_data(id, data).await)
        }
        Op::Delete(key) => outcome(store.delete_session_data(id, key).await),
        Op::Clear => outcome(store.clear_session_data(id).await),
        Op::Touch => {
            let missing = store
                .touch(&[id.to_owned(), ghost.to_owned()])
                .await
                .expect("a touch");
            Outcome::Missing(
                missing
                    .into_iter()
                    .map(|m| if m == id { "self".to_owned() } else { m })
                    .collect(),
            )
        }
    }
}

/// The many-writers test on `store`: 64 tasks, each owning one session (live, at its key
/// limit, never created, or expired just before), 40 random writes each, all at once.
async fn many_writers_get_what_the_model_says(store: RedisStore, seed: u64) {
    let mut conn = raw_connection(&store).await;
    const TASKS: usize = 64;
    let mut models = Vec::with_capacity(TASKS);
    for t in 0..TASKS {
        let id = format!("s{t}");
        let user = format!("u{}", t % 7);
        let model = match t % 4 {
            0 => {
                store.create_session(&id, &user).await.unwrap();
                Model::Live(HashSet::new())
            }
            1 => {
                store.create_session(&id, &user).await.unwrap();
                let data: SessionData = (0..MAX_KEYS)
                    .map(|i| (format!("k{i}"), json!("full")))
                    .collect();
                store.update_session_data(&id, data).await.unwrap();
                Model::Live((0..MAX_KEYS).map(|i| format!("k{i}")).collect())
            }
            2 => Model::Missing,
            _ => {
                store.create_session(&id, &user).await.unwrap();
                let key = format!("{}:session:{id}", store.prefix());
                let _: bool = redis::cmd("PEXPIRE")
                    .arg(&key)
                    .arg(1)
                    .query_async(&mut conn)
                    .await
                    .unwrap();
                Model::Missing
            }
        };
        models.push(model);
    }
    tokio::time::sleep(Duration::from_millis(20)).await;
    let evalsha_before = calls(&mut conn, "evalsha").await;

    let mut rng = StdRng::seed_from_u64(seed);
    let plans: Vec<Vec<Op>> = (0..TASKS)
        .map(|_| (0..40).map(|_| random_op(&mut rng)).collect())
        .collect();
    let handles: Vec<_> = plans
        .iter()
        .cloned()
        .enumerate()
        .map(|(t, plan)| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = format!("s{t}");
                let ghost = format!("ghost{t}");
                let mut answers = Vec::with_capacity(plan.len());
                for (i, op) in plan.iter().enumerate() {
                    answers.push(run(&store, &id, &ghost, op, i as u64).await);
                }
                answers
            })
        })
        .collect();
    let mut writes = 0;
    for (t, handle) in handles.into_iter().enumerate() {
        let answers = handle.await.unwrap();
        let ghost = format!("ghost{t}");
        let mut model = models[t].clone();
        for (i, (op, answer)) in plans[t].iter().zip(answers).enumerate() {
            let expected = expect(&mut model, op, &ghost);
            assert_eq!(answer, expected, "session s{t}, write {i}: {op:?}");
            writes += 1;
        }
        // The store holds what the model holds, each value written by this session's task.
        let id = format!("s{t}");
        match (&model, store.get_session(&id).await.unwrap()) {
            (Model::Live(keys), Some(session)) => {
                let stored: HashSet<String> = session.data.keys().cloned().collect();
                assert_eq!(&stored, keys, "session s{t}");
                for value in session.data.values() {
                    assert!(
                        value == &json!("full") || value[0] == json!(id),
                        "session s{t} holds {value}"
                    );
                }
            }
            (Model::Missing, None) => {}
            (model, stored) => panic!("session s{t}: model {model:?}, store {stored:?}"),
        }
    }
    let evalsha = calls(&mut conn, "evalsha").await - evalsha_before;
    eprintln!("{writes} writes in {evalsha} script calls");
    // Reads in between are plain commands; the writes shared calls.
    assert!(evalsha < writes, "{writes} writes took {evalsha} calls");

    // Nothing was recreated, and every key has a TTL.
    for key in keys_under(&mut conn, &store).await {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 0, "{key} has PTTL {ttl}");
        if let Some(id) = key.strip_prefix(&format!("{}:session:", store.prefix())) {
            let t: usize = id[1..].parse().unwrap();
            assert!(
                matches!(models[t], Model::Live(_)),
                "{key} exists, but its session was missing"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_writers_at_once_each_get_their_own_result() {
    // A private server: the test counts the server's script calls.
    let server = require_redis!(RedisServer::start());
    let limits = Limits::default().max_keys(MAX_KEYS);
    for seed in [1, 2] {
        let store = server.store(HOUR).await.limits(limits);
        many_writers_get_what_the_model_says(store, seed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_holds_on_a_pool_of_several_connections() {
    let server = require_redis!(RedisServer::start());
    let manager = bb8_redis::RedisConnectionManager::new(server.url()).unwrap();
    // bb8's defaults otherwise: a PING on every checkout.
    let pool = bb8::Pool::builder()
        .max_size(4)
        .build(manager)
        .await
        .unwrap();
    let store =
        RedisStore::new(pool, unique_prefix(), HOUR).limits(Limits::default().max_keys(MAX_KEYS));
    many_writers_get_what_the_model_says(store.clone(), 3).await;
    assert!(
        store
            .pool()
            .expect("a pool on one server")
            .state()
            .connections
            >= 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_that_run_out_of_time_fail_alone_and_the_store_serves_again() {
    let server = require_redis!(RedisServer::start());
    let timeout = Duration::from_millis(300);
    let store = server.store(HOUR).await.timeout(timeout);
    for t in 0..16 {
        store
            .create_session(&format!("s{t}"), "alice")
            .await
            .unwrap();
    }
    let mut admin = raw_connection(&store).await;
    support::redis_server::pause_clients(&mut admin, 1200).await;
    // The first write goes out and hangs; the others queue behind it, then time out too.
    let started = Instant::now();
    let handles: Vec<_> = (0..16)
        .map(|t| {
            let store = store.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(t * 5)).await;
                let begun = Instant::now();
                let result = store
                    .set_session_data(&format!("s{t}"), "k", json!(t))
                    .await;
                (result, begun.elapsed())
            })
        })
        .collect();
    for handle in handles {
        let (result, took) = handle.await.unwrap();
        let err = result.unwrap_err();
        assert!(err.is_unavailable(), "{err:?}");
        assert!(
            took >= timeout && took <= timeout + Duration::from_millis(250),
            "gave up after {took:?}"
        );
    }
    assert!(
        started.elapsed() < Duration::from_millis(1200),
        "the pause ended too soon"
    );

    // Once Redis answers again, so does the store; whatever reached the server holds its own
    // value.
    tokio::time::sleep(Duration::from_millis(1300).saturating_sub(started.elapsed())).await;
    let mut served = false;
    for _ in 0..20 {
        if store
            .set_session_data("s0", "after", json!(1))
            .await
            .is_ok()
        {
            served = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(served, "the store did not serve again");
    for t in 0..16u64 {
        let value = store.get_session_data(&format!("s{t}"), "k").await.unwrap();
        assert!(
            value.is_none() || value == Some(json!(t)),
            "s{t}: {value:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripts_flushed_between_batches_are_loaded_again() {
    let server = require_redis!(RedisServer::start());
    let store = server.store(HOUR).await;
    let mut admin = raw_connection(&store).await;
    for t in 0..32 {
        store
            .create_session(&format!("s{t}"), "alice")
            .await
            .unwrap();
    }
    for round in 0..5u64 {
        redis::cmd("SCRIPT")
            .arg("FLUSH")
            .exec_async(&mut admin)
            .await
            .unwrap();
        let handles: Vec<_> = (0..32)
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move {
                    let id = format!("s{t}");
                    for i in 0..10 {
                        store
                            .set_session_data(&id, "k", json!([round, i]))
                            .await
                            .unwrap();
                    }
                    store.touch(&[id, "gone".to_owned()]).await.unwrap()
                })
            })
            .collect();
        for handle in handles {
            assert_eq!(handle.await.unwrap(), ["gone"]);
        }
        for t in 0..32 {
            assert_eq!(
                store.get_session_data(&format!("s{t}"), "k").await.unwrap(),
                Some(json!([round, 9]))
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_mid_batch_gives_each_caller_an_error_or_its_own_result() {
    let mut server = require_redis!(RedisServer::start());
    let store = server.store(HOUR).await.timeout(Duration::from_millis(500));
    const TASKS: usize = 32;
    for t in 0..TASKS {
        store
            .create_session(&format!("s{t}"), "alice")
            .await
            .unwrap();
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let handles: Vec<_> = (0..TASKS)
        .map(|t| {
            let store = store.clone();
            let stop = Arc::clone(&stop);
            tokio::spawn(async move {
                let id = format!("s{t}");
                let ghost = format!("ghost{t}");
                let mut seen: HashMap<&'static str, usize> = HashMap::new();
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    i += 1;
                    let kind = if i.is_multiple_of(3) {
                        match store.touch(&[id.clone(), ghost.clone()]).await {
                            // Its own ids only: the ghost, and itself once the session is gone.
                            Ok(missing) => {
                                assert!(
                                    missing == [ghost.clone()]
                                        || missing == [id.clone(), ghost.clone()],
                                    "{id} got {missing:?}"
                                );
                                "ok"
                            }
                            Err(err) => {
                                assert!(err.is_unavailable(), "{id}: {err:?}");
                                "unavailable"
                            }
                        }
                    } else {
                        match store.set_session_data(&id, "k", json!([&id, i])).await {
                            Ok(()) => "ok",
                            Err(Error::NotFound { id: missing }) => {
                                assert_eq!(missing, id);
                                "not found"
                            }
                            Err(err) => {
                                assert!(err.is_unavailable(), "{id}: {err:?}");
                                "unavailable"
                            }
                        }
                    };
                    *seen.entry(kind).or_default() += 1;
                }
                seen
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.restart();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut totals: HashMap<&'static str, usize> = HashMap::new();
    for handle in handles {
        for (kind, n) in handle.await.unwrap() {
            *totals.entry(kind).or_default() += n;
        }
    }
    eprintln!("outcomes across the restart: {totals:?}");
    assert!(totals.get("ok").copied().unwrap_or(0) > 0);
    // The restarted server kept no data: the writes after it found no session.
    assert!(
        totals.get("not found").copied().unwrap_or(0) > 0,
        "{totals:?}"
    );

    // The same store works on the new server.
    store.create_session("s0", "alice").await.unwrap();
    store.set_session_data("s0", "k", json!(1)).await.unwrap();
    assert_eq!(
        store.get_session_data("s0", "k").await.unwrap(),
        Some(json!(1))
    );
}

#[tokio::test]
async fn a_session_written_all_the_time_leaves_its_user_set_ttl_alone() {
    let server = require_redis!(RedisServer::start());
    let store = server.store(HOUR).await;
    let mut conn = raw_connection(&store).await;
    store.create_session("c1", "alice").await.unwrap();
    let before = calls(&mut conn, "pttl").await;
    for i in 0..50 {
        store.set_session_data("c1", "k", json!(i)).await.unwrap();
    }
    // The creation read the set's TTL and told the session; no write needs to look again.
    assert_eq!(calls(&mut conn, "pttl").await - before, 0);
    // A touch, the keep-alive, looks every time.
    store.touch(&["c1".to_owned()]).await.unwrap();
    assert_eq!(calls(&mut conn, "pttl").await - before, 1);

    // A set that lost its TTL behind the store's back is repaired once what the session
    // remembers runs short, by the next write that renews the session.
    let key = format!("{}:session:c1", store.prefix());
    let set = format!("{}:user_sessions:alice", store.prefix());
    let _: () = redis::cmd("HSET")
        .arg(&key)
        .arg("meta:set_until")
        .arg(0)
        .arg("meta:lives_until")
        .arg(0)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("PERSIST")
        .arg(&set)
        .query_async(&mut conn)
        .await
        .unwrap();
    store.set_session_data("c1", "k", json!("x")).await.unwrap();
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&set)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(ttl > HOUR.as_millis() as i64, "{ttl}");
}
