//! Tests of the Redis store that need what the hub and resume do to a session: rooms and
//! detaches, beside its renewal of TTLs and its refusal of corrupt keys. The rest of its tests
//! are in `tests/redis_store.rs`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use serde_json::json;

use crate::store::attachment::Detach;
use crate::store::backend::Backend;
use crate::{Error, RedisStore, SessionData, SessionStore};
use ws_session_testkit::redis_server::{expire_time, pttl, redis_ms};

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
        .pool()
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
