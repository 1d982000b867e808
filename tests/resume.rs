//! Resume over real sockets: chat instances with a resume window on one store (a `MemoryStore`
//! shared by the layers of this process, or separate `RedisStore`s on one Redis), real clients
//! that drop, come back with their token and offset, race, take over and miss messages.

mod support;

use support::Kind;

use ws_session_testkit::app;

use std::time::Duration;

use serde_json::{Value, json};
use support::chat::{Client, Instance, serve, texts};
use support::redis_server::{shared_url, unique_prefix};
use tokio_tungstenite::tungstenite;
use ws_session::resume::Resume;
use ws_session::{MemoryStore, RedisStore, SessionLayer, SessionStore};

const HOUR: Duration = Duration::from_secs(3600);
const WINDOW: Duration = Duration::from_secs(60);

/// `n` chat instances on one store of `kind`, each layer made resumable by `resume`; `None`
/// when Redis is wanted and missing.
async fn cluster(kind: Kind, n: usize, resume: Resume) -> Option<Vec<Instance>> {
    let layers: Vec<SessionLayer> = match kind {
        Kind::Memory => {
            let store = MemoryStore::with_ttl(HOUR).limits(app::limits());
            (0..n)
                .map(|_| app::session_layer(store.clone()).resume(resume))
                .collect()
        }
        Kind::Redis | Kind::Sentinel | Kind::Cluster => {
            let prefix = unique_prefix();
            let mut layers = Vec::new();
            for _ in 0..n {
                let store = support::redis_store_of(kind, &prefix, HOUR).await?;
                layers.push(app::session_layer(store.limits(app::limits())).resume(resume));
            }
            layers
        }
    };
    let mut instances = Vec::new();
    for layer in layers {
        instances.push(serve(layer.clone(), app::router(layer)).await);
    }
    Some(instances)
}

each_store!(a_dropped_session_resumes_on_the_same_and_on_another_instance);
each_store!(failed_claims_get_fresh_sessions_and_change_nothing);
each_store!(two_racing_claims_with_one_token_have_one_winner);
each_store!(a_resume_takes_over_a_connection_still_open);
each_store!(missed_messages_come_first_in_order_and_once);
each_store!(an_offset_older_than_the_history_says_incomplete);
each_store!(a_long_absence_is_replayed_whole_and_complete);
each_store!(the_oldest_detached_session_goes_past_the_cap);
each_store!(shutdown_detaches_and_clients_resume_elsewhere);
each_store!(a_kicked_session_cannot_be_resumed);

async fn get(client: &mut Client, key: &str) -> Value {
    client.ask(json!({"op": "get", "key": key})).await["value"].clone()
}

async fn rooms(client: &mut Client) -> Value {
    client.ask(json!({"op": "rooms"})).await["rooms"].clone()
}

async fn a_dropped_session_resumes_on_the_same_and_on_another_instance(kind: Kind) {
    let Some(cluster) = cluster(kind, 2, Resume::within(WINDOW)).await else {
        return;
    };
    let mut alice = Client::connect(cluster[0].addr, "alice").await;
    assert!(!alice.recovered());
    assert_eq!(alice.welcome.get("missed"), None);
    let id = alice.id.clone();
    alice
        .ok(json!({"op": "set", "key": "theme", "value": "dark"}))
        .await;
    alice.ok(json!({"op": "join", "room": "r"})).await;
    let first = alice.token();
    alice.close().await;
    cluster[0].settle(0).await;

    // Same instance.
    let mut alice = Client::resume(cluster[0].addr, "alice", &first, None).await;
    assert!(alice.recovered(), "{}", alice.welcome);
    assert_eq!(alice.id, id);
    assert_eq!(alice.welcome["missed"], 0);
    assert_eq!(alice.welcome["complete"], true);
    assert_eq!(get(&mut alice, "theme").await, "dark");
    assert_eq!(rooms(&mut alice).await, json!(["r"]));
    let second = alice.token();
    assert_ne!(second, first, "the token rotates");
    alice.close().await;
    cluster[0].settle(0).await;

    // The used token is refused: a fresh session.
    let stale = Client::resume(cluster[1].addr, "alice", &first, None).await;
    assert!(!stale.recovered());
    assert_ne!(stale.id, id);
    stale.close().await;
    cluster[1].settle(0).await;

    // Another instance, with the new token.
    let mut alice = Client::resume(cluster[1].addr, "alice", &second, None).await;
    assert!(alice.recovered(), "{}", alice.welcome);
    assert_eq!(alice.id, id);
    assert_eq!(get(&mut alice, "theme").await, "dark");
    assert_eq!(rooms(&mut alice).await, json!(["r"]));
    // The room is live again there: a message to it arrives.
    let mut bob = Client::connect(cluster[0].addr, "bob").await;
    bob.ok(json!({"op": "to_room", "room": "r", "text": "back"}))
        .await;
    assert_eq!(alice.message().await["text"], "back");
    let members = bob.ask(json!({"op": "members", "room": "r"})).await;
    assert_eq!(
        members["members"],
        json!([{"session": id, "user": "alice"}])
    );
}

