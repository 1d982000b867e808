//! Where sessions live: the [`SessionStore`] trait, the contract every store keeps; its two
//! stores, [`MemoryStore`](crate::MemoryStore) and [`RedisStore`](crate::RedisStore); and
//! [`AnyStore`], either of them chosen at run time.
//!
//! Each method is one atomic operation. Where this page says "nothing is written", a failed
//! call leaves the store exactly as it was.

use std::future::Future;
use std::time::Duration;

use serde_json::Value;

use crate::error::Result;
use crate::limits::Limits;
use crate::session::record::{Session, SessionData};

pub(crate) mod any;
pub(crate) mod attachment;
pub(crate) mod backend;
pub(crate) mod envelope;
pub(crate) mod history;
pub(crate) mod keep_alive;
pub mod memory;
pub(crate) mod message;
#[cfg(feature = "redis")]
pub mod redis;
pub(crate) mod subscriber;
pub(crate) mod transport;

#[cfg(test)]
mod tests;

pub use self::any::AnyStore;

/// A place where sessions live: [`MemoryStore`](crate::MemoryStore) in the process,
/// [`RedisStore`](crate::RedisStore) shared by every server instance, or [`AnyStore`], one of
/// them chosen at run time.
///
/// Every method validates its input against the store's [`Limits`] first and
/// writes nothing when a limit is broken ([`Error::InvalidInput`](crate::Error::InvalidInput)).
/// Every mutation of a session that does not exist — never created, removed, or expired —
/// fails with [`Error::NotFound`](crate::Error::NotFound) and writes nothing.
///
/// Sessions expire when they have not been written or [`touch`](Self::touch)ed for the
/// store's TTL. Reads do not extend the TTL.
///
/// The trait holds the operations on sessions only. What the hub and resume need of a store
/// (rooms, the broker, claims and detaches) is the crate's own business, kept in one atomic
/// step per operation as well.
pub trait SessionStore: Clone + Send + Sync + 'static {
    /// How long a session lives after its last write or [`touch`](Self::touch).
    fn ttl(&self) -> Duration;

    /// The limits the store enforces.
    fn enforced_limits(&self) -> Limits;

    /// A fresh id for a session of `user_id`, fit for this store: a
    /// [`new_session_id`](crate::new_session_id) (32 hex digits from the operating system's
    /// CSPRNG), which on a Redis Cluster starts with the user's slot tag (see
    /// [`RedisStore`](crate::RedisStore)'s cluster layout).
    ///
    /// A store on one server or in memory takes any id in
    /// [`create_session`](Self::create_session); a store on a cluster takes only ids that
    /// start with their user's tag, which this method gives. Make ids with it, and code that
    /// runs on every store stays right.
    ///
    /// ```
    /// use ws_session::{MemoryStore, SessionStore};
    ///
    /// # async fn run() -> ws_session::Result<()> {
    /// let store = MemoryStore::new();
    /// let id = store.new_session_id("alice");
    /// store.create_session(&id, "alice").await?;
    /// # Ok(())
    /// # }
    /// ```
    fn new_session_id(&self, user_id: &str) -> String {
        let _ = user_id;
        crate::session::new_session_id()
    }

    /// Creates an empty session `id` for user `user_id`, and adds it to the user's index.
    ///
    /// # Errors
    ///
    /// [`AlreadyExists`](crate::Error::AlreadyExists) when a live session has that id (it is
    /// never overwritten); `InvalidInput` for an empty or oversized id, or, on a Redis
    /// Cluster, an id that does not start with the user's slot tag
    /// ([`new_session_id`](Self::new_session_id) gives ids that do).
    fn create_session(
        &self,
        id: &str,
        user_id: &str,
    ) -> impl Future<Output = Result<Session>> + Send;

    /// The whole session, or `None` when it is missing or expired.
    fn get_session(&self, id: &str) -> impl Future<Output = Result<Option<Session>>> + Send;

    /// Sets one key, refreshing the session's TTL.
    ///
    /// # Errors
    ///
    /// `NotFound` for a missing session; `InvalidInput` for an empty or long key, an
    /// oversized value, or a key that would exceed the session's key limit.
    fn set_session_data(
        &self,
        id: &str,
        key: &str,
        value: Value,
    ) -> impl Future<Output = Result<()>> + Send;

    /// One key's value: `Ok(None)` when the key is missing.
    ///
    /// # Errors
    ///
    /// `NotFound` when the session itself is missing.
    fn get_session_data(
        &self,
        id: &str,
        key: &str,
    ) -> impl Future<Output = Result<Option<Value>>> + Send;

    /// Merges several keys into the session at once: all are written, or none.
    ///
    /// # Errors
    ///
    /// As [`set_session_data`](Self::set_session_data), for any of the keys.
    fn update_session_data(
        &self,
        id: &str,
        data: SessionData,
    ) -> impl Future<Output = Result<()>> + Send;

    /// Deletes one key (a missing key is not an error), refreshing the session's TTL.
    ///
    /// # Errors
    ///
    /// `NotFound` when the session is missing.
    fn delete_session_data(&self, id: &str, key: &str) -> impl Future<Output = Result<()>> + Send;

    /// Deletes every key; the session itself stays, and its TTL is refreshed.
    ///
    /// # Errors
    ///
    /// `NotFound` when the session is missing.
    fn clear_session_data(&self, id: &str) -> impl Future<Output = Result<()>> + Send;

    /// Removes the session, its entry in the user index and its room memberships, in one
    /// atomic step. Removing a missing session is not an error.
    fn remove_session(&self, id: &str) -> impl Future<Output = Result<()>> + Send;

    /// Every live session of `user_id`, in no particular order, across every server
    /// instance sharing the store. Ids of expired sessions are pruned from the index.
    fn get_user_sessions(&self, user_id: &str)
    -> impl Future<Output = Result<Vec<Session>>> + Send;

    /// Refreshes the TTL and last-active time of many sessions in one call.
    ///
    /// Returns the ids among `ids` that no longer exist (they are not recreated).
    fn touch(&self, ids: &[String]) -> impl Future<Output = Result<Vec<String>>> + Send;
}
