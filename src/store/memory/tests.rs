//! Unit tests of the memory store's internals.

use std::collections::HashSet;
use std::future::Future;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::*;
use crate::error::Error;
use crate::error::InvalidInput;
use crate::session::record::now_ms;
use crate::store::SessionStore;
use serde_json::json;
use std::collections::HashMap;

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()
        .unwrap()
        .block_on(future)
}

/// Polls `done` until it holds, failing after two seconds.
fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

fn indexed(store: &MemoryStore, user_id: &str) -> Option<HashSet<String>> {
    store
        .inner
        .users
        .get(user_id)
        .map(|ids| ids.iter().cloned().collect())
}

#[test]
fn defaults() {
    let store = MemoryStore::default();
    assert_eq!(store.ttl(), DEFAULT_TTL);
    assert_eq!(store.inner.limits, Limits::default());
    assert_eq!(store.inner.sweep_interval, Duration::from_secs(60));
    assert_eq!(
        MemoryStore::with_ttl(Duration::from_secs(5))
            .inner
            .sweep_interval,
        Duration::from_secs(5)
    );
    assert_eq!(
        MemoryStore::with_ttl(Duration::ZERO).inner.sweep_interval,
        MIN_SWEEP
    );
    assert_eq!(
        MemoryStore::new()
            .sweep_interval(Duration::ZERO)
            .inner
            .sweep_interval,
        MIN_SWEEP
    );
    let debug = format!("{store:?}");
    assert!(debug.starts_with("MemoryStore {"), "{debug}");
    assert!(debug.contains("ttl: 86400s"), "{debug}");
}

#[test]
fn no_thread_until_the_first_session() {
    let store = MemoryStore::new();
    assert!(store.inner.sweeper.get().is_none());
    block_on(store.create_session("c1", "alice")).unwrap();
    assert!(matches!(store.inner.sweeper.get(), Some(Some(_))));
}

#[test]
fn the_sweep_thread_ends_when_the_last_clone_is_dropped() {
    let store = MemoryStore::new();
    block_on(store.create_session("c1", "alice")).unwrap();
    let thread = store.inner.sweeper.get().unwrap().as_ref().unwrap();
    let thread = thread.thread.lock().unwrap().take().unwrap();
    let weak = Arc::downgrade(&store.inner);

    let clone = store.clone();
    drop(store);
    std::thread::sleep(Duration::from_millis(20));
    assert!(!thread.is_finished(), "a clone still holds the store");

    drop(clone);
    // The default interval is 60 s: only the closed channel can end the thread this soon.
    eventually("the sweep thread ends", || thread.is_finished());
    thread.join().expect("the sweep thread did not panic");
    assert!(weak.upgrade().is_none());
}

#[test]
fn reconfiguring_restarts_the_sweep_thread() {
    let store = MemoryStore::with_ttl(Duration::from_millis(30));
    block_on(store.create_session("c1", "alice")).unwrap();
    let old = store.inner.sweeper.get().unwrap().as_ref().unwrap();
    let old = old.thread.lock().unwrap().take().unwrap();

    let store = store.sweep_interval(Duration::from_millis(10));
    eventually("the old sweep thread ends", || old.is_finished());
    // The session is still there, and the new thread reclaims it.
    assert!(matches!(store.inner.sweeper.get(), Some(Some(_))));
    eventually("the expired session is reclaimed", || {
        store.inner.sessions.is_empty()
    });
}

#[test]
fn the_sweep_reclaims_expired_sessions_and_their_index() {
    let store =
        MemoryStore::with_ttl(Duration::from_millis(50)).sweep_interval(Duration::from_millis(10));
    block_on(async {
        store.create_session("c1", "alice").await.unwrap();
        store.create_session("c2", "alice").await.unwrap();
        store.create_session("c3", "bob").await.unwrap();
    });
    assert_eq!(store.len(), 3);
    eventually("every session is reclaimed", || {
        store.inner.sessions.is_empty() && store.inner.users.is_empty()
    });
    assert!(store.is_empty());
    assert_eq!(store.len(), 0);
}

