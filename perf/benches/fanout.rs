//! Fan-out: one publisher sends to a room whose members are spread over two server instances
//! on one Redis; messages delivered per second, beside two references with the same sockets,
//! the same payload and the same publisher:
//!
//! - **bare**: one axum process fanning out with `tokio::sync::broadcast` (no sessions, no
//!   Redis, one instance): the ceiling of a single process;
//! - **socketioxide**: socketioxide 0.18 with socketioxide-redis on the same Redis, two
//!   instances, the members `join`ed to the room, spoken to over raw WebSocket in the
//!   Engine.IO v4 / Socket.IO v5 text framing;
//! - **ws-session**: the chat example's router on two `RedisStore` instances, a third
//!   instance holding one connection in no room (its node must receive nothing for the room).
//!
//! ```text
//! cargo bench --bench fanout
//! ```
//!
//! Every contender runs in this process: the servers on one runtime, the clients on another,
//! a private `redis-server` beside them. Rounds are interleaved (the order rotates), and the
//! report gives each contender's median and the ratios of the medians. Without `--bench` (as
//! `cargo test --benches` does) it makes a short smoke run whose numbers mean nothing.
//! Environment overrides: `WS_FANOUT_MEMBERS`, `WS_FANOUT_MESSAGES`, `WS_FANOUT_ROUNDS`.

use ws_session_testkit::app;
#[path = "fanout/contenders.rs"]
mod contenders;
use ws_session_testkit::redis_server;

use std::time::Duration;

use contenders::{Contender, From, Setup};

/// The text each message carries (the chat example wraps it in its JSON).
const TEXT_LEN: usize = 100;

struct Params {
    members: usize,
    messages: usize,
    rounds: usize,
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Set in a child process of the harness: run one round of this contender and print its outcome.
const RUN_ENV: &str = "WS_FANOUT_RUN";

fn main() {
    if let Ok(name) = std::env::var(RUN_ENV) {
        run_one(&name);
        return;
    }
    let bench = std::env::args().any(|arg| arg == "--bench");
    let params = Params {
        members: env_or("WS_FANOUT_MEMBERS", if bench { 1000 } else { 20 }),
        messages: env_or("WS_FANOUT_MESSAGES", if bench { 200 } else { 5 }),
        rounds: env_or("WS_FANOUT_ROUNDS", if bench { 5 } else { 1 }),
    };
    let Some(redis) = redis_server::RedisServer::start() else {
        eprintln!("fanout: no redis-server; nothing to measure");
        return;
    };
    println!(
        "fanout: {} members over two instances, {} messages of {TEXT_LEN} bytes of text, {} rounds",
        params.members, params.messages, params.rounds
    );
    let only = std::env::var("WS_FANOUT_ONLY").ok();
    let mut idle_received = Vec::new();
    for from in From::ALL {
        println!();
        println!("publisher: {}", describe(from));
        let mut results: Vec<(Contender, Vec<f64>)> =
            Contender::ALL.iter().map(|c| (*c, Vec::new())).collect();
        for round in 0..params.rounds {
            for k in 0..Contender::ALL.len() {
                let index = (round + k) % Contender::ALL.len();
                let contender = Contender::ALL[index];
                if only.as_deref().is_some_and(|only| only != contender.name()) {
                    continue;
                }
                let outcome = in_child(contender, from, &params, &redis.url());
                println!(
                    "round {round} {:<12} {:>10.0} msg/s ({:?} for {} deliveries, {} lost)",
                    contender.name(),
                    outcome.per_second(),
                    outcome.elapsed,
                    outcome.delivered,
                    outcome.lost
                );
                if let Some(received) = outcome.idle_node_received {
                    idle_received.push(received);
                }
                results[index].1.push(outcome.per_second());
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        report(&results);
    }
    println!();
    println!(
        "envelopes received by the idle node for the room, per round: {idle_received:?} (must be 0)"
    );
    drop(redis);
}

/// Runs one round of `contender` in a fresh child process, so that no round inherits the
/// sockets, tasks or memory of another.
fn in_child(
    contender: Contender,
    from: From,
    params: &Params,
    redis_url: &str,
) -> contenders::Outcome {
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .env(RUN_ENV, contender.name())
        .env("WS_FANOUT_MEMBERS", params.members.to_string())
        .env("WS_FANOUT_MESSAGES", params.messages.to_string())
        .env("WS_FANOUT_REDIS", redis_url)
        .env("WS_FANOUT_FROM", from.name())
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run a round in a child process");
    assert!(
        output.status.success(),
        "the {} round failed: {}",
        contender.name(),
        output.status
    );
    let text = String::from_utf8_lossy(&output.stdout);
    contenders::Outcome::parse(text.trim())
        .unwrap_or_else(|| panic!("no outcome from the {} round: {text}", contender.name()))
}

/// The body of a child process: one round of the contender `name`.
fn run_one(name: &str) {
    let contender = Contender::ALL
        .into_iter()
        .find(|contender| contender.name() == name)
        .unwrap_or_else(|| panic!("no contender {name}"));
    let members = env_or("WS_FANOUT_MEMBERS", 20);
    let needed = (members as u64) * 2 + 256;
    let limit = rlimit::increase_nofile_limit(u64::MAX).unwrap_or(0);
    assert!(
        limit >= needed,
        "the open-file limit is {limit}, {needed} are needed: raise `ulimit -n`"
    );
    let servers = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("fanout-server")
        .enable_all()
        .build()
        .unwrap();
    let clients = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("fanout-client")
        .enable_all()
        .build()
        .unwrap();
    let setup = Setup {
        redis_url: std::env::var("WS_FANOUT_REDIS").expect("WS_FANOUT_REDIS is set"),
        servers: servers.handle().clone(),
        text: "x".repeat(TEXT_LEN),
        members,
        messages: env_or("WS_FANOUT_MESSAGES", 5),
        from: match std::env::var("WS_FANOUT_FROM").as_deref() {
            Ok("server") => From::Server,
            _ => From::Client,
        },
    };
    let outcome = clients.block_on(contender.run(&setup));
    println!("{}", outcome.line());
    // Tasks still running in either runtime are dropped with the process.
    std::process::exit(0);
}

fn describe(from: From) -> &'static str {
    match from {
        From::Client => {
            "a client connection sends every message as a frame (`to_room` for ws-session, a \
             `to_room` event for socketioxide), without waiting for replies"
        }
        From::Server => {
            "code on the first instance calls the server's API for every message \
             (`Hub::send_to_room`, `io.within(room).emit`, `Sender::send`), all at once"
        }
    }
}

fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}

/// The medians of one kind of publisher, and the ratios the targets are about.
fn report(results: &[(Contender, Vec<f64>)]) {
    println!();
    println!("| contender | delivered msg/s (median) | range |");
    println!("|---|---|---|");
    for (contender, values) in results {
        let low = values.iter().copied().fold(f64::INFINITY, f64::min);
        let high = values.iter().copied().fold(0.0, f64::max);
        println!(
            "| {} | {:.0} | {low:.0}–{high:.0} |",
            contender.name(),
            median(values)
        );
    }
    let of = |c: Contender| median(&results.iter().find(|(x, _)| *x == c).unwrap().1);
    let ours = of(Contender::WsSession);
    println!();
    println!(
        "ws-session / socketioxide: {:.2}x (target >= 1.0x)",
        ours / of(Contender::Socketioxide)
    );
    println!(
        "ws-session / bare broadcast: {:.2}x (target >= 0.5x)",
        ours / of(Contender::Bare)
    );
}
