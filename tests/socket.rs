//! The socket loop that comes with the crate, `SessionSocket`, over real sockets: hub messages
//! out and client frames in, the hub's close order, the idle close, the size close, a `recv`
//! cancelled over and over, and a room send that leaves its sender out (live and on resume),
//! on both stores.

mod support;

use std::time::Duration;

use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::{Router, http::request::Parts, response::IntoResponse, routing::get};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::Kind;
use support::chat::{Instance, serve};
use support::redis_server::unique_prefix;
use tokio_tungstenite::tungstenite::{self, protocol::frame::coding::CloseCode};
use ws_session::hub::Delivery;
use ws_session::resume::Resume;
use ws_session::socket::SessionSocket;
use ws_session::{AnyStore, MemoryStore, SessionLayer, WsSession};

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const HOUR: Duration = Duration::from_secs(3600);
const WAIT: Duration = Duration::from_secs(5);
/// The largest message the test server reads.
const MAX_MESSAGE: usize = 16 * 1024;
/// The idle timeout of `/ws/idle`.
const IDLE: Duration = Duration::from_millis(300);

/// A store of `kind`; `None` when Redis is wanted and missing.
async fn store(kind: Kind) -> Option<AnyStore> {
    match kind {
        Kind::Memory => Some(MemoryStore::with_ttl(HOUR).into()),
        Kind::Redis | Kind::Sentinel | Kind::Cluster => {
            support::redis_store_of(kind, &unique_prefix(), HOUR)
                .await
                .map(Into::into)
        }
    }
}

/// A server whose handlers join room `room` and run a `SessionSocket`: `/ws` echoes what the
/// client sends, and for the text `leave-out` sends `from ID` to the room but the sender;
/// `/ws/idle` has a short idle timeout; `/ws/cancel` cancels `recv` every millisecond.
async fn server(store: AnyStore) -> Instance {
    let layer = SessionLayer::new(store)
        .identify(|parts: &Parts| {
            let user = parts
                .uri
                .query()
                .and_then(|query| query.strip_prefix("user="))
                .map(|user| user.split('&').next().unwrap_or(user).to_owned());
            async move { Ok(user) }
        })
        .resume(Resume::within(Duration::from_secs(60)));
    let router = Router::new()
        .route("/ws", get(|ws, session| upgrade(ws, session, Mode::Echo)))
        .route(
            "/ws/idle",
            get(|ws, session| upgrade(ws, session, Mode::Idle)),
        )
        .route(
            "/ws/cancel",
            get(|ws, session| upgrade(ws, session, Mode::Cancel)),
        )
        .layer(layer.clone());
    serve(layer, router).await
}

#[derive(Clone, Copy)]
enum Mode {
    Echo,
    Idle,
    Cancel,
}

/// A hub message as `OFFSET TEXT`, so that a client can resume from what it saw.
fn with_offset(delivery: &Delivery) -> Message {
    match delivery.text() {
        Some(text) => Message::Text(format!("{} {text}", delivery.offset()).into()),
        None => Message::from(delivery),
    }
}

async fn upgrade(ws: WebSocketUpgrade, session: WsSession, mode: Mode) -> impl IntoResponse {
    ws.max_message_size(MAX_MESSAGE)
        .on_upgrade(move |socket| async move {
            session.join("room").await.unwrap();
            let mut socket = SessionSocket::new(socket, session.clone()).deliver_with(with_offset);
            if let Mode::Idle = mode {
                socket = socket.idle_timeout(Some(IDLE));
            }
            let hello = json!({
                "id": session.id(),
                "token": session.resume_token().expose(),
                "missed": session.recovery().map(|recovery| recovery.missed),
            });
            if socket
                .send(Message::Text(hello.to_string().into()))
                .await
                .is_err()
            {
                return;
            }
            loop {
                let frame = match mode {
                    Mode::Cancel => tokio::select! {
                        frame = socket.recv() => frame,
                        () = tokio::time::sleep(Duration::from_millis(1)) => continue,
                    },
                    Mode::Echo | Mode::Idle => socket.recv().await,
                };
                let Some(frame) = frame else { break };
                if frame == Message::Text("leave-out".into()) {
                    let hub = session.hub();
                    let text = format!("from {}", session.id());
                    hub.send_to_room_except("room", session.id(), text)
                        .await
                        .unwrap();
                } else if socket.send(frame).await.is_err() {
                    break;
                }
            }
        })
}