async fn failed_claims_get_fresh_sessions_and_change_nothing(kind: Kind) {
    let short = Resume::within(Duration::from_millis(400));
    let Some(cluster) = cluster(kind, 1, Resume::within(WINDOW)).await else {
        return;
    };
    let addr = cluster[0].addr;
    let mut alice = Client::connect(addr, "alice").await;
    let id = alice.id.clone();
    alice.ok(json!({"op": "set", "key": "k", "value": 1})).await;
    let token = alice.token();
    alice.close().await;
    cluster[0].settle(0).await;

    // Another user with alice's token, garbage, a token for a session that never was, a
    // token of the wrong shape: each a fresh, empty session of its own user.
    let forged = format!("{id}.{}", "0".repeat(32));
    let never = format!("{}.{}", "f".repeat(32), &token[token.len() - 32..]);
    for (user, presented) in [
        ("mallory", token.as_str()),
        ("alice", "garbage"),
        ("alice", forged.as_str()),
        ("alice", never.as_str()),
        ("alice", "%00%ff.."),
    ] {
        let mut other = Client::resume(addr, user, presented, None).await;
        assert!(
            !other.recovered(),
            "{user} with {presented}: {}",
            other.welcome
        );
        assert_ne!(other.id, id);
        assert_eq!(other.welcome["user"], user);
        assert_eq!(get(&mut other, "k").await, Value::Null);
        other.close().await;
        cluster[0].settle(0).await;
    }
    // None of them used the token up.
    let alice = Client::resume(addr, "alice", &token, None).await;
    assert!(alice.recovered());
    assert_eq!(alice.id, id);
    alice.close().await;

    // A window that ran out.
    let Some(expiring) = self::cluster(kind, 1, short).await else {
        return;
    };
    let first = Client::connect(expiring[0].addr, "alice").await;
    let (id, token) = (first.id.clone(), first.token());
    first.close().await;
    expiring[0].settle(0).await;
    tokio::time::sleep(Duration::from_millis(900)).await;
    let late = Client::resume(expiring[0].addr, "alice", &token, None).await;
    assert!(!late.recovered(), "{}", late.welcome);
    assert_ne!(late.id, id);
}

async fn two_racing_claims_with_one_token_have_one_winner(kind: Kind) {
    let Some(cluster) = cluster(kind, 2, Resume::within(WINDOW)).await else {
        return;
    };
    let first = Client::connect(cluster[0].addr, "alice").await;
    let id = first.id.clone();
    let mut token = first.token();
    first.close().await;
    cluster[0].settle(0).await;
    for round in 0..25 {
        let (a, b) = tokio::join!(
            Client::resume(cluster[0].addr, "alice", &token, None),
            Client::resume(cluster[1].addr, "alice", &token, None),
        );
        let winners: Vec<&Client> = [&a, &b].into_iter().filter(|c| c.recovered()).collect();
        assert_eq!(
            winners.len(),
            1,
            "round {round}: {} and {}",
            a.welcome,
            b.welcome
        );
        assert_eq!(winners[0].id, id);
        token = winners[0].token();
        let loser = if a.recovered() { &b } else { &a };
        assert_ne!(loser.id, id);
        a.close().await;
        b.close().await;
        cluster[0].settle(0).await;
        cluster[1].settle(0).await;
    }
}

