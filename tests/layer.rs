//! The layer over real sockets: a real server on 127.0.0.1:0 running the chat example's
//! router, real `tokio-tungstenite` clients, and both stores.

mod support;

use ws_session_testkit::app;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use axum::{Router, extract::ws::WebSocketUpgrade, routing::get};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite};
use ws_session::{AnyStore, LiveSessions, MemoryStore, SessionStore, WsSession};

type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Serves `router` on a free loopback port.
async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// Serves the chat example's router on `store`.
async fn serve_chat(store: impl SessionStore + Into<AnyStore>) -> (SocketAddr, LiveSessions) {
    let layer = app::session_layer(store);
    let sessions = layer.live_sessions();
    (serve(app::router(layer)).await, sessions)
}

async fn connect(addr: SocketAddr, user: &str) -> Client {
    let url = format!("ws://{addr}/ws?user={user}");
    let (client, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    client
}

/// Connects and reads the welcome; returns the client and its session id.
async fn join(addr: SocketAddr, user: &str) -> (Client, String) {
    let mut client = connect(addr, user).await;
    let welcome = recv(&mut client).await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["user"], user);
    let id = welcome["session"].as_str().unwrap().to_owned();
    (client, id)
}

/// The status an upgrade attempt was refused with.
async fn refused_status(addr: SocketAddr, query: &str) -> u16 {
    let url = format!("ws://{addr}/ws{query}");
    match tokio_tungstenite::connect_async(url).await {
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Ok(_) => panic!("the upgrade was accepted"),
        Err(other) => panic!("unexpected error: {other}"),
    }
}

async fn recv(client: &mut Client) -> Value {
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), client.next())
            .await
            .expect("no frame within 5 s")
            .expect("the socket closed")
            .expect("a socket error");
        if let tungstenite::Message::Text(text) = message {
            return serde_json::from_str(&text).unwrap();
        }
    }
}

async fn ask(client: &mut Client, request: Value) -> Value {
    client
        .send(tungstenite::Message::text(request.to_string()))
        .await
        .unwrap();
    recv(client).await
}

/// Waits (up to 5 s) until `check` holds.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !check().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The session ids of a `sessions` reply, sorted.
fn listed_ids(reply: &Value) -> Vec<String> {
    let ids = reply["sessions"].as_array().expect("a list of sessions");
    sorted(ids.iter().map(|s| s["id"].as_str().unwrap()))
}

fn sorted<'a>(ids: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let mut ids: Vec<String> = ids.into_iter().map(str::to_owned).collect();
    ids.sort_unstable();
    ids
}

async fn exists(store: &impl SessionStore, id: &str) -> bool {
    store.get_session(id).await.unwrap().is_some()
}

async fn removed_after_clean_close(store: impl SessionStore + Into<AnyStore>) {
    let (addr, _) = serve_chat(store.clone()).await;
    let (mut client, id) = join(addr, "alice").await;
    let record = store
        .get_session(&id)
        .await
        .unwrap()
        .expect("session while open");
    assert_eq!(record.user_id, "alice");
    let listed = store.get_user_sessions("alice").await.unwrap();
    assert_eq!(
        listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()]
    );

    client.close(None).await.unwrap();
    eventually("the session is removed", || async {
        !exists(&store, &id).await
    })
    .await;
    assert!(store.get_user_sessions("alice").await.unwrap().is_empty());
}

async fn removed_after_abrupt_drop(store: impl SessionStore + Into<AnyStore>) {
    let (addr, _) = serve_chat(store.clone()).await;
    let (client, id) = join(addr, "bob").await;
    assert!(exists(&store, &id).await);
    drop(client); // TCP closed, no close frame
    eventually("the session is removed", || async {
        !exists(&store, &id).await
    })
    .await;
    assert!(store.get_user_sessions("bob").await.unwrap().is_empty());
}

async fn removed_when_the_handler_returns(store: impl SessionStore + Into<AnyStore>) {
    let (ids, mut seen) = mpsc::unbounded_channel::<String>();
    let router = Router::new()
        .route(
            "/ws",
            get(move |ws: WebSocketUpgrade, session: WsSession| {
                let ids = ids.clone();
                async move {
                    ws.on_upgrade(move |_socket| async move {
                        ids.send(session.id().to_owned()).unwrap();
                        // returns at once: the socket and the session end here
                    })
                }
            }),
        )
        .layer(app::session_layer(store.clone()));
    let addr = serve(router).await;
    let _client = connect(addr, "carol").await;
    let id = seen.recv().await.unwrap();
    eventually("the session is removed", || async {
        !exists(&store, &id).await
    })
    .await;
    assert!(store.get_user_sessions("carol").await.unwrap().is_empty());
}

