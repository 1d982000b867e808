//! Redis Sentinel: what going through the sentinels costs, and how long a failover keeps the
//! store from writing.
//!
//! ```text
//! cargo bench -p ws-session-perf --bench failover
//! ```
//!
//! On one private topology (a master, two replicas, three sentinels, quorum two, a master
//! down after one second without an answer):
//!
//! 1. `set_session_data` at 32 tasks, a store connected to the master's URL against a store
//!    through the sentinels, and one through the sentinels with the master set to
//!    `min-replicas-to-write 1`, in rotating rounds: writes per second and their ratios.
//! 2. For each outage (`SIGKILL` of the master, `SIGSTOP` of it), several rounds on a fresh
//!    topology: 32 writers keep writing; the time from the outage to the first write that
//!    succeeds, beside the time Redis itself takes to promote a replica (the first `ROLE`
//!    of a replica that answers `master`), both measured in the same round.
//!
//! `FAILOVER_ROUNDS` sets the rounds of each throughput contender and of each outage (default
//! 3); `FAILOVER_SECS` the seconds of each throughput round (default 3).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use ws_session::{RedisStore, SessionStore};
use ws_session_testkit::redis_server::{query, unique_prefix};
use ws_session_testkit::sentinel::{SentinelTopology, wait_for_replicas};

const TASKS: usize = 32;
const HOUR: Duration = Duration::from_secs(3600);
const TIMEOUT: Duration = Duration::from_millis(500);

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let rounds = env_number("FAILOVER_ROUNDS", 3);
    let secs = Duration::from_secs(env_number("FAILOVER_SECS", 3));
    let Some(topology) = SentinelTopology::start() else {
        eprintln!("no redis-server here: nothing measured");
        return;
    };

    // 1. Throughput, direct against through the sentinels, and through the sentinels with
    // the master refusing writes without a replica, in rotating order.
    let master = topology.master_port();
    let url = format!("redis://127.0.0.1:{master}/");
    let mut rates = [Vec::new(), Vec::new(), Vec::new()];
    for round in 0..3 * rounds as usize {
        let variant = round % 3;
        let guarded = if variant == 2 { "1" } else { "0" };
        let _ = query(
            master,
            &format!("CONFIG SET min-replicas-to-write {guarded}"),
        );
        let _ = query(master, "CONFIG SET min-replicas-max-lag 10");
        let store = if variant == 0 {
            RedisStore::connect(&url, unique_prefix(), HOUR)
                .await
                .expect("connect")
        } else {
            topology.store(HOUR).await
        };
        rates[variant].push(writes_per_second(&store, secs).await);
    }
    let [direct, sentinel, guarded] = rates.each_ref().map(|rates| median(rates));
    let range = |rates: &[f64]| {
        let low = rates.iter().copied().fold(f64::INFINITY, f64::min);
        let high = rates.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        format!("{low:.0}–{high:.0}")
    };
    println!(
        "set_session_data per second at {TASKS} tasks, medians of {rounds} rounds (range): direct {direct:.0} ({}), \
         through Sentinel {sentinel:.0} ({}): {:.2}x; through Sentinel with min-replicas-to-write 1 {guarded:.0} ({}): {:.2}x",
        range(&rates[0]),
        range(&rates[1]),
        sentinel / direct,
        range(&rates[2]),
        guarded / direct
    );
    drop(topology);

    // 2. Failover times.
    println!("| outage | Redis promotes a replica | the store's first write | difference |");
    println!("|---|---|---|---|");
    for outage in ["SIGKILL", "SIGSTOP"] {
        let mut promoted = Vec::new();
        let mut written = Vec::new();
        for _ in 0..rounds {
            let (promote, write) = failover_round(outage == "SIGSTOP").await;
            promoted.push(promote.as_secs_f64());
            written.push(write.as_secs_f64());
        }
        let differences: Vec<f64> = written.iter().zip(&promoted).map(|(w, p)| w - p).collect();
        println!(
            "| {outage} | {} | {} | {} |",
            seconds(&promoted),
            seconds(&written),
            seconds(&differences)
        );
    }
}

/// Writes per second of `TASKS` tasks, each writing its own session, for `secs`.
async fn writes_per_second(store: &RedisStore, secs: Duration) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        let (done, stop) = (Arc::clone(&done), Arc::clone(&stop));
        tasks.push(tokio::spawn(async move {
            let id = format!("t{task}");
            store.create_session(&id, &id).await.expect("create");
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                store
                    .set_session_data(&id, "n", json!(n))
                    .await
                    .expect("write");
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
        task.await.expect("writer");
    }
    rate
}

/// One failover on a fresh topology: the time until a replica answers `ROLE` as master, and
/// the time until the store's first successful write, both from the outage.
async fn failover_round(pause: bool) -> (Duration, Duration) {
    let mut topology = SentinelTopology::start().expect("a topology");
    let store = topology.store(HOUR).await.timeout(TIMEOUT);
    let first_write = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let outage = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for task in 0..TASKS {
        let store = store.clone();
        let (first_write, outage, stop) = (
            Arc::clone(&first_write),
            Arc::clone(&outage),
            Arc::clone(&stop),
        );
        writers.push(tokio::spawn(async move {
            let id = format!("f{task}");
            store.create_session(&id, &id).await.expect("create");
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let sent = Instant::now();
                let ok = store.set_session_data(&id, "n", json!(n)).await.is_ok();
                let began = *outage.lock().unwrap();
                // Only a write sent after the outage began tells that the store is back.
                if ok && began.is_some_and(|began| sent > began) {
                    first_write.lock().unwrap().get_or_insert(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The sessions and the writes so far are on both replicas.
    let synced = wait_for_replicas(&store).await;
    assert_eq!(synced, 2, "both replicas have the sessions");

    let old = topology.master_port();
    let replicas: Vec<u16> = topology
        .servers
        .iter()
        .map(|server| server.port())
        .filter(|port| *port != old)
        .collect();
    let began = Instant::now();
    let paused = if pause {
        Some(topology.server(old).pause())
    } else {
        topology.server(old).stop();
        None
    };
    *outage.lock().unwrap() = Some(began);
    // Redis's own promotion: the first replica that answers as master.
    let promoted = loop {
        let master = replicas
            .iter()
            .any(|port| query(*port, "ROLE").is_ok_and(|role| role.contains("master")));
        if master {
            break began.elapsed();
        }
        assert!(began.elapsed() < Duration::from_secs(60), "no promotion");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let written = loop {
        if let Some(at) = *first_write.lock().unwrap() {
            break at - began;
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "no write after the failover"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer");
    }
    if let Some(pid) = paused {
        topology.server(old).resume(pid);
    }
    (promoted, written)
}

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// The median and range of `values`, in seconds.
fn seconds(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.2} s ({min:.2}–{max:.2})", median(values))
}
