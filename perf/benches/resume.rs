//! Resume beside a fresh connect, in one run: the chat example's router with a resume window,
//! on `MemoryStore` and on `RedisStore` (a private `redis-server` on a free port), driven by
//! real WebSocket clients on loopback.
//!
//! ```text
//! cargo bench --bench resume
//! ```
//!
//! - **cycles**: each of 32 clients repeats connect, read the welcome, close. A *fresh* client
//!   connects as a new session each time; a *resume* client presents the token (and offset)
//!   of its previous cycle and must be told `recovered`. The two alternate in interleaved
//!   rounds; medians of cycles per second and of the connect-to-welcome latency (p50, p99).
//! - **wire**: Redis commands per whole resume cycle (claim, missed messages, detach on close)
//!   beside those of a fresh cycle (create, detach on close), each command counted, from
//!   `INFO commandstats`.
//! - **memory**: Redis memory (`used_memory`) per detached session (two data keys, one room)
//!   and per message kept for resumes (a 100-byte text), from the difference before and after.
//! - **stall**: a session in 8 rooms whose histories hold 256 messages of 64 KiB each (128 MiB
//!   in Redis) resumes, while another connection pings Redis every millisecond: the PING
//!   latency (p99, max) before and during the resume, what the resume got, and how long it
//!   took.
//!
//! Run without `--bench` (as `cargo test --benches` does), it makes a short smoke run whose
//! numbers mean nothing. Environment: `WS_RESUME_ROUNDS`, `WS_RESUME_SECS`,
//! `WS_RESUME_CLIENTS`.

use ws_session_testkit::app;
use ws_session_testkit::redis_server;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use ws_session::resume::Resume;
use ws_session::{MemoryStore, RedisStore, SessionLayer, WsSession};

const WINDOW: Duration = Duration::from_secs(120);
const TTL: Duration = Duration::from_secs(60);

type Ws = WebSocketStream<TcpStream>;

struct Params {
    rounds: usize,
    secs: f64,
    clients: usize,
}

impl Params {
    fn new(bench: bool) -> Self {
        let number = |name: &str, default: f64| {
            std::env::var(name)
                .ok()
                .and_then(|value| value.parse().ok())
                .unwrap_or(default)
        };
        Params {
            rounds: number("WS_RESUME_ROUNDS", if bench { 5.0 } else { 1.0 }) as usize,
            secs: number("WS_RESUME_SECS", if bench { 3.0 } else { 0.3 }),
            clients: number("WS_RESUME_CLIENTS", 32.0) as usize,
        }
    }
}

/// What one client remembers between cycles: its user, and for a resume client its token and
/// last offset.
struct ClientState {
    user: String,
    resume: Option<(String, Option<String>)>,
}

/// One side of a round: cycles done and their connect-to-welcome latencies.
#[derive(Default)]
struct Run {
    cycles: u64,
    latencies: Vec<Duration>,
    errors: u64,
    first_error: Option<String>,
}

async fn connect(addr: SocketAddr, query: &str) -> Result<(Ws, Value), String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|err| format!("connect: {err}"))?;
    stream.set_nodelay(true).map_err(|err| err.to_string())?;
    let (mut ws, _) = tokio_tungstenite::client_async(format!("ws://{addr}/ws?{query}"), stream)
        .await
        .map_err(|err| format!("handshake: {err}"))?;
    match ws.next().await {
        Some(Ok(Message::Text(text))) => {
            let welcome: Value = serde_json::from_str(&text).map_err(|err| err.to_string())?;
            Ok((ws, welcome))
        }
        other => Err(format!("no welcome: {other:?}")),
    }
}

async fn close(mut ws: Ws) {
    let _ = ws.close(None).await;
    while let Some(Ok(_)) = ws.next().await {}
}

/// One cycle of `state`: connect (resuming when it has a token), read the welcome, close.
async fn cycle(addr: SocketAddr, state: &mut ClientState) -> Result<Duration, String> {
    let started = Instant::now();
    let query = match &state.resume {
        Some((token, Some(offset))) => {
            format!("user={}&resume={token}&offset={offset}", state.user)
        }
        Some((token, None)) => format!("user={}&resume={token}", state.user),
        None => format!("user={}", state.user),
    };
    let (ws, welcome) = connect(addr, &query).await?;
    let latency = started.elapsed();
    if let Some((token, _)) = &mut state.resume {
        if welcome["recovered"] != true && welcome["resume"].is_string() && !token.is_empty() {
            return Err(format!("not recovered: {welcome}"));
        }
        *token = welcome["resume"].as_str().unwrap_or_default().to_owned();
    }
    close(ws).await;
    Ok(latency)
}

