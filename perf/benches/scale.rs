//! Scale: as many connections as one process may hold, on one instance, beside the bare server.
//!
//! ```text
//! cargo bench -p ws-session-perf --bench scale
//! ```
//!
//! Three servers, each a process of its own on a fixed loopback address: the chat example's
//! release build on `MemoryStore` and on `RedisStore` (a private `redis-server` on a free port),
//! both with `SESSION_TTL_SECS=60`, `RESUME_SECS=120` and their default settings, and the bare
//! axum server of the load bench (no sessions). For each N (1,000, 5,000 and the largest the
//! open-file limit allows, which the harness raises to its hard limit first), N clients, 4 per
//! user and 100 per room, connect from four loopback source addresses, and the harness reads:
//!
//! - **RSS per connection**: the server's resident memory with all N open, less its memory
//!   before the first, over N;
//! - **idle**: the server's CPU over 30 s of silence (the clients answer pings), and on Redis
//!   the commands Redis ran per session per second over 120 s (two TTLs: four keep-alive ticks
//!   and one renewal of the indexes);
//! - **open all N**: from the first connect until every client is welcomed and in its room,
//!   64 clients opening at a time, and the connections the kernel dropped meanwhile for a
//!   full listen queue (`ListenOverflows`);
//! - **fan-out**: 20 messages to each of 10 rooms of 100, sent by a client that is not a
//!   member; the latency from send to each member's receipt, p50 and p99;
//! - **SIGTERM until exit**: the chat example closes every socket with 1001 and detaches every
//!   session before it exits;
//! - **deploy storm** (Redis): while the server is down, two messages go to each room and one
//!   to every tenth user; a new process starts on the same address, and the clients, which
//!   retry with a fully jittered backoff, resume. Until all resumed; sessions lost; clients that
//!   got the messages sent while away exactly once and in order; Redis commands and Redis CPU
//!   time per resume, and the peak commands per second (sampled every 100 ms);
//! - **reconnect storm** (Redis): every client drops its connection without a close (as a
//!   network does) and the server detaches every session; two messages go to each room and
//!   one to every tenth user, and all clients come back at once and resume. Redis commands and
//!   Redis CPU time per resume, beside the fresh-connect storm's (also all at once);
//! - **fresh-connect storm**: N new clients (new users, each joining a room as the first N
//!   did: the state a resume restores, built anew) at once on the same server: the time until
//!   all are welcomed and in their rooms, Redis commands and Redis CPU time per connect, and
//!   the peak per second. On Redis, this storm and the reconnect storm run three times each
//!   (the fresh clients close between rounds): each reports its round of median Redis CPU,
//!   and the resume lines give the range;
//! - **fresh connects at the resumes' pace** (Redis): N more new clients, each arriving at a
//!   random instant within the time the deploy storm took, so that Redis serves them at the
//!   rate it served the resumes: Redis commands and Redis CPU time per connect. A command costs
//!   Redis more CPU when requests trickle in than in a burst, so a resume is compared with a
//!   fresh connect taken at the same rate.
//!
//! It prints the table, a resume's cost against a fresh connect's (after a deploy against fresh
//! connects at the same pace, and all at once against the fresh-connect storm), the projection
//! to 100,000 connections per instance from each measure's slope against N, and writes the
//! plot `docs/scale.svg`. Without `--bench` it makes a short smoke run at N = 200 whose numbers
//! mean nothing. Environment: `WS_SCALE_N` (sizes,
//! comma-separated), `WS_SCALE_SERVERS` (some of `bare,memory,redis`), `WS_SCALE_IDLE_SECS`,
//! `WS_SCALE_REDIS_IDLE_SECS`.

use ws_session_testkit::app;
// The bench serves the bare router only, not the one keeping data in Redis.
#[allow(dead_code)]
#[path = "load/bare.rs"]
mod bare;
#[path = "scale/fleet.rs"]
mod fleet;
#[path = "scale/report.rs"]
mod report;
#[path = "scale/server.rs"]
mod server;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use rand::Rng;
use redis::aio::MultiplexedConnection;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use ws_session::hub::Hub;
use ws_session::resume::Resume;
use ws_session::{RedisStore, SessionLayer};
use ws_session_testkit::redis_server::{RedisServer, info_field};

