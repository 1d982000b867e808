//! The contract of `SessionStore`, written once and run against every store.
//!
//! Each case below is a generic `async fn` over a [`Backend`]; `store_contract!` turns every
//! case into one `#[tokio::test]` per store, in the modules `memory`, `redis`, `sentinel` (a
//! `RedisStore` through Redis Sentinel), `cluster` (on a Redis Cluster) and `guard` (on a
//! single-node cluster that fails any script touching a key it did not declare), and each of
//! the first two behind an `AnyStore`. A case names its sessions through [`Backend::id`],
//! which on a cluster puts each user's slot tag in front. The Redis
//! cases talk to a real Redis server, each with a key prefix of its own, so they run in
//! parallel without seeing each other.

#[cfg(feature = "redis")]
mod support;

use std::collections::BTreeSet;
use std::fmt::Debug;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Deserialize;
use serde_json::{Value, json};
use tokio::time::sleep;
use ws_session::{Error, InvalidInput, Limits, MemoryStore, Session, SessionData, SessionStore};

/// A TTL no case outlives.
const LONG: Duration = Duration::from_secs(3600);

/// Long enough for a millisecond timestamp to move on.
const TICK: Duration = Duration::from_millis(15);

/// How a case gets a fresh, empty store of one kind.
trait Backend {
    type Store: SessionStore;

    /// A store whose sessions live for `ttl` and that enforces `limits`; `None` when this kind
    /// of store cannot run here (no Redis), after saying so.
    async fn open(ttl: Duration, limits: Limits) -> Option<Self::Store>;

    /// The id of the session a case names `name`, of user `user`: `name` itself on a store
    /// that takes any id; on a Redis Cluster, `name` after the user's slot tag, the four
    /// characters a [`new_session_id`](SessionStore::new_session_id) of the user starts with.
    fn id(store: &Self::Store, name: &str, user: &str) -> String {
        let _ = (store, user);
        name.to_owned()
    }
}

struct Memory;

impl Backend for Memory {
    type Store = MemoryStore;

    async fn open(ttl: Duration, limits: Limits) -> Option<MemoryStore> {
        Some(MemoryStore::with_ttl(ttl).limits(limits))
    }
}

#[cfg(feature = "redis")]
struct Redis;

#[cfg(feature = "redis")]
impl Backend for Redis {
    type Store = ws_session::RedisStore;

    async fn open(ttl: Duration, limits: Limits) -> Option<ws_session::RedisStore> {
        let store = support::redis_server::redis_store(ttl).await;
        if store.is_none() {
            eprintln!("{}", support::redis_server::SKIPPED);
        }
        store.map(|store| store.limits(limits))
    }
}

/// A `RedisStore` through Redis Sentinel, on a master with two replicas and three sentinels.
#[cfg(feature = "redis")]
struct Sentinel;

#[cfg(feature = "redis")]
impl Backend for Sentinel {
    type Store = ws_session::RedisStore;

    async fn open(ttl: Duration, limits: Limits) -> Option<ws_session::RedisStore> {
        let Some(topology) = support::sentinel::shared() else {
            eprintln!("{}", support::redis_server::SKIPPED);
            return None;
        };
        Some(topology.store(ttl).await.limits(limits))
    }
}

/// A `RedisStore` on a Redis Cluster of three masters with a replica each.
#[cfg(feature = "redis")]
struct Cluster;

#[cfg(feature = "redis")]
impl Backend for Cluster {
    type Store = ws_session::RedisStore;

    async fn open(ttl: Duration, limits: Limits) -> Option<ws_session::RedisStore> {
        let Some(topology) = support::cluster::shared() else {
            eprintln!("{}", support::redis_server::SKIPPED);
            return None;
        };
        Some(topology.store(ttl).await.limits(limits))
    }

    fn id(store: &ws_session::RedisStore, name: &str, user: &str) -> String {
        tagged(store, name, user)
    }
}

/// A `RedisStore` on a single-node Redis Cluster that holds every slot: there, a script that
/// touches a key of another slot than its declared keys' fails, as on any cluster, and (in
/// test builds) every script fails on a key it did not declare.
#[cfg(feature = "redis")]
struct Guard;

#[cfg(feature = "redis")]
impl Backend for Guard {
    type Store = ws_session::RedisStore;

    async fn open(ttl: Duration, limits: Limits) -> Option<ws_session::RedisStore> {
        let Some(topology) = support::cluster::guard() else {
            eprintln!("{}", support::redis_server::SKIPPED);
            return None;
        };
        Some(topology.store(ttl).await.limits(limits))
    }

    fn id(store: &ws_session::RedisStore, name: &str, user: &str) -> String {
        tagged(store, name, user)
    }
}

/// `name` after the slot tag of `user` on `store`, a cluster's.
#[cfg(feature = "redis")]
fn tagged(store: &ws_session::RedisStore, name: &str, user: &str) -> String {
    let fresh = store.new_session_id(user);
    format!("{}{name}", &fresh[..4])
}

/// A `MemoryStore` behind an `AnyStore`: the run-time choice keeps the contract.
struct AnyMemory;

impl Backend for AnyMemory {
    type Store = ws_session::AnyStore;

    async fn open(ttl: Duration, limits: Limits) -> Option<ws_session::AnyStore> {
        Some(MemoryStore::with_ttl(ttl).limits(limits).into())
    }
}

/// A `RedisStore` behind an `AnyStore`.
#[cfg(feature = "redis")]
struct AnyRedis;

#[cfg(feature = "redis")]
impl Backend for AnyRedis {
    type Store = ws_session::AnyStore;

    async fn open(ttl: Duration, limits: Limits) -> Option<ws_session::AnyStore> {
        Redis::open(ttl, limits).await.map(Into::into)
    }
}

/// Calls `$callback!($args; every case)`, so the list of cases is written once.
macro_rules! with_every_case {
    ($callback:ident!($($args:tt)*)) => {
        $callback!(
            $($args)*;
            ttl_is_the_configured_one,
            create_session_returns_an_empty_session,
            create_session_never_overwrites,
            concurrent_creates_of_one_id_let_exactly_one_win,
            get_session_of_a_missing_session_is_none,
            set_session_data_writes_and_overwrites_one_key,
            get_session_data_of_a_missing_key_or_session,
            update_session_data_merges,
            delete_session_data_deletes_one_key,
            clear_session_data_keeps_the_session_and_its_user,
            remove_session_is_idempotent_and_leaves_the_user_index,
            mutations_of_a_never_created_session_are_not_found,
            mutations_of_a_removed_session_are_not_found,
            mutations_of_an_expired_session_are_not_found,
            an_expired_id_can_be_created_again,
            sessions_expire_after_the_ttl_and_reads_do_not_extend_them,
            every_write_and_touch_extends_the_ttl,
            writes_and_touch_update_last_active_and_reads_do_not,
            touch_reports_missing_ids_and_does_not_recreate_them,
            user_index_lists_every_live_session_of_a_user,
            user_index_drops_expired_sessions,
            ids_are_checked,
            empty_keys_are_rejected_and_nothing_is_written,
            long_keys_are_rejected_and_nothing_is_written,
            large_values_are_rejected_and_nothing_is_written,
            too_many_keys_through_set_are_rejected,
            too_many_keys_through_update_are_rejected,
            session_data_is_bounded_in_bytes,
            live_sessions_per_user_are_capped,
            typed_reads_name_the_key_of_a_value_of_the_wrong_shape,
            json_values_of_every_kind_round_trip,
            keys_may_hold_any_text,
            ids_may_hold_any_text,
            concurrent_writes_of_different_keys_all_land,
        );
    };
}

