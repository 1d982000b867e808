//! The hub over real sockets: several chat instances on one store (one `MemoryStore` shared by
//! the layers of this process, or separate `RedisStore`s and pools on one Redis), real
//! `tokio-tungstenite` clients, every kind of send, kicks, slow clients and lost pub/sub
//! connections.

mod support;

use support::Kind;

use ws_session_testkit::app;

use std::collections::BTreeSet;
use std::time::Duration;

use redis::AsyncCommands;
use serde_json::json;
use support::chat::{Client, Instance, serve, texts};
use support::redis_server::{RedisServer, shared_url, unique_prefix};
use ws_session::hub::{InboxLimits, Payload};
use ws_session::{Error, InvalidInput, MemoryStore, RedisStore, SessionStore};

const HOUR: Duration = Duration::from_secs(3600);

/// The instances of one test, and a store to look behind their back.
struct Cluster {
    instances: Vec<Instance>,
    redis: Option<RedisStore>,
}

impl Cluster {
    fn addr(&self, i: usize) -> std::net::SocketAddr {
        self.instances[i].addr
    }
}

/// `n` chat instances sharing one store of `kind`; `None` when Redis is wanted and missing.
async fn cluster(kind: Kind, n: usize) -> Option<Cluster> {
    match kind {
        Kind::Memory => {
            let store = MemoryStore::with_ttl(HOUR).limits(app::limits());
            let mut instances = Vec::new();
            for _ in 0..n {
                let layer = app::session_layer(store.clone());
                instances.push(serve(layer.clone(), app::router(layer)).await);
            }
            Some(Cluster {
                instances,
                redis: None,
            })
        }
        Kind::Redis | Kind::Sentinel | Kind::Cluster => {
            let prefix = unique_prefix();
            let mut stores = Vec::new();
            for _ in 0..n {
                stores.push(support::redis_store_of(kind, &prefix, HOUR).await?);
            }
            Some(redis_instances(stores, InboxLimits::default()).await)
        }
    }
}

/// `n` instances with stores and pools of their own on the Redis at `url`, sharing `prefix`.
async fn redis_cluster(url: &str, prefix: &str, n: usize, inbox: InboxLimits) -> Cluster {
    let mut stores = Vec::new();
    for _ in 0..n {
        stores.push(RedisStore::connect(url, prefix, HOUR).await.unwrap());
    }
    redis_instances(stores, inbox).await
}

/// An instance on each of `stores` (which share a prefix).
async fn redis_instances(stores: Vec<RedisStore>, inbox: InboxLimits) -> Cluster {
    let mut instances = Vec::new();
    let mut first = None;
    for store in stores {
        let store = store
            .limits(app::limits())
            .timeout(Duration::from_millis(500));
        first.get_or_insert_with(|| store.clone());
        let layer = app::session_layer(store).inbox_limits(inbox);
        // Some cases flood from one connection: the send rate limit is `safety.rs`'s business.
        let router = app::router_with(layer.clone(), app::Settings::unlimited());
        instances.push(serve(layer, router).await);
    }
    Cluster {
        instances,
        redis: first,
    }
}

each_store!(every_kind_of_send_reaches_exactly_its_targets);
each_store!(members_are_listed_across_instances);
each_store!(kick_closes_every_connection_of_the_user_everywhere);
each_store!(disconnect_closes_one_session);
each_store!(leaving_and_closing_leave_nothing_behind);
each_store!(broken_limits_are_errors_and_send_nothing);

/// Every client reads until `marker`, said by `by`, and must have seen exactly `expected`
/// (texts, in order) before it.
async fn assert_received(clients: &mut [&mut Client], expected: &[&[&str]], marker: &str) {
    for (client, expected) in clients.iter_mut().zip(expected) {
        let before = client.messages_until(marker).await;
        assert_eq!(
            texts(&before),
            *expected,
            "{} ({}) got {before:?}",
            client.user,
            client.id
        );
    }
}

