//! [`MemoryStore`]: sessions in the memory of this process.
//!
//! The embedded default store. It keeps the same contract as the Redis store — the same
//! [`Limits`], the same errors, the same TTL rules and the same user index — so code tested
//! against it behaves the same in production on Redis. Sessions live only as long as the
//! process, and only this process sees them.
//!
//! # TTLs
//!
//! A session expires [`ttl`](SessionStore::ttl) after its last write
//! ([`set_session_data`](SessionStore::set_session_data),
//! [`update_session_data`](SessionStore::update_session_data),
//! [`delete_session_data`](SessionStore::delete_session_data),
//! [`clear_session_data`](SessionStore::clear_session_data)) or
//! [`touch`](SessionStore::touch); each of these also sets its `last_active` time. Reads do not
//! extend a session's life. An expired session is gone for every operation the moment its TTL
//! runs out; a background thread reclaims its memory at the store's
//! [sweep interval](MemoryStore::sweep_interval). The thread starts with the first session and
//! ends as soon as the last clone of the store is dropped; it does not need a tokio runtime.
//!
//! # Concurrency
//!
//! Sessions sit in a sharded concurrent map, so operations on different sessions rarely wait
//! for each other, and each operation on one session is atomic. The methods are `async` to fit
//! [`SessionStore`], but never wait for anything but a short shard lock.
//!
//! ```
//! use serde_json::json;
//! use ws_session::{MemoryStore, SessionStore};
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let store = MemoryStore::new();
//! store.create_session("c1", "alice").await?;
//! store.set_session_data("c1", "theme", json!("dark")).await?;
//!
//! let session = store.get_session("c1").await?.expect("a live session");
//! assert_eq!(session.user_id, "alice");
//! assert_eq!(session.data["theme"], json!("dark"));
//!
//! store.remove_session("c1").await?;
//! assert!(store.is_empty());
//! # Ok::<(), ws_session::Error>(())
//! # }).unwrap();
//! ```

use std::collections::HashSet;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry as MapEntry;
use dashmap::mapref::one::RefMut;
use foldhash::SharedSeed;
use foldhash::fast::{FoldHasher, SeedableRandomState};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::session::{Session, SessionData, now_ms};
use crate::store::SessionStore;

/// The TTL of [`MemoryStore::new`]: 24 hours.
const DEFAULT_TTL: Duration = Duration::from_secs(24 * 3600);

/// The longest default sweep interval.
const MAX_DEFAULT_SWEEP: Duration = Duration::from_secs(60);

/// The shortest sweep interval the store accepts.
const MIN_SWEEP: Duration = Duration::from_millis(10);

/// How far ahead an expiry is put when `now + ttl` does not fit in an [`Instant`]: far enough
/// to be never in practice.
const FAR_FUTURE: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// Sessions in the memory of this process, with the same contract as the Redis store.
///
/// See the [module documentation](self) for TTLs and concurrency. Cloning is cheap: clones
/// share the same sessions.
///
/// ```
/// use std::time::Duration;
/// use ws_session::{Limits, MemoryStore, SessionStore};
///
/// let store = MemoryStore::with_ttl(Duration::from_secs(600))
///     .limits(Limits::default().max_keys(64))
///     .sweep_interval(Duration::from_secs(5));
/// assert_eq!(store.ttl(), Duration::from_secs(600));
/// assert!(store.is_empty());
/// assert!(format!("{store:?}").contains("max_keys: 64"));
/// ```
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    /// Session id -> session.
    sessions: DashMap<String, Entry, Keyed>,
    /// User id -> ids of the user's sessions.
    ///
    /// Lock order: a guard on this map may be held while a guard on `sessions` is taken, never
    /// the other way round. An id is only ever removed from a set while that set's guard is
    /// held and the session is seen not to be live for the user, and a session only becomes
    /// live (in `create_session`) while its user's set is held; so the set of a user always
    /// holds the id of every live session of that user. It may briefly hold dead ids, which
    /// readers skip and prune.
    users: DashMap<String, HashSet<String, Keyed>, Keyed>,
    ttl: Duration,
    limits: Limits,
    sweep_interval: Duration,
    /// The background sweep, started with the first session.
    sweeper: OnceLock<Option<Sweeper>>,
}