#[test]
fn len_counts_only_live_sessions() {
    // A sweep that never runs during the test: only liveness hides the session.
    let store =
        MemoryStore::with_ttl(Duration::from_millis(40)).sweep_interval(Duration::from_secs(3600));
    block_on(store.create_session("c1", "alice")).unwrap();
    assert_eq!(store.len(), 1);
    assert!(!store.is_empty());
    std::thread::sleep(Duration::from_millis(60));
    assert_eq!(store.inner.sessions.len(), 1, "not swept yet");
    assert_eq!(store.len(), 0);
    assert!(store.is_empty());
}

#[test]
fn listing_prunes_dead_ids_from_the_index() {
    let store =
        MemoryStore::with_ttl(Duration::from_millis(40)).sweep_interval(Duration::from_secs(3600));
    block_on(async {
        store.create_session("c1", "alice").await.unwrap();
        store.create_session("c2", "alice").await.unwrap();
        std::thread::sleep(Duration::from_millis(60));
        store.create_session("c3", "alice").await.unwrap();
        let listed = store.get_user_sessions("alice").await.unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].id, "c3");
    });
    assert_eq!(
        indexed(&store, "alice"),
        Some(HashSet::from(["c3".to_owned()]))
    );
}

#[test]
fn an_expired_id_taken_by_another_user_leaves_the_old_users_index() {
    let store =
        MemoryStore::with_ttl(Duration::from_millis(40)).sweep_interval(Duration::from_secs(3600));
    block_on(async {
        store.create_session("c1", "alice").await.unwrap();
        std::thread::sleep(Duration::from_millis(60));
        store.create_session("c1", "bob").await.unwrap();
    });
    assert_eq!(indexed(&store, "alice"), None);
    assert_eq!(
        indexed(&store, "bob"),
        Some(HashSet::from(["c1".to_owned()]))
    );
}

#[test]
fn a_failed_create_leaves_no_empty_user_set() {
    let store = MemoryStore::new();
    block_on(async {
        store.create_session("c1", "alice").await.unwrap();
        let err = store.create_session("c1", "bob").await.unwrap_err();
        assert!(matches!(err, Error::AlreadyExists { .. }), "{err:?}");
    });
    assert_eq!(indexed(&store, "bob"), None);
    assert_eq!(store.inner.users.len(), 1);
}

#[test]
fn removal_empties_the_index() {
    let store = MemoryStore::new();
    block_on(async {
        store.create_session("c1", "alice").await.unwrap();
        store.remove_session("c1").await.unwrap();
    });
    assert!(store.inner.users.is_empty());
    assert!(store.inner.sessions.is_empty());
}

#[test]
fn merging_replaces_held_keys_and_adds_fresh_ones() {
    let store = MemoryStore::new().limits(Limits::default().max_keys(4));
    let data = |value: Value| match value {
        Value::Object(map) => map,
        _ => unreachable!("an object"),
    };
    block_on(async {
        store.create_session("c1", "alice").await.unwrap();
        let first = data(json!({"a": 1, "b": [2], "c": {"d": 3}}));
        store.update_session_data("c1", first).await.unwrap();
        // Held keys only.
        let held = data(json!({"a": "one", "c": null}));
        store.update_session_data("c1", held).await.unwrap();
        // Held and fresh, up to the limit exactly.
        let mixed = data(json!({"b": 20, "e": 5}));
        store.update_session_data("c1", mixed).await.unwrap();
        let session = store.get_session("c1").await.unwrap().unwrap();
        assert_eq!(
            Value::Object(session.data),
            json!({"a": "one", "b": 20, "c": null, "e": 5})
        );
        // Past the limit: nothing written, not even the held key.
        let over = data(json!({"a": 0, "f": 6}));
        let err = store.update_session_data("c1", over).await.unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidInput(InvalidInput::TooManyKeys { max: 4, .. })
            ),
            "{err:?}"
        );
        assert_eq!(
            store.get_session_data("c1", "a").await.unwrap(),
            Some(json!("one"))
        );
        // Setting a held key at the limit replaces it; a fresh one is refused.
        store.set_session_data("c1", "e", json!(50)).await.unwrap();
        let err = store
            .set_session_data("c1", "f", json!(6))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Error::InvalidInput(InvalidInput::TooManyKeys { max: 4, .. })
            ),
            "{err:?}"
        );
        assert_eq!(
            store.get_session_data("c1", "e").await.unwrap(),
            Some(json!(50))
        );
        assert_eq!(store.get_session_data("c1", "f").await.unwrap(), None);
    });
}

