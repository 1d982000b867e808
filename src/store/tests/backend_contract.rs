//! What the hub and resume need of a store, written once and run against every store (and
//! against each inside an [`AnyStore`]): attached sessions, rooms, and the removal of a user's
//! sessions. The operations on sessions alone are the contract of `tests/contract.rs`.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::json;
use tokio::time::sleep;

use crate::store::attachment::{Attach, Claim, Claimed, Refusal, TokenHash};
use crate::store::backend::Backend;
use crate::{AnyStore, Error, InvalidInput, Limits, MemoryStore, Session, SessionStore};

/// A TTL no case outlives.
const LONG: Duration = Duration::from_secs(3600);

/// How a case gets a fresh, empty store of one kind.
trait Open {
    type Store: Backend;

    /// A store whose sessions live for `ttl` and that enforces `limits`; `None` when this kind
    /// of store cannot run here (no Redis), after saying so.
    async fn open(ttl: Duration, limits: Limits) -> Option<Self::Store>;

    /// The id of the session a case names `name`, of user `user`: `name` itself on a store
    /// that takes any id; on a Redis Cluster, `name` after the user's slot tag.
    fn id(store: &Self::Store, name: &str, user: &str) -> String {
        let _ = (store, user);
        name.to_owned()
    }
}

struct Memory;

impl Open for Memory {
    type Store = MemoryStore;

    async fn open(ttl: Duration, limits: Limits) -> Option<MemoryStore> {
        Some(MemoryStore::with_ttl(ttl).limits(limits))
    }
}

/// A `MemoryStore` behind an `AnyStore`.
struct AnyMemory;

impl Open for AnyMemory {
    type Store = AnyStore;

    async fn open(ttl: Duration, limits: Limits) -> Option<AnyStore> {
        Some(MemoryStore::with_ttl(ttl).limits(limits).into())
    }
}

#[cfg(feature = "redis")]
struct Redis;

#[cfg(feature = "redis")]
impl Open for Redis {
    type Store = crate::RedisStore;

    async fn open(ttl: Duration, limits: Limits) -> Option<crate::RedisStore> {
        let store = super::redis_store(ttl).await;
        if store.is_none() {
            eprintln!("{}", ws_session_testkit::redis_server::SKIPPED);
        }
        store.map(|store| store.limits(limits))
    }
}

/// A `RedisStore` behind an `AnyStore`.
#[cfg(feature = "redis")]
struct AnyRedis;

#[cfg(feature = "redis")]
impl Open for AnyRedis {
    type Store = AnyStore;

    async fn open(ttl: Duration, limits: Limits) -> Option<AnyStore> {
        Redis::open(ttl, limits).await.map(AnyStore::from)
    }
}

/// A `RedisStore` on a Redis Cluster of three masters with a replica each.
#[cfg(feature = "redis")]
struct Cluster;

#[cfg(feature = "redis")]
impl Open for Cluster {
    type Store = crate::RedisStore;

    async fn open(ttl: Duration, limits: Limits) -> Option<crate::RedisStore> {
        let store = super::cluster_store(ttl, false).await;
        store.map(|store| store.limits(limits))
    }

    fn id(store: &crate::RedisStore, name: &str, user: &str) -> String {
        format!("{}{name}", &store.new_session_id(user)[..4])
    }
}

/// A `RedisStore` on a single-node cluster, where every script fails on a key of another slot
/// or one it did not declare.
#[cfg(feature = "redis")]
struct Guard;

#[cfg(feature = "redis")]
impl Open for Guard {
    type Store = crate::RedisStore;

    async fn open(ttl: Duration, limits: Limits) -> Option<crate::RedisStore> {
        let store = super::cluster_store(ttl, true).await;
        store.map(|store| store.limits(limits))
    }

    fn id(store: &crate::RedisStore, name: &str, user: &str) -> String {
        Cluster::id(store, name, user)
    }
}

/// A module `$store` with one test per case, run against `$open`.
macro_rules! backend_contract {
    ($store:ident, $open:ty) => {
        mod $store {
            backend_contract!(@cases $open;
                room_operations_of_a_missing_session_are_not_found,
                attached_sessions_know_their_node,
                a_token_hash_one_byte_off_claims_nothing,
                rooms_are_joined_listed_and_left,
                room_members_span_every_session_and_skip_the_gone,
                removing_a_session_takes_it_out_of_its_rooms,
                expired_sessions_leave_their_rooms,
                remove_user_sessions_removes_every_session_of_the_user,
                room_limits_are_checked_and_nothing_is_written,
                concurrent_joins_respect_the_room_limit,
            );
        }
    };
    (@cases $open:ty; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                super::$case::<$open>().await;
            }
        )*
    };
}

