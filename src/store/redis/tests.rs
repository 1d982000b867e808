//! Tests of the Redis store that need what the hub and resume do to a session: rooms and
//! detaches, beside its renewal of TTLs and its refusal of corrupt keys. The rest of its tests
//! are in `tests/redis_store.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use serde_json::json;

use crate::store::attachment::Detach;
use crate::store::backend::Backend;
use crate::store::keep_alive::{INDEX_FLOOR_TTLS, Indexes};
use crate::{Error, RedisStore, SessionData, SessionStore};
use ws_session_testkit::redis_server::{RedisServer, command_calls, expire_time, pttl, redis_ms};

const HOUR: Duration = Duration::from_secs(3600);

/// A Redis store of this crate's on the tests' Redis, or the skip (which fails under `CI`).
macro_rules! require_redis {
    ($ttl:expr) => {
        match crate::store::tests::redis_store($ttl).await {
            Some(store) => store,
            None => {
                eprintln!("{}", ws_session_testkit::redis_server::SKIPPED);
                return;
            }
        }
    };
}

/// A connection of its own to the store's server, for looking behind the store's back.
async fn raw(store: &RedisStore) -> MultiplexedConnection {
    store
        .dedicated_connection()
        .await
        .expect("a raw connection")
}

fn session_key(store: &RedisStore, id: &str) -> String {
    format!("{}:session:{id}", store.prefix())
}

fn user_key(store: &RedisStore, user: &str) -> String {
    format!("{}:user_sessions:{user}", store.prefix())
}

/// Asserts that `err` is Redis's `WRONGTYPE`, passed on as a backend error.
fn assert_wrong_type(err: Error) {
    match err {
        Error::Backend(source) => {
            let redis = source
                .downcast_ref::<redis::RedisError>()
                .expect("the Redis error is kept");
            assert_eq!(redis.code(), Some("WRONGTYPE"), "{redis:?}");
        }
        other => panic!("expected Backend, got {other:?}"),
    }
}

/// Moves `key` to `aside` and puts a string in its place.
async fn corrupt(conn: &mut MultiplexedConnection, key: &str, aside: &str) {
    let _: () = conn.rename(key, aside).await.unwrap();
    let _: () = conn.set_ex(key, "x", 600).await.unwrap();
}

/// What a renewing write reads after its first read: the session's rooms key, which it
/// refuses to write past when that key is corrupt, and `meta:set_until`, which counts as
/// unknown when it is not a number.
#[tokio::test]
async fn a_renewing_write_refuses_a_corrupt_rooms_key_and_ignores_a_corrupt_set_until() {
    let store = require_redis!(HOUR);
    let mut conn = raw(&store).await;
    let key = session_key(&store, "r1");
    let rooms_key = format!("{}:session_rooms:r1", store.prefix());

    store.create_session("r1", "alice").await.unwrap();
    assert!(store.join_room("r1", "lobby").await.unwrap());
    // The rooms key, kept aside while a string stands in its place.
    let aside = format!("{rooms_key}:aside");

    // Without `meta:lives_until`, the next write renews, and reads the rooms key.
    let _: i64 = conn.hdel(&key, "meta:lives_until").await.unwrap();
    corrupt(&mut conn, &rooms_key, &aside).await;
    let before: HashMap<String, String> = conn.hgetall(&key).await.unwrap();
    let err = store
        .set_session_data("r1", "k", json!(1))
        .await
        .unwrap_err();
    assert_wrong_type(err);
    let after: HashMap<String, String> = conn.hgetall(&key).await.unwrap();
    assert_eq!(after, before, "a refused write wrote nothing");

    // Mended, the renewing write goes through; the next one leaves the TTL alone and reads
    // neither, so the same corruption does not stop it.
    let _: () = conn.rename(&aside, &rooms_key).await.unwrap();
    store.set_session_data("r1", "k", json!(2)).await.unwrap();
    let renewed: Option<String> = conn.hget(&key, "meta:lives_until").await.unwrap();
    assert!(
        renewed.is_some(),
        "the renewing write wrote meta:lives_until"
    );
    corrupt(&mut conn, &rooms_key, &aside).await;
    store.set_session_data("r1", "k", json!(3)).await.unwrap();
    assert_eq!(
        store.get_session_data("r1", "k").await.unwrap(),
        Some(json!(3))
    );
    let _: () = conn.del(&rooms_key).await.unwrap();
    let _: () = conn.rename(&aside, &rooms_key).await.unwrap();

    // A corrupt `meta:set_until`: the renewing write looks at the user set and repairs both.
    let set = user_key(&store, "alice");
    let _: () = redis::pipe()
        .hset(&key, "meta:set_until", "soon")
        .ignore()
        .hdel(&key, "meta:lives_until")
        .ignore()
        .pexpire(&set, 5_000)
        .ignore()
        .query_async(&mut conn)
        .await
        .unwrap();
    store.set_session_data("r1", "k", json!(4)).await.unwrap();
    let (session_left, set_left) = (pttl(&mut conn, &key).await, pttl(&mut conn, &set).await);
    assert!(session_left > 3_500_000, "renewed: {session_left} ms left");
    assert!(
        set_left > session_left,
        "the user set outlives its member: {set_left} ms against {session_left} ms"
    );
    let set_until: String = conn.hget(&key, "meta:set_until").await.unwrap();
    let set_until: i64 = set_until.parse().expect("a number again");
    let now = redis_ms(&mut conn).await;
    assert!(
        (set_until - now - set_left).abs() < 1_000,
        "meta:set_until {set_until} tells the set's TTL ({set_left} ms from {now})"
    );
}

