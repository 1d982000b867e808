//! The clients of the scale bench: one task per WebSocket, spread over several loopback source
//! addresses, each reconnecting (resuming when it holds a token) with a fully jittered
//! backoff until the harness stops it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use nix::sys::socket::setsockopt;
use nix::sys::socket::sockopt::IpBindAddressNoPort;
use rand::Rng;
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};

type Ws = WebSocketStream<TcpStream>;

/// Source addresses the clients connect from, so that a large fleet has ports to spare.
const SOURCES: u8 = 4;
/// The first retry comes after up to this long; each next one, up to twice as long.
const BACKOFF_BASE: Duration = Duration::from_millis(250);
const BACKOFF_CAP: Duration = Duration::from_secs(2);
/// How long a client waits for the answer to its upgrade request, or for its close to be
/// answered.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A text sent to measure fan-out: `t:` and the nanoseconds since the fleet's epoch.
pub const PROBE: &str = "t:";
/// A text sent while the clients are away: `away:` and its target and number.
pub const AWAY: &str = "away:";

/// What every client of a fleet reports to the harness.
pub struct Shared {
    epoch: Instant,
    /// Clients that hold a welcomed socket now.
    pub open: AtomicUsize,
    /// Welcomes that said `recovered: true` / `false` to a client presenting a token.
    pub resumed: AtomicUsize,
    pub lost: AtomicUsize,
    /// Upgrades refused with 503 (the admission queue was full), and connects that failed.
    pub busy: AtomicUsize,
    pub failed: AtomicUsize,
    /// Fan-out latencies seen, in microseconds.
    pub latencies: Mutex<Vec<u32>>,
    /// Whether clients record fan-out latencies.
    pub probing: std::sync::atomic::AtomicBool,
    /// While true, every client drops its connection (no close frame, as a network does) and
    /// waits; when it turns false, all come back at once, without a backoff.
    pub away: watch::Sender<bool>,
}

impl Shared {
    pub fn new() -> Arc<Shared> {
        Arc::new(Shared {
            epoch: Instant::now(),
            open: AtomicUsize::new(0),
            resumed: AtomicUsize::new(0),
            lost: AtomicUsize::new(0),
            busy: AtomicUsize::new(0),
            failed: AtomicUsize::new(0),
            latencies: Mutex::new(Vec::new()),
            probing: std::sync::atomic::AtomicBool::new(false),
            away: watch::channel(false).0,
        })
    }

    /// A fan-out probe's text, stamped now.
    pub fn probe(&self) -> String {
        format!("{PROBE}{}", self.epoch.elapsed().as_nanos())
    }

    fn record_probe(&self, text: &str) {
        if let Some(sent) = text
            .strip_prefix(PROBE)
            .and_then(|n| n.parse::<u128>().ok())
        {
            let now = self.epoch.elapsed().as_nanos();
            let micros = u32::try_from(now.saturating_sub(sent) / 1000).unwrap_or(u32::MAX);
            self.latencies.lock().unwrap().push(micros);
        }
    }
}

/// One client: who it is, and what it saw of the messages sent while it was away.
pub struct Client {
    pub user: String,
    pub room: Option<String>,
    pub away: Mutex<Vec<String>>,
}

/// Runs `client` against `addr` from source address number `source` until `stop` turns true:
/// then it closes its socket and returns.
/// The first connection waits `delay`, then, with `paced`, for a permit of it, held until the
/// client is welcomed and in its room.
pub async fn run(
    addr: SocketAddr,
    source: usize,
    client: Arc<Client>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    paced: Option<Arc<Semaphore>>,
    delay: Duration,
) {
    tokio::select! {
        () = tokio::time::sleep(delay) => {}
        _ = stop.wait_for(|stop| *stop) => return,
    }
    let mut permit = match paced {
        Some(paced) => Some(
            paced
                .acquire_owned()
                .await
                .expect("the pace is never closed"),
        ),
        None => None,
    };
    let from = IpAddr::V4(Ipv4Addr::new(
        127,
        0,
        0,
        2 + (source % SOURCES as usize) as u8,
    ));
    let mut resume: Option<(String, Option<String>)> = None;
    let mut joined = false;
    let mut attempt = 0u32;
    while !*stop.borrow() {
        let presented = resume.is_some();
        let query = match &resume {
            Some((token, Some(offset))) => {
                format!("user={}&resume={token}&offset={offset}", client.user)
            }
            Some((token, None)) => format!("user={}&resume={token}", client.user),
            None => format!("user={}", client.user),
        };
        let mut ws = match connect(addr, from, &query).await {
            Ok(ws) => ws,
            Err(busy) => {
                let counter = if busy { &shared.busy } else { &shared.failed };
                counter.fetch_add(1, Ordering::Relaxed);
                backoff(&mut attempt, &mut stop).await;
                continue;
            }
        };
        let welcome = match next_text(&mut ws).await {
            Some(welcome) if welcome["type"] == "welcome" => welcome,
            _ => {
                shared.failed.fetch_add(1, Ordering::Relaxed);
                backoff(&mut attempt, &mut stop).await;
                continue;
            }
        };
        attempt = 0;
        if presented {
            if welcome["recovered"] == true {
                shared.resumed.fetch_add(1, Ordering::Relaxed);
            } else {
                shared.lost.fetch_add(1, Ordering::Relaxed);
            }
        }
        let token = welcome["resume"].as_str().unwrap_or_default().to_owned();
        let offset = resume.take().and_then(|(_, offset)| offset);
        resume = Some((token, offset));
        if let (Some(room), false) = (&client.room, joined) {
            let join = json!({"op": "join", "room": room}).to_string();
            if ws.send(Message::Text(join.into())).await.is_err()
                || next_text(&mut ws)
                    .await
                    .is_none_or(|reply| reply["type"] != "ok")
            {
                continue;
            }
            joined = true;
        }
        permit.take();
        shared.open.fetch_add(1, Ordering::Relaxed);
        let ended = read(&mut ws, &client, &shared, &mut resume, &mut stop).await;
        shared.open.fetch_sub(1, Ordering::Relaxed);
        match ended {
            Ended::Stopped => {
                let closing = async {
                    let _ = ws.close(None).await;
                    while let Some(Ok(_)) = ws.next().await {}
                };
                let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, closing).await;
                return;
            }
            Ended::Away => {
                drop(ws);
                let mut away = shared.away.subscribe();
                tokio::select! {
                    _ = away.wait_for(|away| !*away) => {}
                    _ = stop.wait_for(|stop| *stop) => return,
                }
            }
            // Dropped or closed by the server (a restart): come back after a jittered pause.
            Ended::Dropped => backoff(&mut attempt, &mut stop).await,
        }
    }
}