async fn a_resume_takes_over_a_connection_still_open(kind: Kind) {
    let Some(cluster) = cluster(kind, 2, Resume::within(WINDOW)).await else {
        return;
    };
    for (from, to) in [(0, 1), (1, 1)] {
        let room = format!("r{from}{to}");
        let mut old = Client::connect(cluster[from].addr, "alice").await;
        let id = old.id.clone();
        old.ok(json!({"op": "set", "key": "k", "value": from}))
            .await;
        old.ok(json!({"op": "join", "room": room})).await;
        // The old socket stays open (half-open, as far as the server knows).
        let mut new = Client::resume(cluster[to].addr, "alice", &old.token(), None).await;
        assert!(new.recovered(), "{}", new.welcome);
        assert_eq!(new.id, id);
        assert_eq!(old.close_code().await, Some(4002), "{from} -> {to}");
        cluster[from].settle(usize::from(from == to)).await;
        // The older handle's drop left the session to the new connection.
        assert_eq!(get(&mut new, "k").await, json!(from));
        assert_eq!(rooms(&mut new).await, json!([room]));
        let mut bob = Client::connect(cluster[0].addr, "bob").await;
        bob.ok(json!({"op": "to_session", "session": id, "text": "still you"}))
            .await;
        assert_eq!(new.message().await["text"], "still you");
        let members = bob.ask(json!({"op": "members", "room": room})).await;
        assert_eq!(
            members["members"],
            json!([{"session": id, "user": "alice"}])
        );
        bob.close().await;
        new.close().await;
        cluster[0].settle(0).await;
        cluster[1].settle(0).await;
    }
}