/// A module `$store` with one test per case, run against `$backend`.
macro_rules! store_contract {
    ($store:ident, $backend:ty; $($case:ident),* $(,)?) => {
        mod $store {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    super::$case::<$backend>().await;
                }
            )*
        }
    };
}

with_every_case!(store_contract!(memory, super::Memory));
with_every_case!(store_contract!(any_memory, super::AnyMemory));
#[cfg(feature = "redis")]
with_every_case!(store_contract!(redis, super::Redis));
#[cfg(feature = "redis")]
with_every_case!(store_contract!(any_redis, super::AnyRedis));
#[cfg(feature = "redis")]
with_every_case!(store_contract!(sentinel, super::Sentinel));
#[cfg(feature = "redis")]
with_every_case!(store_contract!(cluster, super::Cluster));
#[cfg(feature = "redis")]
with_every_case!(store_contract!(guard, super::Guard));

// ---------------------------------------------------------------------------------------------
// Helpers

fn now_ms() -> u64 {
    let since_epoch = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    u64::try_from(since_epoch.as_millis()).unwrap()
}

fn data(value: Value) -> SessionData {
    match value {
        Value::Object(map) => map,
        other => panic!("not an object: {other}"),
    }
}

fn ids(sessions: &[Session]) -> BTreeSet<String> {
    sessions.iter().map(|session| session.id.clone()).collect()
}

fn set_of<const N: usize>(ids: [&str; N]) -> BTreeSet<String> {
    ids.into_iter().map(str::to_owned).collect()
}

#[track_caller]
fn assert_not_found<T: Debug>(result: Result<T, Error>, id: &str) {
    match result {
        Err(Error::NotFound { id: got }) => assert_eq!(got, id),
        other => panic!("expected NotFound for {id:?}, got {other:?}"),
    }
}

#[track_caller]
fn assert_invalid<T: Debug>(result: Result<T, Error>, expected: InvalidInput) {
    match result {
        Err(Error::InvalidInput(got)) => assert_eq!(got, expected),
        other => panic!("expected InvalidInput({expected:?}), got {other:?}"),
    }
}

/// Tries every mutation of session `id` and requires each to be `NotFound` (the rooms and the
/// node of a session are the crate's own tests, in `src/store/tests`); then requires
/// that the session is still missing everywhere (`user_id` is the user it had, if any).
async fn assert_every_mutation_is_not_found<S: SessionStore>(store: &S, id: &str, user_id: &str) {
    assert_not_found(store.set_session_data(id, "k", json!(1)).await, id);
    let batch = data(json!({"a": 1, "b": 2}));
    assert_not_found(store.update_session_data(id, batch).await, id);
    assert_not_found(store.update_session_data(id, SessionData::new()).await, id);
    assert_not_found(store.delete_session_data(id, "k").await, id);
    assert_not_found(store.clear_session_data(id).await, id);
    assert_not_found(store.get_session_data(id, "k").await, id);
    assert_eq!(store.touch(&[id.to_owned()]).await.unwrap(), [id]);

    assert_eq!(store.get_session(id).await.unwrap(), None);
    assert_not_found(store.get_session_data(id, "a").await, id);
    let listed = store.get_user_sessions(user_id).await.unwrap();
    assert!(!ids(&listed).contains(id), "{id} is listed: {listed:?}");
}

/// `count` users who may own the same session ids on every store: user ids that are session
/// ids of one user, which on a cluster share that user's slot tag.
fn users_of_one_tag<B: Backend>(store: &B::Store, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| B::id(store, &format!("{i:032x}"), "owner"))
        .collect()
}

async fn session<S: SessionStore>(store: &S, id: &str) -> Session {
    store
        .get_session(id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("session {id} is missing"))
}

// ---------------------------------------------------------------------------------------------
// Every operation

async fn ttl_is_the_configured_one<B: Backend>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    assert_eq!(store.ttl(), LONG);
    let Some(store) = B::open(Duration::from_millis(1500), Limits::default()).await else {
        return;
    };
    assert_eq!(store.ttl(), Duration::from_millis(1500));
}

async fn create_session_returns_an_empty_session<B: Backend>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    let before = now_ms();
    let created = store.create_session(c1.as_str(), "alice").await.unwrap();
    let after = now_ms();

    assert_eq!(created.id, c1.as_str());
    assert_eq!(created.user_id, "alice");
    assert!(created.data.is_empty());
    assert!(
        (before..=after).contains(&created.created_at),
        "{before} <= {} <= {after}",
        created.created_at
    );
    assert_eq!(created.last_active, created.created_at);
    assert_eq!(session(&store, c1.as_str()).await, created);
    assert_eq!(store.get_user_sessions("alice").await.unwrap(), [created]);
}

async fn create_session_never_overwrites<B: Backend>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    store.create_session(c1.as_str(), "alice").await.unwrap();
    store
        .set_session_data(c1.as_str(), "k", json!(1))
        .await
        .unwrap();
    let original = session(&store, c1.as_str()).await;

    for user in ["alice", "bob"] {
        match store.create_session(c1.as_str(), user).await {
            Err(Error::AlreadyExists { id }) => assert_eq!(id, c1.as_str()),
            other => panic!("expected AlreadyExists, got {other:?}"),
        }
    }

    assert_eq!(session(&store, c1.as_str()).await, original);
    assert_eq!(
        ids(&store.get_user_sessions("alice").await.unwrap()),
        set_of([c1.as_str()])
    );
    assert!(store.get_user_sessions("bob").await.unwrap().is_empty());
}