async fn every_kind_of_send_reaches_exactly_its_targets(kind: Kind) {
    let Some(cluster) = cluster(kind, 3).await else {
        return;
    };
    let mut a0 = Client::connect(cluster.addr(0), "alice").await;
    let mut a1 = Client::connect(cluster.addr(1), "alice").await;
    let mut b1 = Client::connect(cluster.addr(1), "bob").await;
    let mut c2 = Client::connect(cluster.addr(2), "carol").await;
    let mut d2 = Client::connect(cluster.addr(2), "dave").await;
    let mut e0 = Client::connect(cluster.addr(0), "erin").await;
    for client in [&mut a0, &mut b1, &mut c2] {
        client.ok(json!({"op": "join", "room": "r"})).await;
    }
    e0.ok(json!({"op": "join", "room": "q"})).await;

    d2.ok(json!({"op": "to_room", "room": "r", "text": "m1"}))
        .await;
    d2.ok(json!({"op": "to_user", "user": "alice", "text": "m2"}))
        .await;
    let b1_id = b1.id.clone();
    d2.ok(json!({"op": "to_session", "session": b1_id, "text": "m3"}))
        .await;
    d2.send(json!({"op": "say", "text": "m4"})).await;
    // `say` has no reply: its sender hearing it shows it went out before what follows.
    assert_eq!(d2.message().await["text"], "m4");
    // The sender is a target too: it hears its own message.
    e0.ok(json!({"op": "to_room", "room": "q", "text": "m5"}))
        .await;
    a1.ok(json!({"op": "to_user", "user": "alice", "text": "m6"}))
        .await;
    a0.send(json!({"op": "say", "text": "end"})).await;

    assert_received(
        &mut [&mut a0, &mut a1, &mut b1, &mut c2, &mut d2, &mut e0],
        &[
            &["m1", "m2", "m4", "m6"],
            &["m2", "m4", "m6"],
            &["m1", "m3", "m4"],
            &["m1", "m4"],
            &[],
            &["m4", "m5"],
        ],
        "end",
    )
    .await;

    // What the messages say about themselves.
    d2.ok(json!({"op": "to_room", "room": "r", "text": "fields"}))
        .await;
    let to_room = c2.message().await;
    assert_eq!(to_room["from"], "dave");
    assert_eq!(to_room["room"], "r");
    let offset: u64 = to_room["offset"].as_str().unwrap().parse().unwrap();
    // m1, m4, end, then this one.
    assert_eq!(offset, 4, "c2's fourth message: {to_room}");
    let c2_id = c2.id.clone();
    b1.ok(json!({"op": "to_session", "session": c2_id, "text": "direct"}))
        .await;
    let direct = c2.message().await;
    assert_eq!(
        (
            direct["from"].clone(),
            direct["session"].clone(),
            direct["offset"].clone()
        ),
        (json!("bob"), json!(c2.id), json!("5"))
    );
    c2.ok(json!({"op": "to_user", "user": "erin", "text": "to erin"}))
        .await;
    let to_user = e0.message().await;
    assert_eq!(
        (to_user["from"].clone(), to_user["to"].clone()),
        (json!("carol"), json!("erin"))
    );
}