/// The handle of the sweep thread.
struct Sweeper {
    /// The thread waits on the other end of this channel; dropping it (with the store) wakes
    /// the thread and ends it.
    _stop: mpsc::Sender<()>,
    /// The thread itself, kept so that tests can see it end.
    #[cfg_attr(not(test), allow(dead_code))]
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// The hasher of the store's maps and sets: foldhash, keyed from the operating system's CSPRNG.
///
/// Session ids are random, but user ids and data keys may come from clients, so the keys stay
/// secret; each map and set draws its own. Much cheaper than the standard library's SipHash on
/// the short strings the store hashes on every operation.
#[derive(Clone)]
struct Keyed(SeedableRandomState);

impl Default for Keyed {
    fn default() -> Self {
        static SHARED: OnceLock<SharedSeed> = OnceLock::new();
        // `rand::random` draws from the thread-local ChaCha generator, seeded from the OS.
        let shared = SHARED.get_or_init(|| SharedSeed::from_u64(rand::random()));
        Keyed(SeedableRandomState::with_seed(rand::random(), shared))
    }
}

impl BuildHasher for Keyed {
    type Hasher = FoldHasher<'static>;

    fn build_hasher(&self) -> Self::Hasher {
        self.0.build_hasher()
    }
}

/// A guard on one session of the store.
type EntryGuard<'a> = RefMut<'a, String, Entry>;

/// One session as the store holds it.
#[derive(Clone)]
struct Entry {
    user_id: String,
    data: SessionData,
    created_at: u64,
    last_active: u64,
    expires_at: Instant,
}

impl Entry {
    fn is_live(&self, now: Instant) -> bool {
        self.expires_at > now
    }

    fn to_session(&self, id: &str) -> Session {
        Session {
            id: id.to_owned(),
            user_id: self.user_id.clone(),
            data: self.data.clone(),
            created_at: self.created_at,
            last_active: self.last_active,
        }
    }
}

impl Clone for Inner {
    /// A copy of the sessions and settings, without the sweep thread (a copy starts its own).
    fn clone(&self) -> Self {
        Inner {
            sessions: self.sessions.clone(),
            users: self.users.clone(),
            ttl: self.ttl,
            limits: self.limits,
            sweep_interval: self.sweep_interval,
            sweeper: OnceLock::new(),
        }
    }
}

impl Default for MemoryStore {
    fn default() -> Self {
        MemoryStore::new()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("MemoryStore")
            .field("ttl", &inner.ttl)
            .field("limits", &inner.limits)
            .field("sweep_interval", &inner.sweep_interval)
            .field("entries", &inner.sessions.len())
            .finish()
    }
}

impl MemoryStore {
    /// An empty store whose sessions live for 24 hours after their last write or touch.
    pub fn new() -> Self {
        MemoryStore::with_ttl(DEFAULT_TTL)
    }

    /// An empty store whose sessions live for `ttl` after their last write or touch.
    ///
    /// The sweep interval starts as `ttl`, but at most 60 seconds and at least 10 ms.
    pub fn with_ttl(ttl: Duration) -> Self {
        MemoryStore {
            inner: Arc::new(Inner {
                sessions: DashMap::with_hasher(Keyed::default()),
                users: DashMap::with_hasher(Keyed::default()),
                ttl,
                limits: Limits::default(),
                sweep_interval: ttl.clamp(MIN_SWEEP, MAX_DEFAULT_SWEEP),
                sweeper: OnceLock::new(),
            }),
        }
    }

    /// Sets the size limits the store enforces (default [`Limits::default`]).
    ///
    /// Configure a store before cloning it: called on a store that has clones, this returns a
    /// separate store holding a copy of the sessions.
    #[must_use]
    pub fn limits(self, limits: Limits) -> Self {
        self.configure(|inner| inner.limits = limits)
    }

    /// Sets how often the background sweep reclaims the memory of expired sessions (at least
    /// 10 ms). Expired sessions are invisible at once whatever the interval; it only bounds
    /// how long their memory stays taken.
    ///
    /// Configure a store before cloning it: called on a store that has clones, this returns a
    /// separate store holding a copy of the sessions.
    #[must_use]
    pub fn sweep_interval(self, interval: Duration) -> Self {
        self.configure(|inner| inner.sweep_interval = interval.max(MIN_SWEEP))
    }

    /// The number of live sessions. Walks the whole store.
    pub fn len(&self) -> usize {
        let now = Instant::now();
        self.inner
            .sessions
            .iter()
            .filter(|entry| entry.is_live(now))
            .count()
    }