/// `clients` tasks doing cycles for `secs`.
async fn run(addr: SocketAddr, states: &mut Vec<ClientState>, secs: f64) -> Run {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let tasks: Vec<_> = std::mem::take(states)
        .into_iter()
        .map(|mut state| {
            tokio::spawn(async move {
                let mut run = Run::default();
                while Instant::now() < deadline {
                    match cycle(addr, &mut state).await {
                        Ok(latency) => {
                            run.cycles += 1;
                            run.latencies.push(latency);
                        }
                        Err(error) => {
                            run.errors += 1;
                            run.first_error.get_or_insert(error);
                        }
                    }
                }
                (run, state)
            })
        })
        .collect();
    let mut total = Run::default();
    for task in tasks {
        let (run, state) = task.await.expect("a client task");
        total.cycles += run.cycles;
        total.latencies.extend(run.latencies);
        total.errors += run.errors;
        if total.first_error.is_none() {
            total.first_error = run.first_error;
        }
        states.push(state);
    }
    total
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Interleaved rounds of fresh and resume cycles against the server at `addr`.
async fn compare(name: &str, addr: SocketAddr, params: &Params) -> String {
    let mut fresh_states: Vec<ClientState> = (0..params.clients)
        .map(|i| ClientState {
            user: format!("f{i}"),
            resume: None,
        })
        .collect();
    // Each resume client starts from a session of its own.
    let mut resume_states = Vec::new();
    for i in 0..params.clients {
        let user = format!("r{i}");
        let (ws, welcome) = connect(addr, &format!("user={user}"))
            .await
            .expect("a first session");
        close(ws).await;
        resume_states.push(ClientState {
            user,
            resume: Some((welcome["resume"].as_str().unwrap().to_owned(), None)),
        });
    }
    let (mut fresh_rates, mut resume_rates) = (Vec::new(), Vec::new());
    let (mut fresh_lat, mut resume_lat) = (Vec::new(), Vec::new());
    for round in 0..params.rounds {
        let order = if round % 2 == 0 {
            [false, true]
        } else {
            [true, false]
        };
        for resume in order {
            let states = if resume {
                &mut resume_states
            } else {
                &mut fresh_states
            };
            let result = run(addr, states, params.secs).await;
            assert_eq!(
                result.errors,
                0,
                "{name} {}: {:?}",
                if resume { "resume" } else { "fresh" },
                result.first_error
            );
            let rate = result.cycles as f64 / params.secs;
            if resume {
                resume_rates.push(rate);
                resume_lat.extend(result.latencies);
            } else {
                fresh_rates.push(rate);
                fresh_lat.extend(result.latencies);
            }
            // Removals and detaches of the closed sockets finish before the next side runs.
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    fresh_lat.sort();
    resume_lat.sort();
    let fresh = median(&mut fresh_rates);
    let resumed = median(&mut resume_rates);
    format!(
        "| {name} | {fresh:.0} | {resumed:.0} | {:.2}x | {:.2} / {:.2} | {:.2} / {:.2} |",
        fresh / resumed,
        ms(percentile(&fresh_lat, 0.5)),
        ms(percentile(&fresh_lat, 0.99)),
        ms(percentile(&resume_lat, 0.5)),
        ms(percentile(&resume_lat, 0.99)),
    )
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The chat's layer with the resume window; each client resumes its one session many times a
/// second, far past the chat's bound on resume attempts, which is lifted here.
fn resumable(store: impl Into<ws_session::AnyStore>) -> SessionLayer {
    app::session_layer(store).resume(Resume::within(WINDOW).attempts_per_minute(u32::MAX))
}

async fn serve(layer: SessionLayer) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let router = app::router(layer);
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// `INFO commandstats` as (command, calls) pairs, and the total.
async fn commands(conn: &mut redis::aio::MultiplexedConnection) -> (u64, Vec<(String, u64)>) {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    let mut total = 0;
    let mut each = Vec::new();
    for line in info.lines() {
        let Some((name, rest)) = line
            .strip_prefix("cmdstat_")
            .and_then(|line| line.split_once(':'))
        else {
            continue;
        };
        let calls = rest
            .split(',')
            .find_map(|field| field.strip_prefix("calls="))
            .and_then(|calls| calls.parse::<u64>().ok())
            .unwrap_or(0);
        total += calls;
        each.push((name.to_owned(), calls));
    }
    (total, each)
}

async fn used_memory(conn: &mut redis::aio::MultiplexedConnection) -> i64 {
    redis_server::info_field(conn, "memory", "used_memory")
        .await
        .parse()
        .unwrap()
}

/// Commands per claim and per resume cycle, and memory per detached session and per kept
/// message.
async fn wire_and_memory(url: &str, params: &Params) -> Vec<String> {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut lines = Vec::new();

    // Whole cycles through the chat router, fresh and resuming, each counted alone.
    let store = RedisStore::connect(url, "cycle", TTL)
        .await
        .unwrap()
        .limits(app::limits());
    let addr = serve(resumable(store)).await;
    let mut per_cycle = Vec::new();
    for resume in [false, true] {
        let mut state = ClientState {
            user: "c".into(),
            resume: resume.then(|| (String::new(), None)),
        };
        cycle(addr, &mut state).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        let cycles = 50;
        let (before, stats_before) = commands(&mut conn).await;
        for i in 0..cycles {
            if !resume {
                // A storm of fresh connects comes from many users.
                state.user = format!("fresh{i}");
            }
            cycle(addr, &mut state).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (after, stats_after) = commands(&mut conn).await;
        let mut changed: Vec<String> = stats_after
            .iter()
            .filter_map(|(name, calls)| {
                let was = stats_before
                    .iter()
                    .find(|(other, _)| other == name)
                    .map_or(0, |(_, calls)| *calls);
                let delta = calls - was;
                (delta > 0 && name != "info")
                    .then(|| format!("{name} {:.1}", delta as f64 / f64::from(cycles)))
            })
            .collect();
        changed.sort();
        let commands = (after - before - 1) as f64 / f64::from(cycles);
        per_cycle.push(commands);
        let what = if resume {
            "resume cycle (connect with a token, claim, missed messages, close, detach)"
        } else {
            "fresh cycle (connect, create, close, detach)"
        };
        lines.push(format!(
            "wire: {commands:.1} Redis commands per {what}: {}",
            changed.join(", ")
        ));
    }
    lines.push(format!(
        "wire: a resume cycle costs {:.2}x the Redis commands of a fresh one",
        per_cycle[1] / per_cycle[0]
    ));

    // Memory per detached session: two data keys and one room each. The sessions are opened
    // through the layer (an upgrade request, no socket) and detached when their handle goes.
    let sessions = 2000;
    let store = RedisStore::connect(url, "mem", Duration::from_secs(3600))
        .await
        .unwrap()
        .limits(ws_session::Limits::default().max_user_sessions(1000));
    let layer = app::session_layer(store.clone()).resume(Resume::within(WINDOW));
    let start = used_memory(&mut conn).await;
    for i in 0..sessions {
        let session = open_session(&layer, &format!("user{}", i % 500)).await;
        session.set("name", "Alice").await.unwrap();
        session.set("theme", "dark").await.unwrap();
        session.join(&format!("room{}", i % 100)).await.unwrap();
    }
    layer.live_sessions().wait_for_removals().await;
    let detached = used_memory(&mut conn).await;
    lines.push(format!(
        "memory: {:.0} bytes of Redis per detached session (2 data keys, 1 room; {sessions} \
         sessions of 500 users in 100 rooms)",
        (detached - start) as f64 / f64::from(sessions)
    ));

    // Memory per kept message: 100-byte texts to one room, kept up to 10,000.
    let layer =
        app::session_layer(store.clone()).resume(Resume::within(WINDOW).keep_messages(10_000));
    let hub = layer.hub();
    // A room nobody is in keeps nothing: one member.
    let keeper = open_session(&layer, "keeper").await;
    keeper.join("kept").await.unwrap();
    let messages = 5000;
    let text = "x".repeat(100);
    let before = used_memory(&mut conn).await;
    for _ in 0..messages {
        hub.send_to_room("kept", text.as_str()).await.unwrap();
    }
    let after = used_memory(&mut conn).await;
    lines.push(format!(
        "memory: {:.0} bytes of Redis per kept message (100-byte text, {messages} in one room's \
         history)",
        (after - before) as f64 / f64::from(messages)
    ));
    let _ = params;
    lines.push(stall(url).await);
    lines
}

/// Resumes a session whose 8 rooms hold full histories while another connection pings Redis.
async fn stall(url: &str) -> String {
    const ROOMS: usize = 8;
    const KEPT: usize = 256;
    let store = RedisStore::connect(url, "stall", TTL)
        .await
        .unwrap()
        .limits(ws_session::Limits::default().max_message_len(128 * 1024));
    let layer = app::session_layer(store).resume(
        Resume::within(WINDOW)
            .keep_bytes(32 * 1024 * 1024)
            .keep_total_bytes(512 * 1024 * 1024),
    );
    let hub = layer.hub();
    let addr = serve(layer).await;
    let (mut ws, welcome) = connect(addr, "user=away").await.unwrap();
    for room in 0..ROOMS {
        let join = format!(r#"{{"op":"join","room":"full-{room}"}}"#);
        futures_util::SinkExt::send(&mut ws, Message::text(join))
            .await
            .unwrap();
        ws.next().await.unwrap().unwrap();
    }
    let token = welcome["resume"].as_str().unwrap().to_owned();
    close(ws).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let text = "x".repeat(64 * 1024);
    for room in 0..ROOMS {
        for _ in 0..KEPT {
            hub.send_to_room(&format!("full-{room}"), text.as_str())
                .await
                .unwrap();
        }
    }
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let mut pings = async |for_: Duration| {
        let mut took = Vec::new();
        let until = Instant::now() + for_;
        while Instant::now() < until {
            let start = Instant::now();
            let _: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
            took.push(start.elapsed());
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        took.sort();
        took
    };
    let idle = pings(Duration::from_secs(1)).await;
    let resumed = tokio::spawn(async move {
        let started = Instant::now();
        let (ws, welcome) = connect(addr, &format!("user=away&resume={token}"))
            .await
            .unwrap();
        (started.elapsed(), ws, welcome)
    });
    let during = pings(Duration::from_secs(1)).await;
    let (took, ws, welcome) = resumed.await.unwrap();
    close(ws).await;
    format!(
        "stall: PING p99 / max {:.2} / {:.2} ms idle, {:.2} / {:.2} ms during the resume of a \
         session in {ROOMS} rooms of {KEPT} x 64 KiB; the resume took {:.0} ms and got \
         missed={} complete={}",
        ms(percentile(&idle, 0.99)),
        ms(*idle.last().unwrap()),
        ms(percentile(&during, 0.99)),
        ms(*during.last().unwrap()),
        ms(took),
        welcome["missed"],
        welcome["complete"]
    )
}

fn main() {
    let bench = std::env::args().any(|arg| arg == "--bench");
    let params = Params::new(bench);
    let redis = redis_server::RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut rows = Vec::new();
        let memory = MemoryStore::with_ttl(TTL).limits(app::limits());
        let addr = serve(resumable(memory)).await;
        rows.push(compare("memory", addr, &params).await);
        let mut notes = Vec::new();
        if let Some(redis) = &redis {
            let store = RedisStore::connect(&redis.url(), "chat", TTL)
                .await
                .unwrap()
                .limits(app::limits());
            let addr = serve(resumable(store)).await;
            rows.push(compare("redis", addr, &params).await);
            notes = wire_and_memory(&redis.url(), &params).await;
        } else {
            notes.push("no redis-server: the Redis rows are skipped".into());
        }
        println!(
            "\nresume beside a fresh connect: {} clients, {} rounds of {} s each, medians",
            params.clients, params.rounds, params.secs
        );
        println!(
            "| store | fresh cycles/s | resume cycles/s | fresh / resume | fresh p50 / p99 ms | resume p50 / p99 ms |"
        );
        println!("|---|---|---|---|---|---|");
        for row in rows {
            println!("{row}");
        }
        for note in notes {
            println!("{note}");
        }
    });
}

/// Opens a session of `user` through `layer`, as an upgrade does, without a socket: the route
/// answers `101` and hands out the session's handle. Dropping the handle ends the session
/// (detached, with a resume window).
async fn open_session(layer: &SessionLayer, user: &str) -> WsSession {
    use std::sync::{Arc, Mutex};
    use tower::ServiceExt;
    let slot: Arc<Mutex<Option<WsSession>>> = Arc::default();
    let kept = Arc::clone(&slot);
    let router = axum::Router::new()
        .route(
            "/ws",
            axum::routing::any(move |session: WsSession| {
                let kept = Arc::clone(&kept);
                async move {
                    *kept.lock().unwrap() = Some(session);
                    http::StatusCode::SWITCHING_PROTOCOLS
                }
            }),
        )
        .layer(layer.clone());
    let request = http::Request::get(format!("/ws?user={user}"))
        .header("connection", "upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(axum::body::Body::empty())
        .unwrap();
    let response = router.oneshot(request).await.unwrap();
    assert_eq!(response.status(), http::StatusCode::SWITCHING_PROTOCOLS);
    slot.lock()
        .unwrap()
        .take()
        .expect("the route got a session")
}