async fn members_are_listed_across_instances(kind: Kind) {
    let Some(cluster) = cluster(kind, 3).await else {
        return;
    };
    let mut clients = Vec::new();
    for (i, user) in ["ann", "ben", "cid", "ann"].iter().enumerate() {
        let mut client = Client::connect(cluster.addr(i % 3), user).await;
        client.ok(json!({"op": "join", "room": "lobby"})).await;
        clients.push(client);
    }
    let expected: BTreeSet<(String, String)> = clients
        .iter()
        .map(|client| (client.id.clone(), client.user.clone()))
        .collect();
    let mut outsider = Client::connect(cluster.addr(2), "dee").await;
    let listed = outsider
        .ask(json!({"op": "members", "room": "lobby"}))
        .await;
    assert_eq!(listed["type"], "members");
    assert_eq!(listed["room"], "lobby");
    let listed: BTreeSet<(String, String)> = listed["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["session"].as_str().unwrap().to_owned(),
                m["user"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(listed, expected);

    // A closed connection is no member any more, on any instance.
    let gone = clients.pop().unwrap();
    let gone_id = gone.id.clone();
    drop(gone);
    let mut members = BTreeSet::new();
    for _ in 0..200 {
        members = cluster.instances[1]
            .hub
            .members("lobby")
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.session_id)
            .collect();
        if !members.contains(&gone_id) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(!members.contains(&gone_id), "{gone_id} is still listed");
    assert_eq!(members.len(), 3);

    // This connection's rooms.
    let mut first = clients.remove(0);
    first.ok(json!({"op": "join", "room": "b-room"})).await;
    assert_eq!(
        first.ask(json!({"op": "rooms"})).await,
        json!({"type": "rooms", "rooms": ["b-room", "lobby"]})
    );
    first.ok(json!({"op": "leave", "room": "lobby"})).await;
    assert_eq!(
        first.ask(json!({"op": "rooms"})).await,
        json!({"type": "rooms", "rooms": ["b-room"]})
    );
}

/// Waits until `done` holds, for at most five seconds.
async fn eventually<F: std::future::Future<Output = bool>>(
    what: &str,
    mut done: impl FnMut() -> F,
) {
    for _ in 0..500 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting until {what}");
}

async fn kick_closes_every_connection_of_the_user_everywhere(kind: Kind) {
    let Some(cluster) = cluster(kind, 3).await else {
        return;
    };
    let mut alices = Vec::new();
    for i in 0..3 {
        let mut alice = Client::connect(cluster.addr(i), "alice").await;
        alice.ok(json!({"op": "join", "room": "r"})).await;
        alice.ok(json!({"op": "set", "key": "k", "value": i})).await;
        alices.push(alice);
    }
    let alice_ids: Vec<String> = alices.iter().map(|a| a.id.clone()).collect();
    let mut bob = Client::connect(cluster.addr(1), "bob").await;
    bob.ok(json!({"op": "join", "room": "r"})).await;

    bob.ok(json!({"op": "kick", "user": "alice"})).await;
    for alice in &mut alices {
        assert_eq!(alice.close_code().await, Some(4000), "{}", alice.id);
    }
    // The sessions, their rooms and their index entries are gone.
    let hub = &cluster.instances[0].hub;
    let members: Vec<String> = hub
        .members("r")
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.session_id)
        .collect();
    assert_eq!(members, [bob.id.clone()]);
    let reply = bob.ask(json!({"op": "session"})).await;
    assert_eq!(reply["type"], "session");
    if let Some(store) = &cluster.redis {
        assert!(store.get_user_sessions("alice").await.unwrap().is_empty());
        let keys = keys_under(store).await;
        for id in &alice_ids {
            assert!(
                !keys.iter().any(|key| key.contains(id.as_str())),
                "a key names kicked session {id}: {keys:?}"
            );
            assert!(!in_room(store, "r", id).await);
        }
        assert!(
            !keys.iter().any(|key| key.ends_with(":user_sessions:alice")),
            "{keys:?}"
        );
    }
    // Every instance's node forgets them.
    eventually("every node has only bob", || async {
        cluster
            .instances
            .iter()
            .map(|i| i.sessions.len())
            .sum::<usize>()
            == 1
    })
    .await;
}

async fn disconnect_closes_one_session(kind: Kind) {
    let Some(cluster) = cluster(kind, 2).await else {
        return;
    };
    let mut one = Client::connect(cluster.addr(0), "alice").await;
    let mut two = Client::connect(cluster.addr(1), "alice").await;
    cluster.instances[1].hub.disconnect(&one.id).await.unwrap();
    assert_eq!(one.close_code().await, Some(4000));
    assert!(matches!(
        cluster.instances[0].hub.disconnect(&one.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        cluster.instances[0]
            .hub
            .send_to_session("no-such-session", "x")
            .await,
        Err(Error::NotFound { .. })
    ));
    // The other connection of the user is untouched.
    let sessions = two.ask(json!({"op": "sessions"})).await;
    assert_eq!(
        sessions["sessions"].as_array().unwrap().len(),
        1,
        "{sessions}"
    );
    let reply = two
        .ask(json!({"op": "to_session", "session": one.id, "text": "x"}))
        .await;
    assert_eq!(reply["type"], "error", "{reply}");
}

async fn leaving_and_closing_leave_nothing_behind(kind: Kind) {
    let Some(cluster) = cluster(kind, 2).await else {
        return;
    };
    let mut a = Client::connect(cluster.addr(0), "alice").await;
    let mut b = Client::connect(cluster.addr(1), "bob").await;
    for room in ["x", "y"] {
        a.ok(json!({"op": "join", "room": room})).await;
        b.ok(json!({"op": "join", "room": room})).await;
    }
    let before = cluster.instances[0].hub.stats();
    assert_eq!(before.connections, 1);
    a.ok(json!({"op": "leave", "room": "x"})).await;
    a.ok(json!({"op": "leave", "room": "y"})).await;
    // One room fewer on a's node: only its node, everyone and alice's channels are left.
    let after = cluster.instances[0].hub.stats();
    assert_eq!(
        before.subscriptions - after.subscriptions,
        2,
        "{before:?} -> {after:?}"
    );
    assert_eq!(after.subscriptions, 3);
    drop(b);
    eventually("b's node has no connection", || async {
        cluster.instances[1].hub.stats().connections == 0
    })
    .await;
    eventually("b's node has no subscription", || async {
        cluster.instances[1].hub.stats().subscriptions == 0
    })
    .await;
    if let Some(store) = &cluster.redis {
        eventually("no room key is left", || async {
            let keys = keys_under(store).await;
            !keys
                .iter()
                .any(|key| key.contains(":room_members:") || key.contains(":session_rooms:"))
        })
        .await;
    }
    drop(a);
    eventually("no connection is left", || async {
        cluster
            .instances
            .iter()
            .all(|i| i.hub.stats().subscriptions == 0)
    })
    .await;
    if let Some(store) = &cluster.redis {
        eventually("no key is left", || async {
            keys_under(store).await.is_empty()
        })
        .await;
    }
}

async fn broken_limits_are_errors_and_send_nothing(kind: Kind) {
    let Some(cluster) = cluster(kind, 1).await else {
        return;
    };
    let mut a = Client::connect(cluster.addr(0), "alice").await;
    a.ok(json!({"op": "join", "room": "r"})).await;
    let long_room = "r".repeat(257);
    let big_text = "x".repeat(app::MAX_TEXT + 1);
    for bad in [
        json!({"op": "join", "room": ""}),
        json!({"op": "join", "room": long_room}),
        json!({"op": "to_room", "room": "", "text": "x"}),
        json!({"op": "to_room", "room": long_room, "text": "x"}),
        json!({"op": "to_room", "room": "r", "text": big_text}),
        json!({"op": "to_user", "user": "alice", "text": big_text}),
        json!({"op": "say", "text": big_text}),
        json!({"op": "members", "room": ""}),
    ] {
        let reply = a.ask(bad.clone()).await;
        assert_eq!(reply["type"], "error", "{reply}");
    }
    // The largest text passes.
    let largest = "y".repeat(app::MAX_TEXT);
    a.ok(json!({"op": "to_room", "room": "r", "text": largest}))
        .await;
    a.send(json!({"op": "say", "text": "end"})).await;
    let got = a.messages_until("end").await;
    assert_eq!(got.len(), 1, "only the largest text arrives");
    assert_eq!(got[0]["text"].as_str().unwrap().len(), app::MAX_TEXT);
    assert_eq!(
        a.ask(json!({"op": "rooms"})).await,
        json!({"type": "rooms", "rooms": ["r"]})
    );

    // The hub itself checks what it sends.
    let hub = &cluster.instances[0].hub;
    let limit = app::limits().max_message_len;
    assert!(matches!(
        hub.broadcast(Payload::from(vec![0u8; limit + 1])).await,
        Err(Error::InvalidInput(InvalidInput::MessageTooLarge { .. }))
    ));
    assert!(matches!(
        hub.send_to_room(&"r".repeat(257), "x").await,
        Err(Error::InvalidInput(InvalidInput::RoomTooLong { .. }))
    ));
    assert!(matches!(
        hub.send_to_user("", "x").await,
        Err(Error::InvalidInput(InvalidInput::EmptyId { .. }))
    ));
    // Binary messages travel too; the chat example passes them on as binary frames.
    hub.send_to_user("alice", Payload::from(vec![0u8, 1, 2, 255]))
        .await
        .unwrap();
    assert_eq!(a.binary().await, [0, 1, 2, 255]);
}

// ---------------------------------------------------------------------------------------------
// Redis only

use support::redis_server::raw_connection as raw;

/// Every key under the store's prefix.
async fn keys_under(store: &RedisStore) -> Vec<String> {
    if store.pool().is_none() && store.dedicated_connection().await.is_err() {
        return support::cluster::keys_under(store).await;
    }
    support::redis_server::keys_under(&mut raw(store).await, store).await
}

/// Whether the set of `room`'s members names session `id`, as Redis holds it.
async fn in_room(store: &RedisStore, room: &str, id: &str) -> bool {
    if let Ok(mut conn) = store.dedicated_connection().await {
        let key = format!("{}:room_members:{room}", store.prefix());
        return conn.sismember(key, id).await.unwrap();
    }
    // On a cluster the rooms' sets carry the hub's tag, the prefix.
    let key = format!("{0}:room_members:{{{0}}}:{room}", store.prefix());
    support::cluster::connection()
        .await
        .sismember(key, id)
        .await
        .unwrap()
}

each_store!(a_slow_client_is_closed_with_4001_and_others_keep_receiving);
each_store!(a_node_without_members_of_a_room_receives_nothing_for_it);

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// A message of `len` bytes that the chat client reads as a message with text `text`.
fn message_of(text: &str, len: usize) -> String {
    let padding = "p".repeat(len.saturating_sub(text.len() + 40));
    json!({"type": "message", "text": text, "pad": padding}).to_string()
}

// The publisher floods one room as fast as the hub takes it: no send rate limit here.
async fn a_slow_client_is_closed_with_4001_and_others_keep_receiving(kind: Kind) {
    let inbox = InboxLimits::new(64, 256 * 1024);
    let cluster = match kind {
        Kind::Memory => {
            let store = MemoryStore::with_ttl(HOUR).limits(app::limits());
            let layer = app::session_layer(store).inbox_limits(inbox);
            Cluster {
                instances: vec![
                    serve(
                        layer.clone(),
                        app::router_with(layer, app::Settings::unlimited()),
                    )
                    .await,
                ],
                redis: None,
            }
        }
        Kind::Redis | Kind::Sentinel | Kind::Cluster => {
            let Some(store) = support::redis_store_of(kind, &unique_prefix(), HOUR).await else {
                return;
            };
            redis_instances(vec![store], inbox).await
        }
    };
    let instance = &cluster.instances[0];
    let mut slow = Client::connect(instance.addr, "slow").await;
    let mut quick = Client::connect(instance.addr, "quick").await;
    slow.ok(json!({"op": "join", "room": "r"})).await;
    quick.ok(json!({"op": "join", "room": "r"})).await;

    // `slow` reads nothing from here on. 2,000 messages of 16 KiB (32 MiB) are far more than
    // the socket buffers of both ends hold, so its inbox fills and overflows. They come from a
    // client of their own, at the pace its requests are answered.
    let count = 2000;
    let text = "t".repeat(16 * 1024);
    let mut publisher = Client::connect(instance.addr, "publisher").await;
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let hub = instance.hub.clone();
        let sampling = Arc::clone(&sampling);
        tokio::spawn(async move {
            let mut peak = 0;
            while sampling.load(Ordering::Relaxed) {
                peak = peak.max(hub.stats().queued_bytes);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            peak
        })
    };
    // The publisher never gets more than a few messages ahead of what `quick` has read, so
    // `quick` keeps up by construction, however slow this machine; `slow` does not read at all.
    let (read_tx, mut read_rx) = tokio::sync::watch::channel(0usize);
    let sender = tokio::spawn(async move {
        for i in 0..count {
            while i > *read_rx.borrow_and_update() + 4 {
                read_rx.changed().await.unwrap();
            }
            let text = format!("{i}:{text}");
            publisher
                .ok(json!({"op": "to_room", "room": "r", "text": text}))
                .await;
        }
        publisher
            .ok(json!({"op": "to_room", "room": "r", "text": "end"}))
            .await;
    });
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        loop {
            let message = quick.message().await;
            if message["text"] == "end" {
                break;
            }
            got.push(message);
            read_tx.send_replace(got.len());
        }
        (got, quick)
    });
    // As soon as the hub has closed `slow` for overflowing, it reads again: it finds what the
    // sockets held, then the close (before its server gives up on the blocked write).
    for _ in 0..6000 {
        if instance.hub.stats().slow_closed == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(slow.close_code().await, Some(4001));
    let (got, mut quick) = reader.await.unwrap();
    assert_eq!(got.len(), count, "the quick client missed messages");
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, m)| m["text"].as_str().unwrap().starts_with(&format!("{i}:"))),
        "out of order"
    );
    sender.await.unwrap();
    sampling.store(false, Ordering::Relaxed);
    let peak = sampler.await.unwrap();
    // Two inboxes at most, each within its bound (one message over it is refused, not held).
    assert!(
        peak <= 2 * inbox.bytes,
        "the inboxes held {peak} bytes, over twice the bound of {}",
        inbox.bytes
    );
    let stats = instance.hub.stats();
    assert_eq!(stats.slow_closed, 1, "{stats:?}");
    // The quick client is still served.
    quick
        .ok(json!({"op": "to_user", "user": "quick", "text": "still here"}))
        .await;
    assert_eq!(quick.message().await["text"], "still here");
}