    /// `true` when the store holds no live session.
    pub fn is_empty(&self) -> bool {
        let now = Instant::now();
        !self.inner.sessions.iter().any(|entry| entry.is_live(now))
    }

    fn configure(mut self, change: impl FnOnce(&mut Inner)) -> Self {
        let inner = Arc::make_mut(&mut self.inner);
        change(inner);
        // A running sweep keeps its old interval: stop it (dropping its channel wakes it), and
        // start a new one if there is anything to sweep.
        inner.sweeper.take();
        if !inner.sessions.is_empty() {
            self.start_sweeper();
        }
        self
    }

    /// Starts the sweep thread unless it runs already.
    fn start_sweeper(&self) {
        self.inner.sweeper.get_or_init(|| {
            let (stop, wait) = mpsc::channel();
            let inner = Arc::downgrade(&self.inner);
            let interval = self.inner.sweep_interval;
            let spawned = std::thread::Builder::new()
                .name("ws-session-sweep".to_owned())
                .spawn(move || sweep_until_dropped(&inner, &wait, interval));
            match spawned {
                Ok(thread) => Some(Sweeper {
                    _stop: stop,
                    thread: Mutex::new(Some(thread)),
                }),
                Err(error) => {
                    // Expired sessions stay invisible; only their memory is kept longer.
                    tracing::warn!(%error, "cannot start the session sweep thread");
                    None
                }
            }
        });
    }
}

/// The body of the sweep thread: every `interval`, drops the expired sessions of the store,
/// until the store is gone.
fn sweep_until_dropped(inner: &Weak<Inner>, wait: &mpsc::Receiver<()>, interval: Duration) {
    loop {
        match wait.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            // Nobody sends: the channel only disconnects, when the store is dropped.
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        inner.sweep();
    }
}

impl Inner {
    /// The expiry of a session written at `now`.
    fn expiry(&self, now: Instant) -> Instant {
        now.checked_add(self.ttl)
            .unwrap_or_else(|| now + FAR_FUTURE)
    }

    /// Marks a session written at `now`, restarting its TTL, with `active` (ms since the Unix
    /// epoch) as its last-active time.
    ///
    /// `now` must be read while the session's guard is held: then a session that some other
    /// operation has seen expired can never come back to life. `active` is wall-clock time and
    /// decides nothing; like the Redis store, an operation reads it once, before it starts.
    fn refresh(&self, entry: &mut Entry, now: Instant, active: u64) {
        entry.last_active = active;
        entry.expires_at = self.expiry(now);
    }

    /// The guard on session `id` if it is live, and the instant it was seen live.
    fn live_mut(&self, id: &str) -> Option<(EntryGuard<'_>, Instant)> {
        let entry = self.sessions.get_mut(id)?;
        let now = Instant::now();
        entry.is_live(now).then_some((entry, now))
    }

    /// Runs `write` on session `id` if it is live, refreshing its TTL after a successful write.
    ///
    /// The guard is released before this returns, so whatever `write` hands back (values it
    /// replaced, say) is dropped by the caller without holding up the session's shard.
    fn write<T>(&self, id: &str, write: impl FnOnce(&mut Entry) -> Result<T>) -> Result<T> {
        let active = now_ms();
        let (mut entry, now) = self.live_mut(id).ok_or_else(|| Error::not_found(id))?;
        let out = write(&mut entry)?;
        self.refresh(&mut entry, now, active);
        Ok(out)
    }

    /// Runs `read` on session `id` if it is live.
    fn read<T>(&self, id: &str, read: impl FnOnce(&Entry) -> T) -> Option<T> {
        let entry = self.sessions.get(id)?;
        entry.is_live(Instant::now()).then(|| read(&entry))
    }

    /// Inserts `entries` into `data`, unless that would take it past the key limit.
    ///
    /// Returns what `data` no longer needs (the values it replaced), for the caller to drop
    /// once the session's guard is released.
    fn merge(
        &self,
        id: &str,
        data: &mut SessionData,
        mut entries: SessionData,
    ) -> Result<SessionData> {
        // Only a session that could pass the limit pays for counting the keys it lacks.
        if data.len().saturating_add(entries.len()) > self.limits.max_keys {
            let fresh = entries
                .keys()
                .filter(|key| !data.contains_key(*key))
                .count();
            if fresh > 0 {
                self.limits.check_key_count(id, data.len() + fresh)?;
            }
        }
        // Keys the session holds take their new values in place; the old values go back into
        // `entries`, whose keys are not needed.
        let mut fresh = false;
        for (key, value) in &mut entries {
            match data.get_mut(key) {
                Some(held) => std::mem::swap(held, value),
                None => fresh = true,
            }
        }
        if fresh {
            for (key, value) in std::mem::take(&mut entries) {
                // The keys found above hold their new values already.
                if let serde_json::map::Entry::Vacant(vacant) = data.entry(key) {
                    vacant.insert(value);
                }
            }
        }
        Ok(entries)
    }