use fleet::{AWAY, Client, Shared};
use report::{Row, Storm};
use server::{Kind, Server};

const USERS_PER: usize = 4;
const ROOM_SIZE: usize = 100;
const PROBE_ROOMS: usize = 10;
const PROBES_PER_ROOM: usize = 20;
/// How many clients open at once while the N of a size open (the storms open all at once).
const OPENING: usize = 64;
/// How many times the storms that come all at once run on Redis: the reconnect storm and the
/// fresh-connect storm each report their round of median Redis CPU, with the range.
const STORM_ROUNDS: usize = 3;
/// Descriptors the harness keeps for itself beside the clients.
const SPARE_FDS: u64 = 1000;

struct Params {
    sizes: Vec<usize>,
    kinds: Vec<Kind>,
    idle: Duration,
    redis_idle: Duration,
}

impl Params {
    fn new(bench: bool, largest: usize) -> Params {
        let secs = |name: &str, default: u64| {
            Duration::from_secs(
                std::env::var(name)
                    .ok()
                    .and_then(|value| value.parse().ok())
                    .unwrap_or(default),
            )
        };
        let sizes = match std::env::var("WS_SCALE_N") {
            Ok(sizes) => sizes
                .split(',')
                .map(|n| n.trim().parse().expect("WS_SCALE_N: numbers"))
                .collect(),
            Err(_) if bench => vec![1_000, 5_000, largest],
            Err(_) => vec![200],
        };
        let kinds = match std::env::var("WS_SCALE_SERVERS") {
            Ok(names) => names
                .split(',')
                .map(|name| {
                    Kind::named(name.trim()).expect("WS_SCALE_SERVERS: bare, memory, redis")
                })
                .collect(),
            Err(_) => Kind::ALL.to_vec(),
        };
        Params {
            sizes,
            kinds,
            idle: secs("WS_SCALE_IDLE_SECS", if bench { 30 } else { 2 }),
            redis_idle: secs("WS_SCALE_REDIS_IDLE_SECS", if bench { 120 } else { 2 }),
        }
    }
}

fn main() {
    if let Ok(addr) = std::env::var(server::SERVE_ENV) {
        server::serve_bare(&addr);
        return;
    }
    let bench = std::env::args().any(|arg| arg == "--bench");
    let limit = rlimit::increase_nofile_limit(u64::MAX).expect("raise the open-file limit");
    let largest = (limit.saturating_sub(SPARE_FDS) / 1000 * 1000) as usize;
    let params = Params::new(bench, largest);
    println!(
        "scale: open-file limit {limit} (the largest N is {largest}), sizes {:?}, idle {:?} ({:?} on Redis), {} cores",
        params.sizes,
        params.idle,
        params.redis_idle,
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    let chat = server::build_chat(bench);
    let redis = RedisServer::start().expect("redis-server is needed for the scale bench");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("build the harness's runtime");
    let rows = runtime.block_on(async {
        let mut rows = Vec::new();
        for &n in &params.sizes {
            for &kind in &params.kinds {
                let row = measure(kind, n, &params, &chat, &redis).await;
                report::table(std::slice::from_ref(&row));
                rows.push(row);
            }
        }
        rows
    });
    report::table(&rows);
    report::resume_cost(&rows);
    report::projection(&rows, 100_000.0);
    if bench {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/scale.svg");
        report::plot(&rows, &path).expect("write the plot");
        println!("\nplot: {}", path.display());
    }
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
}

/// A connection of the harness's own to Redis, patient with a Redis busy with a storm.
async fn redis_conn(redis: &RedisServer) -> MultiplexedConnection {
    redis_conn_to(&redis.url()).await
}

/// [`redis_conn`] to the Redis at `url`.
async fn redis_conn_to(url: &str) -> MultiplexedConnection {
    let config =
        redis::AsyncConnectionConfig::new().set_response_timeout(Some(Duration::from_secs(30)));
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection_with_config(&config)
        .await
        .unwrap()
}

async fn total_commands(conn: &mut MultiplexedConnection) -> u64 {
    info_field(conn, "stats", "total_commands_processed")
        .await
        .parse()
        .unwrap()
}

/// How the clients of a fleet arrive.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Arrival {
    /// [`OPENING`] at a time, each next one when one is welcomed and in its room.
    Paced,
    /// All at once.
    AtOnce,
    /// Each at a random instant within the span.
    Over(Duration),
}