async fn a_node_without_members_of_a_room_receives_nothing_for_it(kind: Kind) {
    let Some(cluster) = cluster(kind, 3).await else {
        return;
    };
    let mut a = Client::connect(cluster.addr(0), "a").await;
    let mut b = Client::connect(cluster.addr(1), "b").await;
    // A connection on the third node, in no room.
    let mut idle = Client::connect(cluster.addr(2), "idle").await;
    a.ok(json!({"op": "join", "room": "busy"})).await;
    b.ok(json!({"op": "join", "room": "busy"})).await;
    let before = cluster.instances[2].hub.stats();
    for i in 0..100 {
        a.ok(json!({"op": "to_room", "room": "busy", "text": i.to_string()}))
            .await;
    }
    a.ok(json!({"op": "to_user", "user": "b", "text": "end"}))
        .await;
    assert_eq!(b.messages_until("end").await.len(), 100);
    let after = cluster.instances[2].hub.stats();
    assert_eq!(
        after.received, before.received,
        "the idle node received envelopes for a room it has no member of"
    );
    // It still receives what concerns it.
    a.ok(json!({"op": "to_user", "user": "idle", "text": "hi"}))
        .await;
    assert_eq!(idle.message().await["text"], "hi");
    assert_eq!(
        cluster.instances[2].hub.stats().received,
        before.received + 1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hub_is_an_extractor_for_ordinary_routes() {
    use axum::routing::post;
    let store = MemoryStore::with_ttl(HOUR).limits(app::limits());
    let layer = app::session_layer(store);
    async fn notify(hub: ws_session::hub::Hub, body: String) -> &'static str {
        match hub.send_to_user("alice", body).await {
            Ok(()) => "sent",
            Err(_) => "failed",
        }
    }
    async fn no_hub(hub: Option<ws_session::hub::Hub>) -> &'static str {
        if hub.is_some() { "hub" } else { "none" }
    }
    let router = app::router(layer.clone())
        .route("/notify", post(notify).layer(layer.hub()))
        .route("/plain", post(no_hub))
        .route("/missing", post(notify));
    let instance = serve(layer, router).await;
    let mut alice = Client::connect(instance.addr, "alice").await;
    let http = |path: &str, body: &str| {
        let request = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let addr = instance.addr;
        async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            stream.write_all(request.as_bytes()).await.unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).await.unwrap();
            response
        }
    };
    let sent = http("/notify", r#"{"type":"message","text":"from http"}"#).await;
    assert!(
        sent.starts_with("HTTP/1.1 200") && sent.ends_with("sent"),
        "{sent}"
    );
    assert_eq!(alice.message().await["text"], "from http");
    assert!(http("/plain", "").await.ends_with("none"));
    let missing = http("/missing", "").await;
    assert!(missing.starts_with("HTTP/1.1 500"), "{missing}");
    assert!(missing.contains("layer(session_layer.hub())"), "{missing}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_store_without_a_pubsub_client_refuses_upgrades_loudly() {
    let Some(url) = shared_url() else {
        return;
    };
    let manager = bb8_redis::RedisConnectionManager::new(url.as_str()).unwrap();
    let pool = bb8::Pool::builder().build(manager).await.unwrap();
    let store =
        RedisStore::new(pool.clone(), unique_prefix(), HOUR).timeout(Duration::from_millis(300));
    let layer = app::session_layer(store.clone());
    let instance = serve(layer.clone(), app::router(layer)).await;
    let url_ws = format!("ws://{}/ws?user=alice", instance.addr);
    match tokio_tungstenite::connect_async(url_ws).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503);
        }
        other => panic!("upgrade not refused: {:?}", other.map(|_| ())),
    }
    // Nothing is left of the refused session.
    assert!(keys_under(&store).await.is_empty());
    // With a client, the same kind of store serves.
    let store = RedisStore::new(pool, unique_prefix(), HOUR)
        .pubsub_client(redis::Client::open(url.as_str()).unwrap());
    let layer = app::session_layer(store);
    let instance = serve(layer.clone(), app::router(layer)).await;
    let mut alice = Client::connect(instance.addr, "alice").await;
    alice
        .ok(json!({"op": "to_user", "user": "alice", "text": "ok"}))
        .await;
    assert_eq!(alice.message().await["text"], "ok");
}

