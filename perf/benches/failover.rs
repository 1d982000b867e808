//! Redis Sentinel and Redis Cluster: what going through the sentinels costs, and how long a
//! failover keeps the store from writing.
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
//! 3. The same on a fresh Redis Cluster per round (three masters with a replica each, node
//!    timeout two seconds): 32 writers on sessions of the master that fails (which also
//!    serves the hub's slot), the time to their first write beside the time to the promotion
//!    of that master's replica.
//!
//! `FAILOVER_ROUNDS` sets the rounds of each throughput contender and of each outage (default
//! 3); `FAILOVER_SECS` the seconds of each throughput round (default 3).

// This bench measures writes alone: the other operations go unused here.
#[allow(dead_code)]
#[path = "shared/rate.rs"]
mod rate;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rate::{Op, TASKS, median, per_second};
use serde_json::json;
use ws_session::{RedisStore, SessionStore};
use ws_session_testkit::cluster::ClusterTopology;
use ws_session_testkit::redis_server::{RedisServer, query, unique_prefix};
use ws_session_testkit::sentinel::{SentinelTopology, wait_for_replicas};

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
        rates[variant].push(per_second(&store, Op::Write, secs).await);
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

    // 2. and 3. Failover times.
    println!("| outage | Redis promotes a replica | the store's first write | difference |");
    println!("|---|---|---|---|");
    let outages = [
        ("SIGKILL", false, false),
        ("SIGSTOP", true, false),
        ("Cluster, SIGKILL", false, true),
        ("Cluster, SIGSTOP", true, true),
    ];
    for (outage, pause, cluster) in outages {
        let mut promoted = Vec::new();
        let mut written = Vec::new();
        for _ in 0..rounds {
            let (promote, write) = if cluster {
                cluster_failover_round(pause).await
            } else {
                failover_round(pause).await
            };
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

/// One failover on a fresh topology: the time until a replica answers `ROLE` as master, and
/// the time until the store's first successful write, both from the outage.
async fn failover_round(pause: bool) -> (Duration, Duration) {
    let mut topology = SentinelTopology::start().expect("a topology");
    let store = topology.store(HOUR).await.timeout(TIMEOUT);
    let sessions = (0..TASKS)
        .map(|task| {
            let user = format!("f{task}");
            (user.clone(), store.new_session_id(&user))
        })
        .collect();
    let writers = spawn_writers(&store, sessions);
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
    fail(topology.server(old), pause, &replicas, writers).await
}

/// One failover of the master of the hub's slot on a fresh cluster: the time until its
/// replica answers `ROLE` as master, and the time until the store's first successful write to
/// a session of that master, both from the outage.
async fn cluster_failover_round(pause: bool) -> (Duration, Duration) {
    let mut topology = ClusterTopology::start().expect("a cluster");
    let prefix = unique_prefix();
    let store = topology
        .store_with_prefix(&prefix, HOUR)
        .await
        .timeout(TIMEOUT);
    let old = topology.master_of(&format!("{prefix}:hub:{{{prefix}}}:clock"));
    // Sessions of users whose slot the failing master serves.
    let mut ids = Vec::new();
    for n in 0.. {
        if ids.len() == TASKS {
            break;
        }
        let user = format!("f{n}");
        let id = store.new_session_id(&user);
        let key = format!("{prefix}:session:{{{}}}:{id}", &id[..4]);
        if topology.master_of(&key) == old {
            ids.push((user, id));
        }
    }
    let replicas: Vec<u16> = topology
        .nodes
        .iter()
        .map(|node| node.port())
        .filter(|port| query(*port, "ROLE").is_ok_and(|role| role.contains("slave")))
        .collect();
    let writers = spawn_writers(&store, ids);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let synced = ws_session_testkit::cluster::wait_for_replica(&topology, old).await;
    assert_eq!(synced, 1, "the replica has the sessions");

    fail(topology.node(old), pause, &replicas, writers).await
}

/// Fails `master` (`SIGSTOP` when `pause`, else `SIGKILL`) while `writers` write, and returns
/// the time until one of `replicas` answers as master and the time until the writers' first
/// successful write, both from the outage; then stops the writers and wakes a paused master.
async fn fail(
    master: &mut RedisServer,
    pause: bool,
    replicas: &[u16],
    (first_write, outage, stop, writers): Writers,
) -> (Duration, Duration) {
    let paused = if pause {
        Some(master.pause())
    } else {
        master.stop();
        None
    };
    // From the moment the master is stopped: a write sent while the signal was on its way
    // could still succeed, and would count as the first write after the outage.
    let began = Instant::now();
    *outage.lock().unwrap() = Some(began);
    let promoted = promotion(replicas, began).await;
    let written = first_write_after(&first_write, began).await;
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.await.expect("writer");
    }
    if let Some(pid) = paused {
        master.resume(pid);
    }
    (promoted, written)
}

/// When a write succeeded first after the outage began, when it began, whether to stop, and
/// the writers.
type Writers = (
    Arc<std::sync::Mutex<Option<Instant>>>,
    Arc<std::sync::Mutex<Option<Instant>>>,
    Arc<AtomicBool>,
    Vec<tokio::task::JoinHandle<()>>,
);

/// One writer per session of `sessions` (user and id), each writing every 2 ms until told to
/// stop, noting the first write that succeeds after the outage began.
fn spawn_writers(store: &RedisStore, sessions: Vec<(String, String)>) -> Writers {
    let first_write = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let outage = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for (user, id) in sessions {
        let store = store.clone();
        let (first_write, outage, stop) = (
            Arc::clone(&first_write),
            Arc::clone(&outage),
            Arc::clone(&stop),
        );
        writers.push(tokio::spawn(async move {
            store.create_session(&id, &user).await.expect("create");
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
    (first_write, outage, stop, writers)
}

/// The time from `began` until one of `replicas` answers `ROLE` as master.
async fn promotion(replicas: &[u16], began: Instant) -> Duration {
    loop {
        let master = replicas
            .iter()
            .any(|port| query(*port, "ROLE").is_ok_and(|role| role.contains("master")));
        if master {
            return began.elapsed();
        }
        assert!(began.elapsed() < Duration::from_secs(60), "no promotion");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The time from `began` until `first_write` is noted.
async fn first_write_after(
    first_write: &std::sync::Mutex<Option<Instant>>,
    began: Instant,
) -> Duration {
    loop {
        if let Some(at) = *first_write.lock().unwrap() {
            return at - began;
        }
        assert!(
            began.elapsed() < Duration::from_secs(60),
            "no write after the failover"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The median and range of `values`, in seconds.
fn seconds(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.2} s ({min:.2}–{max:.2})", median(values))
}