async fn concurrent_creates_of_one_id_let_exactly_one_win<B: Backend>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let users = users_of_one_tag::<B>(&store, 16);
    let c1 = B::id(&store, "c1", &users[0]);
    let tasks: Vec<_> = users
        .iter()
        .map(|user| {
            let (store, c1, user) = (store.clone(), c1.clone(), user.clone());
            tokio::spawn(async move { store.create_session(&c1, &user).await })
        })
        .collect();
    let mut winners = Vec::new();
    for (i, task) in tasks.into_iter().enumerate() {
        match task.await.unwrap() {
            Ok(created) => winners.push((i, created)),
            Err(Error::AlreadyExists { id }) => assert_eq!(id, c1),
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    let (winner, created) = winners.pop().unwrap();
    assert_eq!(session(&store, &c1).await, created);
    for (i, user) in users.iter().enumerate() {
        let listed = store.get_user_sessions(user).await.unwrap();
        if i == winner {
            assert_eq!(listed, std::slice::from_ref(&created));
        } else {
            assert!(listed.is_empty(), "{user} lists {listed:?}");
        }
    }
}

async fn get_session_of_a_missing_session_is_none<B: Backend>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let nobody = B::id(&store, "nobody", "nobody");
    assert_eq!(store.get_session(&nobody).await.unwrap(), None);
    assert!(store.get_user_sessions("nobody").await.unwrap().is_empty());
}

async fn set_session_data_writes_and_overwrites_one_key<B: Backend>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    store.create_session(c1.as_str(), "alice").await.unwrap();
    store
        .set_session_data(c1.as_str(), "theme", json!("dark"))
        .await
        .unwrap();
    store
        .set_session_data(c1.as_str(), "count", json!(1))
        .await
        .unwrap();
    assert_eq!(
        store.get_session_data(c1.as_str(), "theme").await.unwrap(),
        Some(json!("dark"))
    );

    store
        .set_session_data(c1.as_str(), "theme", json!({"mode": "light"}))
        .await
        .unwrap();
    assert_eq!(
        store.get_session_data(c1.as_str(), "theme").await.unwrap(),
        Some(json!({"mode": "light"}))
    );
    let current = session(&store, c1.as_str()).await;
    assert_eq!(
        current.data,
        data(json!({"theme": {"mode": "light"}, "count": 1}))
    );
    assert_eq!(current.user_id, "alice");
}

async fn get_session_data_of_a_missing_key_or_session<B: Backend>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    store.create_session(c1.as_str(), "alice").await.unwrap();
    assert_eq!(
        store
            .get_session_data(c1.as_str(), "nothing")
            .await
            .unwrap(),
        None
    );
    store
        .set_session_data(c1.as_str(), "null", Value::Null)
        .await
        .unwrap();
    assert_eq!(
        store.get_session_data(c1.as_str(), "null").await.unwrap(),
        Some(Value::Null),
        "a stored null is not a missing key"
    );
    let c2 = B::id(&store, "c2", "alice");
    assert_not_found(store.get_session_data(&c2, "null").await, &c2);
}

async fn update_session_data_merges<B: Backend>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    store.create_session(c1.as_str(), "alice").await.unwrap();
    store
        .set_session_data(c1.as_str(), "a", json!(1))
        .await
        .unwrap();
    store
        .set_session_data(c1.as_str(), "b", json!(2))
        .await
        .unwrap();

    store
        .update_session_data(c1.as_str(), data(json!({"b": 20, "c": [3]})))
        .await
        .unwrap();
    let expected = data(json!({"a": 1, "b": 20, "c": [3]}));
    assert_eq!(session(&store, c1.as_str()).await.data, expected);

    store
        .update_session_data(c1.as_str(), SessionData::new())
        .await
        .unwrap();
    assert_eq!(session(&store, c1.as_str()).await.data, expected);
}

async fn delete_session_data_deletes_one_key<B: Backend>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    store.create_session(c1.as_str(), "alice").await.unwrap();
    store
        .update_session_data(c1.as_str(), data(json!({"a": 1, "b": 2})))
        .await
        .unwrap();

    store.delete_session_data(c1.as_str(), "a").await.unwrap();
    assert_eq!(
        store.get_session_data(c1.as_str(), "a").await.unwrap(),
        None
    );
    assert_eq!(
        session(&store, c1.as_str()).await.data,
        data(json!({"b": 2}))
    );

    // Deleting a missing key is not an error, and changes nothing.
    store.delete_session_data(c1.as_str(), "a").await.unwrap();
    store
        .delete_session_data(c1.as_str(), "never")
        .await
        .unwrap();
    assert_eq!(
        session(&store, c1.as_str()).await.data,
        data(json!({"b": 2}))
    );
}

async fn clear_session_data_keeps_the_session_and_its_user<B: Backend>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    let created = store.create_session(c1.as_str(), "alice").await.unwrap();
    store
        .update_session_data(c1.as_str(), data(json!({"a": 1, "b": 2})))
        .await
        .unwrap();

    store.clear_session_data(c1.as_str()).await.unwrap();
    let cleared = session(&store, c1.as_str()).await;
    assert!(cleared.data.is_empty());
    assert_eq!(cleared.user_id, "alice");
    assert_eq!(cleared.created_at, created.created_at);
    assert_eq!(
        ids(&store.get_user_sessions("alice").await.unwrap()),
        set_of([c1.as_str()])
    );

    // Clearing an empty session is fine, and the session takes new data afterwards.
    store.clear_session_data(c1.as_str()).await.unwrap();
    store
        .set_session_data(c1.as_str(), "c", json!(3))
        .await
        .unwrap();
    assert_eq!(
        session(&store, c1.as_str()).await.data,
        data(json!({"c": 3}))
    );
}

async fn remove_session_is_idempotent_and_leaves_the_user_index<B: Backend>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let [alice, bob]: [String; 2] = users_of_one_tag::<B>(&store, 2).try_into().unwrap();
    let c1 = B::id(&store, "c1", &alice);
    let c2 = B::id(&store, "c2", &alice);
    store.create_session(c1.as_str(), &alice).await.unwrap();
    store.create_session(c2.as_str(), &alice).await.unwrap();
    store
        .set_session_data(c1.as_str(), "k", json!("v"))
        .await
        .unwrap();

    store.remove_session(c1.as_str()).await.unwrap();
    assert_eq!(store.get_session(c1.as_str()).await.unwrap(), None);
    assert_eq!(
        ids(&store.get_user_sessions(&alice).await.unwrap()),
        set_of([c2.as_str()])
    );

    store.remove_session(c1.as_str()).await.unwrap();
    let never_created = B::id(&store, "never-created", &alice);
    store.remove_session(&never_created).await.unwrap();
    assert_eq!(
        ids(&store.get_user_sessions(&alice).await.unwrap()),
        set_of([c2.as_str()])
    );

    // The id is free again, and the new session starts empty.
    let again = store.create_session(c1.as_str(), &bob).await.unwrap();
    assert!(again.data.is_empty());
    assert_eq!(session(&store, c1.as_str()).await, again);
    assert_eq!(
        ids(&store.get_user_sessions(&alice).await.unwrap()),
        set_of([c2.as_str()])
    );
    assert_eq!(
        ids(&store.get_user_sessions(&bob).await.unwrap()),
        set_of([c1.as_str()])
    );
}

// ---------------------------------------------------------------------------------------------
// Missing sessions