/// A fleet of client tasks.
struct Fleet {
    clients: Vec<Arc<Client>>,
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
}

impl Fleet {
    /// Starts `n` clients on `addr`: users `{prefix}{i / 4}`, in rooms of 100 when `rooms`,
    /// arriving as `arrival` says.
    fn start(addr: SocketAddr, n: usize, prefix: &str, rooms: bool, arrival: Arrival) -> Fleet {
        let pace = (arrival == Arrival::Paced).then(|| Arc::new(Semaphore::new(OPENING)));
        let mut rng = rand::rng();
        let shared = Shared::new();
        let (stop, stopped) = watch::channel(false);
        let clients: Vec<Arc<Client>> = (0..n)
            .map(|i| {
                Arc::new(Client {
                    user: format!("{prefix}{}", i / USERS_PER),
                    room: rooms.then(|| format!("room{}", i / ROOM_SIZE)),
                    away: Default::default(),
                })
            })
            .collect();
        let tasks = clients
            .iter()
            .enumerate()
            .map(|(i, client)| {
                tokio::spawn(fleet::run(
                    addr,
                    i,
                    Arc::clone(client),
                    Arc::clone(&shared),
                    stopped.clone(),
                    pace.clone(),
                    match arrival {
                        Arrival::Over(span) => span.mul_f64(rng.random::<f64>()),
                        Arrival::Paced | Arrival::AtOnce => Duration::ZERO,
                    },
                ))
            })
            .collect();
        Fleet {
            clients,
            shared,
            stop,
            tasks,
        }
    }