/// Connects as `user` to `path` (with `query` after the user) and reads the hello.
async fn connect(instance: &Instance, path: &str, user: &str, query: &str) -> (Client, Value) {
    let url = format!("ws://{}{path}?user={user}{query}", instance.addr);
    let (mut client, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let hello = next_text(&mut client).await;
    (client, serde_json::from_str(&hello).unwrap())
}

/// The next text frame, skipping pings.
async fn next_text(client: &mut Client) -> String {
    loop {
        let frame = tokio::time::timeout(WAIT, client.next())
            .await
            .expect("a frame in time")
            .expect("the socket is open")
            .unwrap();
        match frame {
            tungstenite::Message::Text(text) => return text.to_string(),
            tungstenite::Message::Ping(_) | tungstenite::Message::Pong(_) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

/// The close frame's code and reason, skipping what comes before it.
async fn close_frame(client: &mut Client) -> (CloseCode, String) {
    loop {
        let frame = tokio::time::timeout(WAIT, client.next())
            .await
            .expect("a frame in time")
            .expect("a close frame before the end")
            .unwrap();
        if let tungstenite::Message::Close(Some(frame)) = frame {
            return (frame.code, frame.reason.to_string());
        }
    }
}

/// The text of a hub message, without its offset.
fn text_of(frame: &str) -> &str {
    frame.split_once(' ').map_or(frame, |(_, text)| text)
}

async fn hub_messages_and_client_frames_flow_both_ways(kind: Kind) {
    let Some(store) = store(kind).await else {
        eprintln!("{}", support::redis_server::SKIPPED);
        return;
    };
    let instance = server(store).await;
    let (mut alice, _) = connect(&instance, "/ws", "alice", "").await;
    let (mut bob, _) = connect(&instance, "/ws", "bob", "").await;

    alice.send("echo me".into()).await.unwrap();
    assert_eq!(next_text(&mut alice).await, "echo me");
    alice.send(vec![1u8, 2, 3].into()).await.unwrap();
    let echoed = tokio::time::timeout(WAIT, alice.next()).await.unwrap();
    assert_eq!(
        echoed.unwrap().unwrap(),
        tungstenite::Message::Binary(vec![1u8, 2, 3].into())
    );

    // A burst from the hub reaches both, in order, with offsets.
    for n in 0..100 {
        instance
            .hub
            .send_to_room("room", format!("m{n}"))
            .await
            .unwrap();
    }
    instance.hub.send_to_room("room", vec![9u8]).await.unwrap();
    for client in [&mut alice, &mut bob] {
        let mut last_offset = 0u64;
        for n in 0..100 {
            let frame = next_text(client).await;
            let (offset, text) = frame.split_once(' ').unwrap();
            assert_eq!(text, format!("m{n}"));
            let offset: u64 = offset.parse().unwrap();
            assert!(offset > last_offset, "offsets increase");
            last_offset = offset;
        }
        let binary = tokio::time::timeout(WAIT, client.next()).await.unwrap();
        assert_eq!(
            binary.unwrap().unwrap(),
            tungstenite::Message::Binary(vec![9u8].into())
        );
    }
}
each_store!(hub_messages_and_client_frames_flow_both_ways);

async fn a_room_send_can_leave_the_sender_out(kind: Kind) {
    let Some(store) = store(kind).await else {
        eprintln!("{}", support::redis_server::SKIPPED);
        return;
    };
    let instance = server(store).await;
    let (mut alice, hello) = connect(&instance, "/ws", "alice", "").await;
    let alice_id = hello["id"].as_str().unwrap().to_owned();
    let alice_token = hello["token"].as_str().unwrap().to_owned();
    let (mut bob, _) = connect(&instance, "/ws", "bob", "").await;

    alice.send("leave-out".into()).await.unwrap();
    assert_eq!(
        text_of(&next_text(&mut bob).await),
        format!("from {alice_id}")
    );
    // Alice's next message is the one after hers: hers never came.
    instance.hub.send_to_room("room", "after").await.unwrap();
    assert_eq!(text_of(&next_text(&mut alice).await), "after");
    assert_eq!(text_of(&next_text(&mut bob).await), "after");

    // Away, alice misses a message that leaves her out and one that does not. Resuming from
    // when she joined (no offset), she gets what the room was sent since, but neither her own
    // message nor the one that left her out.
    drop(alice);
    instance.settle(1).await;
    let hub = instance.hub.clone();
    hub.send_to_room_except("room", &alice_id, "not for alice")
        .await
        .unwrap();
    hub.send_to_room("room", "for alice").await.unwrap();
    let query = format!("&resume={alice_token}");
    let (mut alice, hello) = connect(&instance, "/ws", "alice", &query).await;
    assert_eq!(hello["id"], alice_id, "the same session");
    assert_eq!(hello["missed"], 2, "what did not leave her out: {hello}");
    assert_eq!(text_of(&next_text(&mut alice).await), "after");
    assert_eq!(text_of(&next_text(&mut alice).await), "for alice");
    assert_eq!(text_of(&next_text(&mut bob).await), "not for alice");
    assert_eq!(text_of(&next_text(&mut bob).await), "for alice");

    // Bad input is refused, and nothing is sent.
    assert!(hub.send_to_room_except("room", "", "x").await.is_err());
    assert!(hub.send_to_room_except("", &alice_id, "x").await.is_err());
}
each_store!(a_room_send_can_leave_the_sender_out);

async fn the_hub_close_order_closes_the_socket_with_its_code(kind: Kind) {
    let Some(store) = store(kind).await else {
        eprintln!("{}", support::redis_server::SKIPPED);
        return;
    };
    let instance = server(store).await;
    let (mut alice, hello) = connect(&instance, "/ws", "alice", "").await;
    let kicked = instance.hub.kick("alice").await.unwrap();
    assert_eq!(kicked, vec![hello["id"].as_str().unwrap().to_owned()]);
    assert_eq!(
        close_frame(&mut alice).await,
        (CloseCode::Library(4000), "kicked".into())
    );
}
each_store!(the_hub_close_order_closes_the_socket_with_its_code);

#[tokio::test]
async fn a_silent_client_is_pinged_then_closed_idle() {
    let instance = server(MemoryStore::new().into()).await;
    let (mut quiet, _) = connect(&instance, "/ws/idle", "quiet", "").await;
    // Not reading: no pong goes back, so the client is silent.
    tokio::time::sleep(IDLE * 3).await;
    let mut pings = 0;
    let code = loop {
        match client_frame(&mut quiet).await {
            tungstenite::Message::Ping(_) => pings += 1,
            tungstenite::Message::Close(Some(frame)) => break (frame.code, frame.reason),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert!(pings >= 1, "pinged before the close");
    assert_eq!(code.0, CloseCode::Away);
    assert_eq!(code.1.as_str(), "idle");
    instance.settle(0).await;
}

#[tokio::test]
async fn a_client_that_answers_pings_stays_open() {
    let instance = server(MemoryStore::new().into()).await;
    let (mut chatty, _) = connect(&instance, "/ws/idle", "chatty", "").await;
    // Reading answers the pings with pongs: the client is not silent.
    let deadline = tokio::time::Instant::now() + IDLE * 4;
    while let Ok(frame) = tokio::time::timeout_at(deadline, chatty.next()).await {
        let frame = frame.unwrap().unwrap();
        assert!(frame.is_ping(), "only pings, no close: {frame:?}");
    }
    chatty.send("still here".into()).await.unwrap();
    assert_eq!(next_text(&mut chatty).await, "still here");
}

#[tokio::test]
async fn an_oversized_message_is_closed_with_1009() {
    let instance = server(MemoryStore::new().into()).await;
    let (mut big, _) = connect(&instance, "/ws", "big", "").await;
    big.send("x".repeat(MAX_MESSAGE + 1).into()).await.unwrap();
    let (code, _) = close_frame(&mut big).await;
    assert_eq!(code, CloseCode::Size);
    instance.settle(0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recv_cancelled_over_and_over_loses_nothing() {
    let instance = server(MemoryStore::new().into()).await;
    let (mut client, _) = connect(&instance, "/ws/cancel", "patient", "").await;
    let hub = instance.hub.clone();
    let sent = 2_000;
    let sender = tokio::spawn(async move {
        for n in 0..sent {
            hub.send_to_room("room", format!("{n}")).await.unwrap();
            if n % 50 == 0 {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
        }
    });
    for n in 0..sent {
        assert_eq!(text_of(&next_text(&mut client).await), n.to_string());
    }
    sender.await.unwrap();
    client.send("done".into()).await.unwrap();
    assert_eq!(next_text(&mut client).await, "done");
}

/// The next frame of any kind.
async fn client_frame(client: &mut Client) -> tungstenite::Message {
    tokio::time::timeout(WAIT, client.next())
        .await
        .expect("a frame in time")
        .expect("the socket is open")
        .unwrap()
}