async fn mutations_of_a_never_created_session_are_not_found<B: Backend>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let ghost = B::id(&store, "ghost", "alice");
    assert_every_mutation_is_not_found(&store, ghost.as_str(), "alice").await;
    // Nothing was left behind: the id is free, and the new session is empty.
    let created = store.create_session(ghost.as_str(), "alice").await.unwrap();
    assert!(session(&store, ghost.as_str()).await.data.is_empty());
    assert_eq!(store.get_user_sessions("alice").await.unwrap(), [created]);
}

async fn mutations_of_a_removed_session_are_not_found<B: Backend>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    store.create_session(c1.as_str(), "alice").await.unwrap();
    store
        .set_session_data(c1.as_str(), "k", json!(1))
        .await
        .unwrap();
    store.remove_session(c1.as_str()).await.unwrap();

    assert_every_mutation_is_not_found(&store, c1.as_str(), "alice").await;
    let created = store.create_session(c1.as_str(), "alice").await.unwrap();
    assert!(session(&store, c1.as_str()).await.data.is_empty());
    assert_eq!(store.get_user_sessions("alice").await.unwrap(), [created]);
}

async fn mutations_of_an_expired_session_are_not_found<B: Backend>() {
    let ttl = Duration::from_millis(300);
    let Some(store) = B::open(ttl, Limits::default()).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    store.create_session(c1.as_str(), "alice").await.unwrap();
    store
        .set_session_data(c1.as_str(), "k", json!(1))
        .await
        .unwrap();
    sleep(ttl + Duration::from_millis(150)).await;

    assert_every_mutation_is_not_found(&store, c1.as_str(), "alice").await;
    assert!(store.get_user_sessions("alice").await.unwrap().is_empty());
}

async fn an_expired_id_can_be_created_again<B: Backend>() {
    let ttl = Duration::from_millis(300);
    let Some(store) = B::open(ttl, Limits::default()).await else {
        return;
    };
    let [alice, bob]: [String; 2] = users_of_one_tag::<B>(&store, 2).try_into().unwrap();
    let c1 = B::id(&store, "c1", &alice);
    store.create_session(c1.as_str(), &alice).await.unwrap();
    store
        .set_session_data(c1.as_str(), "k", json!(1))
        .await
        .unwrap();
    sleep(ttl + Duration::from_millis(150)).await;

    let again = store.create_session(c1.as_str(), &bob).await.unwrap();
    assert_eq!(again.user_id, bob);
    assert_eq!(session(&store, c1.as_str()).await, again);
    assert!(store.get_user_sessions(&alice).await.unwrap().is_empty());
    assert_eq!(store.get_user_sessions(&bob).await.unwrap(), [again]);
}

// ---------------------------------------------------------------------------------------------
// TTLs

async fn sessions_expire_after_the_ttl_and_reads_do_not_extend_them<B: Backend>() {
    let ttl = Duration::from_millis(600);
    let Some(store) = B::open(ttl, Limits::default()).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    store.create_session(c1.as_str(), "alice").await.unwrap();
    store
        .set_session_data(c1.as_str(), "k", json!(1))
        .await
        .unwrap();
    let written = tokio::time::Instant::now();

    for _ in 0..3 {
        sleep(Duration::from_millis(100)).await;
        assert!(store.get_session(c1.as_str()).await.unwrap().is_some());
        assert_eq!(
            store.get_session_data(c1.as_str(), "k").await.unwrap(),
            Some(json!(1))
        );
        assert_eq!(store.get_user_sessions("alice").await.unwrap().len(), 1);
    }

    tokio::time::sleep_until(written + ttl + Duration::from_millis(300)).await;
    assert_eq!(store.get_session(c1.as_str()).await.unwrap(), None);
    assert_not_found(store.get_session_data(c1.as_str(), "k").await, c1.as_str());
    assert!(store.get_user_sessions("alice").await.unwrap().is_empty());
}

async fn every_write_and_touch_extends_the_ttl<B: Backend>() {
    let ttl = Duration::from_millis(1000);
    let Some(store) = B::open(ttl, Limits::default()).await else {
        return;
    };
    let kinds = ["control", "set", "update", "delete", "clear", "touch"];
    let [control, set, update, delete, clear, touch] =
        kinds.map(|kind| B::id(&store, kind, "alice"));
    for id in [&control, &set, &update, &delete, &clear, &touch] {
        store.create_session(id, "alice").await.unwrap();
    }
    let created = tokio::time::Instant::now();
    sleep(Duration::from_millis(600)).await;

    store.set_session_data(&set, "k", json!(1)).await.unwrap();
    store
        .update_session_data(&update, data(json!({"k": 1})))
        .await
        .unwrap();
    store.delete_session_data(&delete, "k").await.unwrap();
    store.clear_session_data(&clear).await.unwrap();
    assert!(
        store
            .touch(std::slice::from_ref(&touch))
            .await
            .unwrap()
            .is_empty()
    );
    let written = tokio::time::Instant::now();

    // Past the TTL since creation, well within it since the writes.
    tokio::time::sleep_until(created + ttl + Duration::from_millis(200)).await;
    assert_eq!(store.get_session(&control).await.unwrap(), None);
    let extended = [&set, &update, &delete, &clear, &touch];
    for (kind, id) in kinds[1..].iter().zip(extended) {
        assert!(
            store.get_session(id).await.unwrap().is_some(),
            "the {kind} did not extend the session's life"
        );
    }
    let listed = ids(&store.get_user_sessions("alice").await.unwrap());
    assert_eq!(listed, extended.into_iter().cloned().collect());

    tokio::time::sleep_until(written + ttl + Duration::from_millis(200)).await;
    for id in [&control, &set, &update, &delete, &clear, &touch] {
        assert_eq!(
            store.get_session(id).await.unwrap(),
            None,
            "{id} outlived its TTL"
        );
    }
    assert!(store.get_user_sessions("alice").await.unwrap().is_empty());
}

async fn writes_and_touch_update_last_active_and_reads_do_not<B: Backend>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    let created = store.create_session(c1.as_str(), "alice").await.unwrap();
    sleep(TICK).await;

    store.get_session(c1.as_str()).await.unwrap();
    store.get_session_data(c1.as_str(), "k").await.unwrap();
    store.get_user_sessions("alice").await.unwrap();
    assert_eq!(
        session(&store, c1.as_str()).await.last_active,
        created.last_active
    );

    let mut last = created.last_active;
    for step in ["set", "update", "delete", "clear", "touch"] {
        match step {
            "set" => store
                .set_session_data(c1.as_str(), "k", json!(1))
                .await
                .unwrap(),
            "update" => store
                .update_session_data(c1.as_str(), data(json!({"j": 2})))
                .await
                .unwrap(),
            "delete" => store.delete_session_data(c1.as_str(), "k").await.unwrap(),
            "clear" => store.clear_session_data(c1.as_str()).await.unwrap(),
            _ => assert!(
                store
                    .touch(&[c1.as_str().to_owned()])
                    .await
                    .unwrap()
                    .is_empty()
            ),
        }
        let now = session(&store, c1.as_str()).await;
        assert!(now.last_active > last, "{step} did not move last_active on");
        assert_eq!(
            now.created_at, created.created_at,
            "{step} moved created_at"
        );
        last = now.last_active;
        sleep(TICK).await;
    }
}

