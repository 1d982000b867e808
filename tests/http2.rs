//! WebSockets over HTTP/2 (RFC 8441), end to end: the chat example's router served by
//! `axum::serve` (which accepts extended CONNECT), a real HTTP/2 client opening WebSockets on
//! streams of one connection, and the same session lifecycle as over HTTP/1.1.
#![cfg(feature = "http2")]

mod support;

use ws_session_testkit::app;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use http::StatusCode;
use serde_json::{Value, json};
use support::chat::serve;
use support::h2_socket::{H2Stream, connection, websocket};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use ws_session::{MemoryStore, SessionStore};

async fn ask(socket: &mut WebSocketStream<H2Stream>, request: Value) -> Value {
    socket
        .send(Message::text(request.to_string()))
        .await
        .unwrap();
    next(socket).await
}

async fn next(socket: &mut WebSocketStream<H2Stream>) -> Value {
    match tokio::time::timeout(Duration::from_secs(5), socket.next()).await {
        Ok(Some(Ok(Message::Text(text)))) => serde_json::from_str(&text).unwrap(),
        other => panic!("no frame: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_websockets_on_one_http2_connection_have_a_session_each() {
    let store = MemoryStore::new().limits(app::limits());
    let layer = app::session_layer(store.clone());
    let instance = serve(layer.clone(), app::router(layer)).await;
    let mut client = connection(instance.addr).await;

    // No user: 401 on the stream, nothing upgraded.
    let (status, refused) = websocket(&mut client, instance.addr, "/ws").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(refused.is_none());

    let (status, alice) = websocket(&mut client, instance.addr, "/ws?user=alice").await;
    assert_eq!(status, StatusCode::OK);
    let (_, bob) = websocket(&mut client, instance.addr, "/ws?user=bob").await;
    let (mut alice, mut bob) = (alice.unwrap(), bob.unwrap());
    let (alice_hello, bob_hello) = (next(&mut alice).await, next(&mut bob).await);
    assert_eq!(alice_hello["type"], "welcome");
    assert_eq!(alice_hello["user"], "alice");
    assert_eq!(bob_hello["user"], "bob");
    let alice_id = alice_hello["session"].as_str().unwrap().to_owned();
    let bob_id = bob_hello["session"].as_str().unwrap().to_owned();
    assert_ne!(
        alice_id, bob_id,
        "one session per WebSocket, not per connection"
    );
    assert_eq!(instance.sessions.len(), 2);

    // Data set and read, each in its own session.
    let reply = ask(&mut alice, json!({"op": "set", "key": "k", "value": "a"})).await;
    assert_eq!(reply["type"], "ok");
    let reply = ask(&mut bob, json!({"op": "get", "key": "k"})).await;
    assert_eq!(reply["value"], Value::Null);
    let reply = ask(&mut alice, json!({"op": "get", "key": "k"})).await;
    assert_eq!(reply["value"], "a");
    assert_eq!(
        store.get_session_data(&alice_id, "k").await.unwrap(),
        Some("a".into())
    );
    // The hub reaches sockets on HTTP/2 streams like any other.
    let reply = ask(
        &mut bob,
        json!({"op": "to_user", "user": "alice", "text": "hi"}),
    )
    .await;
    assert_eq!(reply["type"], "ok");
    assert_eq!(next(&mut alice).await["text"], "hi");

    // The end of one stream ends its session only.
    alice.close(None).await.unwrap();
    while let Some(Ok(_)) = alice.next().await {}
    instance.settle(1).await;
    assert!(
        store.get_session(&alice_id).await.unwrap().is_none(),
        "removed"
    );
    assert!(store.get_session(&bob_id).await.unwrap().is_some());
    let reply = ask(&mut bob, json!({"op": "session"})).await;
    assert_eq!(reply["session"]["id"], bob_id.as_str());
    drop(bob);
    instance.settle(0).await;
    assert!(store.is_empty());
}
