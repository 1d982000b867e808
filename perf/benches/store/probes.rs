//! Scale probes on Redis: refreshing 10,000 live sessions, listing a user with 1,000 sessions,
//! and counting what one `get_user_sessions` call sends over the network.

use std::collections::BTreeMap;
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::time::Duration;

use ws_session::{RedisStore, SessionStore};

use crate::world::{RedisWorld, Values};

/// Live sessions refreshed by one tick.
pub const TOUCHED: usize = 10_000;
/// Ids per `touch` call, as the layer refreshes them.
pub const TOUCH_BATCH: usize = 1_000;
/// Sessions of the user that `get_user_sessions` lists.
pub const LISTED: usize = 1_000;

/// The sessions the probes work on.
pub struct Scale {
    pub live: Vec<String>,
    pub big_user: String,
}

/// Creates [`TOUCHED`] sessions (each of its own user), and [`LISTED`] sessions with data for
/// one user, through the store and 32 tasks at a time. Untimed.
pub async fn prepare(store: &RedisStore, values: &Values) -> Scale {
    let live: Vec<String> = (0..TOUCHED).map(|i| format!("scale-live-{i}")).collect();
    let big_user = "scale-big-user".to_owned();
    let listed: Vec<String> = (0..LISTED).map(|i| format!("scale-listed-{i}")).collect();

    let mut jobs: Vec<(String, String, bool)> = live
        .iter()
        .enumerate()
        .map(|(i, id)| (id.clone(), format!("scale-user-{i}"), false))
        .collect();
    jobs.extend(listed.iter().map(|id| (id.clone(), big_user.clone(), true)));

    let chunk = jobs.len().div_ceil(32);
    let handles: Vec<_> = jobs
        .chunks(chunk)
        .map(|jobs| {
            let jobs = jobs.to_vec();
            let store = store.clone();
            let data = values.data.clone();
            tokio::spawn(async move {
                for (id, user, with_data) in jobs {
                    store.create_session(&id, &user).await.expect("created");
                    if with_data {
                        store
                            .update_session_data(&id, data.clone())
                            .await
                            .expect("filled");
                    }
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("a preparing task panicked");
    }
    Scale { live, big_user }
}

/// One refresh tick as the layer runs it: the ids in batches of [`TOUCH_BATCH`], one call after
/// the other.
pub async fn refresh_tick(store: &RedisStore, ids: &[String]) {
    for chunk in ids.chunks(TOUCH_BATCH) {
        let missing = store.touch(chunk).await.expect("touched");
        assert!(missing.is_empty(), "every probed session is live");
    }
}

/// What one call sent to Redis.
#[derive(Debug, Default)]
pub struct RoundTrips {
    /// Commands that arrived over the network, by name (MONITOR lines from a client address).
    pub network: BTreeMap<String, u64>,
    /// Commands a script ran inside the server, by name (MONITOR lines marked `lua`).
    pub in_scripts: BTreeMap<String, u64>,
    /// `INFO commandstats` call deltas over the call, the probe's own commands left out.
    pub commandstats: BTreeMap<String, u64>,
    /// How many sessions the call returned.
    pub returned: usize,
}

impl RoundTrips {
    pub fn network_total(&self) -> u64 {
        self.network.values().sum()
    }
}

const END: &str = "ws-session-probe-end";

/// Runs one `get_user_sessions(user)` on `store` while MONITOR watches the server, and
/// compares `INFO commandstats` before and after.
pub async fn count_round_trips(redis: &RedisWorld, store: &RedisStore, user: &str) -> RoundTrips {
    // Once before, so the script is cached and the pool holds a connection.
    store.get_user_sessions(user).await.expect("listed");

    let client = redis::Client::open(redis.url.as_str()).expect("a Redis URL");
    let mut stats = client
        .get_multiplexed_async_connection()
        .await
        .expect("a direct connection");
    let before = commandstats(&mut stats).await;

    let port = redis.port;
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let monitor = std::thread::spawn(move || monitor_until_end(port, &ready_tx));
    ready_rx
        .recv_timeout(Duration::from_secs(5))
        .expect("MONITOR started");

    let returned = store.get_user_sessions(user).await.expect("listed").len();

    send_inline(port, &format!("ECHO {END}"));
    let lines = monitor.join().expect("the monitor thread");
    let after = commandstats(&mut stats).await;

    let mut trips = RoundTrips {
        returned,
        ..RoundTrips::default()
    };
    for line in &lines {
        let Some(name) = command_name(line) else {
            continue;
        };
        let from_script = line.contains(" lua]");
        let counts = if from_script {
            &mut trips.in_scripts
        } else {
            &mut trips.network
        };
        *counts.entry(name).or_default() += 1;
    }
    for (name, calls) in after {
        let delta = calls - before.get(&name).copied().unwrap_or(0);
        if delta > 0 && !matches!(name.as_str(), "info" | "monitor" | "echo") {
            trips.commandstats.insert(name, delta);
        }
    }
    trips
}

/// `cmdstat_<name>:calls=<n>,...` lines of `INFO commandstats`.
async fn commandstats(conn: &mut redis::aio::MultiplexedConnection) -> BTreeMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .expect("INFO");
    info.lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("cmdstat_")?;
            let (name, fields) = rest.split_once(':')?;
            let calls = fields.strip_prefix("calls=")?.split(',').next()?;
            Some((name.to_owned(), calls.parse().ok()?))
        })
        .collect()
}

/// The lowercase name of the command in a MONITOR line: `+<time> [<db> <who>] "NAME" ...`.
fn command_name(line: &str) -> Option<String> {
    let after = line.split_once("] \"")?.1;
    let name = after.split('"').next()?;
    Some(name.to_ascii_lowercase())
}

/// Reads MONITOR lines until the end marker, and returns the lines before it.
fn monitor_until_end(port: u16, ready: &std::sync::mpsc::Sender<()>) -> Vec<String> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect for MONITOR");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("a read timeout");
    stream.write_all(b"MONITOR\r\n").expect("MONITOR sent");
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).expect("MONITOR answered");
    assert_eq!(line.trim_end(), "+OK", "MONITOR started");
    ready.send(()).expect("the probe waits");
    let mut lines = Vec::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).expect("a MONITOR line") == 0 {
            panic!("MONITOR closed before the end marker");
        }
        if line.contains(END) {
            return lines;
        }
        lines.push(line.trim_end().to_owned());
    }
}

