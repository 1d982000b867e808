//! [`WsSession`]: the handle a WebSocket handler holds for its session.

use std::fmt;
use std::sync::Arc;

use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use super::live::Live;
use super::record::{Session, SessionData, from_value, to_value};
use crate::error::{Error, Result};
use crate::hub::node::{Connection, Node};
use crate::hub::{Hub, HubEvent};
use crate::resume::{Recovery, ResumeToken};
use crate::store::attachment::TokenHash;
use crate::store::backend::Backend;
use crate::store::{AnyStore, SessionStore};

/// The session of one WebSocket client, as the handler sees it.
///
/// [`SessionLayer`](crate::SessionLayer) creates the session when the socket is upgraded and
/// hands this handle to the handler through the request (it is an axum extractor). Clones are
/// cheap and share one session. **The session lives as long as the handle**: when the last
/// clone is dropped — the socket task ended, the client vanished, the upgrade failed — the
/// session is removed from the store, or, with a [resume window](crate::resume), detached
/// for the window so that the client can [resume](Self::resume_token) it. While a clone is
/// alive, the layer keeps the session from expiring.
///
/// The handle is also the connection's end of the [hub](crate::hub): it joins and leaves
/// rooms, and [`recv`](Self::recv) yields what the hub sends to this connection. Select on it
/// beside the socket:
///
/// ```no_run
/// use axum::{Router, extract::ws::{CloseFrame, Message, WebSocketUpgrade}, response::IntoResponse, routing::get};
/// use ws_session::{MemoryStore, SessionLayer, WsSession, hub::HubEvent};
///
/// async fn ws_handler(ws: WebSocketUpgrade, session: WsSession) -> impl IntoResponse {
///     ws.on_upgrade(move |mut socket| async move {
///         let visits: u32 = session.get("visits").await.ok().flatten().unwrap_or(0);
///         let _ = session.set("visits", &(visits + 1)).await;
///         let _ = session.join("lobby").await;
///         loop {
///             tokio::select! {
///                 frame = socket.recv() => match frame {
///                     Some(Ok(Message::Text(text))) => {
///                         let _ = session.hub().send_to_room("lobby", text.as_str()).await;
///                     }
///                     Some(Ok(_)) => {}
///                     _ => break,
///                 },
///                 event = session.recv() => match event {
///                     Some(HubEvent::Message(delivery)) => {
///                         let text = delivery.text().unwrap_or_default().to_owned();
///                         if socket.send(Message::Text(text.into())).await.is_err() {
///                             break;
///                         }
///                     }
///                     Some(HubEvent::Close(reason)) => {
///                         let frame = CloseFrame { code: reason.code, reason: reason.reason.as_ref().into() };
///                         let _ = socket.send(Message::Close(Some(frame))).await;
///                         break;
///                     }
///                     None => break,
///                 },
///             }
///         }
///         // `session` is dropped here: the session is removed from the store.
///     })
/// }
///
/// let app: Router = Router::new()
///     .route("/ws", get(ws_handler))
///     .layer(SessionLayer::new(MemoryStore::new()));
/// ```
#[derive(Clone)]
pub struct WsSession {
    inner: Arc<Shared>,
}

struct Shared {
    id: String,
    user_id: String,
    live: Arc<Live>,
    /// This connection on the hub's node: its inbox and its rooms.
    connection: Arc<Connection>,
    /// Serializes this connection's joins and leaves, so the store and the node see them in
    /// the same order.
    rooms: tokio::sync::Mutex<()>,
    /// The token the client presents to resume this session.
    token: ResumeToken,
    /// What a resume brought back, and the hash of the token the client presented for it;
    /// `None` for a new session.
    recovery: Option<(Recovery, TokenHash)>,
}

impl WsSession {
    /// A handle for a session that was just created (or claimed) in the layer's store and
    /// registered with its node.
    pub(crate) fn open(
        live: Arc<Live>,
        id: String,
        user_id: String,
        connection: Arc<Connection>,
        token: ResumeToken,
    ) -> Self {
        Self::build(live, id, user_id, connection, token, None)
    }

    /// A handle for a session a resume claimed: `presented` is the hash of the token its
    /// client presented, which a failed upgrade gives the session back to.
    pub(crate) fn resumed(
        live: Arc<Live>,
        id: String,
        user_id: String,
        connection: Arc<Connection>,
        token: ResumeToken,
        presented: TokenHash,
        recovery: Recovery,
    ) -> Self {
        let recovery = Some((recovery, presented));
        Self::build(live, id, user_id, connection, token, recovery)
    }

