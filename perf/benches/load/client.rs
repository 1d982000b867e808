//! The load: real WebSocket clients (tokio-tungstenite) on loopback.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt, TryStreamExt, stream};
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

type Ws = WebSocketStream<TcpStream>;

/// The longest any single step (connect, handshake, one reply) may take.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client waits for the server to close after it sent its close frame.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The clients' read buffer. tungstenite zeroes its whole read buffer (128 KiB by default)
/// before every read; the clients keep theirs small so that the load generator spends its
/// share of the CPU on the protocol, not on memset. The servers keep axum's defaults.
const CLIENT_READ_BUFFER: usize = 4096;

/// The frame `ops` clients send for `set`, and the text its `get` reply must carry.
const SET: &str =
    r#"{"op":"set","key":"profile","value":{"name":"load","visits":42,"tags":["a","b"]}}"#;
const GET: &str = r#"{"op":"get","key":"profile"}"#;
const STORED: &str = r#""visits":42"#;

/// What one timed run of clients did.
#[derive(Debug, Clone, Default)]
pub struct Run {
    /// Completed cycles (churn) or round trips (ops).
    pub done: u64,
    pub elapsed: Duration,
    pub errors: u64,
    pub first_error: Option<String>,
    /// CPU time the server process used during the run (filled in by the harness).
    pub server_cpu: Duration,
    /// CPU time the Redis server used during the run, for the redis server.
    pub redis_cpu: Option<Duration>,
}

impl Run {
    pub fn per_second(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64()
    }

    /// Microseconds of server CPU per completed cycle or operation.
    pub fn server_cpu_per_op(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.done.max(1) as f64
    }

    /// Microseconds of Redis server CPU per completed cycle or operation.
    pub fn redis_cpu_per_op(&self) -> Option<f64> {
        let cpu = self.redis_cpu?;
        Some(cpu.as_secs_f64() * 1e6 / self.done.max(1) as f64)
    }
}

/// Opens a WebSocket for `user` and reads the welcome.
async fn open(addr: SocketAddr, user: &str) -> Result<Ws, String> {
    let stream = timeout(STEP_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|err| format!("connect: {err}"))?;
    stream
        .set_nodelay(true)
        .map_err(|err| format!("nodelay: {err}"))?;
    let url = format!("ws://{addr}/ws?user={user}");
    let config = WebSocketConfig::default().read_buffer_size(CLIENT_READ_BUFFER);
    let (mut ws, _) = timeout(
        STEP_TIMEOUT,
        tokio_tungstenite::client_async_with_config(url, stream, Some(config)),
    )
    .await
    .map_err(|_| "handshake timed out".to_owned())?
    .map_err(|err| format!("handshake: {err}"))?;
    let welcome = reply(&mut ws).await?;
    if !welcome.contains(r#""type":"welcome""#) {
        return Err(format!("expected a welcome, got {welcome}"));
    }
    Ok(ws)
}

/// The next text frame from the server.
async fn reply(ws: &mut Ws) -> Result<String, String> {
    match timeout(STEP_TIMEOUT, ws.next()).await {
        Err(_) => Err("no reply in time".to_owned()),
        Ok(Some(Ok(Message::Text(text)))) => Ok(text.as_str().to_owned()),
        Ok(Some(Ok(other))) => Err(format!("unexpected frame {other:?}")),
        Ok(Some(Err(err))) => Err(format!("read: {err}")),
        Ok(None) => Err("the server closed the socket".to_owned()),
    }
}

/// Sends a close frame and waits (bounded) until the server closes the connection, so the
/// server side closes the TCP connection first, as RFC 6455 asks.
async fn close(mut ws: Ws) -> Result<(), String> {
    ws.close(None)
        .await
        .map_err(|err| format!("close: {err}"))?;
    let drain = async {
        // The server may drop the socket without echoing the close frame: both end the loop.
        while let Some(Ok(_)) = ws.next().await {}
    };
    timeout(CLOSE_TIMEOUT, drain)
        .await
        .map_err(|_| "the server did not close the socket".to_owned())
}

