//! [`MemoryStore`]: sessions in the memory of this process.
//!
//! The embedded default store. It keeps the same contract as the Redis store — the same
//! [`Limits`], the same errors, the same TTL rules and the same user index — so code tested
//! against it behaves the same in production on Redis. Sessions live only as long as the
//! process, and only this process sees them.
//!
//! # TTLs
//!
//! A session expires [`ttl`](crate::SessionStore::ttl) after its last write
//! ([`set_session_data`](crate::SessionStore::set_session_data),
//! [`update_session_data`](crate::SessionStore::update_session_data),
//! [`delete_session_data`](crate::SessionStore::delete_session_data),
//! [`clear_session_data`](crate::SessionStore::clear_session_data)) or
//! [`touch`](crate::SessionStore::touch); each of these also sets its `last_active` time. Reads do not
//! extend a session's life. An expired session is gone for every operation the moment its TTL
//! runs out; a background thread reclaims its memory at the store's
//! [sweep interval](MemoryStore::sweep_interval). The thread starts with the first session and
//! ends as soon as the last clone of the store is dropped; it does not need a tokio runtime.
//!
//! # Concurrency
//!
//! Sessions sit in a sharded concurrent map, so operations on different sessions rarely wait
//! for each other, and each operation on one session is atomic. The methods are `async` to fit
//! [`SessionStore`](crate::SessionStore), but never wait for anything but a short shard lock.
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

mod backend;
pub(crate) mod bus;
mod entry;
mod history;
mod inner;
mod ops;
mod resume;
mod sweep;

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use dashmap::DashMap;

use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::store::envelope::Stream;
use bus::{MemoryBus, Targets};
use entry::{Entry, Keyed};
use sweep::Sweeper;

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

/// Name (a user id, a room) -> the ids of the sessions it holds.
type Index = DashMap<String, HashSet<String, Keyed>, Keyed>;

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
    users: Index,
    /// Room name -> ids of the room's sessions, kept like `users` (same lock order, same
    /// rules): a room's set holds every live session that has the room, and may briefly hold
    /// dead ids, which readers skip and prune.
    rooms: Index,
    /// The in-process broker of the hubs on this store.
    bus: Arc<MemoryBus>,
    ttl: Duration,
    limits: Limits,
    sweep_interval: Duration,
    /// The background sweep, started with the first session.
    sweeper: OnceLock<Option<Sweeper>>,
}

impl Clone for Inner {
    /// A copy of the sessions and settings, without the sweep thread (a copy starts its own).
    fn clone(&self) -> Self {
        Inner {
            sessions: self.sessions.clone(),
            users: self.users.clone(),
            rooms: self.rooms.clone(),
            bus: Arc::default(),
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
        let store = MemoryStore {
            inner: Arc::new(Inner {
                sessions: DashMap::with_hasher(Keyed::default()),
                users: DashMap::with_hasher(Keyed::default()),
                rooms: DashMap::with_hasher(Keyed::default()),
                bus: Arc::default(),
                ttl,
                limits: Limits::default(),
                sweep_interval: ttl.clamp(MIN_SWEEP, MAX_DEFAULT_SWEEP),
                sweeper: OnceLock::new(),
            }),
        };
        store.answer_for_targets();
        store
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
        // A copy made for the change has a bus of its own, which must ask the copy.
        self.answer_for_targets();
        self
    }

    /// Makes this store's bus ask it whether a target has sessions before keeping a message.
    fn answer_for_targets(&self) {
        let targets: Weak<dyn Targets> = Arc::downgrade(&self.inner) as Weak<Inner>;
        self.inner.bus.set_targets(targets);
    }
}

impl Targets for Inner {
    fn has_sessions(&self, stream: &Stream) -> bool {
        match stream {
            Stream::All => !self.sessions.is_empty(),
            Stream::User(user) => self.users.contains_key(user),
            Stream::Room(room) => self.rooms.contains_key(room),
            Stream::Session(id) => self.sessions.contains_key(id),
        }
    }

    fn session_node(&self, id: &str) -> Result<Option<String>> {
        self.limits.check_session_id(id)?;
        self.read(id, |entry| entry.node.as_deref().map(str::to_owned))
            .ok_or_else(|| Error::not_found(id))
    }
}

#[cfg(test)]
mod tests;