async fn touch_reports_missing_ids_and_does_not_recreate_them<B: Backend>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    let c2 = B::id(&store, "c2", "alice");
    let c3 = B::id(&store, "c3", "bob");
    let never = B::id(&store, "never", "alice");
    store.create_session(c1.as_str(), "alice").await.unwrap();
    store.create_session(c2.as_str(), "alice").await.unwrap();
    store.create_session(c3.as_str(), "bob").await.unwrap();
    store.remove_session(c2.as_str()).await.unwrap();

    assert!(store.touch(&[]).await.unwrap().is_empty());
    let asked = [c1.as_str(), c2.as_str(), c3.as_str(), never.as_str()].map(str::to_owned);
    let missing: BTreeSet<String> = store.touch(&asked).await.unwrap().into_iter().collect();
    assert_eq!(missing, set_of([c2.as_str(), never.as_str()]));

    assert_eq!(store.get_session(c2.as_str()).await.unwrap(), None);
    assert_eq!(store.get_session(never.as_str()).await.unwrap(), None);
    assert_eq!(
        ids(&store.get_user_sessions("alice").await.unwrap()),
        set_of([c1.as_str()])
    );
    assert_eq!(
        ids(&store.get_user_sessions("bob").await.unwrap()),
        set_of([c3.as_str()])
    );
    // A second touch still finds them missing: the first did not bring them back.
    let missing: BTreeSet<String> = store.touch(&asked).await.unwrap().into_iter().collect();
    assert_eq!(missing, set_of([c2.as_str(), never.as_str()]));
}

// ---------------------------------------------------------------------------------------------
// The user index

async fn user_index_lists_every_live_session_of_a_user<B: Backend>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let b1 = B::id(&store, "b1", "bob");
    let a1 = B::id(&store, "a1", "alice");
    let a2 = B::id(&store, "a2", "alice");
    let a3 = B::id(&store, "a3", "alice");
    for id in [a1.as_str(), a2.as_str(), a3.as_str()] {
        store.create_session(id, "alice").await.unwrap();
        store.set_session_data(id, "name", json!(id)).await.unwrap();
    }
    store.create_session(b1.as_str(), "bob").await.unwrap();

    let listed = store.get_user_sessions("alice").await.unwrap();
    assert_eq!(
        ids(&listed),
        set_of([a1.as_str(), a2.as_str(), a3.as_str()])
    );
    for listed in &listed {
        // Whole sessions, as `get_session` returns them.
        assert_eq!(*listed, session(&store, &listed.id).await);
        assert_eq!(listed.data["name"], json!(listed.id));
    }
    assert_eq!(
        ids(&store.get_user_sessions("bob").await.unwrap()),
        set_of([b1.as_str()])
    );
    assert!(store.get_user_sessions("carol").await.unwrap().is_empty());

    store.remove_session(a2.as_str()).await.unwrap();
    assert_eq!(
        ids(&store.get_user_sessions("alice").await.unwrap()),
        set_of([a1.as_str(), a3.as_str()])
    );
    assert_eq!(
        ids(&store.get_user_sessions("bob").await.unwrap()),
        set_of([b1.as_str()])
    );

    store.remove_session(a1.as_str()).await.unwrap();
    store.remove_session(a3.as_str()).await.unwrap();
    assert!(store.get_user_sessions("alice").await.unwrap().is_empty());
    assert_eq!(
        ids(&store.get_user_sessions("bob").await.unwrap()),
        set_of([b1.as_str()])
    );
}

async fn user_index_drops_expired_sessions<B: Backend>() {
    let ttl = Duration::from_millis(600);
    let Some(store) = B::open(ttl, Limits::default()).await else {
        return;
    };
    let a1 = B::id(&store, "a1", "alice");
    let a2 = B::id(&store, "a2", "alice");
    let b1 = B::id(&store, "b1", "bob");
    let a3 = B::id(&store, "a3", "alice");
    store.create_session(a1.as_str(), "alice").await.unwrap();
    store.create_session(a2.as_str(), "alice").await.unwrap();
    store.create_session(b1.as_str(), "bob").await.unwrap();
    let created = tokio::time::Instant::now();
    sleep(Duration::from_millis(300)).await;
    assert!(
        store
            .touch(&[a2.as_str().to_owned()])
            .await
            .unwrap()
            .is_empty()
    );

    tokio::time::sleep_until(created + ttl + Duration::from_millis(100)).await;
    for _ in 0..2 {
        assert_eq!(
            ids(&store.get_user_sessions("alice").await.unwrap()),
            set_of([a2.as_str()])
        );
        assert!(store.get_user_sessions("bob").await.unwrap().is_empty());
    }
    // A new session of the same user is listed beside the survivor.
    store.create_session(a3.as_str(), "alice").await.unwrap();
    assert_eq!(
        ids(&store.get_user_sessions("alice").await.unwrap()),
        set_of([a2.as_str(), a3.as_str()])
    );
}

// ---------------------------------------------------------------------------------------------
// Limits

async fn ids_are_checked<B: Backend>() {
    let Some(store) = B::open(LONG, Limits::default().max_id_len(8)).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "ééé");
    let c2 = B::id(&store, "c2", "ééééé");
    // An id of exactly the limit: on a cluster, the tag and then four characters.
    let exact: String = B::id(&store, "12345678", "alice").chars().take(8).collect();
    let empty_session = InvalidInput::EmptyId { what: "session id" };
    let long_session = InvalidInput::IdTooLong {
        what: "session id",
        len: 9,
        max: 8,
    };
    let empty_user = InvalidInput::EmptyId { what: "user id" };
    let long_user = InvalidInput::IdTooLong {
        what: "user id",
        len: 9,
        max: 8,
    };

    assert_invalid(
        store.create_session("", "alice").await,
        empty_session.clone(),
    );
    assert_invalid(
        store.create_session("123456789", "alice").await,
        long_session,
    );
    assert_invalid(
        store.create_session(c1.as_str(), "").await,
        empty_user.clone(),
    );
    assert_invalid(
        store.create_session(c1.as_str(), "123456789").await,
        long_user,
    );
    assert!(store.get_user_sessions("alice").await.unwrap().is_empty());
    assert_eq!(store.get_session(c1.as_str()).await.unwrap(), None);

    // Ids of exactly the limit are fine; multi-byte characters count in bytes.
    store.create_session(&exact, "alice").await.unwrap();
    store.create_session(c1.as_str(), "ééé").await.unwrap();
    let too_long = InvalidInput::IdTooLong {
        what: "user id",
        len: 10,
        max: 8,
    };
    assert_invalid(store.create_session(c2.as_str(), "ééééé").await, too_long);

    assert_invalid(store.get_session("").await, empty_session.clone());
    assert_invalid(
        store.set_session_data("", "k", json!(1)).await,
        empty_session.clone(),
    );
    assert_invalid(store.get_session_data("", "k").await, empty_session.clone());
    let batch = data(json!({"k": 1}));
    assert_invalid(
        store.update_session_data("", batch).await,
        empty_session.clone(),
    );
    assert_invalid(
        store.delete_session_data("", "k").await,
        empty_session.clone(),
    );
    assert_invalid(store.clear_session_data("").await, empty_session.clone());
    assert_invalid(store.remove_session("").await, empty_session.clone());
    assert_invalid(store.get_user_sessions("").await, empty_user);

    // One bad id fails the whole touch, before any session is refreshed.
    let before = session(&store, c1.as_str()).await;
    sleep(TICK).await;
    let asked = [c1.as_str().to_owned(), String::new()];
    assert_invalid(store.touch(&asked).await, empty_session);
    assert_eq!(session(&store, c1.as_str()).await, before);
}