async fn missed_messages_come_first_in_order_and_once(kind: Kind) {
    let Some(cluster) = cluster(kind, 2, Resume::within(WINDOW)).await else {
        return;
    };
    let mut alice = Client::connect(cluster[0].addr, "alice").await;
    let id = alice.id.clone();
    alice.ok(json!({"op": "join", "room": "r"})).await;
    let mut bob = Client::connect(cluster[1].addr, "bob").await;
    bob.ok(json!({"op": "to_room", "room": "r", "text": "seen"}))
        .await;
    assert_eq!(alice.message().await["text"], "seen");
    let seen = alice.last_offset.clone().expect("an offset");
    let token = alice.token();
    // Lost in flight: sent to her connection, never read by her client before it went.
    bob.ok(json!({"op": "to_room", "room": "r", "text": "in flight"}))
        .await;
    alice.close().await;
    cluster[0].settle(0).await;

    // Every kind of send while alice is away; and one to a room she is not in.
    bob.ok(json!({"op": "to_room", "room": "r", "text": "room"}))
        .await;
    bob.ok(json!({"op": "to_room", "room": "other", "text": "not hers"}))
        .await;
    bob.ok(json!({"op": "to_user", "user": "alice", "text": "user"}))
        .await;
    bob.ok(json!({"op": "to_session", "session": id, "text": "session"}))
        .await;
    bob.send(json!({"op": "say", "text": "everyone"})).await;
    assert_eq!(bob.message().await["text"], "everyone");

    let mut alice = Client::resume(cluster[1].addr, "alice", &token, Some(&seen)).await;
    assert!(alice.recovered(), "{}", alice.welcome);
    assert_eq!(alice.welcome["missed"], 5, "{}", alice.welcome);
    assert_eq!(alice.welcome["complete"], true);
    let mut missed = Vec::new();
    for _ in 0..5 {
        missed.push(alice.message().await);
    }
    assert_eq!(
        texts(&missed),
        ["in flight", "room", "user", "session", "everyone"]
    );
    let offsets: Vec<u64> = missed
        .iter()
        .map(|m| m["offset"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    assert!(offsets[0] > seen.parse().unwrap());
    // Then live ones, after the last missed one, and nothing twice.
    bob.ok(json!({"op": "to_room", "room": "r", "text": "live"}))
        .await;
    let next = alice.message().await;
    assert_eq!(next["text"], "live");
    assert!(next["offset"].as_str().unwrap().parse::<u64>().unwrap() > offsets[4]);

    // Presented with no offset, everything kept since the session began comes back.
    let token = alice.token();
    alice.close().await;
    cluster[1].settle(1).await;
    let mut alice = Client::resume(cluster[0].addr, "alice", &token, None).await;
    assert_eq!(alice.welcome["missed"], 7, "{}", alice.welcome);
    let mut all = Vec::new();
    for _ in 0..7 {
        all.push(alice.message().await);
    }
    assert_eq!(
        texts(&all),
        [
            "seen",
            "in flight",
            "room",
            "user",
            "session",
            "everyone",
            "live"
        ]
    );
}

async fn an_offset_older_than_the_history_says_incomplete(kind: Kind) {
    let resume = Resume::within(WINDOW).keep_messages(3);
    let Some(cluster) = cluster(kind, 1, resume).await else {
        return;
    };
    let addr = cluster[0].addr;
    let mut alice = Client::connect(addr, "alice").await;
    alice.ok(json!({"op": "join", "room": "r"})).await;
    let token = alice.token();
    alice.close().await;
    cluster[0].settle(0).await;
    let mut bob = Client::connect(addr, "bob").await;
    for n in 0..5 {
        bob.ok(json!({"op": "to_room", "room": "r", "text": n.to_string()}))
            .await;
    }
    let mut alice = Client::resume(addr, "alice", &token, None).await;
    assert!(alice.recovered());
    assert_eq!(alice.welcome["missed"], 3, "{}", alice.welcome);
    assert_eq!(alice.welcome["complete"], false);
    let mut missed = Vec::new();
    for _ in 0..3 {
        missed.push(alice.message().await);
    }
    assert_eq!(texts(&missed), ["2", "3", "4"]);
    // From the newest offset, nothing is missing.
    let (token, last) = (alice.token(), alice.last_offset.clone().unwrap());
    alice.close().await;
    cluster[0].settle(1).await;
    let alice = Client::resume(addr, "alice", &token, Some(&last)).await;
    assert_eq!(alice.welcome["missed"], 0);
    assert_eq!(alice.welcome["complete"], true);
}

/// More messages than one read of a history takes, in a room that already held messages
/// from before the absence and in a room that held none: all come, in order, and the replay
/// is complete (nothing was dropped from either history).
async fn a_long_absence_is_replayed_whole_and_complete(kind: Kind) {
    let Some(cluster) = cluster(kind, 1, Resume::within(WINDOW)).await else {
        return;
    };
    let addr = cluster[0].addr;
    let mut alice = Client::connect(addr, "alice").await;
    alice.ok(json!({"op": "join", "room": "old"})).await;
    alice.ok(json!({"op": "join", "room": "new"})).await;
    let mut bob = Client::connect(addr, "bob").await;
    bob.ok(json!({"op": "to_room", "room": "old", "text": "before"}))
        .await;
    assert_eq!(texts(&[alice.message().await]), ["before"]);
    let (token, last) = (alice.token(), alice.last_offset.clone().unwrap());
    alice.close().await;
    cluster[0].settle(1).await;
    let mut sent = Vec::new();
    for n in 0..20 {
        for room in ["old", "new"] {
            let text = format!("{room}{n}");
            bob.ok(json!({"op": "to_room", "room": room, "text": text}))
                .await;
            sent.push(text);
        }
    }
    let mut alice = Client::resume(addr, "alice", &token, Some(&last)).await;
    assert!(alice.recovered());
    assert_eq!(alice.welcome["missed"], 40, "{}", alice.welcome);
    assert_eq!(alice.welcome["complete"], true, "{}", alice.welcome);
    let mut missed = Vec::new();
    for _ in 0..40 {
        missed.push(alice.message().await);
    }
    assert_eq!(texts(&missed), sent);
}

async fn the_oldest_detached_session_goes_past_the_cap(kind: Kind) {
    let resume = Resume::within(WINDOW).max_detached_per_user(2);
    let Some(cluster) = cluster(kind, 1, resume).await else {
        return;
    };
    let addr = cluster[0].addr;
    let mut tokens = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..3 {
        let client = Client::connect(addr, "alice").await;
        tokens.push(client.token());
        ids.push(client.id.clone());
        client.close().await;
        cluster[0].settle(0).await;
        // Detach times in milliseconds: keep them apart.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut check = Client::connect(addr, "alice").await;
    let sessions = check.ask(json!({"op": "sessions"})).await;
    let listed: Vec<&str> = sessions["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(!listed.contains(&ids[0].as_str()), "{sessions}");
    assert!(listed.contains(&ids[1].as_str()) && listed.contains(&ids[2].as_str()));
    let oldest = Client::resume(addr, "alice", &tokens[0], None).await;
    assert!(!oldest.recovered());
    let newest = Client::resume(addr, "alice", &tokens[2], None).await;
    assert!(newest.recovered());
    assert_eq!(newest.id, ids[2]);
}

async fn shutdown_detaches_and_clients_resume_elsewhere(kind: Kind) {
    let Some(cluster) = cluster(kind, 2, Resume::within(WINDOW)).await else {
        return;
    };
    let mut alice = Client::connect(cluster[0].addr, "alice").await;
    alice
        .ok(json!({"op": "set", "key": "k", "value": "kept"}))
        .await;
    let (id, token) = (alice.id.clone(), alice.token());
    assert_eq!(cluster[0].sessions.shutdown().await, 1);
    assert_eq!(alice.close_code().await, Some(1001));
    cluster[0].settle(0).await;
    // The instance shutting down opens nothing more, fresh or resumed: a claim there would
    // rotate the token of a session whose welcome may never reach its client.
    for query in [format!("user=alice&resume={token}"), "user=bob".to_owned()] {
        let url = format!("ws://{}/ws?{query}", cluster[0].addr);
        match tokio_tungstenite::connect_async(url).await {
            Err(tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 503);
                assert_eq!(response.headers()["retry-after"], "1");
            }
            other => panic!("an upgrade during the shutdown: {other:?}"),
        }
    }
    let mut alice = Client::resume(cluster[1].addr, "alice", &token, None).await;
    assert!(alice.recovered(), "{}", alice.welcome);
    assert_eq!(alice.id, id);
    assert_eq!(get(&mut alice, "k").await, "kept");
}

async fn a_kicked_session_cannot_be_resumed(kind: Kind) {
    let Some(cluster) = cluster(kind, 2, Resume::within(WINDOW)).await else {
        return;
    };
    let mut alice = Client::connect(cluster[0].addr, "alice").await;
    let token = alice.token();
    let mut bob = Client::connect(cluster[1].addr, "bob").await;
    bob.ok(json!({"op": "kick", "user": "alice"})).await;
    assert_eq!(alice.close_code().await, Some(4000));
    cluster[0].settle(0).await;
    let again = Client::resume(cluster[1].addr, "alice", &token, None).await;
    assert!(!again.recovered(), "{}", again.welcome);
}

/// Detached sessions that nobody resumes expire with every key they had; only the hub's clock
/// (a day's TTL) stays. A user's or a room's set may name an expired session until it is read
/// or its own TTL (at most twice the session TTL and a second) runs out, so the session TTL here
/// is short.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detached_sessions_expire_and_leave_no_key_behind() {
    let Some(url) = shared_url() else {
        eprintln!("{}", support::redis_server::SKIPPED);
        return;
    };
    let window = Duration::from_millis(500);
    let prefix = unique_prefix();
    let store = RedisStore::connect(&url, prefix.as_str(), Duration::from_secs(1))
        .await
        .unwrap()
        .limits(app::limits());
    let layer = app::session_layer(store.clone()).resume(Resume::within(window));
    let instance = serve(layer.clone(), app::router(layer)).await;
    let mut alice = Client::connect(instance.addr, "alice").await;
    let mut bob = Client::connect(instance.addr, "bob").await;
    for client in [&mut alice, &mut bob] {
        client.ok(json!({"op": "join", "room": "r"})).await;
        client
            .ok(json!({"op": "set", "key": "k", "value": "v"}))
            .await;
    }
    bob.ok(json!({"op": "to_room", "room": "r", "text": "hi"}))
        .await;
    bob.ok(json!({"op": "to_session", "session": alice.id, "text": "you"}))
        .await;
    bob.ok(json!({"op": "to_user", "user": "alice", "text": "all of you"}))
        .await;
    bob.send(json!({"op": "say", "text": "everyone"})).await;
    let mut conn = store.dedicated_connection().await.unwrap();
    let before = support::redis_server::keys_under(&mut conn, &store).await;
    for part in [
        ":session:",
        ":room_members:",
        ":history:room:",
        ":history:session:",
    ] {
        assert!(
            before.iter().any(|key| key.contains(part)),
            "{part} in {before:?}"
        );
    }
    alice.close().await;
    bob.close().await;
    instance.settle(0).await;
    let detached = support::redis_server::keys_under(&mut conn, &store).await;
    assert!(
        detached.iter().any(|key| key.contains(":user_detached:")),
        "{detached:?}"
    );
    for key in &detached {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 0 || ttl == -2, "{key} has PTTL {ttl}");
    }
    // The window, then the sets' and histories' margins (twice the TTL or the window, and a
    // second).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(8);
    let clock = format!("{prefix}:hub:clock");
    loop {
        let left = support::redis_server::keys_under(&mut conn, &store).await;
        if left == [clock.clone()] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "left behind: {left:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detached_sessions_expire_from_the_memory_store() {
    let store = MemoryStore::with_ttl(HOUR)
        .limits(app::limits())
        .sweep_interval(Duration::from_millis(20));
    let layer =
        app::session_layer(store.clone()).resume(Resume::within(Duration::from_millis(200)));
    let instance = serve(layer.clone(), app::router(layer)).await;
    let mut alice = Client::connect(instance.addr, "alice").await;
    alice.ok(json!({"op": "join", "room": "r"})).await;
    let token = alice.token();
    alice.close().await;
    instance.settle(0).await;
    assert_eq!(store.len(), 1, "detached, kept for the window");
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(store.is_empty());
    assert!(store.get_user_sessions("alice").await.unwrap().is_empty());
    assert!(instance.hub.members("r").await.unwrap().is_empty());
    let late = Client::resume(instance.addr, "alice", &token, None).await;
    assert!(!late.recovered());
}