/// What one client counted.
#[derive(Debug, Default)]
struct Tally {
    done: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Tally {
    fn failed(&mut self, err: String) {
        self.errors += 1;
        self.first_error.get_or_insert(err);
    }
}

/// Runs one task per element of `clients` until `duration` is up, each repeating its work
/// with its own state; returns the run and the states.
async fn timed<S, F, Fut>(clients: Vec<S>, duration: Duration, work: F) -> (Run, Vec<S>)
where
    S: Send + 'static,
    F: Fn(S, Instant) -> Fut,
    Fut: Future<Output = (Tally, S)> + Send + 'static,
{
    let start = Instant::now();
    let deadline = start + duration;
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|state| tokio::spawn(work(state, deadline)))
        .collect();
    let mut run = Run::default();
    let mut states = Vec::with_capacity(tasks.len());
    for task in tasks {
        let (tally, state) = task.await.expect("a client task panicked");
        run.done += tally.done;
        run.errors += tally.errors;
        if run.first_error.is_none() {
            run.first_error = tally.first_error;
        }
        states.push(state);
    }
    run.elapsed = start.elapsed();
    (run, states)
}

/// `clients` clients, each connecting, reading the welcome and closing, until `duration` is up.
pub async fn churn(addr: SocketAddr, clients: usize, duration: Duration) -> Run {
    let users = (0..clients)
        .map(|client| format!("churn{client}"))
        .collect();
    let (run, _) = timed(users, duration, move |user: String, deadline| async move {
        let mut tally = Tally::default();
        while Instant::now() < deadline {
            match async { close(open(addr, &user).await?).await }.await {
                Ok(()) => tally.done += 1,
                Err(err) => {
                    tally.failed(err);
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        (tally, user)
    })
    .await;
    run
}

/// `clients` clients on one socket each, alternating `set` and `get` round trips until
/// `duration` is up; each round trip counts as one operation. The sockets are opened before
/// the clock starts and closed after it stops.
pub async fn ops(addr: SocketAddr, clients: usize, duration: Duration) -> Run {
    let mut sockets = Vec::with_capacity(clients);
    for client in 0..clients {
        let ws = open(addr, &format!("ops{client}"))
            .await
            .unwrap_or_else(|err| panic!("ops client {client} cannot connect: {err}"));
        sockets.push(ws);
    }
    let (run, sockets) = timed(sockets, duration, |mut ws: Ws, deadline| async move {
        let mut tally = Tally::default();
        let set = Message::text(SET);
        let get = Message::text(GET);
        while Instant::now() < deadline {
            let round = async {
                ws.send(set.clone())
                    .await
                    .map_err(|err| format!("send: {err}"))?;
                let answer = reply(&mut ws).await?;
                if !answer.contains(r#""type":"ok""#) {
                    return Err(format!("set: {answer}"));
                }
                ws.send(get.clone())
                    .await
                    .map_err(|err| format!("send: {err}"))?;
                let answer = reply(&mut ws).await?;
                if !answer.contains(r#""type":"value""#) || !answer.contains(STORED) {
                    return Err(format!("get: {answer}"));
                }
                Ok(())
            };
            match round.await {
                Ok(()) => tally.done += 2,
                Err(err) => {
                    tally.failed(err);
                    break;
                }
            }
        }
        (tally, ws)
    })
    .await;
    close_many(sockets, clients).await;
    run
}

/// Opens `count` sockets (`concurrency` handshakes at a time) and returns those that read
/// their welcome, with the number of failures and the first error.
pub async fn open_many(
    addr: SocketAddr,
    count: usize,
    concurrency: usize,
) -> (Vec<Ws>, u64, Option<String>) {
    let failures = AtomicU64::new(0);
    let first_error = std::sync::Mutex::new(None);
    let sockets: Vec<Ws> = stream::iter(0..count)
        .map(|i| async move { open(addr, &format!("hold{i}")).await })
        .buffer_unordered(concurrency)
        .filter_map(|opened| {
            let kept = match opened {
                Ok(ws) => Some(ws),
                Err(err) => {
                    failures.fetch_add(1, Ordering::Relaxed);
                    first_error.lock().expect("not poisoned").get_or_insert(err);
                    None
                }
            };
            std::future::ready(kept)
        })
        .collect()
        .await;
    let first_error = first_error.into_inner().expect("not poisoned");
    (sockets, failures.into_inner(), first_error)
}

/// Closes every socket, `concurrency` at a time; returns how many did not close cleanly.
pub async fn close_many(sockets: Vec<Ws>, concurrency: usize) -> u64 {
    stream::iter(sockets)
        .map(|ws| async move { Ok::<u64, ()>(u64::from(close(ws).await.is_err())) })
        .buffer_unordered(concurrency)
        .try_fold(0, |failed, one| std::future::ready(Ok(failed + one)))
        .await
        .unwrap_or(0)
}
