//! What the hub and resume need of a store, beside the operations on sessions: attaching a
//! session to a connection, claims and detaches for resume, rooms, and the broker the hub
//! sends through. Crate-internal, and so sealed: only this crate's stores implement it, each
//! operation in one atomic step (one script call on Redis), like [`SessionStore`]'s.

use std::future::Future;
use std::sync::{Arc, Weak};

use super::SessionStore;
use super::attachment::{Attach, Claim, Claimed, Detach, Detached};
use super::keep_alive::Indexes;
use super::message::Member;
use super::subscriber::Subscriber;
use super::transport::Transport;
use crate::error::Result;
use crate::session::record::Session;

/// The operations of a store that only the hub and resume call.
pub(crate) trait Backend: SessionStore {
    /// The transport of one hub node on this store's broker: what reaches the nodes of every
    /// layer sharing the store (in this process for memory, on every instance for Redis).
    fn transport(&self, subscriber: Weak<dyn Subscriber>, node_id: &Arc<str>) -> Transport;

    /// A fresh id for a new session of `user_id` (`None`: an anonymous session, whose user id
    /// is its own id), laid out as the store needs (on a Redis Cluster, it carries the user's
    /// slot tag).
    fn fresh_session_id(&self, user_id: Option<&str>) -> String {
        let _ = user_id;
        crate::session::new_session_id()
    }

    /// Creates an empty session as [`create_session`](SessionStore::create_session) does, attached to
    /// the hub node that holds its connection, with the hash of its resume token.
    ///
    /// # Errors
    ///
    /// As [`create_session`](SessionStore::create_session).
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

    /// The keep-alive of open sessions: restarts the TTL of each session of `ids` and returns
    /// those that no longer exist. Unlike [`touch`](SessionStore::touch) it leaves
    /// `last_active` as it is (the time of the last write), and the sessions' indexes too: a
    /// layer renews those with [`keep_indexes`](Self::keep_indexes), as `keep_alive.rs` says.
    ///
    /// # Errors
    ///
    /// Store errors only.
    fn keep_alive(&self, ids: &[Arc<str>]) -> impl Future<Output = Result<Vec<String>>> + Send;

    /// Makes the index keys of `indexes` live at least
    /// [`INDEX_FLOOR_TTLS`](super::keep_alive::INDEX_FLOOR_TTLS) TTLs more, never shortening
    /// one, and creating none.
    ///
    /// # Errors
    ///
    /// Store errors only.
    fn keep_indexes(&self, indexes: &Indexes) -> impl Future<Output = Result<()>> + Send;

    /// Removes every session of `user_id`, with their rooms and the user's index, and returns
    /// the ids of the live sessions removed.
    fn remove_user_sessions(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<Vec<String>>> + Send;
}
