//! Load generator: a plain axum WebSocket server against the chat example's router with
//! `MemoryStore` and with `RedisStore`, driven by real WebSocket clients on loopback.
//!
//! ```text
//! cargo bench --bench load
//! ```
//!
//! Four servers, each in a child process of this harness (its own executable, run again with
//! `WS_LOAD_SERVE=bare|memory|redis`), so each has its own file descriptors and its resident
//! memory can be read alone:
//!
//! - **bare**: the chat protocol with no session layer, data in a per-socket map;
//! - **memory**: `examples/chat/app.rs` with `MemoryStore`;
//! - **redis**: the same router with `RedisStore` on a private `redis-server` on a free port;
//! - **bare+redis**: the bare server keeping each socket's data in a Redis hash on the same
//!   server, one plain command (`HSET`, `HGET`) per operation: what the Redis round trips
//!   alone cost, with no session layer (churn and ops only).
//!
//! Scenarios, interleaved over several rounds (the order of the servers rotates each round),
//! reported as medians:
//!
//! - **churn**: connect, read the welcome, close; cycles per second;
//! - **ops**: one socket per client, alternating `set` and `get`; round trips per second;
//! - **hold**: open many idle sockets in a fresh server process; resident memory per socket.
//!
//! Beside the throughput it reports the CPU time the server process (and `redis-server`) spent
//! per cycle or operation, read from `/proc`: on a shared machine that number moves much less
//! than throughput does.
//!
//! Run without `--bench` (as `cargo test --benches` does), it makes a short smoke run whose
//! numbers mean nothing. Environment overrides: `WS_LOAD_ROUNDS`, `WS_LOAD_SECS`,
//! `WS_LOAD_CLIENTS`, `WS_LOAD_HOLD`, `WS_LOAD_HOLD_ROUNDS`.

use ws_session_testkit::app;
#[path = "load/bare.rs"]
mod bare;
#[path = "load/client.rs"]
mod client;
use ws_session_testkit::redis_server;
#[path = "load/report.rs"]
mod report;
#[path = "load/server.rs"]
mod server;

use std::time::Duration;

use report::{Params, Results, Scenario};
use server::{Kind, ServerProcess};

/// How many handshakes run at once while the hold sockets open and close.
const HOLD_CONCURRENCY: usize = 64;
/// Sockets opened and closed in a fresh hold server before its baseline is read.
const HOLD_WARMUP: usize = 64;
/// A pause between measurements, for background work (session removals) to finish.
const SETTLE: Duration = Duration::from_millis(300);

fn main() {
    if let Ok(kind) = std::env::var(server::SERVE_ENV) {
        server::serve(&kind);
        return;
    }
    let bench = std::env::args().any(|arg| arg == "--bench");
    let params = Params::new(bench);
    let fd_limit = raise_fd_limit();
    let needed = params.hold as u64 + 256;
    assert!(
        fd_limit >= needed,
        "the open-file limit is {fd_limit}, {needed} are needed for {} sockets: raise `ulimit -n` \
         or set WS_LOAD_HOLD lower",
        params.hold
    );

    let redis = redis_server::RedisServer::start();
    let redis_url = redis.as_ref().map(redis_server::RedisServer::url);
    let redis_pid = redis
        .as_ref()
        .and_then(|redis| server::redis_process_id(redis.port()));
    let kinds: Vec<Kind> = Kind::ALL
        .into_iter()
        .filter(|kind| !kind.uses_redis() || redis_url.is_some())
        .collect();

    report::header(&params, fd_limit, redis_url.as_deref());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("build the client runtime");
    let mut results = Results::default();

    // Churn and ops: one long-lived process per server, the servers taking turns.
    let servers: Vec<ServerProcess> = kinds
        .iter()
        .map(|kind| ServerProcess::start(*kind, redis_url.as_deref()))
        .collect();
    for server in &servers {
        runtime.block_on(async {
            for scenario in [Scenario::Churn, Scenario::Ops] {
                measure(scenario, server, params.clients, params.warmup).await;
            }
        });
    }
    for round in 0..params.rounds {
        for scenario in [Scenario::Churn, Scenario::Ops] {
            for turn in 0..servers.len() {
                let server = &servers[(turn + round) % servers.len()];
                std::thread::sleep(SETTLE);
                let server_cpu = server.cpu_time();
                let redis_cpu = redis_pid.and_then(server::cpu_time);
                let mut run =
                    runtime.block_on(measure(scenario, server, params.clients, params.duration));
                run.server_cpu = server.cpu_time().saturating_sub(server_cpu);
                if server.kind.uses_redis() {
                    run.redis_cpu = redis_pid
                        .and_then(server::cpu_time)
                        .zip(redis_cpu)
                        .map(|(after, before)| after.saturating_sub(before));
                }
                report::progress_run(round, &params, scenario, server.kind, &run);
                results.add_run(scenario, server.kind, &run);
            }
        }
    }
    drop(servers);

    // Hold: a fresh process per measurement, so every baseline is an idle server. (The
    // bare server on Redis holds a socket as the bare one does.)
    let held: Vec<Kind> = kinds
        .iter()
        .copied()
        .filter(|kind| *kind != Kind::BareRedis)
        .collect();
    for round in 0..params.hold_rounds {
        for turn in 0..held.len() {
            let kind = held[(turn + round) % held.len()];
            let server = ServerProcess::start(kind, redis_url.as_deref());
            let hold = runtime.block_on(hold(&server, params.hold));
            drop(server);
            report::progress_hold(round, &params, kind, &hold);
            results.add_hold(kind, &hold);
        }
    }

    report::table(&params, &kinds, &results);
    drop(redis);
}

/// One timed run of `scenario` against `server`.
async fn measure(
    scenario: Scenario,
    server: &ServerProcess,
    clients: usize,
    duration: Duration,
) -> client::Run {
    match scenario {
        Scenario::Churn => client::churn(server.addr, clients, duration).await,
        Scenario::Ops => client::ops(server.addr, clients, duration).await,
    }
}

/// What one hold measurement saw.
#[derive(Debug)]
pub struct Hold {
    pub opened: usize,
    pub failed: u64,
    pub first_error: Option<String>,
    pub rss_before: u64,
    pub rss_open: u64,
    pub rss_closed: u64,
    pub unclean_closes: u64,
}

impl Hold {
    /// Resident bytes per open socket: (RSS with the sockets open - RSS before) / sockets.
    pub fn per_socket(&self) -> f64 {
        (self.rss_open as f64 - self.rss_before as f64) / self.opened.max(1) as f64
    }
}

/// Opens `count` idle sockets to `server`, reads its RSS, and closes them.
async fn hold(server: &ServerProcess, count: usize) -> Hold {
    let (warm, _, _) = client::open_many(server.addr, HOLD_WARMUP, HOLD_CONCURRENCY).await;
    client::close_many(warm, HOLD_CONCURRENCY).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = server.rss();

    let (sockets, failed, first_error) =
        client::open_many(server.addr, count, HOLD_CONCURRENCY).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_open = server.rss();
    let opened = sockets.len();

    let unclean_closes = client::close_many(sockets, HOLD_CONCURRENCY).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_closed = server.rss();
    Hold {
        opened,
        failed,
        first_error,
        rss_before,
        rss_open,
        rss_closed,
        unclean_closes,
    }
}

/// Raises this process's soft limit on open files to the hard limit; returns the new limit.
pub fn raise_fd_limit() -> u64 {
    rlimit::increase_nofile_limit(u64::MAX).expect("raise the open-file limit")
}
