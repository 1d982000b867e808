//! The three fan-out contenders: their servers, their clients, and one measured round each.
// Member setups hand back the handle of the task that goes on reading for them.
#![allow(clippy::async_yields_async)]

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::serve::ListenerExt;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{Data, SocketRef};
use socketioxide_redis::{RedisAdapter, RedisAdapterCtr};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite};
use ws_session::RedisStore;

use crate::app;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What every contender gets.
pub struct Setup {
    pub redis_url: String,
    pub servers: tokio::runtime::Handle,
    pub text: String,
    pub members: usize,
    pub messages: usize,
    /// Where the messages come from: a client sending frames, or code on the server.
    pub from: From,
}

/// Who publishes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum From {
    /// A client connection sends the messages as frames, without waiting for replies.
    Client,
    /// Code on the first instance calls the server's own API, without waiting between calls.
    Server,
}

impl From {
    pub const ALL: [From; 2] = [From::Client, From::Server];

    pub fn name(self) -> &'static str {
        match self {
            From::Client => "client",
            From::Server => "server",
        }
    }
}

/// One measured round.
pub struct Outcome {
    pub delivered: usize,
    /// Messages that never reached a member.
    pub lost: usize,
    pub elapsed: Duration,
    /// ws-session only: envelopes the instance without room members received meanwhile.
    pub idle_node_received: Option<u64>,
}

impl Outcome {
    pub fn per_second(&self) -> f64 {
        self.delivered as f64 / self.elapsed.as_secs_f64()
    }

    /// The outcome as one line of text, for the harness to read back.
    pub fn line(&self) -> String {
        let idle = self
            .idle_node_received
            .map_or_else(|| "-".to_owned(), |n| n.to_string());
        format!(
            "{} {} {} {idle}",
            self.delivered,
            self.lost,
            self.elapsed.as_nanos()
        )
    }