backend_contract!(memory, super::Memory);
backend_contract!(any_memory, super::AnyMemory);
#[cfg(feature = "redis")]
backend_contract!(redis, super::Redis);
#[cfg(feature = "redis")]
backend_contract!(any_redis, super::AnyRedis);
#[cfg(feature = "redis")]
backend_contract!(cluster, super::Cluster);
#[cfg(feature = "redis")]
backend_contract!(guard, super::Guard);

async fn session<S: SessionStore>(store: &S, id: &str) -> Session {
    store
        .get_session(id)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("session {id} should exist"))
}

fn ids(sessions: &[Session]) -> BTreeSet<String> {
    sessions.iter().map(|s| s.id.clone()).collect()
}

/// Requires every room operation, and the node lookup, of session `id` to be `NotFound`.
async fn assert_rooms_not_found<S: Backend>(store: &S, id: &str) {
    for result in [
        store.join_room(id, "lobby").await.map(drop),
        store.leave_room(id, "lobby").await.map(drop),
        store.session_rooms(id).await.map(drop),
        store.session_node(id).await.map(drop),
    ] {
        match result {
            Err(Error::NotFound { id: got }) => assert_eq!(got, id),
            other => panic!("expected NotFound for {id:?}, got {other:?}"),
        }
    }
    assert!(store.room_members("lobby").await.unwrap().is_empty());
}

async fn room_operations_of_a_missing_session_are_not_found<B: Open>() {
    let ttl = Duration::from_millis(300);
    let Some(store) = B::open(ttl, Limits::default()).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    let c2 = B::id(&store, "c2", "alice");
    // Never created.
    assert_rooms_not_found(&store, &B::id(&store, "ghost", "alice")).await;
    // Removed.
    store.create_session(c1.as_str(), "alice").await.unwrap();
    store.remove_session(c1.as_str()).await.unwrap();
    assert_rooms_not_found(&store, c1.as_str()).await;
    // Expired.
    store.create_session(c2.as_str(), "alice").await.unwrap();
    sleep(ttl + Duration::from_millis(150)).await;
    assert_rooms_not_found(&store, c2.as_str()).await;
}

fn set_of<const N: usize>(ids: [&str; N]) -> BTreeSet<String> {
    ids.iter().map(|id| (*id).to_owned()).collect()
}

// ---------------------------------------------------------------------------------------------
// The hub's state: nodes and rooms

fn members_of(members: &[crate::hub::Member]) -> BTreeSet<(String, String)> {
    members
        .iter()
        .map(|member| (member.session_id.clone(), member.user_id.clone()))
        .collect()
}

fn pair(id: &str, user: &str) -> (String, String) {
    (id.to_owned(), user.to_owned())
}

async fn attached_sessions_know_their_node<B: Open>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    let c2 = B::id(&store, "c2", "alice");
    store
        .create_attached_session(c1.as_str(), "alice", &Attach::node("node-1"))
        .await
        .unwrap();
    store.create_session(c2.as_str(), "alice").await.unwrap();
    assert_eq!(
        store.session_node(c1.as_str()).await.unwrap().as_deref(),
        Some("node-1")
    );
    assert_eq!(store.session_node(c2.as_str()).await.unwrap(), None);
    // The node is not data, and writes keep it.
    store
        .set_session_data(c1.as_str(), "k", json!(1))
        .await
        .unwrap();
    assert_eq!(session(&store, c1.as_str()).await.data.len(), 1);
    store.clear_session_data(c1.as_str()).await.unwrap();
    assert_eq!(
        store.session_node(c1.as_str()).await.unwrap().as_deref(),
        Some("node-1")
    );
    assert!(matches!(
        store
            .create_attached_session(c1.as_str(), "bob", &Attach::node("node-2"))
            .await,
        Err(Error::AlreadyExists { .. })
    ));
}

/// A claim whose token hash differs from the kept one in a single byte, wherever it is and
/// whichever bits differ, is refused and leaves the session as it was; the kept hash claims it.
async fn a_token_hash_one_byte_off_claims_nothing<B: Open>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    let kept = TokenHash([0x5a; 32]);
    let next = TokenHash([0xa5; 32]);
    store
        .create_attached_session(c1.as_str(), "alice", &Attach::node("node-1").token(kept))
        .await
        .unwrap();
    for at in 0..32 {
        for flip in [0x01, 0x10, 0x80, 0xff] {
            let mut presented = kept;
            presented.0[at] ^= flip;
            let claim = Claim::new(c1.as_str(), presented, "alice", next, "node-2");
            let claimed = store.claim_session(&claim).await.unwrap();
            assert!(
                matches!(claimed, Claimed::Refused(Refusal::Token)),
                "byte {at} ^ {flip:#04x} was not refused as a wrong token"
            );
        }
    }
    assert_eq!(
        store.session_node(c1.as_str()).await.unwrap().as_deref(),
        Some("node-1"),
        "a refused claim moved the session"
    );
    match store
        .claim_session(&Claim::new(c1.as_str(), kept, "alice", next, "node-2"))
        .await
        .unwrap()
    {
        Claimed::Resumed(resumed) => {
            assert_eq!(resumed.epoch, 2);
            assert_eq!(resumed.previous_node.as_deref(), Some("node-1"));
        }
        Claimed::Refused(refusal) => panic!("the kept hash was refused: {}", refusal.as_str()),
    }
}

