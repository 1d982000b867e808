//! The chat example's process stopped as an operator stops it (SIGTERM, Ctrl-C) and as a crash
//! does (SIGKILL), then started again on the same Redis: its clients resume their sessions,
//! with their data, rooms and the messages they missed, once each and in order.

mod support;

use std::time::Duration;

use serde_json::json;
use support::chat::{Client, texts};
use support::process::ChatProcess;
use support::redis_server::RedisServer;

/// The chat example on the Redis at `url`.
fn chat(url: &str) -> ChatProcess {
    ChatProcess::start(&[
        ("REDIS_URL", url),
        ("RESUME_SECS", "120"),
        ("SESSION_TTL_SECS", "60"),
    ])
}

/// Both ways down: `signal` is `TERM` (graceful: clients see 1001) or `KILL` (a crash: the
/// sockets just die).
async fn clients_resume_after(signal: &str) {
    let Some(redis) = RedisServer::start() else {
        eprintln!("{}", support::redis_server::SKIPPED);
        return;
    };
    let url = redis.url();
    let mut first = chat(&url);
    let mut alice = Client::connect(first.addr, "alice").await;
    alice
        .ok(json!({"op": "set", "key": "theme", "value": "dark"}))
        .await;
    alice.ok(json!({"op": "join", "room": "r"})).await;
    let mut bob = Client::connect(first.addr, "bob").await;
    bob.ok(json!({"op": "to_room", "room": "r", "text": "seen"}))
        .await;
    assert_eq!(alice.message().await["text"], "seen");
    let (alice_id, alice_token) = (alice.id.clone(), alice.token());
    let alice_offset = alice.last_offset.clone().expect("an offset");
    let (bob_id, bob_token) = (bob.id.clone(), bob.token());

    first.signal(signal);
    if signal == "KILL" {
        assert_eq!(
            alice.close_code().await,
            None,
            "a killed server sends no close frame"
        );
        first.wait(Duration::from_secs(5));
    } else {
        assert_eq!(alice.close_code().await, Some(1001));
        // The listener closed before any socket was told to: a client coming back now is
        // refused by the kernel, not accepted by a process that is going away.
        let again = tokio::net::TcpStream::connect(first.addr).await;
        assert!(
            matches!(&again, Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused),
            "a connection during the shutdown was not refused: {again:?}"
        );
        assert_eq!(bob.close_code().await, Some(1001));
        let status = first.wait(Duration::from_secs(10));
        assert!(status.success(), "{status}");
    }

    let second = chat(&url);
    let mut bob = Client::resume(second.addr, "bob", &bob_token, None).await;
    assert!(bob.recovered(), "{}", bob.welcome);
    assert_eq!(bob.id, bob_id);
    // Sent while alice is away, on the new process.
    bob.ok(json!({"op": "to_room", "room": "r", "text": "missed 1"}))
        .await;
    bob.ok(json!({"op": "to_user", "user": "alice", "text": "missed 2"}))
        .await;

    let mut alice = Client::resume(second.addr, "alice", &alice_token, Some(&alice_offset)).await;
    assert!(alice.recovered(), "{}", alice.welcome);
    assert_eq!(alice.id, alice_id);
    assert_eq!(alice.welcome["missed"], 2, "{}", alice.welcome);
    assert_eq!(alice.welcome["complete"], true);
    let missed = [alice.message().await, alice.message().await];
    assert_eq!(texts(&missed), ["missed 1", "missed 2"]);
    let theme = alice.ask(json!({"op": "get", "key": "theme"})).await;
    assert_eq!(theme["value"], "dark");
    let rooms = alice.ask(json!({"op": "rooms"})).await;
    assert_eq!(rooms["rooms"], json!(["r"]));
    // Live again, and nothing comes twice.
    bob.ok(json!({"op": "to_room", "room": "r", "text": "live"}))
        .await;
    assert_eq!(alice.message().await["text"], "live");
    let members = bob.ask(json!({"op": "members", "room": "r"})).await;
    assert_eq!(
        members["members"],
        json!([{"session": alice_id, "user": "alice"}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_detaches_every_session_and_a_new_process_resumes_them() {
    clients_resume_after("TERM").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_sigkill_the_sessions_resume_within_their_ttl() {
    clients_resume_after("KILL").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_stops_the_server_within_a_few_seconds() {
    let Some(redis) = RedisServer::start() else {
        eprintln!("{}", support::redis_server::SKIPPED);
        return;
    };
    let mut server = chat(&redis.url());
    let mut alice = Client::connect(server.addr, "alice").await;
    server.signal("INT");
    assert_eq!(alice.close_code().await, Some(1001));
    assert!(server.wait(Duration::from_secs(10)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_example_serves_its_metrics_and_its_page() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = ChatProcess::start(&[("RESUME_SECS", "120")]);
    let _alice = Client::connect(server.addr, "alice").await;
    let get = |path: &'static str| async move {
        let mut tcp = tokio::net::TcpStream::connect(server.addr).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: chat\r\nConnection: close\r\n\r\n");
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        tcp.read_to_string(&mut response).await.unwrap();
        response
    };
    let metrics = get("/metrics").await;
    assert!(metrics.starts_with("HTTP/1.1 200"), "{metrics}");
    assert!(metrics.contains("ws_session_open_sessions 1"), "{metrics}");
    assert!(
        metrics.contains("ws_session_sessions_created_total 1"),
        "{metrics}"
    );
    let page = get("/?user=alice").await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("text/html") && page.contains("ws-session chat"));
}
