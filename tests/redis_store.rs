//! What only the Redis store has to prove: its layout, its TTLs, atomic writes from several
//! server instances, corrupt data, one round trip per listing, and recovery from an outage.
//! Every test talks to a real Redis server.

mod support;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use futures_util::stream;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use serde_json::json;
use ws_session::{Error, InvalidInput, Limits, RedisStore, SessionData, SessionStore};

use support::redis_server::{
    RedisServer, Role, command_calls, expire_time, pttl, redis_store, shared_url, unique_prefix,
};

const HOUR: Duration = Duration::from_secs(3600);

/// A connection of its own to the store's server, for looking behind the store's back.
async fn raw(store: &RedisStore) -> MultiplexedConnection {
    support::redis_server::raw_connection(store).await
}

fn session_key(store: &RedisStore, id: &str) -> String {
    format!("{}:session:{id}", store.prefix())
}

fn user_key(store: &RedisStore, user: &str) -> String {
    format!("{}:user_sessions:{user}", store.prefix())
}

/// Two server instances on one Redis: two stores with their own pools, sharing a new prefix.
async fn two_instances(url: &str) -> (RedisStore, RedisStore) {
    let prefix = unique_prefix();
    let a = RedisStore::connect(url, prefix.clone(), HOUR)
        .await
        .unwrap();
    let b = RedisStore::connect(url, prefix, HOUR).await.unwrap();
    (a, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_writing_different_keys_of_one_session_lose_nothing() {
    let url = require_redis!(shared_url());
    let (a, b) = two_instances(&url).await;
    a.create_session("shared", "alice").await.unwrap();

    const WRITES: usize = 200;
    let by_a = tokio::spawn({
        let a = a.clone();
        async move {
            stream::iter(0..WRITES)
                .for_each_concurrent(8, |i| {
                    let a = a.clone();
                    async move {
                        a.set_session_data("shared", &format!("a{i}"), json!(i))
                            .await
                            .unwrap();
                    }
                })
                .await;
        }
    });
    let by_b = tokio::spawn({
        let b = b.clone();
        async move {
            stream::iter(0..WRITES)
                .for_each_concurrent(8, |i| {
                    let b = b.clone();
                    async move {
                        let data = SessionData::from_iter([(format!("b{i}"), json!(i))]);
                        b.update_session_data("shared", data).await.unwrap();
                    }
                })
                .await;
        }
    });
    by_a.await.unwrap();
    by_b.await.unwrap();

    let session = b.get_session("shared").await.unwrap().unwrap();
    assert_eq!(session.data.len(), 2 * WRITES);
    for i in 0..WRITES {
        assert_eq!(session.data[&format!("a{i}")], json!(i));
        assert_eq!(session.data[&format!("b{i}")], json!(i));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_limit_holds_against_concurrent_instances() {
    let url = require_redis!(shared_url());
    let limits = Limits::default().max_keys(10);
    let (a, b) = two_instances(&url).await;
    let (a, b) = (a.limits(limits), b.limits(limits));
    a.create_session("s", "alice").await.unwrap();

    let writes = (0..10).flat_map(|i| [(a.clone(), format!("a{i}")), (b.clone(), format!("b{i}"))]);
    let results: Vec<_> = stream::iter(writes)
        .map(|(store, key)| async move { store.set_session_data("s", &key, json!(1)).await })
        .buffer_unordered(20)
        .collect()
        .await;

    let written = results.iter().filter(|r| r.is_ok()).count();
    for result in &results {
        if let Err(err) = result {
            assert!(
                matches!(
                    err,
                    Error::InvalidInput(InvalidInput::TooManyKeys { max: 10, .. })
                ),
                "{err:?}"
            );
        }
    }
    let session = a.get_session("s").await.unwrap().unwrap();
    assert_eq!(session.data.len(), 10);
    assert_eq!(written, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_one_instance_creates_a_given_id() {
    let url = require_redis!(shared_url());
    let (a, b) = two_instances(&url).await;
    for round in 0..20 {
        let id = format!("race{round}");
        let (alice, bob) = (format!("alice{round}"), format!("bob{round}"));
        let (ra, rb) = tokio::join!(a.create_session(&id, &alice), b.create_session(&id, &bob));
        assert!(ra.is_ok() != rb.is_ok(), "{ra:?} {rb:?}");
        let (winner, loser, lost) = if ra.is_ok() {
            (alice, bob, rb)
        } else {
            (bob, alice, ra)
        };
        assert!(matches!(lost, Err(Error::AlreadyExists { .. })), "{lost:?}");
        assert_eq!(a.get_session(&id).await.unwrap().unwrap().user_id, winner);
        assert_eq!(b.get_user_sessions(&winner).await.unwrap().len(), 1);
        assert!(b.get_user_sessions(&loser).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn every_key_carries_a_ttl_after_a_random_workload() {
    let url = require_redis!(shared_url());
    let seed = std::env::var("WST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("seed {seed} (set WST_SEED to replay)");
    let mut rng = StdRng::seed_from_u64(seed);

    let prefix = unique_prefix();
    // Two instances with different TTLs, so one user set holds members of different lifetimes.
    let long = RedisStore::connect(&url, prefix.clone(), HOUR)
        .await
        .unwrap();
    let short = RedisStore::connect(&url, prefix, Duration::from_secs(30))
        .await
        .unwrap();
    let mut conn = raw(&long).await;
    let ids: Vec<String> = (0..16).map(|i| format!("s{i}")).collect();
    let users = ["u0", "u1", "u2"];

    for _ in 0..400 {
        let store = if rng.random_bool(0.5) { &long } else { &short };
        let id = ids[rng.random_range(0..ids.len())].as_str();
        let key = format!("k{}", rng.random_range(0..5));
        let result = match rng.random_range(0..10) {
            0 | 1 => {
                let user = users[rng.random_range(0..users.len())];
                store.create_session(id, user).await.map(drop)
            }
            2 => {
                store
                    .set_session_data(id, &key, json!(rng.random::<u32>()))
                    .await
            }
            3 => {
                let data = SessionData::from_iter([(key, json!("x")), ("k9".into(), json!([1]))]);
                store.update_session_data(id, data).await
            }
            4 => store.delete_session_data(id, &key).await,
            5 => store.clear_session_data(id).await,
            6 => store.remove_session(id).await,
            7 => {
                let batch: Vec<String> = ids
                    .iter()
                    .filter(|_| rng.random_bool(0.3))
                    .cloned()
                    .collect();
                store.touch(&batch).await.map(drop)
            }
            8 => {
                let user = users[rng.random_range(0..users.len())];
                let sessions = store.get_user_sessions(user).await.unwrap();
                assert!(sessions.iter().all(|s| s.user_id == user));
                Ok(())
            }
            _ => {
                // A set whose TTL was lost (by hand, or by an older writer) is repaired by the
                // next write to one of its sessions.
                let user = users[rng.random_range(0..users.len())];
                let _: i64 = conn.persist(user_key(store, user)).await.unwrap();
                Ok(())
            }
        };
        match result {
            Ok(()) | Err(Error::NotFound { .. } | Error::AlreadyExists { .. }) => {}
            Err(err) => panic!("unexpected error: {err:?}"),
        }
    }
    // One more write per user, so every set written by the `PERSIST` step above is repaired.
    for (i, user) in users.iter().enumerate() {
        let id = format!("last{i}");
        long.create_session(&id, user).await.unwrap();
    }

    let keys = support::redis_server::keys_under(&mut conn, &long).await;
    let mut sets = 0;
    let mut members = 0;
    for key in &keys {
        let ttl = pttl(&mut conn, key).await;
        assert!(ttl > 0, "{key} has PTTL {ttl}");
        if key.contains(":user_sessions:") {
            sets += 1;
            let set_expiry = expire_time(&mut conn, key).await;
            let ids: Vec<String> = conn.smembers(key).await.unwrap();
            for id in ids {
                let member_expiry = expire_time(&mut conn, &session_key(&long, &id)).await;
                assert!(
                    set_expiry >= member_expiry,
                    "{key} (expires at {set_expiry}) outlived by its member {id} (at {member_expiry})"
                );
                members += 1;
            }
        }
    }
    assert_eq!(sets, users.len());
    assert!(members >= users.len());
}

#[tokio::test]
async fn the_hash_holds_exactly_the_documented_fields() {
    let store = require_redis!(redis_store(HOUR).await);
    let mut conn = raw(&store).await;
    let created = store.create_session("c1", "alice").await.unwrap();
    store
        .set_session_data("c1", "theme", json!({"mode": "dark"}))
        .await
        .unwrap();
    // User keys that look like metadata stay user keys.
    store
        .set_session_data("c1", "meta:user_id", json!("mallory"))
        .await
        .unwrap();
    store
        .set_session_data("c1", "user_id", json!(7))
        .await
        .unwrap();

    let hash: HashMap<String, String> = conn.hgetall(session_key(&store, "c1")).await.unwrap();
    let fields: HashSet<&str> = hash.keys().map(String::as_str).collect();
    assert_eq!(
        fields,
        HashSet::from([
            "meta:user_id",
            "meta:created_at",
            "meta:last_active",
            "meta:epoch",
            "meta:since",
            "meta:set_until",
            "meta:lives_until",
            "meta:bytes",
            "data:theme",
            "data:meta:user_id",
            "data:user_id",
        ])
    );
    assert_eq!(hash["meta:epoch"], "1");
    assert!(
        hash["meta:since"].parse::<u64>().is_ok(),
        "{}",
        hash["meta:since"]
    );
    assert_eq!(hash["meta:user_id"], "alice");
    assert_eq!(hash["meta:created_at"], created.created_at.to_string());
    assert!(hash["meta:last_active"].parse::<u64>().unwrap() >= created.created_at);
    assert_eq!(hash["data:theme"], r#"{"mode":"dark"}"#);
    assert_eq!(hash["data:meta:user_id"], r#""mallory""#);
    assert_eq!(hash["data:user_id"], "7");

    let session = store.get_session("c1").await.unwrap().unwrap();
    assert_eq!(session.user_id, "alice");
    assert_eq!(session.data["meta:user_id"], json!("mallory"));
    assert_eq!(session.data["user_id"], json!(7));
    assert_eq!(
        store.get_session_data("c1", "meta:user_id").await.unwrap(),
        Some(json!("mallory"))
    );

    let ids: HashSet<String> = conn.smembers(user_key(&store, "alice")).await.unwrap();
    assert_eq!(ids, HashSet::from(["c1".to_owned()]));
    let session_ttl = pttl(&mut conn, &session_key(&store, "c1")).await;
    assert!(session_ttl > 0 && session_ttl <= HOUR.as_millis() as i64);
    let session_expiry = expire_time(&mut conn, &session_key(&store, "c1")).await;
    let set_expiry = expire_time(&mut conn, &user_key(&store, "alice")).await;
    assert!(set_expiry >= session_expiry);
    // What the hash remembers of the set's life holds: the set lives at least that long.
    let set_until: i64 = hash["meta:set_until"].parse().unwrap();
    assert!(set_until <= set_expiry, "{set_until} > {set_expiry}");
    assert!(
        set_until >= session_expiry,
        "{set_until} < {session_expiry}"
    );

    // What the hash remembers of its own life holds: it lives until then, and a renewal then
    // gave it the whole TTL.
    let lives_until: i64 = hash["meta:lives_until"].parse().unwrap();
    assert!(
        lives_until <= session_expiry,
        "{lives_until} > {session_expiry}"
    );
    assert!(
        session_expiry - lives_until < 50,
        "{lives_until} long before {session_expiry}"
    );

    store.clear_session_data("c1").await.unwrap();
    let fields: Vec<String> = conn.hkeys(session_key(&store, "c1")).await.unwrap();
    assert_eq!(fields.len(), 7, "{fields:?}");
    assert!(fields.iter().all(|f| f.starts_with("meta:")));
}

#[tokio::test]
async fn any_prefix_works_and_names_exactly_its_keys() {
    let url = require_redis!(shared_url());
    // Quotes, brackets, backslashes, spaces, a newline and UTF-8: the scripts embed the prefix.
    let prefix = format!("{} it's [[x]] \\ \n\u{e9}", unique_prefix());
    let store = RedisStore::connect(&url, prefix.clone(), HOUR)
        .await
        .unwrap();
    let mut conn = raw(&store).await;
    store.create_session("c1", "alice").await.unwrap();
    store.create_session("c2", "alice").await.unwrap();
    store.set_session_data("c1", "k", json!(1)).await.unwrap();
    store.delete_session_data("c2", "k").await.unwrap();
    store.clear_session_data("c2").await.unwrap();
    assert_eq!(
        store.touch(&["c1".into(), "gone".into()]).await.unwrap(),
        ["gone"]
    );
    let listed: HashSet<String> = store
        .get_user_sessions("alice")
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, HashSet::from(["c1".to_owned(), "c2".to_owned()]));
    store.remove_session("c2").await.unwrap();

    let glob: String = prefix
        .chars()
        .flat_map(|c| "*?[]\\".contains(c).then_some('\\').into_iter().chain([c]))
        .collect();
    let mut keys: Vec<String> = conn.keys(format!("{glob}*")).await.unwrap();
    keys.sort();
    assert_eq!(
        keys,
        [
            format!("{prefix}:session:c1"),
            format!("{prefix}:user_sessions:alice")
        ]
    );
    let ids: HashSet<String> = conn
        .smembers(format!("{prefix}:user_sessions:alice"))
        .await
        .unwrap();
    assert_eq!(ids, HashSet::from(["c1".to_owned()]));
    assert!(
        pttl(&mut conn, &format!("{prefix}:user_sessions:alice")).await > HOUR.as_millis() as i64
    );
}

/// How many scripts the server holds in its script cache.
async fn cached_scripts(conn: &mut MultiplexedConnection) -> u64 {
    support::redis_server::info_field(conn, "memory", "number_of_cached_scripts")
        .await
        .parse()
        .unwrap()
}

#[tokio::test]
async fn scripts_flushed_from_the_server_are_loaded_again() {
    // A private server: a flush on the shared one would race with other tests' scripts.
    let server = require_redis!(RedisServer::start());
    let store = server.store(HOUR).await;
    let mut conn = raw(&store).await;
    store.create_session("c1", "alice").await.unwrap();
    assert_eq!(cached_scripts(&mut conn).await, 1);

    redis::cmd("SCRIPT")
        .arg("FLUSH")
        .exec_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(cached_scripts(&mut conn).await, 0);
    // Every kind of script call finds its script gone, loads it and runs.
    store.set_session_data("c1", "k", json!(1)).await.unwrap();
    store.create_session("c2", "alice").await.unwrap();
    store.delete_session_data("c2", "k").await.unwrap();
    store.clear_session_data("c2").await.unwrap();
    assert!(store.touch(&["c1".into()]).await.unwrap().is_empty());
    assert_eq!(store.get_user_sessions("alice").await.unwrap().len(), 2);
    store.remove_session("c2").await.unwrap();
    assert_eq!(
        store.get_session_data("c1", "k").await.unwrap(),
        Some(json!(1))
    );
    // create, list, remove, and the write script that sets, deletes, clears and touches.
    assert_eq!(cached_scripts(&mut conn).await, 4);
}

#[tokio::test]
async fn corrupt_data_is_reported_with_its_key() {
    let store = require_redis!(redis_store(HOUR).await);
    let mut conn = raw(&store).await;

    store.create_session("c1", "alice").await.unwrap();
    store
        .set_session_data("c1", "good", json!(1))
        .await
        .unwrap();
    let _: i64 = conn
        .hset(session_key(&store, "c1"), "data:bad", "not json")
        .await
        .unwrap();
    let err = store.get_session_data("c1", "bad").await.unwrap_err();
    match &err {
        Error::Corrupt { id, field, source } => {
            assert_eq!((id.as_str(), field.as_str()), ("c1", "bad"));
            assert!(source.downcast_ref::<serde_json::Error>().is_some());
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert_eq!(
        store.get_session_data("c1", "good").await.unwrap(),
        Some(json!(1))
    );
    let err = store.get_session("c1").await.unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { field, .. } if field == "bad"),
        "{err:?}"
    );
    let err = store.get_user_sessions("alice").await.unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { field, .. } if field == "bad"),
        "{err:?}"
    );

    // A hash without its metadata.
    let orphan = session_key(&store, "orphan");
    let _: i64 = conn.hset(&orphan, "data:a", "1").await.unwrap();
    let _: bool = conn.pexpire(&orphan, 60_000).await.unwrap();
    let err = store.get_session("orphan").await.unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { field, .. } if field == "meta:user_id"),
        "{err:?}"
    );
    let err = store
        .set_session_data("orphan", "b", json!(2))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { field, .. } if field == "meta:user_id"),
        "{err:?}"
    );
    let fields: Vec<String> = conn.hkeys(&orphan).await.unwrap();
    assert_eq!(fields, ["data:a"], "a refused write wrote nothing");

    // Metadata that is not a timestamp.
    store.create_session("c2", "alice").await.unwrap();
    let _: i64 = conn
        .hset(session_key(&store, "c2"), "meta:created_at", "yesterday")
        .await
        .unwrap();
    let err = store.get_session("c2").await.unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { field, .. } if field == "meta:created_at"),
        "{err:?}"
    );

    // A session key that holds a string: Redis answers WRONGTYPE.
    let _: () = conn
        .set_ex(session_key(&store, "str"), "x", 60)
        .await
        .unwrap();
    assert_wrong_type(store.get_session("str").await.unwrap_err());
    assert_wrong_type(store.get_session_data("str", "k").await.unwrap_err());
    assert_wrong_type(
        store
            .set_session_data("str", "k", json!(1))
            .await
            .unwrap_err(),
    );
    assert_wrong_type(store.touch(&["c1".into(), "str".into()]).await.unwrap_err());
    let value: String = conn.get(session_key(&store, "str")).await.unwrap();
    assert_eq!(value, "x");
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

#[tokio::test]
async fn a_write_after_expiry_does_not_recreate_the_session() {
    let store = require_redis!(redis_store(Duration::from_millis(300)).await);
    let mut conn = raw(&store).await;
    store.create_session("c1", "alice").await.unwrap();
    store.set_session_data("c1", "k", json!(1)).await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;

    let key = session_key(&store, "c1");
    assert!(
        store
            .set_session_data("c1", "k", json!(2))
            .await
            .unwrap_err()
            .is_not_found()
    );
    let data = SessionData::from_iter([("k".to_owned(), json!(3))]);
    assert!(
        store
            .update_session_data("c1", data)
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        store
            .delete_session_data("c1", "k")
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        store
            .clear_session_data("c1")
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert!(
        store
            .get_session_data("c1", "k")
            .await
            .unwrap_err()
            .is_not_found()
    );
    assert_eq!(store.touch(&["c1".to_owned()]).await.unwrap(), ["c1"]);
    assert_eq!(store.get_session("c1").await.unwrap(), None);
    let exists: bool = conn.exists(&key).await.unwrap();
    assert!(!exists, "a write recreated part of an expired session");
    assert!(store.get_user_sessions("alice").await.unwrap().is_empty());
}

#[tokio::test]
async fn touch_refreshes_sessions_and_their_user_sets() {
    let store = require_redis!(redis_store(HOUR).await);
    let mut conn = raw(&store).await;
    let created = store.create_session("c1", "alice").await.unwrap();
    let key = session_key(&store, "c1");
    let set = user_key(&store, "alice");
    let _: bool = conn.pexpire(&key, 5_000).await.unwrap();
    let _: bool = conn.pexpire(&set, 1_000).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;

    let missing = store
        .touch(&["c1".to_owned(), "gone".to_owned()])
        .await
        .unwrap();
    assert_eq!(missing, ["gone"]);
    let exists: bool = conn.exists(session_key(&store, "gone")).await.unwrap();
    assert!(!exists);
    let session_ttl = pttl(&mut conn, &key).await;
    assert!(session_ttl > 3_500_000, "{session_ttl}");
    assert!(expire_time(&mut conn, &set).await >= expire_time(&mut conn, &key).await);
    let session = store.get_session("c1").await.unwrap().unwrap();
    assert!(session.last_active > created.last_active);
    assert_eq!(session.created_at, created.created_at);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listing_a_thousand_sessions_is_one_script_call_and_prunes_the_dead() {
    // A private server, so that nothing else moves its command counters.
    let server = require_redis!(RedisServer::start());
    // One user with a thousand sessions: over the default cap of 64.
    let store = server
        .store(HOUR)
        .await
        .limits(ws_session::Limits::default().max_user_sessions(1000));
    let mut conn = raw(&store).await;
    let ids: Vec<String> = (0..1000).map(|i| format!("s{i:04}")).collect();
    stream::iter(&ids)
        .for_each_concurrent(32, |id| {
            let store = &store;
            async move {
                store.create_session(id, "crowd").await.unwrap();
            }
        })
        .await;
    // 100 removed behind the store's back, 100 expired for real.
    for id in &ids[..100] {
        let _: i64 = conn.del(session_key(&store, id)).await.unwrap();
    }
    for id in &ids[100..200] {
        let _: bool = conn.pexpire(session_key(&store, id), 1).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Load the script, so that the call below is the steady state.
    assert!(store.get_user_sessions("nobody").await.unwrap().is_empty());

    let before = command_calls(&mut conn).await;
    let sessions = store.get_user_sessions("crowd").await.unwrap();
    let after = command_calls(&mut conn).await;
    let delta = |name: &str| after.get(name).unwrap_or(&0) - before.get(name).unwrap_or(&0);

    assert_eq!(delta("evalsha"), 1, "one script call");
    assert_eq!(delta("eval") + delta("script"), 0, "no script load or EVAL");
    assert_eq!(delta("smembers"), 1);
    assert_eq!(
        delta("hgetall"),
        1000,
        "every member read once, inside the script"
    );
    assert_eq!(delta("srem"), 200, "the dead pruned");

    let live: HashSet<String> = sessions.iter().map(|s| s.id.clone()).collect();
    let expected: HashSet<String> = ids[200..].iter().cloned().collect();
    assert_eq!(live, expected);
    assert!(sessions.iter().all(|s| s.user_id == "crowd"));
    let members: HashSet<String> = conn.smembers(user_key(&store, "crowd")).await.unwrap();
    assert_eq!(members, expected);
}

#[tokio::test]
async fn a_listing_skips_an_id_reused_by_another_user() {
    let store = require_redis!(redis_store(HOUR).await);
    let mut conn = raw(&store).await;
    store.create_session("c1", "alice").await.unwrap();
    // c1 ends without `remove_session` (its id stays in alice's set), then bob takes the id.
    let _: i64 = conn.del(session_key(&store, "c1")).await.unwrap();
    store.create_session("c1", "bob").await.unwrap();

    assert!(store.get_user_sessions("alice").await.unwrap().is_empty());
    let members: Vec<String> = conn.smembers(user_key(&store, "alice")).await.unwrap();
    assert!(members.is_empty(), "{members:?}");
    let bobs = store.get_user_sessions("bob").await.unwrap();
    assert_eq!(bobs.len(), 1);
    assert_eq!(bobs[0].id, "c1");
}

#[tokio::test]
async fn the_store_recovers_from_an_outage_on_its_own() {
    // A private server: stopping the shared one would break the other tests.
    let mut server = require_redis!(RedisServer::start());
    let timeout = Duration::from_millis(500);
    let margin = Duration::from_millis(300);
    let store = server.store(HOUR).await.timeout(timeout);
    store.create_session("before", "alice").await.unwrap();

    server.stop();
    for attempt in 0..3 {
        let started = Instant::now();
        let err = store.get_session("before").await.unwrap_err();
        let took = started.elapsed();
        assert!(err.is_unavailable(), "attempt {attempt}: {err:?}");
        assert!(took <= timeout + margin, "attempt {attempt} took {took:?}");
    }
    let started = Instant::now();
    let err = store.create_session("during", "alice").await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(started.elapsed() <= timeout + margin);

    server.restart();
    let restarted = Instant::now();
    let mut failures = Vec::new();
    loop {
        match store.create_session("after", "alice").await {
            Ok(_) => break,
            Err(err) => failures.push(err),
        }
        assert!(
            restarted.elapsed() < Duration::from_secs(5),
            "no recovery within 5 s: {failures:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "recovered {:?} after the restart, {} failed attempt(s) first",
        restarted.elapsed(),
        failures.len()
    );
    assert!(failures.len() <= 2, "{failures:?}");
    // The same store keeps working; the server kept no data across the restart.
    store
        .set_session_data("after", "k", json!(1))
        .await
        .unwrap();
    assert_eq!(
        store.get_session_data("after", "k").await.unwrap(),
        Some(json!(1))
    );
    assert_eq!(store.get_session("before").await.unwrap(), None);
}

#[tokio::test]
async fn a_server_that_stops_answering_times_out_and_serves_again_afterwards() {
    // A private server: pausing the shared one would stall the other tests.
    let server = require_redis!(RedisServer::start());
    let timeout = Duration::from_millis(300);
    let store = server.store(HOUR).await.timeout(timeout);
    store.create_session("c1", "alice").await.unwrap();
    store.set_session_data("c1", "k", json!(1)).await.unwrap();

    // The server keeps the connection open but runs no command for 1.5 s.
    let mut admin = raw(&store).await;
    support::redis_server::pause_clients(&mut admin, 1500).await;
    let paused = Instant::now();
    for attempt in 0..2 {
        let started = Instant::now();
        let err = store.get_session_data("c1", "k").await.unwrap_err();
        let took = started.elapsed();
        assert!(err.is_unavailable(), "attempt {attempt}: {err:?}");
        assert!(
            took >= timeout && took <= timeout + Duration::from_millis(200),
            "attempt {attempt} gave up after {took:?}"
        );
    }
    let err = store
        .set_session_data("c1", "k", json!(2))
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(
        paused.elapsed() < Duration::from_millis(1500),
        "the pause ended too soon"
    );

    // Once the server answers again, so does the same store, on the same connection. The
    // write above had reached the server and ran when the pause ended.
    tokio::time::sleep(Duration::from_millis(1500).saturating_sub(paused.elapsed())).await;
    let mut value = Err(None);
    for _ in 0..20 {
        match store.get_session_data("c1", "k").await {
            Ok(found) => {
                value = Ok(found);
                break;
            }
            Err(err) => value = Err(Some(err)),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(value.unwrap(), Some(json!(2)));
}

#[tokio::test]
async fn connect_fails_fast_when_nothing_listens() {
    // A port that was free a moment ago: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let started = Instant::now();
    let err = RedisStore::connect(&format!("redis://127.0.0.1:{port}/"), "x", HOUR)
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(3));
    let err = RedisStore::connect("not a url", "x", HOUR)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Backend(_)), "{err:?}");
}

#[tokio::test]
async fn a_full_or_read_only_redis_is_unavailable_and_says_why() {
    // A private server: its memory limit and its role change.
    let server = require_redis!(RedisServer::start());
    let store = server.store(HOUR).await;
    let mut conn = raw(&store).await;
    store.create_session("c1", "alice").await.unwrap();
    let config = |name: &'static str, value: &'static str| {
        let mut conn = conn.clone();
        async move { support::redis_server::config_set(&mut conn, name, value).await }
    };

    // At maxmemory with noeviction, every write is refused with OOM.
    config("maxmemory-policy", "noeviction").await;
    config("maxmemory", "1").await;
    let err = store.create_session("c2", "alice").await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(err.chain().to_string().contains("OOM"), "{}", err.chain());
    let err = store
        .set_session_data("c1", "k", json!(1))
        .await
        .unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    // Reads still work, and nothing was half-written.
    assert!(store.get_session("c2").await.unwrap().is_none());
    assert_eq!(store.get_session_data("c1", "k").await.unwrap(), None);
    config("maxmemory", "0").await;
    store.set_session_data("c1", "k", json!(1)).await.unwrap();

    // A replica refuses writes with READONLY.
    redis::cmd("REPLICAOF")
        .arg("127.0.0.1")
        .arg("1")
        .exec_async(&mut conn)
        .await
        .unwrap();
    let err = store.create_session("c3", "alice").await.unwrap_err();
    assert!(err.is_unavailable(), "{err:?}");
    assert!(
        err.chain().to_string().contains("READONLY"),
        "{}",
        err.chain()
    );
    redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .exec_async(&mut conn)
        .await
        .unwrap();
    store.create_session("c3", "alice").await.unwrap();
}

/// A server of a Redis Cluster is refused at connect, with an error that says so, rather than
/// failing one operation after another.
#[tokio::test]
async fn connect_refuses_a_node_of_a_redis_cluster() {
    let Some(node) = RedisServer::start_as(Role::ClusterNode) else {
        return;
    };
    let error = RedisStore::connect(&node.url(), "app", Duration::from_secs(60))
        .await
        .expect_err("a cluster node is refused");
    assert!(matches!(error, Error::Backend(_)), "{error:?}");
    let chain = error.chain().to_string();
    assert!(chain.contains("Redis Cluster"), "{chain}");
}

/// A server that does not let the store read `INFO` (an ACL, a proxy) is not taken for a
/// cluster node: the store connects and works.
#[tokio::test]
async fn connect_works_where_info_is_refused() {
    let Some(server) = RedisServer::start() else {
        return;
    };
    let admin = redis::Client::open(server.url()).unwrap();
    let mut admin = admin.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("ACL")
        .arg(
            &[
                "SETUSER", "limited", "on", ">secret", "~*", "&*", "+@all", "-info",
            ][..],
        )
        .query_async(&mut admin)
        .await
        .unwrap();
    let url = format!("redis://limited:secret@127.0.0.1:{}/", server.port());
    let mut limited = redis::Client::open(url.as_str())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let refused: redis::RedisResult<String> = redis::cmd("INFO").query_async(&mut limited).await;
    assert!(refused.is_err(), "the user may not read INFO");
    let store = RedisStore::connect(&url, "app", Duration::from_secs(60))
        .await
        .expect("connects without INFO");
    store.create_session("s", "alice").await.unwrap();
    assert!(store.get_session("s").await.unwrap().is_some());
}