async fn rooms_are_joined_listed_and_left<B: Open>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    store.create_session(c1.as_str(), "alice").await.unwrap();
    assert!(store.join_room(c1.as_str(), "b").await.unwrap());
    assert!(store.join_room(c1.as_str(), "a").await.unwrap());
    assert!(
        !store.join_room(c1.as_str(), "a").await.unwrap(),
        "joined twice"
    );
    assert_eq!(store.session_rooms(c1.as_str()).await.unwrap(), ["a", "b"]);
    assert_eq!(
        members_of(&store.room_members("a").await.unwrap()),
        BTreeSet::from([pair(c1.as_str(), "alice")])
    );
    // Rooms are not data: the session's keys and their limit do not see them.
    assert!(session(&store, c1.as_str()).await.data.is_empty());
    store.clear_session_data(c1.as_str()).await.unwrap();
    assert_eq!(store.session_rooms(c1.as_str()).await.unwrap(), ["a", "b"]);

    assert!(store.leave_room(c1.as_str(), "a").await.unwrap());
    assert!(
        !store.leave_room(c1.as_str(), "a").await.unwrap(),
        "left twice"
    );
    assert!(!store.leave_room(c1.as_str(), "never").await.unwrap());
    assert_eq!(store.session_rooms(c1.as_str()).await.unwrap(), ["b"]);
    assert!(store.room_members("a").await.unwrap().is_empty());
    assert!(store.leave_room(c1.as_str(), "b").await.unwrap());
    assert!(store.session_rooms(c1.as_str()).await.unwrap().is_empty());
    assert!(store.room_members("b").await.unwrap().is_empty());
}

async fn room_members_span_every_session_and_skip_the_gone<B: Open>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    let c2 = B::id(&store, "c2", "alice");
    let c3 = B::id(&store, "c3", "bob");
    let c4 = B::id(&store, "c4", "carol");
    for (id, user) in [
        (c1.as_str(), "alice"),
        (c2.as_str(), "alice"),
        (c3.as_str(), "bob"),
        (c4.as_str(), "carol"),
    ] {
        store.create_session(id, user).await.unwrap();
    }
    for id in [c1.as_str(), c2.as_str(), c3.as_str()] {
        store.join_room(id, "lobby").await.unwrap();
    }
    store.join_room(c4.as_str(), "elsewhere").await.unwrap();
    assert_eq!(
        members_of(&store.room_members("lobby").await.unwrap()),
        BTreeSet::from([
            pair(c1.as_str(), "alice"),
            pair(c2.as_str(), "alice"),
            pair(c3.as_str(), "bob")
        ])
    );
    store.remove_session(c2.as_str()).await.unwrap();
    assert_eq!(
        members_of(&store.room_members("lobby").await.unwrap()),
        BTreeSet::from([pair(c1.as_str(), "alice"), pair(c3.as_str(), "bob")])
    );
    assert!(store.room_members("nobody-here").await.unwrap().is_empty());
}

async fn removing_a_session_takes_it_out_of_its_rooms<B: Open>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    let c2 = B::id(&store, "c2", "bob");
    store.create_session(c1.as_str(), "alice").await.unwrap();
    store.create_session(c2.as_str(), "bob").await.unwrap();
    for room in ["r1", "r2"] {
        store.join_room(c1.as_str(), room).await.unwrap();
    }
    store.join_room(c2.as_str(), "r2").await.unwrap();
    store.remove_session(c1.as_str()).await.unwrap();
    assert!(store.room_members("r1").await.unwrap().is_empty());
    assert_eq!(
        members_of(&store.room_members("r2").await.unwrap()),
        BTreeSet::from([pair(c2.as_str(), "bob")])
    );
    // A new session with the old id starts in no room.
    store.create_session(c1.as_str(), "alice").await.unwrap();
    assert!(store.session_rooms(c1.as_str()).await.unwrap().is_empty());
    assert!(store.room_members("r1").await.unwrap().is_empty());
}