async fn unidentified_upgrade_is_refused(store: impl SessionStore + Into<AnyStore>) {
    let (addr, sessions) = serve_chat(store).await;
    assert_eq!(refused_status(addr, "").await, 401);
    assert_eq!(refused_status(addr, "?user=").await, 401);
    assert_eq!(sessions.len(), 0);
}

/// `store` must have a TTL of about 600 ms. The keep-alive restarts the session's TTL on every
/// tick and renews its user's set and its room's members once every two TTLs; after nine TTLs
/// (past what a user set or a room is given when written) all three are still there.
async fn open_session_outlives_its_ttl(store: impl SessionStore + Into<AnyStore>) {
    let ttl = store.ttl();
    let (addr, _) = serve_chat(store.clone()).await;
    let (mut client, id) = join(addr, "dave").await;
    let reply = ask(&mut client, json!({"op": "join", "room": "lobby"})).await;
    assert_eq!(reply, json!({"type": "ok"}));
    tokio::time::sleep(ttl * 9).await;
    assert!(
        exists(&store, &id).await,
        "an open socket's session expired"
    );
    let listed = store.get_user_sessions("dave").await.unwrap();
    assert_eq!(
        listed.iter().map(|s| s.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()],
        "the user's index lost an open session"
    );
    let members = ask(&mut client, json!({"op": "members", "room": "lobby"})).await;
    assert_eq!(
        members["members"],
        json!([{"session": id, "user": "dave"}]),
        "the room lost an open session"
    );
    let reply = ask(&mut client, json!({"op": "set", "key": "k", "value": 1})).await;
    assert_eq!(reply, json!({"type": "ok"}));
    drop(client);
    eventually("the session is removed", || async {
        !exists(&store, &id).await
    })
    .await;
}

async fn a_spawned_clone_keeps_the_session(store: impl SessionStore + Into<AnyStore>) {
    let (started, mut handed_over) = mpsc::unbounded_channel::<(String, oneshot::Sender<()>)>();
    let router = Router::new()
        .route(
            "/ws",
            get(move |ws: WebSocketUpgrade, session: WsSession| {
                let started = started.clone();
                async move {
                    ws.on_upgrade(move |mut socket| async move {
                        let (release, released) = oneshot::channel::<()>();
                        let kept = session.clone();
                        tokio::spawn(async move {
                            let _ = released.await;
                            drop(kept);
                        });
                        started.send((session.id().to_owned(), release)).unwrap();
                        while let Some(Ok(_)) = socket.recv().await {}
                    })
                }
            }),
        )
        .layer(app::session_layer(store.clone()));
    let addr = serve(router).await;
    let mut client = connect(addr, "erin").await;
    let (id, release) = handed_over.recv().await.unwrap();
    client.close(None).await.unwrap();
    // Wait for the server to end the socket task, then give a removal time to run.
    while client.next().await.is_some() {}
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(exists(&store, &id).await, "removed while a clone was alive");

    release.send(()).unwrap();
    eventually("the session is removed", || async {
        !exists(&store, &id).await
    })
    .await;
}

