//! The hub: every open connection of every server instance, reachable from any code.
//!
//! [`SessionLayer`](crate::SessionLayer) registers each connection it opens with the hub of its
//! instance (a *node*), for as long as the connection's [`WsSession`](crate::WsSession) lives.
//! Through the handle a connection joins and leaves rooms and receives what the hub sends it
//! ([`WsSession::recv`](crate::WsSession::recv)). Through a [`Hub`] — from
//! [`SessionLayer::hub`](crate::SessionLayer::hub), or as an axum extractor — any code sends to
//! one session, to every connection of a user, to every member of a room or to everyone,
//! disconnects a session or a user, and lists a room's members. Every call works the same from
//! any instance sharing the store.
//!
//! # Guarantees
//!
//! - **At most once.** A message reaches each connection it targets at most once. A connection
//!   that is not open (or not yet in the room) when the message arrives at its node misses it.
//! - **In order per sender.** The messages one instance sends reach each connection in the
//!   order they were sent, whatever their targets. [`Hub::send_to_user`],
//!   [`Hub::send_to_room`] and [`Hub::broadcast`] take their place in that order when they are
//!   called, so sends whose futures are awaited later, or together, keep their call order; the
//!   sends of [`Hub::send_to_session`] and [`Hub::disconnect`] take theirs once the session's
//!   node is looked up. With Redis, one publisher task per instance sends them in pipelines.
//! - **Offsets.** Every message delivered to a connection carries an
//!   [`Offset`], higher for each later message on that connection. With a
//!   [resume window](crate::resume) it is the message's place in the store's history, and a
//!   resumed session gets the messages after the offset its client saw before the live ones.
//! - **Slow clients are closed, not waited for.** Each connection's inbox is bounded by
//!   messages and bytes ([`InboxLimits`]). A message that would overflow it drops what it holds
//!   and closes the connection with 4001 ([`CloseReason::TOO_SLOW`]); delivery to everyone else
//!   goes on untouched.
//! - **A send that times out may have gone out.** `Unavailable` after the store's timeout
//!   does not say the message was not sent: Redis may have published it and lost the answer.
//!   A client that retries may get it twice; every delivery carries its [`Offset`], so a
//!   client drops a message whose offset it has seen already.
//! - **A node receives only what concerns it.** With Redis, a node subscribes to a user's or a
//!   room's channel while it holds a connection of that user or a member of that room, and to
//!   its own channel and the channel for everyone while it holds any connection. After losing
//!   its pub/sub connection, it reconnects and subscribes again by itself.
//!
//! Room membership lives in the store (with the same TTL rules as the user index), so
//! [`Hub::members`] answers from the store's state in one round trip, for every instance.

mod inbox;
pub(crate) mod node;

use std::fmt;
use std::future::Future;
use std::sync::Arc;

use axum_core::response::{IntoResponse, Response};
use http::StatusCode;

pub use self::inbox::{HubEvent, InboxLimits};
pub use self::node::HubStats;
use self::node::Node;
use crate::error::{Error, Result};
use crate::store::backend::Backend;
use crate::store::envelope::{Envelope, Topic};
pub use crate::store::message::{CloseReason, Delivery, InvalidOffset, Member, Offset, Payload};
use crate::store::transport::Published;
use crate::store::{AnyStore, SessionStore};

/// A handle on the hub, to reach connections on every instance sharing the store.
///
/// Cheap to clone. Get one from [`SessionLayer::hub`](crate::SessionLayer::hub), from
/// [`WsSession::hub`](crate::WsSession::hub), or as an axum extractor: in a WebSocket handler
/// behind the layer it is there already; for other routes, add the hub as a layer
/// (`.layer(session_layer.hub())`), as with axum's `Extension`.
///
/// ```no_run
/// use axum::{Router, routing::post};
/// use ws_session::{MemoryStore, SessionLayer, hub::Hub};
///
/// async fn announce(hub: Hub, body: String) -> &'static str {
///     match hub.send_to_room("lobby", body).await {
///         Ok(()) => "sent",
///         Err(_) => "not sent",
///     }
/// }
///
/// let layer = SessionLayer::new(MemoryStore::new());
/// let app: Router = Router::new()
///     .route("/announce", post(announce))
///     .layer(layer.hub())
///     .layer(layer);
/// ```
#[derive(Clone)]
pub struct Hub {
    node: Arc<Node>,
    store: AnyStore,
}

impl Hub {
    pub(crate) fn new(node: Arc<Node>, store: AnyStore) -> Self {
        Hub { node, store }
    }

    /// The id of this instance's node: random, new each time a layer is made.
    pub fn node_id(&self) -> &str {
        self.node.id()
    }