    fn build(
        live: Arc<Live>,
        id: String,
        user_id: String,
        connection: Arc<Connection>,
        token: ResumeToken,
        recovery: Option<(Recovery, TokenHash)>,
    ) -> Self {
        WsSession {
            inner: Arc::new(Shared {
                id,
                user_id,
                live,
                connection,
                rooms: tokio::sync::Mutex::new(()),
                token,
                recovery,
            }),
        }
    }

    /// Ends the session now, for an upgrade that did not happen, whatever clones are still
    /// alive: a new session is removed (its client never got its token); a resumed one goes
    /// back to the token its client presented, detached, for the client to try again.
    pub(crate) fn end(&self) {
        let inner = &self.inner;
        match inner.recovery {
            None => inner.live.release(&inner.id, &inner.connection, false),
            Some((_, presented)) => inner.live.unclaim(
                &inner.id,
                &inner.connection,
                &inner.user_id,
                &inner.token,
                presented,
            ),
        }
    }

    /// The token that resumes this session: send it to the client, which presents it when it
    /// reconnects (by default as `?resume=TOKEN`). Each resume gives a new one; the old one no
    /// longer works. Keep it out of logs.
    pub fn resume_token(&self) -> &ResumeToken {
        &self.inner.token
    }

    /// `true` when this connection resumed an earlier session: same id, data and rooms.
    pub fn recovered(&self) -> bool {
        self.inner.recovery.is_some()
    }

    /// For a resumed session, how many missed messages wait first in the inbox and whether
    /// that is all the client missed; `None` for a new session.
    pub fn recovery(&self) -> Option<Recovery> {
        self.inner.recovery.map(|(recovery, _)| recovery)
    }

    /// The session id: 128 random bits, given when the session is created. It names the
    /// session, not the connection: a client that [resumes](crate::resume) gets the same id
    /// on its new connection (and [`recovered`](Self::recovered) says so), while no two
    /// sessions alive at once share one.
    pub fn id(&self) -> &str {
        &self.inner.id
    }

    /// The user this client belongs to.
    pub fn user_id(&self) -> &str {
        &self.inner.user_id
    }

    /// The timer the socket loops of this session's layer share.
    pub(crate) fn wake_ups(&self) -> crate::wake_ups::WakeUps {
        self.inner.live.wake_ups.clone()
    }