#[test]
fn writes_and_touches_set_last_active_and_extend_the_ttl() {
    let store =
        MemoryStore::with_ttl(Duration::from_millis(300)).sweep_interval(Duration::from_secs(3600));
    block_on(async {
        store.create_session("c1", "alice").await.unwrap();
        let created = store.get_session("c1").await.unwrap().unwrap();
        std::thread::sleep(Duration::from_millis(200));
        let before = now_ms();
        assert_eq!(
            store
                .touch(&["c1".to_owned(), "gone".to_owned()])
                .await
                .unwrap(),
            vec!["gone".to_owned()]
        );
        let after = now_ms();
        let touched = store.get_session("c1").await.unwrap().unwrap();
        assert!(
            (before..=after).contains(&touched.last_active),
            "{before} <= {} <= {after}",
            touched.last_active
        );
        assert!(touched.last_active >= created.last_active);
        // Past the first TTL, alive thanks to the touch.
        std::thread::sleep(Duration::from_millis(200));
        assert!(store.get_session("c1").await.unwrap().is_some());
        let before = now_ms();
        store.set_session_data("c1", "k", json!(1)).await.unwrap();
        let written = store.get_session("c1").await.unwrap().unwrap();
        assert!(written.last_active >= before);
    });
}

#[test]
fn huge_ttls_do_not_overflow() {
    let store = MemoryStore::with_ttl(Duration::MAX);
    block_on(async {
        store.create_session("c1", "alice").await.unwrap();
        store.set_session_data("c1", "k", json!(1)).await.unwrap();
        assert_eq!(
            store.touch(&["c1".to_owned()]).await.unwrap(),
            Vec::<String>::new()
        );
    });
    assert_eq!(store.len(), 1);
}

/// Four threads racing to create, remove, list and touch the same few ids, for the same
/// and for different users, in rounds; `between_rounds` runs while they all wait.
fn race(store: &MemoryStore, rounds: usize, between_rounds: impl Fn(&MemoryStore)) {
    const THREADS: usize = 4;
    const IDS: [&str; 3] = ["c1", "c2", "c3"];
    const USERS: [&str; 2] = ["alice", "bob"];
    let start = Arc::new(std::sync::Barrier::new(THREADS + 1));
    let done = Arc::new(std::sync::Barrier::new(THREADS + 1));
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = store.clone();
            let (start, done) = (Arc::clone(&start), Arc::clone(&done));
            std::thread::spawn(move || {
                block_on(async {
                    for round in 0..rounds {
                        start.wait();
                        for i in 0..200usize {
                            let id = IDS[(i + t) % IDS.len()];
                            let user = USERS[(i / 8 + t + round) % USERS.len()];
                            match (i + t) % 4 {
                                0 | 1 => drop(store.create_session(id, user).await),
                                2 => store.remove_session(id).await.unwrap(),
                                _ if i % 2 == 0 => {
                                    drop(store.get_user_sessions(user).await.unwrap());
                                }
                                _ => drop(store.touch(&[id.to_owned()]).await.unwrap()),
                            }
                        }
                        done.wait();
                    }
                });
            })
        })
        .collect();
    for _ in 0..rounds {
        start.wait();
        done.wait();
        between_rounds(store);
    }
    for thread in threads {
        thread.join().unwrap();
    }
}

#[test]
fn racing_creates_and_removes_keep_the_index_true() {
    let store = MemoryStore::new();
    race(&store, 300, |store| {
        // With every thread waiting, the index holds exactly the ids of the sessions.
        let mut expected: HashMap<String, HashSet<String>> = HashMap::new();
        for entry in store.inner.sessions.iter() {
            expected
                .entry(entry.user_id.clone())
                .or_default()
                .insert(entry.key().clone());
        }
        let actual: HashMap<String, HashSet<String>> = store
            .inner
            .users
            .iter()
            .map(|ids| (ids.key().clone(), ids.value().iter().cloned().collect()))
            .collect();
        assert_eq!(actual, expected);
    });
}

#[test]
fn racing_with_expiry_and_the_sweep_leaves_nothing_behind() {
    let store =
        MemoryStore::with_ttl(Duration::from_millis(2)).sweep_interval(Duration::from_millis(10));
    race(&store, 20, |_| {});
    eventually("every session and index entry is reclaimed", || {
        store.inner.sessions.is_empty() && store.inner.users.is_empty()
    });
}