    pub fn parse(line: &str) -> Option<Outcome> {
        let mut parts = line.split(' ');
        let delivered = parts.next()?.parse().ok()?;
        let lost = parts.next()?.parse().ok()?;
        let nanos: u64 = parts.next()?.parse().ok()?;
        let idle = parts.next()?;
        Some(Outcome {
            delivered,
            lost,
            elapsed: Duration::from_nanos(nanos),
            idle_node_received: idle.parse().ok(),
        })
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Contender {
    Bare,
    Socketioxide,
    WsSession,
}

impl Contender {
    pub const ALL: [Contender; 3] = [
        Contender::Bare,
        Contender::Socketioxide,
        Contender::WsSession,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Contender::Bare => "bare",
            Contender::Socketioxide => "socketioxide",
            Contender::WsSession => "ws-session",
        }
    }

    pub async fn run(self, setup: &Setup) -> Outcome {
        match self {
            Contender::Bare => bare(setup).await,
            Contender::Socketioxide => socketioxide(setup).await,
            Contender::WsSession => ws_session(setup).await,
        }
    }
}

/// A server on the servers' runtime; it stops when the returned sender is dropped.
async fn serve(setup: &Setup, router: Router) -> (SocketAddr, oneshot::Sender<()>) {
    let (addr_tx, addr_rx) = oneshot::channel();
    let (stop, stopped) = oneshot::channel::<()>();
    setup.servers.spawn(async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        addr_tx.send(listener.local_addr().unwrap()).unwrap();
        // Small frames go out at once, for every contender.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, router)
            .with_graceful_shutdown(async move {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    (addr_rx.await.unwrap(), stop)
}

async fn connect(url: &str) -> Ws {
    // A small read buffer: tungstenite zeroes the free part of it on every read, and with its
    // default of 128 KiB the clients of this harness would spend more time on that than the
    // servers spend on delivery.
    let config = tungstenite::protocol::WebSocketConfig::default().read_buffer_size(4096);
    let connecting = tokio_tungstenite::connect_async_with_config(url, Some(config), true);
    let (ws, _) = tokio::time::timeout(Duration::from_secs(30), connecting)
        .await
        .unwrap_or_else(|_| panic!("no WebSocket handshake with {url} within 30 s"))
        .unwrap();
    ws
}

async fn next_text(ws: &mut Ws) -> String {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("no frame within 30 s")
            .expect("the socket closed")
            .expect("a socket error");
        if let tungstenite::Message::Text(text) = frame {
            return text.to_string();
        }
    }
}

/// How long a member waits for its next message before it counts the rest as lost.
const QUIET: Duration = Duration::from_secs(3);

/// How long a member waits for its first message.
const FIRST: Duration = Duration::from_secs(60);

/// What one member received.
struct Counted {
    seen: usize,
    last: Option<Instant>,
    ws: Ws,
}

/// Reads `ws` until `expected` frames that `is_message` accepts have arrived, or none has come
/// for [`QUIET`] once the first one did (a contender that drops messages); returns how many
/// came and when the last one did. Answers Engine.IO pings on the way.
fn count(mut ws: Ws, expected: usize, is_message: fn(&str) -> bool) -> JoinHandle<Counted> {
    tokio::spawn(async move {
        let mut seen = 0;
        let mut last = None;
        while seen < expected {
            // The first message may wait for every other member to join; the next ones may not.
            let wait = if last.is_some() { QUIET } else { FIRST };
            let next = match tokio::time::timeout(wait, next_text(&mut ws)).await {
                Ok(text) => text,
                Err(_) => break,
            };
            if next == "2" {
                ws.send(tungstenite::Message::text("3")).await.unwrap();
            } else if is_message(&next) {
                seen += 1;
                last = Some(Instant::now());
            }
        }
        Counted { seen, last, ws }
    })
}

/// Runs `make(i)` for every `i` below `n`, 32 at a time, and collects what they return.
async fn in_parallel<T, F, Fut>(n: usize, make: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    futures_util::stream::iter(0..n)
        .map(make)
        .buffer_unordered(32)
        .collect()
        .await
}

/// Sends `frames` down `ws` without waiting for replies, and keeps reading (and dropping) what
/// comes back until the round is over.
async fn publish(mut ws: Ws, frames: Vec<String>) -> (Instant, JoinHandle<()>) {
    let started = Instant::now();
    for frame in frames {
        ws.feed(tungstenite::Message::text(frame)).await.unwrap();
    }
    ws.flush().await.unwrap();
    let drain = tokio::spawn(async move {
        while let Some(Ok(frame)) = ws.next().await {
            if matches!(&frame, tungstenite::Message::Text(text) if text.as_str() == "2") {
                let _ = ws.send(tungstenite::Message::text("3")).await;
            }
        }
    });
    (started, drain)
}

/// Waits for every counter and returns the outcome of the round: the messages delivered, and
/// the time from the first send to the last delivery.
async fn finish(
    counters: Vec<JoinHandle<Counted>>,
    started: Instant,
    setup: &Setup,
) -> (Outcome, Vec<Ws>) {
    let mut last = started;
    let mut delivered = 0;
    let mut sockets = Vec::with_capacity(counters.len());
    for counter in counters {
        let counted = counter.await.unwrap();
        delivered += counted.seen;
        last = last.max(counted.last.unwrap_or(started));
        sockets.push(counted.ws);
    }
    let outcome = Outcome {
        delivered,
        lost: setup.members * setup.messages - delivered,
        elapsed: last - started,
        idle_node_received: None,
    };
    (outcome, sockets)
}

// ---------------------------------------------------------------------------------------------
// bare: one process, tokio::sync::broadcast

async fn bare(setup: &Setup) -> Outcome {
    let (said, _) = broadcast::channel::<Utf8Bytes>(4 * setup.messages.max(1024));
    let router = Router::new()
        .route("/ws", get(bare_member))
        .route("/pub", get(bare_publisher))
        .with_state(said.clone());
    let (addr, stop) = serve(setup, router).await;
    let messages = setup.messages;
    let counters = in_parallel(setup.members, |_| async move {
        let ws = connect(&format!("ws://{addr}/ws")).await;
        count(ws, messages, |_| true)
    })
    .await;
    // The members are subscribed once their upgrade has run: give the last ones a moment.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (started, drain) = match setup.from {
        From::Client => {
            let publisher = connect(&format!("ws://{addr}/pub")).await;
            publish(publisher, vec![setup.text.clone(); setup.messages]).await
        }
        From::Server => {
            let text = Utf8Bytes::from(setup.text.clone());
            let messages = setup.messages;
            let sender = said.clone();
            let started = Instant::now();
            let task = setup.servers.spawn(async move {
                for _ in 0..messages {
                    let _ = sender.send(text.clone());
                }
            });
            (started, task)
        }
    };
    let (outcome, sockets) = finish(counters, started, setup).await;
    drop(sockets);
    drain.abort();
    drop(stop);
    outcome
}

async fn bare_member(
    ws: WebSocketUpgrade,
    State(said): State<broadcast::Sender<Utf8Bytes>>,
) -> impl IntoResponse {
    let mut heard = said.subscribe();
    // The same socket configuration as the chat example's.
    ws.read_buffer_size(app::READ_BUFFER)
        .on_upgrade(move |mut socket: WebSocket| async move {
            loop {
                tokio::select! {
                    message = heard.recv() => match message {
                        Ok(text) => {
                            if socket.send(Message::Text(text)).await.is_err() {
                                break;
                            }
                        }
                        Err(broadcast::error::RecvError::Lagged(_)) => {}
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                    frame = socket.recv() => {
                        if !matches!(frame, Some(Ok(_))) {
                            break;
                        }
                    }
                }
            }
        })
}

async fn bare_publisher(
    ws: WebSocketUpgrade,
    State(said): State<broadcast::Sender<Utf8Bytes>>,
) -> impl IntoResponse {
    // The same socket configuration as the chat example's.
    ws.read_buffer_size(app::READ_BUFFER)
        .on_upgrade(move |mut socket: WebSocket| async move {
            while let Some(Ok(Message::Text(text))) = socket.recv().await {
                let _ = said.send(text);
            }
        })
}

// ---------------------------------------------------------------------------------------------
// socketioxide 0.18 with socketioxide-redis

async fn on_connect<A: Adapter>(socket: SocketRef<A>) {
    socket.on(
        "join",
        async |socket: SocketRef<A>, Data::<String>(room)| {
            socket.join(room);
            socket.emit("joined", &()).unwrap();
        },
    );
    socket.on(
        "to_room",
        async |socket: SocketRef<A>, Data::<Value>(data)| {
            let _ = socket.within("room").emit("message", &data).await;
        },
    );
}

/// Emits one `message` event with this data to the room, from the server.
type Emit = Arc<dyn Fn(Value) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

async fn socketioxide_instance(setup: &Setup) -> (SocketAddr, oneshot::Sender<()>, Emit) {
    let url = format!("{}?protocol=resp3", setup.redis_url);
    let (layer, io) = setup
        .servers
        .spawn(async move {
            let client = redis::Client::open(url).unwrap();
            let adapter = RedisAdapterCtr::new_with_redis(&client).await.unwrap();
            // Each socket may hold as many waiting packets as a ws-session inbox holds messages
            // (socketioxide's default is 128, and it drops what does not fit).
            let (layer, io) = SocketIo::builder()
                .max_buffer_size(ws_session::hub::InboxLimits::default().messages)
                .with_adapter::<RedisAdapter<_>>(adapter)
                .build_layer();
            io.ns("/", on_connect).await.unwrap();
            (layer, io)
        })
        .await
        .unwrap();
    let router = Router::new().layer(layer);
    let (addr, stop) = serve(setup, router).await;
    let emit: Emit = Arc::new(move |data| {
        let io = io.clone();
        Box::pin(async move {
            let _ = io.within("room").emit("message", &data).await;
        })
    });
    (addr, stop, emit)
}

/// Opens a Socket.IO connection to the default namespace over a raw WebSocket.
async fn sio_connect(addr: SocketAddr) -> Ws {
    let mut ws = connect(&format!("ws://{addr}/socket.io/?EIO=4&transport=websocket")).await;
    let open = tokio::time::timeout(Duration::from_secs(10), next_text(&mut ws))
        .await
        .expect("no Engine.IO open packet within 10 s");
    assert!(open.starts_with('0'), "Engine.IO open packet: {open}");
    ws.send(tungstenite::Message::text("40")).await.unwrap();
    loop {
        let text = tokio::time::timeout(Duration::from_secs(10), next_text(&mut ws))
            .await
            .expect("no Socket.IO connect reply within 10 s");
        if text == "2" {
            ws.send(tungstenite::Message::text("3")).await.unwrap();
            continue;
        }
        assert!(text.starts_with("40"), "Socket.IO connect: {text}");
        return ws;
    }
}

async fn socketioxide(setup: &Setup) -> Outcome {
    let (a, stop_a, emit) = socketioxide_instance(setup).await;
    let (b, stop_b, _) = socketioxide_instance(setup).await;
    let messages = setup.messages;
    let counters = in_parallel(setup.members, |i| async move {
        let addr = if i % 2 == 0 { a } else { b };
        let join = async {
            let mut ws = sio_connect(addr).await;
            // An event that arrives before the server has registered its handlers (they are
            // registered by the connect handler, which may still be running when the client
            // hears it is connected) is dropped: ask again until the server confirms.
            loop {
                ws.send(tungstenite::Message::text(r#"42["join","room"]"#))
                    .await
                    .unwrap();
                let confirmed = async {
                    loop {
                        let text = next_text(&mut ws).await;
                        if text.starts_with(r#"42["joined""#) {
                            return;
                        }
                        if text == "2" {
                            ws.send(tungstenite::Message::text("3")).await.unwrap();
                        }
                    }
                };
                if tokio::time::timeout(Duration::from_millis(500), confirmed)
                    .await
                    .is_ok()
                {
                    return ws;
                }
            }
        };
        let ws = tokio::time::timeout(Duration::from_secs(20), join)
            .await
            .unwrap_or_else(|_| panic!("socketioxide member {i} did not join within 20 s"));
        // Read (and answer pings) from now on, so no member times out while others join.
        count(ws, messages, |text| text.starts_with(r#"42["message""#))
    })
    .await;
    eprintln!("socketioxide: {} members joined", counters.len());
    let (started, drain) = match setup.from {
        From::Client => {
            let publisher = sio_connect(a).await;
            let event = json!(["to_room", {"room": "room", "text": setup.text}]);
            publish(publisher, vec![format!("42{event}"); setup.messages]).await
        }
        From::Server => {
            let data = json!({"room": "room", "text": setup.text});
            let messages = setup.messages;
            let started = Instant::now();
            let task = setup.servers.spawn(async move {
                futures_util::future::join_all((0..messages).map(|_| emit(data.clone()))).await;
            });
            (started, task)
        }
    };
    let (outcome, sockets) = finish(counters, started, setup).await;
    drop(sockets);
    drain.abort();
    drop((stop_a, stop_b));
    outcome
}

// ---------------------------------------------------------------------------------------------
// ws-session: the chat example on RedisStore

static ROUND: AtomicU64 = AtomicU64::new(0);

async fn ws_session(setup: &Setup) -> Outcome {
    // Each round is a process of its own: its keys must not meet those of an earlier one.
    let prefix = format!(
        "fanout{}-{}",
        std::process::id(),
        ROUND.fetch_add(1, Ordering::Relaxed)
    );
    let mut addrs = Vec::new();
    let mut hubs = Vec::new();
    let mut stops = Vec::new();
    for _ in 0..3 {
        let url = setup.redis_url.clone();
        let prefix = prefix.clone();
        let layer = setup
            .servers
            .spawn(async move {
                let store = RedisStore::connect(&url, prefix, Duration::from_secs(600))
                    .await
                    .unwrap()
                    .limits(app::limits());
                app::session_layer(store)
            })
            .await
            .unwrap();
        hubs.push(layer.hub());
        let (addr, stop) = serve(setup, app::router_with(layer, app::Settings::unlimited())).await;
        addrs.push(addr);
        stops.push(stop);
    }
    let (first, second) = (addrs[0], addrs[1]);
    let messages = setup.messages;
    let counters = in_parallel(setup.members, |i| async move {
        let addr = if i % 2 == 0 { first } else { second };
        let mut ws = connect(&format!("ws://{addr}/ws?user=m{i}")).await;
        assert!(next_text(&mut ws).await.contains("welcome"));
        ws.send(tungstenite::Message::text(
            json!({"op": "join", "room": "room"}).to_string(),
        ))
        .await
        .unwrap();
        assert_eq!(next_text(&mut ws).await, r#"{"type":"ok"}"#);
        count(ws, messages, |text| text.contains(r#""type":"message""#))
    })
    .await;
    let listed = hubs[0].members("room").await.unwrap().len();
    assert_eq!(listed, setup.members, "every member is listed");
    let mut idle = connect(&format!("ws://{}/ws?user=idle", addrs[2])).await;
    assert!(next_text(&mut idle).await.contains("welcome"));
    let idle_before = hubs[2].stats().received;

    let (started, drain) = match setup.from {
        From::Client => {
            let mut publisher = connect(&format!("ws://{}/ws?user=publisher", addrs[0])).await;
            assert!(next_text(&mut publisher).await.contains("welcome"));
            let frame = json!({"op": "to_room", "room": "room", "text": setup.text}).to_string();
            publish(publisher, vec![frame; setup.messages]).await
        }
        From::Server => {
            // What the chat example's `to_room` sends.
            let message =
                json!({"type": "message", "from": "publisher", "room": "room", "text": setup.text})
                    .to_string();
            let payload = ws_session::hub::Payload::from(message);
            let hub = hubs[0].clone();
            let messages = setup.messages;
            let started = Instant::now();
            let task = setup.servers.spawn(async move {
                let sends = (0..messages).map(|_| hub.send_to_room("room", payload.clone()));
                for result in futures_util::future::join_all(sends).await {
                    result.unwrap();
                }
            });
            (started, task)
        }
    };
    let (mut outcome, sockets) = finish(counters, started, setup).await;
    outcome.idle_node_received = Some(hubs[2].stats().received - idle_before);
    drop(sockets);
    drop(idle);
    drain.abort();
    drop(stops);
    outcome
}