async fn chat_protocol(store: impl SessionStore + Into<AnyStore>) {
    let (addr, _) = serve_chat(store.clone()).await;
    let (mut one, id) = join(addr, "frank").await;
    let (mut two, id_two) = join(addr, "frank").await;

    let set = json!({"op": "set", "key": "theme", "value": {"dark": true}});
    assert_eq!(ask(&mut one, set).await, json!({"type": "ok"}));
    assert_eq!(
        ask(&mut one, json!({"op": "get", "key": "theme"})).await,
        json!({"type": "value", "key": "theme", "value": {"dark": true}})
    );
    assert_eq!(
        ask(&mut one, json!({"op": "get", "key": "nothing"})).await,
        json!({"type": "value", "key": "nothing", "value": null})
    );
    let update = json!({"op": "update", "data": {"a": 1, "b": [2]}});
    assert_eq!(ask(&mut one, update).await, json!({"type": "ok"}));
    assert_eq!(
        ask(&mut one, json!({"op": "delete", "key": "a"})).await,
        json!({"type": "ok"})
    );

    let session = ask(&mut one, json!({"op": "session"})).await;
    assert_eq!(session["type"], "session");
    assert_eq!(session["session"]["id"], id.as_str());
    assert_eq!(session["session"]["user_id"], "frank");
    assert_eq!(
        session["session"]["data"],
        json!({"theme": {"dark": true}, "b": [2]})
    );
    assert!(session["session"]["created_at"].as_u64().unwrap() > 0);
    assert!(session["session"]["last_active"].as_u64().is_some());

    assert_eq!(
        ask(&mut one, json!({"op": "clear"})).await,
        json!({"type": "ok"})
    );
    let session = ask(&mut one, json!({"op": "session"})).await;
    assert_eq!(session["session"]["data"], json!({}));

    let sessions = ask(&mut two, json!({"op": "sessions"})).await;
    assert_eq!(sessions["type"], "sessions");
    assert_eq!(
        listed_ids(&sessions),
        sorted([id.as_str(), id_two.as_str()])
    );

    let said = json!({"op": "say", "text": "hello"});
    one.send(tungstenite::Message::text(said.to_string()))
        .await
        .unwrap();
    // Each connection's first hub message: offset 1.
    let heard = json!({"type": "message", "from": "frank", "text": "hello", "offset": "1"});
    assert_eq!(recv(&mut one).await, heard);
    assert_eq!(recv(&mut two).await, heard);

    for bad in [
        "not json",
        r#"{"op":"fly"}"#,
        r#"{"op":"set","key":"","value":1}"#,
    ] {
        one.send(tungstenite::Message::text(bad)).await.unwrap();
        let reply = recv(&mut one).await;
        assert_eq!(reply["type"], "error", "{bad} -> {reply}");
        assert!(reply["message"].as_str().is_some_and(|m| !m.is_empty()));
    }
    // The connection stays open after errors.
    assert_eq!(
        ask(&mut one, json!({"op": "get", "key": "theme"})).await["type"],
        "value"
    );
}

