//! The [`SessionStore`] trait: the contract every store keeps.
//!
//! Each method is one atomic operation. Where this page says "nothing is written", a failed
//! call leaves the store exactly as it was.

use std::future::Future;
use std::time::Duration;

use serde_json::Value;

use crate::error::Result;
use crate::hub::{Broker, Member};
use crate::limits::Limits;
use crate::resume::{Attach, Claim, Claimed, Detach, Detached};
use crate::session::{Session, SessionData};

pub(crate) mod dyn_store;
pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;

/// A place where sessions live: [`MemoryStore`](crate::MemoryStore) in the process, or
/// [`RedisStore`](crate::RedisStore) shared by every server instance.
///
/// Every method validates its input against the store's [`Limits`] first and
/// writes nothing when a limit is broken ([`Error::InvalidInput`](crate::Error::InvalidInput)).
/// Every mutation of a session that does not exist — never created, removed, or expired —
/// fails with [`Error::NotFound`](crate::Error::NotFound) and writes nothing.
///
/// Sessions expire when they have not been written or [`touch`](Self::touch)ed for the
/// store's TTL. Reads do not extend the TTL.
pub trait SessionStore: Clone + Send + Sync + 'static {
    /// How long a session lives after its last write or [`touch`](Self::touch).
    fn ttl(&self) -> Duration;

    /// The limits the store enforces.
    fn enforced_limits(&self) -> Limits;

    /// The broker through which the hubs of the layers sharing this store reach each other.
    ///
    /// The default connects only the layers that share the returned value, in this process.
    fn broker(&self) -> Broker {
        Broker::in_process()
    }

    /// Creates an empty session `id` for user `user_id`, and adds it to the user's index.
    ///
    /// # Errors
    ///
    /// [`AlreadyExists`](crate::Error::AlreadyExists) when a live session has that id (it is
    /// never overwritten); `InvalidInput` for an empty or oversized id.
    fn create_session(
        &self,
        id: &str,
        user_id: &str,
    ) -> impl Future<Output = Result<Session>> + Send;

    /// Creates an empty session as [`create_session`](Self::create_session) does, attached to
    /// the hub node that holds its connection, with the hash of its resume token.
    ///
    /// # Errors
    ///
    /// As [`create_session`](Self::create_session).
    fn create_attached_session(
        &self,
        id: &str,
        user_id: &str,
        attach: &Attach<'_>,
    ) -> impl Future<Output = Result<Session>> + Send;

    /// Claims the session of `claim.token` for a resume, in one atomic step: checks the token
    /// against the kept hash (in constant time) and the user, then rotates the token, counts a
    /// new attachment (epoch), attaches the session to `claim.node_id` and restarts its TTL. Of
    /// two claims with one token, one wins and the other is refused. A refused claim writes
    /// nothing.
    ///
    /// # Errors
    ///
    /// Only store errors (`Unavailable`, ...): a claim that does not fit is
    /// [`Claimed::Refused`].
    fn claim_session(&self, claim: &Claim<'_>) -> impl Future<Output = Result<Claimed>> + Send;

    /// Detaches session `id` from the connection of attachment `epoch`, whose socket went:
    /// the session, its rooms and its entry in the user index are kept for `detach.window`,
    /// then expire. Nothing is written when the session is gone or a newer attachment holds it.
    /// A user with more than `detach.max_per_user` detached sessions loses the oldest.
    ///
    /// # Errors
    ///
    /// Store errors only.
    fn detach_session(
        &self,
        id: &str,
        epoch: u64,
        detach: &Detach,
    ) -> impl Future<Output = Result<Detached>> + Send;

    /// The hub node that holds the connection of session `id`; `None` for a session that was
    /// created without one.
    ///
    /// # Errors
    ///
    /// `NotFound` when the session is missing.
    fn session_node(&self, id: &str) -> impl Future<Output = Result<Option<String>>> + Send;

    /// Puts session `id` into `room`, refreshing the session's TTL. Returns `false` when it
    /// was in the room already.
    ///
    /// # Errors
    ///
    /// `NotFound` for a missing session; `InvalidInput` for an empty or long room name, or
    /// when the session is in [`Limits::max_rooms`] rooms already.
    fn join_room(&self, id: &str, room: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Takes session `id` out of `room`, refreshing the session's TTL. Returns `false` when it
    /// was not in the room. A room left by its last member leaves nothing behind.
    ///
    /// # Errors
    ///
    /// `NotFound` for a missing session; `InvalidInput` for a bad room name.
    fn leave_room(&self, id: &str, room: &str) -> impl Future<Output = Result<bool>> + Send;

    /// The rooms session `id` is in, sorted.
    ///
    /// # Errors
    ///
    /// `NotFound` for a missing session.
    fn session_rooms(&self, id: &str) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// The live members of `room`, in no particular order, across every server instance
    /// sharing the store. Ids of sessions that are gone are pruned from the room.
    fn room_members(&self, room: &str) -> impl Future<Output = Result<Vec<Member>>> + Send;

    /// Removes every session of `user_id`, with their rooms and the user's index, and returns
    /// the ids of the live sessions removed.
    fn remove_user_sessions(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;

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