async fn expired_sessions_leave_their_rooms<B: Open>() {
    let ttl = Duration::from_millis(300);
    let Some(store) = B::open(ttl, Limits::default()).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    let c2 = B::id(&store, "c2", "bob");
    store.create_session(c1.as_str(), "alice").await.unwrap();
    store.create_session(c2.as_str(), "bob").await.unwrap();
    store.join_room(c1.as_str(), "lobby").await.unwrap();
    store.join_room(c2.as_str(), "lobby").await.unwrap();
    // Only c2 is kept alive.
    for _ in 0..3 {
        sleep(ttl / 3).await;
        assert!(
            store
                .touch(&[c2.as_str().to_owned()])
                .await
                .unwrap()
                .is_empty()
        );
    }
    sleep(Duration::from_millis(150)).await;
    assert_eq!(
        members_of(&store.room_members("lobby").await.unwrap()),
        BTreeSet::from([pair(c2.as_str(), "bob")])
    );
    // An expired id created again (by its user: on a cluster an id carries its user's slot
    // tag) starts in no room.
    store.create_session(c1.as_str(), "alice").await.unwrap();
    assert!(store.session_rooms(c1.as_str()).await.unwrap().is_empty());
    assert_eq!(
        members_of(&store.room_members("lobby").await.unwrap()),
        BTreeSet::from([pair(c2.as_str(), "bob")])
    );
}

async fn remove_user_sessions_removes_every_session_of_the_user<B: Open>() {
    let Some(store) = B::open(LONG, Limits::default()).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    let c2 = B::id(&store, "c2", "alice");
    let c3 = B::id(&store, "c3", "bob");
    for (id, user) in [
        (c1.as_str(), "alice"),
        (c2.as_str(), "alice"),
        (c3.as_str(), "bob"),
    ] {
        store.create_session(id, user).await.unwrap();
        store.join_room(id, "lobby").await.unwrap();
    }
    let removed: BTreeSet<String> = store
        .remove_user_sessions("alice")
        .await
        .unwrap()
        .into_iter()
        .collect();
    assert_eq!(removed, set_of([c1.as_str(), c2.as_str()]));
    for id in [c1.as_str(), c2.as_str()] {
        assert_eq!(store.get_session(id).await.unwrap(), None);
    }
    assert!(store.get_user_sessions("alice").await.unwrap().is_empty());
    assert_eq!(
        members_of(&store.room_members("lobby").await.unwrap()),
        BTreeSet::from([pair(c3.as_str(), "bob")])
    );
    assert_eq!(
        ids(&store.get_user_sessions("bob").await.unwrap()),
        set_of([c3.as_str()])
    );
    assert!(
        store
            .remove_user_sessions("alice")
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .remove_user_sessions("nobody")
            .await
            .unwrap()
            .is_empty()
    );
}

async fn room_limits_are_checked_and_nothing_is_written<B: Open>() {
    let limits = Limits::default().max_rooms(2).max_room_len(8);
    let Some(store) = B::open(LONG, limits).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    store.create_session(c1.as_str(), "alice").await.unwrap();
    assert!(matches!(
        store.join_room(c1.as_str(), "").await,
        Err(Error::InvalidInput(InvalidInput::EmptyRoom))
    ));
    assert!(matches!(
        store.join_room(c1.as_str(), "123456789").await,
        Err(Error::InvalidInput(InvalidInput::RoomTooLong {
            len: 9,
            max: 8,
            ..
        }))
    ));
    assert!(matches!(
        store.room_members("").await,
        Err(Error::InvalidInput(InvalidInput::EmptyRoom))
    ));
    store.join_room(c1.as_str(), "a").await.unwrap();
    store.join_room(c1.as_str(), "b").await.unwrap();
    let err = store.join_room(c1.as_str(), "c").await.unwrap_err();
    assert!(
        matches!(&err, Error::InvalidInput(InvalidInput::TooManyRooms { id, max: 2 }) if id == c1.as_str()),
        "{err:?}"
    );
    // Nothing written: not a member of the third room, still in the first two.
    assert!(store.room_members("c").await.unwrap().is_empty());
    assert_eq!(store.session_rooms(c1.as_str()).await.unwrap(), ["a", "b"]);
    // Joining a room it is in already is no new room.
    assert!(!store.join_room(c1.as_str(), "a").await.unwrap());
}

async fn concurrent_joins_respect_the_room_limit<B: Open>() {
    let Some(store) = B::open(LONG, Limits::default().max_rooms(5)).await else {
        return;
    };
    let c1 = B::id(&store, "c1", "alice");
    store.create_session(c1.as_str(), "alice").await.unwrap();
    let joins = (0..20).map(|i| {
        let (store, c1) = (store.clone(), c1.clone());
        tokio::spawn(async move { store.join_room(c1.as_str(), &format!("room{i}")).await })
    });
    let mut joined = 0;
    for join in joins {
        match join.await.unwrap() {
            Ok(true) => joined += 1,
            Err(Error::InvalidInput(InvalidInput::TooManyRooms { .. })) => {}
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(joined, 5);
    assert_eq!(store.session_rooms(c1.as_str()).await.unwrap().len(), 5);
}