    /// Drops `id` from the index of `user_id` unless it is a live session of that user, and
    /// drops the user's set when it is left empty.
    fn prune(&self, user_id: &str, id: &str) {
        let emptied = match self.users.get_mut(user_id) {
            Some(mut ids) => {
                // Users before sessions: the lock order.
                let live = self
                    .read(id, |entry| entry.user_id == user_id)
                    .unwrap_or(false);
                if !live {
                    ids.remove(id);
                }
                ids.is_empty()
            }
            None => false,
        };
        if emptied {
            self.users.remove_if(user_id, |_, ids| ids.is_empty());
        }
    }

    /// Drops every expired session and its entry in the user index.
    fn sweep(&self) {
        let now = Instant::now();
        let mut dead = Vec::new();
        self.sessions.retain(|id, entry| {
            let live = entry.is_live(now);
            if !live {
                dead.push((std::mem::take(&mut entry.user_id), id.clone()));
            }
            live
        });
        for (user_id, id) in &dead {
            self.prune(user_id, id);
        }
        if !dead.is_empty() {
            tracing::trace!(expired = dead.len(), "expired sessions swept");
        }
    }
}

impl SessionStore for MemoryStore {
    fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    async fn create_session(&self, id: &str, user_id: &str) -> Result<Session> {
        let inner = &*self.inner;
        inner.limits.check_session_id(id)?;
        inner.limits.check_user_id(user_id)?;
        let created = now_ms();
        let mut displaced = None;
        let result = {
            // The user's set is held while the session goes in, so that a concurrent prune of
            // the same id either runs before (and the id is added back below) or sees it live.
            let mut ids = match inner.users.get_mut(user_id) {
                Some(ids) => ids,
                None => inner.users.entry(user_id.to_owned()).or_default(),
            };
            let fresh = |now| Entry {
                user_id: user_id.to_owned(),
                data: SessionData::new(),
                created_at: created,
                last_active: created,
                expires_at: inner.expiry(now),
            };
            match inner.sessions.entry(id.to_owned()) {
                MapEntry::Occupied(mut taken) => {
                    let now = Instant::now();
                    if taken.get().is_live(now) {
                        Err(Error::already_exists(id))
                    } else {
                        // An expired session that the sweep has not reclaimed yet.
                        let old = taken.insert(fresh(now));
                        if old.user_id != user_id {
                            displaced = Some(old.user_id);
                        }
                        Ok(())
                    }
                }
                MapEntry::Vacant(vacant) => {
                    vacant.insert(fresh(Instant::now()));
                    Ok(())
                }
            }
            .map(|()| {
                ids.insert(id.to_owned());
            })
        };
        if let Err(err) = result {
            // `entry` may have made an empty set for this user.
            inner.users.remove_if(user_id, |_, ids| ids.is_empty());
            return Err(err);
        }
        if let Some(old_user) = displaced {
            inner.prune(&old_user, id);
        }
        self.start_sweeper();
        Ok(Session::new(id, user_id, created))
    }

    async fn get_session(&self, id: &str) -> Result<Option<Session>> {
        self.inner.limits.check_session_id(id)?;
        Ok(self.inner.read(id, |entry| entry.to_session(id)))
    }

    async fn set_session_data(&self, id: &str, key: &str, value: Value) -> Result<()> {
        let limits = &self.inner.limits;
        limits.check_session_id(id)?;
        limits.check_key(key)?;
        limits.check_value(key, &value)?;
        let replaced = self.inner.write(id, |entry| {
            if let Some(held) = entry.data.get_mut(key) {
                return Ok(Some(std::mem::replace(held, value)));
            }
            limits.check_key_count(id, entry.data.len() + 1)?;
            entry.data.insert(key.to_owned(), value);
            Ok(None)
        })?;
        // Dropped here, with the session's guard released.
        drop(replaced);
        Ok(())
    }