async fn empty_keys_are_rejected_and_nothing_is_written<B: Backend>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    store.create_session(c1.as_str(), "alice").await.unwrap();
    store
        .set_session_data(c1.as_str(), "kept", json!(1))
        .await
        .unwrap();
    let before = session(&store, c1.as_str()).await;
    sleep(TICK).await;

    assert_invalid(
        store.set_session_data(c1.as_str(), "", json!(2)).await,
        InvalidInput::EmptyKey,
    );
    assert_invalid(
        store.get_session_data(c1.as_str(), "").await,
        InvalidInput::EmptyKey,
    );
    assert_invalid(
        store.delete_session_data(c1.as_str(), "").await,
        InvalidInput::EmptyKey,
    );
    let batch = data(json!({"": 2, "a": 3, "kept": 4}));
    assert_invalid(
        store.update_session_data(c1.as_str(), batch).await,
        InvalidInput::EmptyKey,
    );

    // Not a key, not the TTL, not last_active.
    assert_eq!(session(&store, c1.as_str()).await, before);
}

async fn long_keys_are_rejected_and_nothing_is_written<B: Backend>() {
    let Some(store) = B::open(LONG, Limits::default().max_key_len(8)).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    store.create_session(c1.as_str(), "alice").await.unwrap();
    store
        .set_session_data(c1.as_str(), "12345678", json!("at the limit"))
        .await
        .unwrap();
    let before = session(&store, c1.as_str()).await;
    sleep(TICK).await;

    let too_long = InvalidInput::KeyTooLong {
        key: "12345678".into(),
        len: 9,
        max: 8,
    };
    assert_invalid(
        store
            .set_session_data(c1.as_str(), "123456789", json!(1))
            .await,
        too_long.clone(),
    );
    assert_invalid(
        store.get_session_data(c1.as_str(), "123456789").await,
        too_long.clone(),
    );
    assert_invalid(
        store.delete_session_data(c1.as_str(), "123456789").await,
        too_long.clone(),
    );
    let batch = data(json!({"a": 1, "123456789": 2, "z": 3}));
    assert_invalid(
        store.update_session_data(c1.as_str(), batch).await,
        too_long,
    );

    // Bytes, not characters: five two-byte characters are ten bytes, cut at a char boundary.
    let unicode = InvalidInput::KeyTooLong {
        key: "éééé".into(),
        len: 10,
        max: 8,
    };
    assert_invalid(
        store.set_session_data(c1.as_str(), "ééééé", json!(1)).await,
        unicode,
    );

    assert_eq!(session(&store, c1.as_str()).await, before);
}

async fn large_values_are_rejected_and_nothing_is_written<B: Backend>() {
    let Some(store) = B::open(LONG, Limits::default().max_value_len(16)).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    store.create_session(c1.as_str(), "alice").await.unwrap();
    // 14 characters and two quotes: 16 bytes of JSON, exactly the limit.
    store
        .set_session_data(c1.as_str(), "fits", json!("abcdefghijklmn"))
        .await
        .unwrap();
    let before = session(&store, c1.as_str()).await;
    sleep(TICK).await;

    let too_large = |key: &str, len| InvalidInput::ValueTooLarge {
        key: key.into(),
        len,
        max: 16,
    };
    assert_invalid(
        store
            .set_session_data(c1.as_str(), "big", json!("abcdefghijklmno"))
            .await,
        too_large("big", 17),
    );
    // Measured as compact JSON text.
    assert_invalid(
        store
            .set_session_data(c1.as_str(), "obj", json!({"a": [1, 2, 3], "b": 1}))
            .await,
        too_large("obj", 19),
    );
    assert_invalid(
        store
            .set_session_data(c1.as_str(), "fits", json!("é".repeat(8)))
            .await,
        too_large("fits", 18),
    );
    let batch = data(json!({"a": 1, "big": "abcdefghijklmno", "z": 2}));
    assert_invalid(
        store.update_session_data(c1.as_str(), batch).await,
        too_large("big", 17),
    );

    assert_eq!(session(&store, c1.as_str()).await, before);
}

async fn too_many_keys_through_set_are_rejected<B: Backend>() {
    let Some(store) = B::open(LONG, Limits::default().max_keys(3)).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    store.create_session(c1.as_str(), "alice").await.unwrap();
    for key in ["a", "b", "c"] {
        store
            .set_session_data(c1.as_str(), key, json!(key))
            .await
            .unwrap();
    }
    let before = session(&store, c1.as_str()).await;
    sleep(TICK).await;

    let too_many = InvalidInput::TooManyKeys {
        id: c1.as_str().into(),
        max: 3,
    };
    assert_invalid(
        store.set_session_data(c1.as_str(), "d", json!("d")).await,
        too_many,
    );
    assert_eq!(session(&store, c1.as_str()).await, before);

    // At the limit, existing keys can still be overwritten, and a freed slot can be reused.
    store
        .set_session_data(c1.as_str(), "a", json!("A"))
        .await
        .unwrap();
    store.delete_session_data(c1.as_str(), "c").await.unwrap();
    store
        .set_session_data(c1.as_str(), "d", json!("d"))
        .await
        .unwrap();
    assert_eq!(
        session(&store, c1.as_str()).await.data,
        data(json!({"a": "A", "b": "b", "d": "d"}))
    );
}