/// Sends one inline command on a fresh connection and waits for its reply.
fn send_inline(port: u16, command: &str) {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("a read timeout");
    stream
        .write_all(format!("{command}\r\n").as_bytes())
        .expect("sent");
    let mut reply = String::new();
    BufReader::new(stream)
        .read_line(&mut reply)
        .expect("a reply");
}

/// Where the time of many calls of one kind went: this process, the Redis server, and the
/// commands Redis ran (scripts' inner commands included).
#[derive(Debug)]
pub struct CostSplit {
    pub label: String,
    /// Calls measured (for the touch probe: sessions refreshed).
    pub calls: usize,
    /// Wall time per call, in ns.
    pub wall_ns: f64,
    /// CPU time of this process per call (every thread: the tasks, tokio, the Redis clients).
    pub client_cpu_ns: f64,
    /// CPU time of the redis-server process per call.
    pub server_cpu_ns: f64,
    /// `INFO commandstats` call deltas, the probe's own `INFO` left out.
    pub commands: BTreeMap<String, u64>,
}

/// Measures `work`, which runs `calls` calls and returns their wall time.
pub async fn cost_split(
    redis: &RedisWorld,
    label: &str,
    calls: usize,
    work: impl Future<Output = Duration>,
) -> CostSplit {
    let client = redis::Client::open(redis.url.as_str()).expect("a Redis URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("a direct connection");
    let stats_before = commandstats(&mut conn).await;
    let server_before = server_cpu(&mut conn).await;
    let client_before = process_cpu();

    let wall = work.await;

    let client_after = process_cpu();
    let server_after = server_cpu(&mut conn).await;
    let stats_after = commandstats(&mut conn).await;

    let per_call = |total: f64| total / calls as f64;
    let commands = stats_after
        .into_iter()
        .filter_map(|(name, after)| {
            let delta = after - stats_before.get(&name).copied().unwrap_or(0);
            (delta > 0 && name != "info").then_some((name, delta))
        })
        .collect();
    CostSplit {
        label: label.to_owned(),
        calls,
        wall_ns: per_call(wall.as_nanos() as f64),
        client_cpu_ns: per_call((client_after - client_before).as_nanos() as f64),
        server_cpu_ns: per_call((server_after - server_before) * 1e9),
        commands,
    }
}

/// CPU seconds the server has used (`INFO cpu`: user + system of its main process).
async fn server_cpu(conn: &mut redis::aio::MultiplexedConnection) -> f64 {
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query_async(conn)
        .await
        .expect("INFO cpu");
    info.lines()
        .filter_map(|line| {
            let (name, value) = line.trim_end().split_once(':')?;
            matches!(name, "used_cpu_sys" | "used_cpu_user")
                .then(|| value.parse::<f64>().ok())
                .flatten()
        })
        .sum()
}

/// CPU time the threads of this process have used so far, from their `schedstat` (ns).
fn process_cpu() -> Duration {
    let Ok(threads) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let ns: u64 = threads
        .filter_map(|thread| {
            let stat = std::fs::read_to_string(thread.ok()?.path().join("schedstat")).ok()?;
            stat.split_whitespace().next()?.parse::<u64>().ok()
        })
        .sum();
    Duration::from_nanos(ns)
}