    /// Sends `payload` to the connection of session `id`, wherever it is open. With a
    /// [resume window](crate::resume), a detached session gets it when it resumes. With Redis
    /// this is one script call, in this instance's order.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when no such session exists;
    /// [`Error::InvalidInput`] for a payload over
    /// [`Limits::max_message_len`](crate::Limits::max_message_len); `Unavailable` when the store
    /// or the broker cannot be reached. An `Unavailable` after the timeout may have been sent
    /// all the same (see the [guarantees](self#guarantees)).
    pub async fn send_to_session(&self, id: &str, payload: impl Into<Payload>) -> Result<()> {
        let payload = self.checked(payload.into())?;
        self.limits().check_session_id(id)?;
        let node = &self.node;
        node.transport()
            .send_to_session(id, payload, node.policy())
            .await
    }

    /// Sends `payload` to every connection of `user_id`, on every instance.
    ///
    /// The message takes its place in this instance's order when this is called, before the
    /// returned future is awaited: sends made one after the other reach each connection in
    /// that order even when their futures are awaited later, or together. The future resolves
    /// once the broker has taken the message.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an oversized payload or user id (nothing is sent); `Unavailable`
    /// when the broker cannot be reached (after a timeout, the message may have been sent all
    /// the same: see the [guarantees](self#guarantees)).
    pub fn send_to_user(
        &self,
        user_id: &str,
        payload: impl Into<Payload>,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let topic = self.limits().check_user_id(user_id);
        self.send_to(
            topic.map(|()| Topic::User(user_id.to_owned())),
            None,
            payload.into(),
        )
    }

    /// Sends `payload` to every member of `room`, on every instance. Ordered as
    /// [`send_to_user`](Self::send_to_user) is.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an oversized payload or a bad room name (nothing is sent);
    /// `Unavailable` when the broker cannot be reached (after a timeout, the message may have
    /// been sent all the same).
    pub fn send_to_room(
        &self,
        room: &str,
        payload: impl Into<Payload>,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let topic = self.limits().check_room(room);
        self.send_to(
            topic.map(|()| Topic::Room(room.to_owned())),
            None,
            payload.into(),
        )
    }

    /// Sends `payload` to every member of `room` but the connection of session `except` (the
    /// sender's own), on every instance. Ordered as [`send_to_user`](Self::send_to_user) is.
    /// The left-out session does not get the message later either, when it resumes.
    ///
    /// ```no_run
    /// # async fn run(session: ws_session::WsSession) -> ws_session::Result<()> {
    /// let hub = session.hub();
    /// hub.send_to_room_except("lobby", session.id(), "someone else said hi").await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    ///
    /// As [`send_to_room`](Self::send_to_room); `InvalidInput` for an empty or overlong
    /// session id too.
    pub fn send_to_room_except(
        &self,
        room: &str,
        except: &str,
        payload: impl Into<Payload>,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let limits = self.limits();
        let topic = limits
            .check_room(room)
            .and_then(|()| limits.check_session_id(except));
        self.send_to(
            topic.map(|()| Topic::Room(room.to_owned())),
            Some(except.to_owned()),
            payload.into(),
        )
    }

    /// Sends `payload` to every connection on every instance. Ordered as
    /// [`send_to_user`](Self::send_to_user) is.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an oversized payload (nothing is sent); `Unavailable` when the broker
    /// cannot be reached (after a timeout, the message may have been sent all the same).
    pub fn broadcast(
        &self,
        payload: impl Into<Payload>,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        self.send_to(Ok(Topic::All), None, payload.into())
    }

    /// Checks `payload` and publishes it to `topic`, leaving out session `except`, now (when
    /// the topic's name passed its check); the future says whether the broker took it.
    fn send_to(
        &self,
        topic: std::result::Result<Topic, crate::InvalidInput>,
        except: Option<String>,
        payload: Payload,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let published = topic
            .map_err(Error::from)
            .and_then(|topic| Ok((topic, self.checked(payload)?)))
            .map(|(topic, payload)| self.publish(&topic, &Envelope::message(except, payload)));
        async move { published?.await }
    }

    /// Disconnects session `id`: its connection, wherever it is, is closed with 4000
    /// ([`CloseReason::KICKED`]), and the session is removed from the store (a detached one
    /// too); it cannot be resumed.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when no such session exists; `Unavailable` when the store or the
    /// broker cannot be reached.
    pub async fn disconnect(&self, id: &str) -> Result<()> {
        let node = self.store.session_node(id).await?;
        if let Some(node) = node {
            let envelope = Envelope::close(Some(id.to_owned()), CloseReason::KICKED);
            self.publish(&Topic::Node(node.into()), &envelope).await?;
        }
        self.store.remove_session(id).await
    }

