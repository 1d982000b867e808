//! [`AnyStore`]: one of the crate's stores, chosen at run time.

use std::fmt;
use std::future::Future;
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde_json::Value;

use super::SessionStore;
use super::attachment::{Attach, Claim, Claimed, Detach, Detached};
use super::backend::Backend;
use super::keep_alive::Indexes;
use super::memory::MemoryStore;
use super::message::Member;
#[cfg(feature = "redis")]
use super::redis::RedisStore;
use super::subscriber::Subscriber;
use super::transport::Transport;
use crate::error::Result;
use crate::limits::Limits;
use crate::session::record::{Session, SessionData};

/// Either of the crate's stores, chosen at run time: what a [`SessionLayer`](crate::SessionLayer)
/// holds, and what an application can hold too (in its state, in a plain HTTP route) without
/// being generic over the store.
///
/// Every store converts into it with `From`/`Into`, and it implements [`SessionStore`] by
/// calling the store it holds. The choice costs one `match` per call.
///
/// ```no_run
/// use std::time::Duration;
/// use ws_session::{AnyStore, MemoryStore, RedisStore, SessionLayer};
///
/// # async fn run() -> ws_session::Result<()> {
/// let ttl = Duration::from_secs(3600);
/// let store: AnyStore = match std::env::var("REDIS_URL") {
///     Ok(url) => RedisStore::connect(&url, "app", ttl).await?.into(),
///     Err(_) => MemoryStore::with_ttl(ttl).into(),
/// };
/// let layer = SessionLayer::new(store.clone());
/// # Ok(()) }
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub enum AnyStore {
    /// Sessions in this process.
    Memory(MemoryStore),
    /// Sessions in Redis, shared by every instance.
    #[cfg(feature = "redis")]
    Redis(RedisStore),
}

impl From<MemoryStore> for AnyStore {
    fn from(store: MemoryStore) -> Self {
        AnyStore::Memory(store)
    }
}

#[cfg(feature = "redis")]
impl From<RedisStore> for AnyStore {
    fn from(store: RedisStore) -> Self {
        AnyStore::Redis(store)
    }
}

impl fmt::Debug for AnyStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnyStore::Memory(store) => store.fmt(f),
            #[cfg(feature = "redis")]
            AnyStore::Redis(store) => store.fmt(f),
        }
    }
}

/// Calls `$call` on the store `$any` holds, as `$store`.
macro_rules! on_store {
    ($any:expr, $store:ident => $call:expr) => {
        match $any {
            AnyStore::Memory($store) => $call,
            #[cfg(feature = "redis")]
            AnyStore::Redis($store) => $call,
        }
    };
}

/// Awaits the future `$call` makes of the store `$any` holds, as `$store`. A Redis operation's
/// future is large (kilobytes: its command, its pool checkout, its timeout); it is boxed, so
/// that a future holding an `AnyStore` call (a handler's, a socket loop's) stays small. A
/// memory operation's future is small and runs in place.
macro_rules! run_on_store {
    ($any:expr, $store:ident => $call:expr) => {
        match $any {
            AnyStore::Memory($store) => $call.await,
            #[cfg(feature = "redis")]
            AnyStore::Redis($store) => Box::pin($call).await,
        }
    };
}

/// Runs a store operation, and records its time and any failure of the store's.
#[cfg(feature = "metrics")]
async fn measured<T>(operation: &'static str, run: impl Future<Output = Result<T>>) -> Result<T> {
    #[cfg(test)]
    calls::count();
    let started = std::time::Instant::now();
    let result = run.await;
    crate::telemetry::store_operation(operation, started.elapsed(), &result);
    result
}

/// Without the `metrics` feature, nothing is measured.
#[cfg(not(feature = "metrics"))]
async fn measured<T>(_: &'static str, run: impl Future<Output = Result<T>>) -> Result<T> {
    #[cfg(test)]
    calls::count();
    run.await
}

impl SessionStore for AnyStore {
    fn ttl(&self) -> Duration {
        on_store!(self, store => store.ttl())
    }

    fn new_session_id(&self, user_id: &str) -> String {
        on_store!(self, store => store.new_session_id(user_id))
    }

    fn enforced_limits(&self) -> Limits {
        on_store!(self, store => store.enforced_limits())
    }

    async fn create_session(&self, id: &str, user_id: &str) -> Result<Session> {
        run_on_store!(self, store => measured("create_session", store.create_session(id, user_id)))
    }

    async fn get_session(&self, id: &str) -> Result<Option<Session>> {
        run_on_store!(self, store => measured("get_session", store.get_session(id)))
    }

    async fn set_session_data(&self, id: &str, key: &str, value: Value) -> Result<()> {
        run_on_store!(self, store => measured("set_session_data", store.set_session_data(id, key, value)))
    }

    async fn get_session_data(&self, id: &str, key: &str) -> Result<Option<Value>> {
        run_on_store!(self, store => measured("get_session_data", store.get_session_data(id, key)))
    }