/// Sends probes from `from` to `room` until `to` receives one; returns how many it took.
async fn until_delivered(from: &mut Client, to: &mut Client, room: &str) -> usize {
    for attempt in 0..100 {
        let text = format!("probe-{attempt}");
        let reply = from
            .ask(json!({"op": "to_room", "room": room, "text": text}))
            .await;
        if reply["type"] == "ok" {
            let probe = async {
                loop {
                    let message = to.message().await;
                    if message["text"].as_str().unwrap().starts_with("probe-") {
                        return;
                    }
                }
            };
            if tokio::time::timeout(Duration::from_millis(200), probe)
                .await
                .is_ok()
            {
                return attempt + 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no probe reached {} within 100 attempts", to.user);
}

async fn kill_pubsub_clients(url: &str) -> i64 {
    let client = redis::Client::open(url).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_resubscribe_by_themselves_after_losing_pubsub() {
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let cluster = redis_cluster(&server.url(), "lost", 2, InboxLimits::default()).await;
    let mut a = Client::connect(cluster.addr(0), "alice").await;
    let mut b = Client::connect(cluster.addr(1), "bob").await;
    // One room each, so that a probe reaches only the other one.
    a.ok(json!({"op": "join", "room": "ra"})).await;
    b.ok(json!({"op": "join", "room": "rb"})).await;
    assert_eq!(until_delivered(&mut a, &mut b, "rb").await, 1);

    // The server drops every pub/sub connection.
    let killed = kill_pubsub_clients(&server.url()).await;
    assert_eq!(killed, 2, "one pub/sub connection per node");
    until_delivered(&mut a, &mut b, "rb").await;
    until_delivered(&mut b, &mut a, "ra").await;
    // Every kind of target works again, exactly once (late probes aside).
    b.ok(json!({"op": "to_user", "user": "alice", "text": "u"}))
        .await;
    b.send(json!({"op": "say", "text": "s"})).await;
    b.ok(json!({"op": "to_room", "room": "ra", "text": "end"}))
        .await;
    let got: Vec<String> = texts(&a.messages_until("end").await)
        .into_iter()
        .filter(|text| !text.starts_with("probe-"))
        .collect();
    assert_eq!(got, ["u", "s"]);

    // Publishing while Redis is down fails fast, and nothing panics.
    server.stop();
    let started = std::time::Instant::now();
    let error = cluster.instances[0].hub.broadcast("x").await.unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );

    // A restarted server (with no data) gets the nodes' subscriptions back.
    server.restart();
    let hub = &cluster.instances[1].hub;
    for _ in 0..100 {
        if hub.broadcast(message_of("after", 10)).await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    until_delivered(&mut b, &mut a, "ra").await;
    until_delivered(&mut a, &mut b, "rb").await;
    let subscriptions: Vec<usize> = cluster
        .instances
        .iter()
        .map(|i| i.hub.stats().subscriptions)
        .collect();
    // Each node: its own channel, everyone's, its user's and the room's.
    assert_eq!(subscriptions, [4, 4]);
}

each_store!(sends_keep_their_call_order_even_awaited_together);

async fn sends_keep_their_call_order_even_awaited_together(kind: Kind) {
    let Some(cluster) = cluster(kind, 2).await else {
        return;
    };
    let mut member = Client::connect(cluster.addr(1), "member").await;
    member.ok(json!({"op": "join", "room": "r"})).await;
    // Server code: every send is queued when it is called, and awaited all at once.
    let hub = &cluster.instances[0].hub;
    let sends: Vec<_> = (0..100)
        .map(|i| {
            let message = json!({"type": "message", "text": i.to_string()}).to_string();
            if i % 2 == 0 {
                futures_util::future::Either::Left(hub.send_to_room("r", message))
            } else {
                futures_util::future::Either::Right(hub.send_to_user("member", message))
            }
        })
        .collect();
    for result in futures_util::future::join_all(sends).await {
        result.unwrap();
    }
    let expected: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    let mut got = Vec::new();
    for _ in 0..100 {
        got.push(member.message().await["text"].as_str().unwrap().to_owned());
    }
    assert_eq!(got, expected);

    // A client that sends frames without waiting for replies: one reply each, in order, and
    // the messages in order.
    let mut sender = Client::connect(cluster.addr(0), "sender").await;
    for i in 0..50 {
        sender
            .send(json!({"op": "to_room", "room": "r", "text": format!("p{i}")}))
            .await;
    }
    sender.send(json!({"op": "get", "key": "k"})).await;
    for _ in 0..50 {
        assert_eq!(sender.ask_nothing().await, json!({"type": "ok"}));
    }
    assert_eq!(sender.ask_nothing().await["type"], "value");
    let mut texts_got = Vec::new();
    for _ in 0..50 {
        texts_got.push(member.message().await["text"].as_str().unwrap().to_owned());
    }
    let expected: Vec<String> = (0..50).map(|i| format!("p{i}")).collect();
    assert_eq!(texts_got, expected);
}

each_store!(closing_all_sockets_for_a_shutdown_sends_1001_and_removes_the_sessions);

async fn closing_all_sockets_for_a_shutdown_sends_1001_and_removes_the_sessions(kind: Kind) {
    let Some(cluster) = cluster(kind, 2).await else {
        return;
    };
    let mut here = Client::connect(cluster.addr(0), "ann").await;
    let mut there = Client::connect(cluster.addr(1), "ann").await;
    let here_id = here.id.clone();
    assert_eq!(
        cluster.instances[0]
            .sessions
            .close_all(&ws_session::hub::CloseReason::GOING_AWAY),
        1
    );
    assert_eq!(here.close_code().await, Some(1001));
    eventually("the closed socket's session is removed", || async {
        cluster.instances[0].sessions.is_empty()
            && cluster.instances[1]
                .hub
                .send_to_session(&here_id, "x")
                .await
                .is_err()
    })
    .await;
    // The other instance's socket is untouched.
    there
        .ok(json!({"op": "to_user", "user": "ann", "text": "still"}))
        .await;
    assert_eq!(there.message().await["text"], "still");
}

// ---------------------------------------------------------------------------------------------
// Redis Cluster only

/// On a cluster, a node's sharded subscriptions (all in the hub's slot) come back on every
/// channel after its connection is killed (`CLIENT KILL TYPE pubsub` on every master): each
/// room, the user's, the node's and everyone's channel is probed once. On a cluster of its own,
/// whose other subscribers it would kill too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_cluster_a_killed_subscriber_comes_back_on_every_channel() {
    let Some(topology) = support::cluster::ClusterTopology::start() else {
        return;
    };
    let prefix = unique_prefix();
    let mut stores = Vec::new();
    for _ in 0..2 {
        stores.push(topology.store_with_prefix(&prefix, HOUR).await);
    }
    let cluster = redis_instances(stores, InboxLimits::default()).await;
    let mut reader = Client::connect(cluster.addr(1), "reader").await;
    let rooms: Vec<String> = (0..20).map(|i| format!("room{i}")).collect();
    for room in &rooms {
        reader.ok(json!({"op": "join", "room": room})).await;
    }
    for _ in 0..2 {
        let mut killed = 0;
        for port in topology.master_ports() {
            let reply = tokio::task::block_in_place(|| {
                support::redis_server::query(port, "CLIENT KILL TYPE pubsub")
            })
            .unwrap();
            killed += reply
                .trim_start_matches(':')
                .lines()
                .next()
                .and_then(|n| n.trim().parse::<usize>().ok())
                .unwrap_or(0);
        }
        // The reader's node subscribes; the prober's, once the prober has come.
        assert!(killed >= 1, "the reader's subscriber was killed ({killed})");
        // The subscribers connect and subscribe again (a task of their own, at once).
        tokio::time::sleep(Duration::from_millis(500)).await;
        let mut prober = Client::connect(cluster.addr(0), "prober").await;
        for room in &rooms {
            let text = format!("to {room}");
            prober
                .ok(json!({"op": "to_room", "room": room, "text": text}))
                .await;
            assert_eq!(reader.message().await["text"], text);
        }
        prober
            .ok(json!({"op": "to_user", "user": "reader", "text": "to the user"}))
            .await;
        assert_eq!(reader.message().await["text"], "to the user");
        prober
            .ok(json!({"op": "to_session", "session": reader.id, "text": "to the node"}))
            .await;
        assert_eq!(reader.message().await["text"], "to the node");
        prober.send(json!({"op": "say", "text": "to all"})).await;
        assert_eq!(reader.message().await["text"], "to all");
        prober.close().await;
    }
}