async fn session_data_is_bounded_in_bytes<B: Backend>() {
    // A key counts its own length and its value's JSON length.
    let Some(store) = B::open(LONG, Limits::default().max_session_bytes(40)).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    let too_large = |len| InvalidInput::SessionTooLarge {
        id: c1.as_str().into(),
        len,
        max: 40,
    };
    store.create_session(c1.as_str(), "alice").await.unwrap();
    // "a" + "\"xxxxxxxx\"" = 1 + 10, twice: 22 bytes.
    store
        .update_session_data(c1.as_str(), data(json!({"a": "xxxxxxxx", "b": "xxxxxxxx"})))
        .await
        .unwrap();
    let before = session(&store, c1.as_str()).await;
    sleep(TICK).await;

    // 22 + 1 + 20 = 43 > 40: refused, nothing written, whichever way it comes.
    let twenty = json!("x".repeat(18));
    assert_invalid(
        store
            .set_session_data(c1.as_str(), "c", twenty.clone())
            .await,
        too_large(43),
    );
    assert_invalid(
        store
            .update_session_data(c1.as_str(), data(json!({"c": twenty.clone()})))
            .await,
        too_large(43),
    );
    assert_eq!(session(&store, c1.as_str()).await, before);

    // An overwrite counts what it replaces: "a" grows from 11 to 21 bytes, 32 in all.
    store
        .set_session_data(c1.as_str(), "a", twenty.clone())
        .await
        .unwrap();
    assert_invalid(
        store
            .set_session_data(c1.as_str(), "c", json!("xxxxxxx"))
            .await,
        too_large(42),
    );
    // A delete frees its bytes, a clear frees them all.
    store.delete_session_data(c1.as_str(), "a").await.unwrap();
    store
        .set_session_data(c1.as_str(), "c", twenty.clone())
        .await
        .unwrap();
    assert_invalid(
        store
            .set_session_data(c1.as_str(), "d", twenty.clone())
            .await,
        too_large(53),
    );
    store.clear_session_data(c1.as_str()).await.unwrap();
    store
        .set_session_data(c1.as_str(), "d", twenty)
        .await
        .unwrap();
    assert_eq!(session(&store, c1.as_str()).await.data.len(), 1);
}

async fn live_sessions_per_user_are_capped<B: Backend>() {
    let Some(store) = B::open(
        Duration::from_millis(300),
        Limits::default().max_user_sessions(2),
    )
    .await
    else {
        return;
    };
    let [c1, c2, c3, c5, c6] =
        ["c1", "c2", "c3", "c5", "c6"].map(|name| B::id(&store, name, "alice"));
    let c4 = B::id(&store, "c4", "bob");
    store.create_session(c1.as_str(), "alice").await.unwrap();
    store.create_session(c2.as_str(), "alice").await.unwrap();
    let refused = store.create_session(c3.as_str(), "alice").await;
    assert_invalid(
        refused,
        InvalidInput::TooManySessions {
            user_id: "alice".into(),
            max: 2,
        },
    );
    // The refusal created nothing.
    assert_eq!(store.get_session(c3.as_str()).await.unwrap(), None);
    assert_eq!(
        ids(&store.get_user_sessions("alice").await.unwrap()),
        set_of([c1.as_str(), c2.as_str()])
    );
    // Other users are not held back.
    store.create_session(c4.as_str(), "bob").await.unwrap();
    // A removed session frees its place; so does an expired one.
    store.remove_session(c1.as_str()).await.unwrap();
    store.create_session(c3.as_str(), "alice").await.unwrap();
    sleep(Duration::from_millis(400)).await;
    store.create_session(c5.as_str(), "alice").await.unwrap();
    store.create_session(c6.as_str(), "alice").await.unwrap();
    assert_eq!(
        ids(&store.get_user_sessions("alice").await.unwrap()),
        set_of([c5.as_str(), c6.as_str()])
    );
}