    /// Waits until `done` says every client is there; how long that took.
    async fn until(
        &self,
        what: &str,
        started: Instant,
        done: impl Fn(&Shared) -> bool,
    ) -> Duration {
        let deadline = started + Duration::from_secs(180);
        while !done(&self.shared) {
            assert!(
                Instant::now() < deadline,
                "{what}: not done within 3 minutes (open {}, resumed {}, lost {}, busy {}, failed {})",
                self.shared.open.load(Ordering::Relaxed),
                self.shared.resumed.load(Ordering::Relaxed),
                self.shared.lost.load(Ordering::Relaxed),
                self.shared.busy.load(Ordering::Relaxed),
                self.shared.failed.load(Ordering::Relaxed),
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        started.elapsed()
    }

    async fn stop(self) {
        self.stop.send_replace(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Samples Redis's command counter every 100 ms while a storm runs, and reads Redis's CPU time
/// at both ends. It runs on a thread and a runtime of its own, so that the clients of a storm,
/// which share the harness's runtime, cannot hold its readings back.
struct Sampler {
    running: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<(u64, f64, Duration)>,
}

/// Redis's CPU time so far, user and system.
async fn redis_cpu(conn: &mut MultiplexedConnection) -> Duration {
    let mut seconds = 0.0;
    for field in ["used_cpu_user", "used_cpu_sys"] {
        seconds += info_field(conn, "cpu", field).await.parse::<f64>().unwrap();
    }
    Duration::from_secs_f64(seconds)
}

impl Sampler {
    /// Starts sampling; returns once the first readings are taken.
    async fn start(redis: &RedisServer) -> Sampler {
        let url = redis.url();
        let running = Arc::new(AtomicBool::new(true));
        let flag = Arc::clone(&running);
        let (started, ready) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("build the sampler's runtime");
            runtime.block_on(async move {
                let mut conn = redis_conn_to(&url).await;
                let cpu = redis_cpu(&mut conn).await;
                let first = total_commands(&mut conn).await;
                let _ = started.send(());
                let (mut last, mut at, mut peak) = (first, Instant::now(), 0.0_f64);
                while flag.load(Ordering::Relaxed) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    let now = total_commands(&mut conn).await;
                    let rate = (now - last) as f64 / at.elapsed().as_secs_f64();
                    peak = peak.max(rate);
                    (last, at) = (now, Instant::now());
                }
                let cpu = redis_cpu(&mut conn).await.saturating_sub(cpu);
                (last - first, peak, cpu)
            })
        });
        ready.await.expect("the sampler takes its first readings");
        Sampler { running, thread }
    }

    /// Commands run since the start, the peak per second, and Redis's CPU time meanwhile.
    async fn finish(self) -> (u64, f64, Duration) {
        self.running.store(false, Ordering::Relaxed);
        let thread = self.thread;
        tokio::task::spawn_blocking(move || thread.join().expect("the sampler"))
            .await
            .expect("join the sampler")
    }
}

async fn measure(kind: Kind, n: usize, params: &Params, chat: &Path, redis: &RedisServer) -> Row {
    let mut conn = redis_conn(redis).await;
    redis::cmd("FLUSHALL").exec_async(&mut conn).await.unwrap();
    let url = redis.url();
    let addr = free_addr();
    let start = |addr| Server::start(kind, addr, chat, Some(&url), n);
    let server = start(addr);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_before = server::rss(server.pid());

    // Open all N at once.
    let drops = server::listen_drops();
    let started = Instant::now();
    let fleet = Fleet::start(addr, n, "u", kind != Kind::Bare, Arrival::Paced);
    let open = fleet
        .until("open", started, |shared| {
            shared.open.load(Ordering::Relaxed) == n
        })
        .await;
    let listen_drops = server::listen_drops() - drops;
    // Room joins and background work settle.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_open = server::rss(server.pid());

    // Idle.
    let window = if kind == Kind::Redis {
        params.redis_idle
    } else {
        params.idle
    };
    let cpu = server::cpu(server.pid());
    let commands = total_commands(&mut conn).await;
    tokio::time::sleep(window).await;
    let idle_cpu = (server::cpu(server.pid()) - cpu).as_secs_f64() / window.as_secs_f64();
    let idle_commands = if kind == Kind::Redis {
        let ran = total_commands(&mut conn).await - commands - 1;
        Some((ran as f64 / window.as_secs_f64(), window))
    } else {
        None
    };

    let fanout = if kind == Kind::Bare {
        None
    } else {
        Some(fan_out(addr, n, &fleet.shared).await)
    };

    let sampler = match kind {
        Kind::Redis => Some(Sampler::start(redis).await),
        _ => None,
    };
    let sigterm = server.terminate();
    let sigterm_peak = match sampler {
        Some(sampler) => Some(sampler.finish().await.1),
        None => None,
    };
    let mut row = Row {
        kind,
        n,
        rss_before,
        rss_open,
        open,
        listen_drops,
        idle_cpu,
        idle_commands,
        fanout,
        sigterm,
        sigterm_peak,
        deploy: None,
        fresh: None,
        fresh_paced: None,
        reconnect: None,
    };
    if kind == Kind::Bare {
        fleet.stop().await;
        return row;
    }
    let server = if kind == Kind::Redis {
        let (storm, server) = deploy_storm(&fleet, n, addr, redis, &start).await;
        row.deploy = Some(storm);
        let mut rounds = Vec::new();
        for _ in 0..STORM_ROUNDS {
            rounds.push(reconnect_storm(&fleet, n, redis).await);
        }
        row.reconnect = Some(Storm::median(rounds));
        fleet.stop().await;
        server
    } else {
        fleet.stop().await;
        start(addr)
    };
    let rounds = if kind == Kind::Redis { STORM_ROUNDS } else { 1 };
    let mut storms = Vec::new();
    for round in 0..rounds {
        // The sockets of the last fleet close and their sessions go first.
        tokio::time::sleep(Duration::from_secs(3)).await;
        let prefix = format!("f{round}_");
        storms.push(fresh_storm(addr, n, kind, redis, &prefix, Arrival::AtOnce).await);
    }
    row.fresh = Some(Storm::median(storms));
    if let Some(deploy) = &row.deploy {
        let over = Arrival::Over(deploy.took);
        row.fresh_paced = Some(fresh_storm(addr, n, kind, redis, "p", over).await);
    }
    server.terminate();
    row
}

/// Probes to [`PROBE_ROOMS`] rooms from a client outside them; p50 and p99 of the deliveries.
async fn fan_out(addr: SocketAddr, n: usize, shared: &Shared) -> (Duration, Duration) {
    let rooms = (n / ROOM_SIZE).clamp(1, PROBE_ROOMS);
    let mut sender = fleet::sender(addr, "prober").await;
    shared.latencies.lock().unwrap().clear();
    shared.probing.store(true, Ordering::Relaxed);
    for _ in 0..PROBES_PER_ROOM {
        for room in 0..rooms {
            fleet::send_to_room(&mut sender, &format!("room{room}"), &shared.probe()).await;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    shared.probing.store(false, Ordering::Relaxed);
    let mut latencies = std::mem::take(&mut *shared.latencies.lock().unwrap());
    latencies.sort_unstable();
    let at = |share: f64| {
        let index = ((latencies.len() as f64 * share) as usize).min(latencies.len() - 1);
        Duration::from_micros(u64::from(latencies[index]))
    };
    (at(0.5), at(0.99))
}

/// What the clients of `fleet` must have got while away: two messages to each room, in order,
/// then one to every tenth user.
fn away_texts(client: &Client, user_index: usize) -> Vec<String> {
    let mut texts = Vec::new();
    if let Some(room) = &client.room {
        texts.extend((0..2).map(|k| format!("{AWAY}{room}:{k}")));
    }
    if user_index.is_multiple_of(10) {
        texts.push(format!("{AWAY}{}:0", client.user));
    }
    texts
}

/// Sends what [`away_texts`] says through a hub of the store's own, while the server is down.
async fn send_while_away(hub: &Hub, n: usize) {
    for room in 0..n.div_ceil(ROOM_SIZE) {
        let room = format!("room{room}");
        for k in 0..2 {
            let text = format!("{AWAY}{room}:{k}");
            let message =
                serde_json::json!({"type": "message", "from": "bench", "room": room, "text": text});
            hub.send_to_room(&room, message.to_string()).await.unwrap();
        }
    }
    for user in (0..n.div_ceil(USERS_PER)).step_by(10) {
        let user = format!("u{user}");
        let text = format!("{AWAY}{user}:0");
        let message =
            serde_json::json!({"type": "message", "from": "bench", "to": user, "text": text});
        hub.send_to_user(&user, message.to_string()).await.unwrap();
    }
}

/// The server was stopped (SIGTERM): messages go out while the clients are away, a new
/// process starts on the same address, and every client resumes.
async fn deploy_storm(
    fleet: &Fleet,
    n: usize,
    addr: SocketAddr,
    redis: &RedisServer,
    start: &impl Fn(SocketAddr) -> Server,
) -> (Storm, Server) {
    resume_storm(fleet, n, redis, "deploy storm", || start(addr)).await
}

/// Every client drops its connection (as a network does) and the server detaches every
/// session; messages go out while they are away, and all come back at once and resume.
async fn reconnect_storm(fleet: &Fleet, n: usize, redis: &RedisServer) -> Storm {
    fleet.shared.away.send_replace(true);
    fleet
        .until("all away", Instant::now(), |shared| {
            shared.open.load(Ordering::Relaxed) == 0
        })
        .await;
    quiet(redis, n).await;
    let back = || {
        fleet.shared.away.send_replace(false);
    };
    resume_storm(fleet, n, redis, "reconnect storm", back)
        .await
        .0
}

/// Waits until Redis runs no more commands than an idle server of `n` sessions sends (the
/// server has detached the sessions of clients that went away), at most a minute.
async fn quiet(redis: &RedisServer, n: usize) {
    let mut conn = redis_conn(redis).await;
    let mut last = total_commands(&mut conn).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = total_commands(&mut conn).await;
        if now - last <= (n / 20 + 20) as u64 {
            return;
        }
        last = now;
    }
}

/// Messages go out while the clients of `fleet` are away (see [`away_texts`]); `come_back`
/// brings them back (a new process, or the clients themselves), and every client resumes.
/// What `come_back` gave comes back with the storm.
async fn resume_storm<T>(
    fleet: &Fleet,
    n: usize,
    redis: &RedisServer,
    what: &str,
    come_back: impl FnOnce() -> T,
) -> (Storm, T) {
    for client in &fleet.clients {
        client.away.lock().unwrap().clear();
    }
    let store = RedisStore::connect(&redis.url(), "chat", Duration::from_secs(60))
        .await
        .unwrap()
        .limits(app::limits());
    let layer = SessionLayer::new(store).resume(Resume::within(Duration::from_secs(120)));
    send_while_away(&layer.hub(), n).await;

    let (resumed, lost, busy, failed) = (
        fleet.shared.resumed.load(Ordering::Relaxed),
        fleet.shared.lost.load(Ordering::Relaxed),
        fleet.shared.busy.load(Ordering::Relaxed),
        fleet.shared.failed.load(Ordering::Relaxed),
    );
    let sampler = Sampler::start(redis).await;
    let drops = server::listen_drops();
    let started = Instant::now();
    let back = come_back();
    let took = fleet
        .until(what, started, |shared| {
            shared.resumed.load(Ordering::Relaxed) + shared.lost.load(Ordering::Relaxed)
                - resumed
                - lost
                >= n
        })
        .await;
    let (commands, peak, cpu) = sampler.finish().await;
    let listen_drops = server::listen_drops() - drops;
    // The messages missed follow each welcome; give the last ones a moment.
    let expected: Vec<Vec<String>> = fleet
        .clients
        .iter()
        .enumerate()
        .map(|(i, client)| away_texts(client, i / USERS_PER))
        .collect();
    let in_order = || {
        fleet
            .clients
            .iter()
            .zip(&expected)
            .filter(|(client, expected)| *client.away.lock().unwrap() == **expected)
            .count()
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while in_order() < n && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let storm = Storm {
        took,
        done: fleet.shared.resumed.load(Ordering::Relaxed) - resumed,
        lost: fleet.shared.lost.load(Ordering::Relaxed) - lost,
        busy: fleet.shared.busy.load(Ordering::Relaxed) - busy,
        failed: fleet.shared.failed.load(Ordering::Relaxed) - failed,
        delivered_in_order: Some(in_order()),
        commands_per_client: Some(commands as f64 / n as f64),
        peak_commands: Some(peak),
        redis_cpu_per_client: Some(cpu / n as u32),
        cpu_range: None,
        listen_drops,
    };
    (storm, back)
}

/// N new clients (users `{prefix}…`, in the rooms of the first N) arrive as `arrival` says.
async fn fresh_storm(
    addr: SocketAddr,
    n: usize,
    kind: Kind,
    redis: &RedisServer,
    prefix: &str,
    arrival: Arrival,
) -> Storm {
    let sampler = (kind == Kind::Redis).then(|| Sampler::start(redis));
    let sampler = match sampler {
        Some(sampler) => Some(sampler.await),
        None => None,
    };
    let drops = server::listen_drops();
    let started = Instant::now();
    let fleet = Fleet::start(addr, n, prefix, true, arrival);
    let took = fleet
        .until("fresh storm", started, |shared| {
            shared.open.load(Ordering::Relaxed) == n
        })
        .await;
    let (commands, peak, cpu) = match sampler {
        Some(sampler) => {
            let (commands, peak, cpu) = sampler.finish().await;
            (
                Some(commands as f64 / n as f64),
                Some(peak),
                Some(cpu / n as u32),
            )
        }
        None => (None, None, None),
    };
    let storm = Storm {
        took,
        done: n,
        lost: 0,
        busy: fleet.shared.busy.load(Ordering::Relaxed),
        failed: fleet.shared.failed.load(Ordering::Relaxed),
        delivered_in_order: None,
        commands_per_client: commands,
        peak_commands: peak,
        redis_cpu_per_client: cpu,
        cpu_range: None,
        listen_drops: server::listen_drops() - drops,
    };
    fleet.stop().await;
    storm
}