/// Why a client's socket ended.
enum Ended {
    /// The harness stopped the fleet.
    Stopped,
    /// The harness sent the fleet away.
    Away,
    /// The server closed it, or it broke.
    Dropped,
}

/// Reads frames until the socket ends, or the harness stops the fleet or sends it away.
async fn read(
    ws: &mut Ws,
    client: &Client,
    shared: &Shared,
    resume: &mut Option<(String, Option<String>)>,
    stop: &mut watch::Receiver<bool>,
) -> Ended {
    let mut away = shared.away.subscribe();
    loop {
        let frame = tokio::select! {
            frame = ws.next() => frame,
            _ = stop.wait_for(|stop| *stop) => return Ended::Stopped,
            _ = away.wait_for(|away| *away) => return Ended::Away,
        };
        let text = match frame {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Close(_)) | Err(_)) | None => return Ended::Dropped,
            Some(Ok(_)) => continue,
        };
        let Ok(frame) = serde_json::from_str::<Value>(&text) else {
            continue;
        };
        if frame["type"] != "message" {
            continue;
        }
        if let (Some(offset), Some((_, last))) = (frame["offset"].as_str(), resume.as_mut()) {
            *last = Some(offset.to_owned());
        }
        let body = frame["text"].as_str().unwrap_or_default();
        if body.starts_with(AWAY) {
            client.away.lock().unwrap().push(body.to_owned());
        } else if shared.probing.load(Ordering::Relaxed) {
            shared.record_probe(body);
        }
    }
}

/// Sleeps a random time within a window that doubles with each attempt, or until stopped.
async fn backoff(attempt: &mut u32, stop: &mut watch::Receiver<bool>) {
    let window = BACKOFF_CAP.min(BACKOFF_BASE * 2u32.pow((*attempt).min(8)));
    *attempt += 1;
    let pause = window.mul_f64(rand::rng().random::<f64>());
    tokio::select! {
        () = tokio::time::sleep(pause) => {}
        _ = stop.wait_for(|stop| *stop) => {}
    }
}

/// Opens a WebSocket to `addr` from address `from`; `Err(true)` when refused with 503.
async fn connect(addr: SocketAddr, from: IpAddr, query: &str) -> Result<Ws, bool> {
    let socket = TcpSocket::new_v4().map_err(|_| false)?;
    // The port is chosen at connect, for the whole address pair. A bind to port 0 searches for
    // a port no other socket of that address holds, under a lock, at a cost that grows with
    // the sockets open and in TIME_WAIT: at 19,000 clients it kept the harness's cores busy in
    // the kernel, and held a storm's clients back.
    setsockopt(&socket, IpBindAddressNoPort, &true).map_err(|_| false)?;
    socket.bind(SocketAddr::new(from, 0)).map_err(|_| false)?;
    let stream = socket.connect(addr).await.map_err(|_| false)?;
    stream.set_nodelay(true).map_err(|_| false)?;
    // Small buffers, as the servers have: the harness holds as many sockets as they do.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let url = format!("ws://{addr}/ws?{query}");
    // A handshake the server never answers fails after a while and is retried, so that one
    // lost connection cannot hold a storm (and the bench) forever.
    let handshake = tokio_tungstenite::client_async_with_config(url, stream, Some(config));
    match tokio::time::timeout(HANDSHAKE_TIMEOUT, handshake).await {
        Ok(Ok((ws, _))) => Ok(ws),
        Ok(Err(tungstenite::Error::Http(response))) => Err(response.status() == 503),
        Ok(Err(_)) | Err(_) => Err(false),
    }
}

/// The next text frame as JSON, within ten seconds.
async fn next_text(ws: &mut Ws) -> Option<Value> {
    let wait = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(Ok(frame)) = ws.next().await {
            if let Message::Text(text) = frame {
                return serde_json::from_str(&text).ok();
            }
        }
        None
    });
    wait.await.ok().flatten()
}

/// A client that sends: connects as `user` and returns its socket (fan-out probes).
pub async fn sender(addr: SocketAddr, user: &str) -> Ws {
    let from = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut ws = connect(addr, from, &format!("user={user}"))
        .await
        .expect("the sender connects");
    next_text(&mut ws).await.expect("the sender's welcome");
    ws
}

/// Sends `{"op":"to_room"}` of `text` to `room` on `ws`, and reads its reply.
pub async fn send_to_room(ws: &mut Ws, room: &str, text: &str) {
    let frame = json!({"op": "to_room", "room": room, "text": text}).to_string();
    ws.send(Message::Text(frame.into()))
        .await
        .expect("send a probe");
    // The reply, and the sender's own messages if it is a member (it is not).
    while let Some(reply) = next_text(ws).await {
        if reply["type"] == "ok" {
            return;
        }
    }
    panic!("no reply to a probe");
}