    /// The value at `key` as a `T`; `Ok(None)` when the key is not set.
    ///
    /// # Errors
    ///
    /// [`Error::Serialization`] when the stored value does not fit `T`; any store error
    /// (`NotFound` if the session is gone, `Unavailable`, ...).
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let value = self.get_value(key).await?;
        value.map(|value| from_value(key, value)).transpose()
    }

    /// Stores `value` at `key`.
    ///
    /// # Errors
    ///
    /// [`Error::Serialization`] when `value` cannot be turned into JSON;
    /// [`Error::InvalidInput`] when the key or value breaks the store's limits (including
    /// [`Limits::max_session_bytes`](crate::Limits::max_session_bytes)); any store error.
    /// [`Error::Unavailable`] after the store's timeout does not say the write was not made: it
    /// may have been applied (Redis ran the script and its answer was lost). Writing the same
    /// value again is safe.
    pub async fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        self.set_value(key, to_value(key, value)?).await
    }

    /// The JSON value at `key` as the store holds it; `Ok(None)` when the key is not set.
    ///
    /// Cheaper than `get::<serde_json::Value>`, which rebuilds the value through serde.
    ///
    /// # Errors
    ///
    /// Any store error (`NotFound` if the session is gone, `Unavailable`, ...).
    pub async fn get_value(&self, key: &str) -> Result<Option<Value>> {
        self.store().get_session_data(self.id(), key).await
    }

    /// Stores a JSON value at `key` as it is.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] when the key or value breaks the store's limits; any store error.
    /// [`Error::Unavailable`] after the store's timeout does not say the write was not made: it
    /// may have been applied (Redis ran the script and its answer was lost). Writing the same
    /// value again is safe.
    pub async fn set_value(&self, key: &str, value: Value) -> Result<()> {
        self.store().set_session_data(self.id(), key, value).await
    }

    /// Merges several keys into the session at once: all are written, or none.
    ///
    /// # Errors
    ///
    /// As [`set`](Self::set), for any of the keys; a timeout may have been applied, as there.
    pub async fn update(&self, data: SessionData) -> Result<()> {
        self.store().update_session_data(self.id(), data).await
    }

    /// Deletes one key; deleting a key that is not set is not an error.
    ///
    /// # Errors
    ///
    /// Any store error; a timeout may have been applied, as for [`set`](Self::set).
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.store().delete_session_data(self.id(), key).await
    }

    /// Deletes every key; the session itself stays.
    ///
    /// # Errors
    ///
    /// Any store error; a timeout may have been applied, as for [`set`](Self::set).
    pub async fn clear(&self) -> Result<()> {
        self.store().clear_session_data(self.id()).await
    }

    /// The whole session record.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when the session is no longer in the store; any store error.
    pub async fn session(&self) -> Result<Session> {
        self.store()
            .get_session(self.id())
            .await?
            .ok_or_else(|| Error::not_found(self.id()))
    }

    /// Every live session of this handle's user, on every server instance sharing the store
    /// (all the devices of the user), this one included.
    ///
    /// # Errors
    ///
    /// Any store error.
    pub async fn user_sessions(&self) -> Result<Vec<Session>> {
        self.store().get_user_sessions(self.user_id()).await
    }

    /// Puts this connection into `room`, on every instance: from when this returns, what the
    /// hub sends to the room reaches this connection. Returns `false` when it was in the room
    /// already.
    ///
    /// # Errors
    ///
    /// [`Error::InvalidInput`] for an empty or long room name, or when the session is in
    /// [`Limits::max_rooms`](crate::Limits::max_rooms) rooms already (nothing is written);
    /// `NotFound` when the session is gone; `Unavailable` when the store or the broker cannot be
    /// reached (the connection is then not in the room).
    pub async fn join(&self, room: &str) -> Result<bool> {
        let _serial = self.inner.rooms.lock().await;
        let joined = self.store().join_room(self.id(), room).await?;
        let node = &self.inner.live.node;
        if let Err(error) = node.join(self.id(), &self.inner.connection, room).await {
            // Not delivered here: not a member anywhere.
            let _ = self.store().leave_room(self.id(), room).await;
            return Err(error);
        }
        tracing::trace!(session = %self.id(), room, "joined room");
        Ok(joined)
    }

    /// Takes this connection out of `room`, on every instance. Returns `false` when it was not
    /// in the room.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a bad room name; `NotFound` when the session is gone;
    /// `Unavailable` when the store cannot be reached (the connection is then still in the
    /// room).
    pub async fn leave(&self, room: &str) -> Result<bool> {
        let _serial = self.inner.rooms.lock().await;
        let left = self.store().leave_room(self.id(), room).await?;
        self.inner
            .live
            .node
            .leave(self.id(), &self.inner.connection, room);
        Ok(left)
    }

    /// The rooms this connection is in, sorted.
    pub fn rooms(&self) -> Vec<String> {
        Node::rooms_of(&self.inner.connection)
    }

    /// The next thing the hub sends this connection: a message, or the order to close (then
    /// nothing more). Cancel-safe, so it can sit in a `tokio::select!` beside the socket.
    ///
    /// Messages wait in a bounded inbox ([`InboxLimits`](crate::hub::InboxLimits)); a connection
    /// whose inbox overflows gets [`CloseReason::TOO_SLOW`](crate::hub::CloseReason::TOO_SLOW)
    /// (4001) here instead of the messages it missed. Clones of a handle share one inbox:
    /// receive from one task.
    pub async fn recv(&self) -> Option<HubEvent> {
        self.inner.connection.inbox.recv().await
    }

    /// Waits for at least one event of this connection's inbox, then moves up to `limit` of
    /// the events waiting into `events`, in order. Returns how many it moved; `0` means the
    /// inbox has ended (after its close was received). Cancel-safe.
    ///
    /// A socket loop that writes every event it took with `feed` and then flushes once sends a
    /// burst of messages in one write instead of one write each.
    pub async fn recv_many(&self, events: &mut Vec<HubEvent>, limit: usize) -> usize {
        self.inner.connection.inbox.recv_many(events, limit).await
    }

    /// The hub, to send to other sessions, users, rooms or everyone.
    pub fn hub(&self) -> Hub {
        self.inner.live.hub()
    }

    /// How many messages, and how many bytes of them, wait in this connection's inbox.
    pub fn queued(&self) -> (usize, usize) {
        self.inner.connection.inbox.queued()
    }

    fn store(&self) -> &AnyStore {
        &self.inner.live.store
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.live.release(&self.id, &self.connection, true);
    }
}

impl fmt::Debug for WsSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WsSession")
            .field("id", &self.inner.id)
            .field("user_id", &self.inner.user_id)
            .field("recovered", &self.recovered())
            .finish_non_exhaustive()
    }
}