/// A session written all the time has its TTL renewed at most every 64th of its TTL; one
/// written less often, on every write. After any write it has at least 63/64 of its TTL left.
#[tokio::test]
async fn writes_renew_a_session_at_most_every_64th_of_its_ttl() {
    // So a write renews a session with less than 6.3 s left.
    let ttl = Duration::from_millis(6_400);
    let store = require_redis!(ttl);
    let mut conn = raw(&store).await;
    let key = session_key(&store, "c1");
    store.create_session("c1", "alice").await.unwrap();
    let floor = (ttl.as_millis() - 100) as i64;

    // Back to back: the expiry moves at most once per 100 ms, and never falls short.
    let started = Instant::now();
    let mut expiries = HashSet::from([expire_time(&mut conn, &key).await]);
    for i in 0..40 {
        let before = redis_ms(&mut conn).await;
        store.set_session_data("c1", "k", json!(i)).await.unwrap();
        let expiry = expire_time(&mut conn, &key).await;
        assert!(expiry - before >= floor, "{} ms left", expiry - before);
        expiries.insert(expiry);
    }
    let renewals = expiries.len() - 1;
    let most = started.elapsed().as_millis() as usize / 100 + 1;
    assert!(
        renewals <= most,
        "{renewals} renewals, at most {most} expected"
    );

    // A pause longer than that: the next write renews, whichever write it is.
    for write in ["set", "update", "delete", "clear"] {
        let last = expire_time(&mut conn, &key).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        match write {
            "set" => store.set_session_data("c1", "k", json!(1)).await,
            "update" => {
                let update = SessionData::from_iter([("k".to_owned(), json!(2))]);
                store.update_session_data("c1", update).await
            }
            "delete" => store.delete_session_data("c1", "k").await,
            _ => store.clear_session_data("c1").await,
        }
        .unwrap();
        let renewed = expire_time(&mut conn, &key).await;
        assert!(
            renewed - last >= 150,
            "the {write} moved the expiry by {}",
            renewed - last
        );
    }

    // What the hash remembers is checked, not trusted: a time beyond what a renewal gives, or
    // a text that is not a time, renews.
    for remembered in ["99999999999999", "9999999999999", "soon"] {
        let _: () = conn.pexpire(&key, 3_000).await.unwrap();
        let _: () = conn
            .hset(&key, "meta:lives_until", remembered)
            .await
            .unwrap();
        store.set_session_data("c1", "k", json!(3)).await.unwrap();
        let left = pttl(&mut conn, &key).await;
        assert!(left >= floor, "with {remembered}: {left} ms left");
    }

    // A detached session lives for its resume window; a write gives it the whole TTL again.
    let detached = store
        .detach_session("c1", 1, &Detach::new(Duration::from_millis(500), 10))
        .await
        .unwrap();
    assert!(detached.detached);
    assert!(pttl(&mut conn, &key).await <= 500);
    store.set_session_data("c1", "k", json!(4)).await.unwrap();
    let left = pttl(&mut conn, &key).await;
    assert!(left >= floor, "after the detach: {left} ms left");
}