    /// Kicks `user_id`: every connection of the user, on every instance, is closed with 4000
    /// ([`CloseReason::KICKED`]), and every session of the user is removed from the store,
    /// with its rooms and its entry in the user index. Returns the ids of the removed sessions.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a bad user id; `Unavailable` when the store or the broker cannot be
    /// reached.
    pub async fn kick(&self, user_id: &str) -> Result<Vec<String>> {
        self.limits().check_user_id(user_id)?;
        let envelope = Envelope::close(None, CloseReason::KICKED);
        self.publish(&Topic::User(user_id.to_owned()), &envelope)
            .await?;
        let removed = self.store.remove_user_sessions(user_id).await?;
        crate::telemetry::kick();
        tracing::info!(user = %user_id, sessions = removed.len(), "user kicked");
        Ok(removed)
    }

    /// The members of `room` on every instance (session id and user id), from the store's
    /// state, in one round trip. Sessions that are gone are never listed.
    ///
    /// # Errors
    ///
    /// `InvalidInput` for a bad room name; any store error.
    pub async fn members(&self, room: &str) -> Result<Vec<Member>> {
        self.store.room_members(room).await
    }

    /// Every live session of `user_id`, on every instance (all the devices of the user), with
    /// their data: the same as [`SessionStore::get_user_sessions`] on the hub's store, for an
    /// HTTP route that holds a hub and not a store.
    ///
    /// ```no_run
    /// use axum::{Json, extract::Path};
    /// use ws_session::{Session, hub::Hub};
    ///
    /// async fn devices(hub: Hub, Path(user): Path<String>) -> Json<Vec<Session>> {
    ///     Json(hub.user_sessions(&user).await.unwrap_or_default())
    /// }
    /// ```
    ///
    /// # Errors
    ///
    /// `InvalidInput` for an empty or overlong user id; any store error.
    pub async fn user_sessions(&self, user_id: &str) -> Result<Vec<crate::Session>> {
        self.store.get_user_sessions(user_id).await
    }

    /// The rooms session `id` is in, sorted, from the store's state: wherever its connection
    /// is open, and while it is detached.
    ///
    /// # Errors
    ///
    /// [`Error::NotFound`] when no such session exists; `InvalidInput` for a bad id; any store
    /// error.
    pub async fn session_rooms(&self, id: &str) -> Result<Vec<String>> {
        self.store.session_rooms(id).await
    }

    /// Counters of this instance's node.
    pub fn stats(&self) -> HubStats {
        self.node.stats()
    }

    /// The limits of the store the hub's sessions live in.
    fn limits(&self) -> crate::Limits {
        self.store.enforced_limits()
    }

    fn checked(&self, payload: Payload) -> Result<Payload> {
        self.limits().check_message(payload.len())?;
        Ok(payload)
    }

    /// Publishes now, in this node's order; the future says whether the broker took it.
    fn publish(&self, topic: &Topic, envelope: &Envelope) -> Published {
        self.node.publish(topic, envelope)
    }
}

impl fmt::Debug for Hub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Hub")
            .field("node", &self.node_id())
            .field("stats", &self.stats())
            .finish()
    }
}

/// A [`Hub`] is a layer too: it makes itself available to the extractor of every request of
/// the routes it wraps.
impl<S> tower_layer::Layer<S> for Hub {
    type Service = HubService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        HubService {
            inner,
            hub: self.clone(),
        }
    }
}

/// The service of [`Hub`] as a layer: puts the hub into each request's extensions.
#[derive(Clone, Debug)]
pub struct HubService<S> {
    inner: S,
    hub: Hub,
}

impl<S, B> tower_service::Service<http::Request<B>> for HubService<S>
where
    S: tower_service::Service<http::Request<B>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        request.extensions_mut().insert(self.hub.clone());
        self.inner.call(request)
    }
}

/// The rejection of the [`Hub`] extractor when the request carries no hub: a
/// `500 Internal Server Error`, since it is a mistake in the server's setup.
///
/// ```
/// use axum::response::IntoResponse;
/// use ws_session::hub::MissingHub;
///
/// assert_eq!(MissingHub.into_response().status(), 500);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MissingHub;

impl MissingHub {
    const MESSAGE: &'static str = "Missing hub: the request has no `Hub`. Add \
        `.layer(session_layer.hub())` to the routes that extract it (WebSocket routes behind \
        the `SessionLayer` have it already).";
}

impl fmt::Display for MissingHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::MESSAGE)
    }
}

impl std::error::Error for MissingHub {}

impl IntoResponse for MissingHub {
    fn into_response(self) -> Response {
        tracing::error!("{}", Self::MESSAGE);
        (StatusCode::INTERNAL_SERVER_ERROR, Self::MESSAGE).into_response()
    }
}