    async fn update_session_data(&self, id: &str, data: SessionData) -> Result<()> {
        run_on_store!(self, store => measured("update_session_data", store.update_session_data(id, data)))
    }

    async fn delete_session_data(&self, id: &str, key: &str) -> Result<()> {
        run_on_store!(self, store => measured("delete_session_data", store.delete_session_data(id, key)))
    }

    async fn clear_session_data(&self, id: &str) -> Result<()> {
        run_on_store!(self, store => measured("clear_session_data", store.clear_session_data(id)))
    }

    async fn remove_session(&self, id: &str) -> Result<()> {
        run_on_store!(self, store => measured("remove_session", store.remove_session(id)))
    }

    async fn get_user_sessions(&self, user_id: &str) -> Result<Vec<Session>> {
        run_on_store!(self, store => measured("get_user_sessions", store.get_user_sessions(user_id)))
    }

    async fn touch(&self, ids: &[String]) -> Result<Vec<String>> {
        run_on_store!(self, store => measured("touch", store.touch(ids)))
    }
}

impl Backend for AnyStore {
    fn transport(&self, subscriber: Weak<dyn Subscriber>, node_id: &Arc<str>) -> Transport {
        on_store!(self, store => store.transport(subscriber, node_id))
    }

    fn fresh_session_id(&self, user_id: Option<&str>) -> String {
        on_store!(self, store => store.fresh_session_id(user_id))
    }

    async fn create_attached_session(
        &self,
        id: &str,
        user_id: &str,
        attach: &Attach<'_>,
    ) -> Result<Session> {
        run_on_store!(self, store => measured(
            "create_attached_session",
            store.create_attached_session(id, user_id, attach),
        ))
    }

    async fn claim_session(&self, claim: &Claim<'_>) -> Result<Claimed> {
        run_on_store!(self, store => measured("claim_session", store.claim_session(claim)))
    }

    async fn detach_session(&self, id: &str, epoch: u64, detach: &Detach) -> Result<Detached> {
        run_on_store!(self, store => measured("detach_session", store.detach_session(id, epoch, detach)))
    }

    async fn session_node(&self, id: &str) -> Result<Option<String>> {
        run_on_store!(self, store => measured("session_node", store.session_node(id)))
    }

    async fn join_room(&self, id: &str, room: &str) -> Result<bool> {
        run_on_store!(self, store => measured("join_room", store.join_room(id, room)))
    }

    async fn leave_room(&self, id: &str, room: &str) -> Result<bool> {
        run_on_store!(self, store => measured("leave_room", store.leave_room(id, room)))
    }

    async fn session_rooms(&self, id: &str) -> Result<Vec<String>> {
        run_on_store!(self, store => measured("session_rooms", store.session_rooms(id)))
    }

    async fn room_members(&self, room: &str) -> Result<Vec<Member>> {
        run_on_store!(self, store => measured("room_members", store.room_members(room)))
    }

    async fn keep_alive(&self, ids: &[Arc<str>]) -> Result<Vec<String>> {
        run_on_store!(self, store => measured("keep_alive", store.keep_alive(ids)))
    }

    async fn keep_indexes(&self, indexes: &Indexes) -> Result<()> {
        run_on_store!(self, store => measured("keep_indexes", store.keep_indexes(indexes)))
    }

    async fn remove_user_sessions(&self, user_id: &str) -> Result<Vec<String>> {
        run_on_store!(self, store => measured("remove_user_sessions", store.remove_user_sessions(user_id)))
    }
}

/// For the crate's tests: how many store operations went through an [`AnyStore`] on this
/// thread (a current-thread runtime's tasks all run on it).
#[cfg(test)]
pub(crate) mod calls {
    use std::cell::Cell;

    thread_local! {
        static CALLS: Cell<usize> = const { Cell::new(0) };
    }

    pub(super) fn count() {
        CALLS.with(|calls| calls.set(calls.get() + 1));
    }

    /// The operations counted on this thread so far.
    pub(crate) fn on_this_thread() -> usize {
        CALLS.with(Cell::get)
    }
}

#[cfg(test)]
mod tests {
    use super::AnyStore;
    use crate::store::backend::Backend;
    use crate::{MemoryStore, SessionStore};

    /// A handler or socket loop holds these futures across its awaits: whatever store is
    /// chosen, they stay small (a Redis operation's own future is boxed).
    #[test]
    fn the_futures_of_an_any_store_stay_small() {
        let any: AnyStore = MemoryStore::new().into();
        let sizes = [
            size_of_val(&any.set_session_data("a", "k", serde_json::Value::Null)),
            size_of_val(&any.get_session_data("a", "k")),
            size_of_val(&any.get_user_sessions("u")),
            size_of_val(&any.join_room("a", "r")),
            size_of_val(&any.touch(&[])),
        ];
        assert!(sizes.iter().all(|size| *size <= 512), "{sizes:?}");
    }
}