/// The calls of each command between two `INFO commandstats` readings, but `INFO` itself.
fn calls_between(
    before: &HashMap<String, u64>,
    after: &HashMap<String, u64>,
) -> Vec<(String, u64)> {
    let mut moved: Vec<(String, u64)> = after
        .iter()
        .filter(|(name, _)| name.as_str() != "info")
        .map(|(name, calls)| (name.clone(), calls - before.get(name).unwrap_or(&0)))
        .filter(|(_, calls)| *calls > 0)
        .collect();
    moved.sort();
    moved
}

/// The keep-alive restarts each session's TTL with one `PEXPIRE`, reads nothing, leaves
/// `last_active` as the last write set it, and recreates no session that is gone.
#[tokio::test]
async fn the_keep_alive_costs_one_command_per_session() {
    // A private server, so that nothing else moves its command counters.
    let Some(server) = RedisServer::start() else {
        eprintln!("{}", ws_session_testkit::redis_server::SKIPPED);
        return;
    };
    let store = RedisStore::connect(&server.url(), "app", HOUR)
        .await
        .unwrap();
    let mut conn = raw(&store).await;
    let ids: Vec<String> = (0..50).map(|i| format!("s{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        store
            .create_session(id, &format!("user{}", i % 4))
            .await
            .unwrap();
        let _: bool = conn.pexpire(session_key(&store, id), 5_000).await.unwrap();
    }
    store.join_room("s0", "lobby").await.unwrap();
    let written = store.get_session("s0").await.unwrap().unwrap();
    // Loads the script, so that the call measured below is one EVALSHA.
    store.keep_alive(&[Arc::from("s0")]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;

    let mut asked: Vec<Arc<str>> = ids.iter().map(|id| Arc::from(id.as_str())).collect();
    asked.push(Arc::from("gone"));
    let before = command_calls(&mut conn).await;
    let missing = store.keep_alive(&asked).await.unwrap();
    let after = command_calls(&mut conn).await;
    assert_eq!(missing, ["gone"]);
    assert_eq!(
        calls_between(&before, &after),
        [("evalsha".to_owned(), 1), ("pexpire".to_owned(), 51)]
    );
    for id in &ids {
        let left = pttl(&mut conn, &session_key(&store, id)).await;
        assert!(left > 3_500_000, "{id}: {left} ms left");
    }
    let exists: bool = conn.exists(session_key(&store, "gone")).await.unwrap();
    assert!(!exists, "the keep-alive recreated a session");
    let kept = store.get_session("s0").await.unwrap().unwrap();
    assert_eq!(kept.last_active, written.last_active);
}

/// The indexes' keep-alive gives a short-lived index its index TTL, never shortens one that
/// lives longer, and creates none.
#[tokio::test]
async fn the_indexes_keep_alive_lengthens_and_never_shortens() {
    let ttl = Duration::from_secs(10);
    let store = require_redis!(ttl);
    let mut conn = raw(&store).await;
    store.create_session("c1", "alice").await.unwrap();
    store.create_session("c2", "bob").await.unwrap();
    store.join_room("c1", "lobby").await.unwrap();
    let prefix = store.prefix().to_owned();
    let alice = user_key(&store, "alice");
    let bob = user_key(&store, "bob");
    let rooms = format!("{prefix}:session_rooms:c1");
    let lobby = format!("{prefix}:room_members:lobby");
    for key in [&alice, &rooms, &lobby] {
        let _: bool = conn.pexpire(key, 2_000).await.unwrap();
    }
    let _: bool = conn.pexpire(&bob, 3_600_000).await.unwrap();

    let indexes = Indexes {
        sessions: vec!["c1".into(), "c2".into()],
        users: vec!["alice".into(), "bob".into(), "nobody".into()],
        rooms: vec!["lobby".into(), "empty".into()],
    };
    store.keep_indexes(&indexes).await.unwrap();
    // INDEX_FLOOR_TTLS + 1 TTLs and a second.
    let index_ttl = ttl.as_millis() as i64 * (i64::from(INDEX_FLOOR_TTLS) + 1) + 1_000;
    for key in [&alice, &rooms, &lobby] {
        let left = pttl(&mut conn, key).await;
        assert!(
            (index_ttl - 1_000..=index_ttl).contains(&left),
            "{key}: {left} ms left"
        );
    }
    assert!(
        pttl(&mut conn, &bob).await > 3_000_000,
        "a longer TTL was cut"
    );
    for gone in [
        user_key(&store, "nobody"),
        format!("{prefix}:room_members:empty"),
        format!("{prefix}:session_rooms:c2"),
    ] {
        let exists: bool = conn.exists(&gone).await.unwrap();
        assert!(!exists, "{gone} was created");
    }
}