    async fn get_session_data(&self, id: &str, key: &str) -> Result<Option<Value>> {
        let limits = &self.inner.limits;
        limits.check_session_id(id)?;
        limits.check_key(key)?;
        self.inner
            .read(id, |entry| entry.data.get(key).cloned())
            .ok_or_else(|| Error::not_found(id))
    }

    async fn update_session_data(&self, id: &str, data: SessionData) -> Result<()> {
        let inner = &*self.inner;
        let limits = &inner.limits;
        limits.check_session_id(id)?;
        limits.check_key_count(id, data.len())?;
        limits.check_entries(&data)?;
        let replaced = inner.write(id, |entry| inner.merge(id, &mut entry.data, data))?;
        // Dropped here, with the session's guard released.
        drop(replaced);
        Ok(())
    }

    async fn delete_session_data(&self, id: &str, key: &str) -> Result<()> {
        let limits = &self.inner.limits;
        limits.check_session_id(id)?;
        limits.check_key(key)?;
        let removed = self.inner.write(id, |entry| Ok(entry.data.remove(key)))?;
        // Dropped here, with the session's guard released.
        drop(removed);
        Ok(())
    }

    async fn clear_session_data(&self, id: &str) -> Result<()> {
        self.inner.limits.check_session_id(id)?;
        let cleared = self
            .inner
            .write(id, |entry| Ok(std::mem::take(&mut entry.data)))?;
        // Dropped here, with the session's guard released.
        drop(cleared);
        Ok(())
    }

    async fn remove_session(&self, id: &str) -> Result<()> {
        let inner = &*self.inner;
        inner.limits.check_session_id(id)?;
        if let Some((_, entry)) = inner.sessions.remove(id) {
            // Lets the race tests hit the window between the two maps more often.
            #[cfg(test)]
            std::thread::yield_now();
            // A create of the same id may have slipped in since; `prune` keeps it if so.
            inner.prune(&entry.user_id, id);
        }
        Ok(())
    }

    async fn get_user_sessions(&self, user_id: &str) -> Result<Vec<Session>> {
        let inner = &*self.inner;
        inner.limits.check_user_id(user_id)?;
        let mut sessions = Vec::new();
        let emptied = match inner.users.get_mut(user_id) {
            Some(mut ids) => {
                // Users before sessions: the lock order.
                ids.retain(|id| {
                    let session = inner
                        .read(id, |entry| {
                            (entry.user_id == user_id).then(|| entry.to_session(id))
                        })
                        .flatten();
                    let live = session.is_some();
                    sessions.extend(session);
                    live
                });
                ids.is_empty()
            }
            None => false,
        };
        if emptied {
            inner.users.remove_if(user_id, |_, ids| ids.is_empty());
        }
        Ok(sessions)
    }

    async fn touch(&self, ids: &[String]) -> Result<Vec<String>> {
        let inner = &*self.inner;
        for id in ids {
            inner.limits.check_session_id(id)?;
        }
        // One wall-clock time for the whole batch, as the Redis store sends it.
        let active = now_ms();
        let missing = ids
            .iter()
            .filter(|id| match inner.live_mut(id) {
                Some((mut entry, now)) => {
                    inner.refresh(&mut entry, now, active);
                    false
                }
                None => true,
            })
            .cloned()
            .collect();
        Ok(missing)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::InvalidInput;
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
        let store = MemoryStore::with_ttl(Duration::from_millis(50))
            .sweep_interval(Duration::from_millis(10));
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
        let store = MemoryStore::with_ttl(Duration::from_millis(40))
            .sweep_interval(Duration::from_secs(3600));
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
        let store = MemoryStore::with_ttl(Duration::from_millis(40))
            .sweep_interval(Duration::from_secs(3600));
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
        let store = MemoryStore::with_ttl(Duration::from_millis(40))
            .sweep_interval(Duration::from_secs(3600));
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
        let store = MemoryStore::with_ttl(Duration::from_millis(300))
            .sweep_interval(Duration::from_secs(3600));
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
        let store = MemoryStore::with_ttl(Duration::from_millis(2))
            .sweep_interval(Duration::from_millis(10));
        race(&store, 20, |_| {});
        eventually("every session and index entry is reclaimed", || {
            store.inner.sessions.is_empty() && store.inner.users.is_empty()
        });
    }
}