/// Connects and disconnects `cycles` times, every other one without a close frame.
async fn churn(addr: SocketAddr, cycles: usize) {
    let workers = 8;
    let mut tasks = Vec::new();
    for worker in 0..workers {
        tasks.push(tokio::spawn(async move {
            for cycle in (worker..cycles).step_by(workers) {
                let (mut client, _) = join(addr, &format!("user{}", cycle % 10)).await;
                if cycle % 2 == 0 {
                    client.close(None).await.unwrap();
                    while client.next().await.is_some() {}
                } else {
                    drop(client);
                }
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

/// One test: `$body` run on a store that `$make` opens with TTL `$ttl`.
macro_rules! layer_test {
    ($make:expr, $test:ident, $body:ident, $ttl:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $test() {
            let Some(store) = $make($ttl).await else {
                return;
            };
            $body(store).await;
        }
    };
}

/// Every store-generic test, as a module of tests on the stores `$make` opens.
macro_rules! layer_tests {
    ($store:ident, $make:expr) => {
        mod $store {
            use super::*;

            const LONG: Duration = Duration::from_secs(60);

            layer_test!(
                $make,
                session_removed_after_clean_close,
                removed_after_clean_close,
                LONG
            );
            layer_test!(
                $make,
                session_removed_after_abrupt_drop,
                removed_after_abrupt_drop,
                LONG
            );
            layer_test!(
                $make,
                session_removed_when_the_handler_returns,
                removed_when_the_handler_returns,
                LONG
            );
            layer_test!(
                $make,
                upgrade_without_identity_is_401,
                unidentified_upgrade_is_refused,
                LONG
            );
            layer_test!(
                $make,
                open_session_and_its_indexes_outlive_many_ttls,
                open_session_outlives_its_ttl,
                Duration::from_millis(600)
            );
            layer_test!(
                $make,
                spawned_clone_keeps_the_session,
                a_spawned_clone_keeps_the_session,
                LONG
            );
            layer_test!($make, chat_example_protocol, chat_protocol, LONG);
        }
    };
}

async fn memory_store(ttl: Duration) -> Option<MemoryStore> {
    Some(MemoryStore::with_ttl(ttl))
}

layer_tests!(memory, memory_store);
layer_tests!(redis, support::redis_server::redis_store);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_no_session_leaks_after_1000_cycles() {
    let store = MemoryStore::new();
    let (addr, sessions) = serve_chat(store.clone()).await;
    churn(addr, 1000).await;
    eventually("every session is removed", || async { store.is_empty() }).await;
    sessions.wait_for_removals().await;
    assert_eq!(store.len(), 0);
    assert_eq!(sessions.len(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_no_key_leaks_after_1000_cycles() {
    let Some(store) = support::redis_server::redis_store(Duration::from_secs(60)).await else {
        return;
    };
    let (addr, sessions) = serve_chat(store.clone()).await;
    churn(addr, 1000).await;
    eventually("no session is open", || async { sessions.is_empty() }).await;
    sessions.wait_for_removals().await;
    let mut conn = store.dedicated_connection().await.unwrap();
    let keys: Vec<String> = bb8_redis::redis::cmd("KEYS")
        .arg(format!("{}:*", store.prefix()))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_sessions_are_listed_across_instances() {
    let Some(store) = support::redis_server::redis_store(Duration::from_secs(60)).await else {
        return;
    };
    // Two server instances: separate pools and layers, one Redis.
    let other = ws_session::RedisStore::connect(
        &support::redis_server::shared_url().unwrap(),
        store.prefix(),
        Duration::from_secs(60),
    )
    .await
    .unwrap();
    let (first, _) = serve_chat(store).await;
    let (second, _) = serve_chat(other).await;
    let (mut here, id_here) = join(first, "gina").await;
    let (_there, id_there) = join(second, "gina").await;
    let sessions = ask(&mut here, json!({"op": "sessions"})).await;
    assert_eq!(
        listed_ids(&sessions),
        sorted([id_here.as_str(), id_there.as_str()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_down_gives_503_and_upgrades_recover() {
    let Some(mut server) = support::redis_server::RedisServer::start() else {
        return;
    };
    let store = server
        .store(Duration::from_secs(60))
        .await
        .timeout(Duration::from_millis(500));
    let (addr, sessions) = serve_chat(store).await;
    let (_client, _) = join(addr, "hank").await;

    server.stop();
    assert_eq!(refused_status(addr, "?user=hank").await, 503);
    assert_eq!(
        sessions.len(),
        1,
        "only the socket opened before the outage"
    );

    server.restart();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let url = format!("ws://{addr}/ws?user=hank");
        match tokio_tungstenite::connect_async(url).await {
            Ok((mut client, _)) => {
                assert_eq!(recv(&mut client).await["type"], "welcome");
                break;
            }
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status().as_u16(), 503);
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "no recovery within 10 s"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(other) => panic!("unexpected error: {other}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_redis_gives_503_and_upgrades_recover_when_it_has_room() {
    let Some(server) = support::redis_server::RedisServer::start() else {
        return;
    };
    let store = server.store(Duration::from_secs(60)).await;
    let (addr, sessions) = serve_chat(store).await;
    let (_client, _) = join(addr, "ivy").await;
    let client = ::redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    for (name, value) in [("maxmemory-policy", "noeviction"), ("maxmemory", "1")] {
        support::redis_server::config_set(&mut conn, name, value).await;
    }
    // Full (OOM): unavailable for now, like an unreachable Redis, not a 500.
    assert_eq!(refused_status(addr, "?user=ivy").await, 503);
    assert_eq!(sessions.len(), 1);
    support::redis_server::config_set(&mut conn, "maxmemory", "0").await;
    let (_again, _) = join(addr, "ivy").await;
    assert_eq!(sessions.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_example_decodes_the_user_name() {
    let store = MemoryStore::new().limits(app::limits());
    let (addr, _sessions) = serve_chat(store.clone()).await;
    for (query, user) in [
        ("%C3%A9", "é"),
        ("a%20b", "a b"),
        ("a+b", "a b"),
        ("x%26y", "x&y"),
    ] {
        let mut client = connect(addr, query).await;
        let welcome = recv(&mut client).await;
        assert_eq!(welcome["user"], user, "?user={query}");
        let id = welcome["session"].as_str().unwrap();
        assert_eq!(store.get_session(id).await.unwrap().unwrap().user_id, user);
    }
}