async fn too_many_keys_through_update_are_rejected<B: Backend>() {
    let Some(store) = B::open(LONG, Limits::default().max_keys(3)).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    let c2 = B::id(&store, "c2", "alice");
    let too_many = |id: &str| InvalidInput::TooManyKeys {
        id: id.into(),
        max: 3,
    };

    store.create_session(c1.as_str(), "alice").await.unwrap();
    store
        .update_session_data(c1.as_str(), data(json!({"a": 1, "b": 2})))
        .await
        .unwrap();
    let before = session(&store, c1.as_str()).await;
    sleep(TICK).await;

    // Two held and two new: four. Neither is written.
    let batch = data(json!({"c": 3, "d": 4}));
    assert_invalid(
        store.update_session_data(c1.as_str(), batch).await,
        too_many(c1.as_str()),
    );
    assert_eq!(session(&store, c1.as_str()).await, before);

    // Only keys not yet present count: one new key and one overwrite make three.
    store
        .update_session_data(c1.as_str(), data(json!({"a": 10, "c": 3})))
        .await
        .unwrap();
    store
        .update_session_data(c1.as_str(), data(json!({"a": 100, "b": 200, "c": 300})))
        .await
        .unwrap();
    assert_eq!(
        session(&store, c1.as_str()).await.data,
        data(json!({"a": 100, "b": 200, "c": 300}))
    );

    // A batch that alone is over the limit, on an empty session.
    store.create_session(c2.as_str(), "alice").await.unwrap();
    let batch = data(json!({"w": 1, "x": 2, "y": 3, "z": 4}));
    assert_invalid(
        store.update_session_data(c2.as_str(), batch).await,
        too_many(c2.as_str()),
    );
    assert!(session(&store, c2.as_str()).await.data.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Values and keys

async fn typed_reads_name_the_key_of_a_value_of_the_wrong_shape<B: Backend>() {
    #[derive(Debug, PartialEq, Deserialize)]
    struct Prefs {
        theme: String,
        size: u8,
    }

    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    store.create_session(c1.as_str(), "alice").await.unwrap();
    store
        .update_session_data(
            c1.as_str(),
            data(json!({"prefs": {"theme": "dark", "size": 12}, "count": "three"})),
        )
        .await
        .unwrap();

    let current = session(&store, c1.as_str()).await;
    let prefs: Option<Prefs> = current.get("prefs").unwrap();
    assert_eq!(
        prefs,
        Some(Prefs {
            theme: "dark".into(),
            size: 12
        })
    );
    assert_eq!(current.get::<u32>("missing").unwrap(), None);

    for (key, err) in [
        ("count", current.get::<u32>("count").unwrap_err()),
        ("prefs", current.get::<Vec<String>>("prefs").unwrap_err()),
    ] {
        match &err {
            Error::Serialization { key: named, .. } => assert_eq!(named, key),
            other => panic!("expected Serialization, got {other:?}"),
        }
        assert!(err.to_string().contains(key), "{err}");
        assert!(
            std::error::Error::source(&err).is_some(),
            "the serde error is kept"
        );
    }

    let raw = store
        .get_session_data(c1.as_str(), "count")
        .await
        .unwrap()
        .unwrap();
    let err = ws_session::from_value::<u32>("count", raw).unwrap_err();
    assert!(
        matches!(err, Error::Serialization { ref key, .. } if key == "count"),
        "{err:?}"
    );
}

async fn json_values_of_every_kind_round_trip<B: Backend>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let one_by_one = B::id(&store, "one-by-one", "alice");
    let at_once = B::id(&store, "at-once", "alice");
    let values = [
        Value::Null,
        json!(true),
        json!(false),
        json!(0),
        json!(-1),
        json!(i64::MIN),
        json!(i64::MAX),
        json!(u64::MAX),
        json!(0.1),
        json!(-2.5),
        json!(1.0 / 3.0),
        json!(std::f64::consts::PI),
        json!(1e300),
        json!(-1.5e-300),
        json!(f64::MIN_POSITIVE),
        json!(f64::MAX),
        json!(""),
        json!("plain"),
        json!("héllo wörld, 你好, 🌍"),
        json!("quotes \" backslash \\ newline \n tab \t nul \u{0} bell \u{7}"),
        json!([]),
        json!({}),
        json!([1, "two", null, [3.5, [false]], {"x": {}}]),
        json!({"nested": {"deeper": {"deepest": [1, {"k": "v"}]}}, "list": [[], [[]]]}),
    ];
    let expected: SessionData = values
        .iter()
        .enumerate()
        .map(|(i, value)| (format!("v{i:02}"), value.clone()))
        .collect();

    store
        .create_session(one_by_one.as_str(), "alice")
        .await
        .unwrap();
    for (key, value) in &expected {
        store
            .set_session_data(one_by_one.as_str(), key, value.clone())
            .await
            .unwrap();
    }
    for (key, value) in &expected {
        assert_eq!(
            store
                .get_session_data(one_by_one.as_str(), key)
                .await
                .unwrap()
                .as_ref(),
            Some(value),
            "{key}"
        );
    }
    assert_eq!(session(&store, one_by_one.as_str()).await.data, expected);

    store
        .create_session(at_once.as_str(), "alice")
        .await
        .unwrap();
    store
        .update_session_data(at_once.as_str(), expected.clone())
        .await
        .unwrap();
    assert_eq!(session(&store, at_once.as_str()).await.data, expected);

    let listed = store.get_user_sessions("alice").await.unwrap();
    assert_eq!(listed.len(), 2);
    for listed in listed {
        assert_eq!(listed.data, expected, "{}", listed.id);
    }
}

async fn keys_may_hold_any_text<B: Backend>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    let keys = [
        "héllo wörld",
        "🔑",
        "with space",
        " leading and trailing ",
        "a:b:c",
        "ends with:",
        ":",
        "meta:user_id",
        "meta:created_at",
        "meta:last_active",
        "data:",
        "data:x",
        "user_id",
        "id",
        "*",
        "{braces}",
        "\"quoted\"",
        "tab\tand\nnewline",
    ];
    let created = store.create_session(c1.as_str(), "alice").await.unwrap();
    let expected: SessionData = keys
        .iter()
        .enumerate()
        .map(|(i, key)| ((*key).to_owned(), json!(format!("value {i}"))))
        .collect();
    for (key, value) in &expected {
        store
            .set_session_data(c1.as_str(), key, value.clone())
            .await
            .unwrap();
    }

    let current = session(&store, c1.as_str()).await;
    assert_eq!(current.data, expected);
    assert_eq!(current.user_id, "alice");
    assert_eq!(current.created_at, created.created_at);
    for (key, value) in &expected {
        assert_eq!(
            store
                .get_session_data(c1.as_str(), key)
                .await
                .unwrap()
                .as_ref(),
            Some(value)
        );
    }
    assert_eq!(store.get_user_sessions("alice").await.unwrap(), [current]);

    // Keys named like metadata are data like any other.
    store
        .delete_session_data(c1.as_str(), "meta:user_id")
        .await
        .unwrap();
    store
        .delete_session_data(c1.as_str(), "meta:created_at")
        .await
        .unwrap();
    let current = session(&store, c1.as_str()).await;
    assert_eq!(current.user_id, "alice");
    assert_eq!(current.created_at, created.created_at);
    assert_eq!(current.data.len(), keys.len() - 2);
    assert!(!current.data.contains_key("meta:user_id"));

    store.clear_session_data(c1.as_str()).await.unwrap();
    let current = session(&store, c1.as_str()).await;
    assert!(current.data.is_empty());
    assert_eq!(current.user_id, "alice");
    assert_eq!(
        ids(&store.get_user_sessions("alice").await.unwrap()),
        set_of([c1.as_str()])
    );
}

async fn ids_may_hold_any_text<B: Backend>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let pairs = [
        ("séance:1", "ü:ser"),
        ("with space", "ü:ser"),
        ("x:session:y", "user with space"),
        ("🔌", "user_sessions:z"),
    ]
    .map(|(name, user)| (B::id(&store, name, user), user));
    for (id, user) in &pairs {
        store.create_session(id, user).await.unwrap();
        store.set_session_data(id, "id", json!(id)).await.unwrap();
    }
    for (id, user) in &pairs {
        let current = session(&store, id).await;
        assert_eq!((&current.id, current.user_id.as_str()), (id, *user));
        assert_eq!(current.data["id"], json!(id));
    }
    let [(seance, _), (space, _), (colons, _), (plug, _)] = &pairs;
    assert_eq!(
        ids(&store.get_user_sessions("ü:ser").await.unwrap()),
        set_of([seance.as_str(), space.as_str()])
    );
    assert_eq!(
        ids(&store.get_user_sessions("user with space").await.unwrap()),
        set_of([colons.as_str()])
    );
    assert_eq!(
        ids(&store.get_user_sessions("user_sessions:z").await.unwrap()),
        set_of([plug.as_str()])
    );
    store.remove_session(seance).await.unwrap();
    assert_eq!(
        ids(&store.get_user_sessions("ü:ser").await.unwrap()),
        set_of([space.as_str()])
    );
}

async fn concurrent_writes_of_different_keys_all_land<B: Backend>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    store.create_session(c1.as_str(), "alice").await.unwrap();
    let tasks: Vec<_> = (0..32)
        .map(|i| {
            let (store, c1) = (store.clone(), c1.clone());
            tokio::spawn(async move {
                if i % 2 == 0 {
                    store
                        .set_session_data(c1.as_str(), &format!("k{i}"), json!(i))
                        .await
                } else {
                    let batch = data(json!({format!("k{i}"): i, format!("u{i}"): -i}));
                    store.update_session_data(c1.as_str(), batch).await
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    let mut expected = SessionData::new();
    for i in 0..32 {
        expected.insert(format!("k{i}"), json!(i));
        if i % 2 == 1 {
            expected.insert(format!("u{i}"), json!(-i));
        }
    }
    assert_eq!(session(&store, c1.as_str()).await.data, expected);
}
