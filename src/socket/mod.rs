//! The socket loop: a WebSocket and its session, run together.
//!
//! A WebSocket handler has two sources to wait on: the client's frames and what the
//! [hub](crate::hub) sends the connection. [`SessionSocket`] waits on both. Its
//! [`recv`](SessionSocket::recv) yields the client's next text or binary frame; while it waits,
//! it writes the hub's messages to the client (every message waiting goes out in one write),
//! answers the hub's order to close with the close frame it carries, closes a client that stops
//! reading or goes silent, and closes a client whose message is over axum's size limit with
//! 1009. When it returns `None`, the connection is over: drop the socket and the session.
//!
//! ```no_run
//! use axum::{Router, extract::ws::{Message, WebSocketUpgrade}, response::IntoResponse, routing::get};
//! use ws_session::{MemoryStore, SessionLayer, WsSession, socket::SessionSocket};
//!
//! async fn ws(upgrade: WebSocketUpgrade, session: WsSession) -> impl IntoResponse {
//!     upgrade.on_upgrade(move |socket| async move {
//!         let _ = session.join("lobby").await;
//!         let mut socket = SessionSocket::new(socket, session.clone());
//!         while let Some(frame) = socket.recv().await {
//!             if let Message::Text(text) = frame {
//!                 // Everyone in the lobby, on every instance, but this connection.
//!                 let _ = session.hub().send_to_room_except("lobby", session.id(), text.as_str()).await;
//!             }
//!         }
//!     })
//! }
//!
//! let app: Router = Router::new()
//!     .route("/ws", get(ws))
//!     .layer(SessionLayer::new(MemoryStore::new()));
//! ```
//!
//! Hub messages are written only while [`recv`](SessionSocket::recv) waits: a handler that
//! spends a long time on one frame holds the hub's messages back meanwhile (they wait in the
//! connection's bounded inbox). `recv` is cancel-safe, so it can sit in a `tokio::select!`
//! beside other work, such as replies that wait on a send.
//!
//! A hand-written loop remains possible: [`WsSession::recv_many`] and the conversions of
//! [`Payload`](crate::hub::Payload), [`Delivery`] and [`CloseReason`] into axum's `Message` and
//! `CloseFrame` (this module implements them) are what `SessionSocket` is made of.

mod convert;
mod keep_alive;

use std::future::poll_fn;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, close_code};
use futures_util::{Sink, SinkExt};
use tokio::time::Instant;

use crate::hub::{CloseReason, Delivery, HubEvent};
use crate::session::WsSession;
use keep_alive::KeepAlive;

/// How long a write to the client may take, by default, before the client is dropped.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a client may stay silent, by default, before it is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// Most hub messages written before one flush, by default.
pub const BATCH: usize = 64;

/// A WebSocket and its session, run together: [`recv`](Self::recv) yields the client's frames
/// and writes what the hub sends meanwhile. See the [module docs](self).
///
/// What it does for the connection, each with a default that a builder method changes:
///
/// - **Batched writes.** Every hub message waiting (up to [`batch`](Self::batch), 64) goes out
///   in one write and one flush.
/// - **Slow clients.** A write that takes longer than [`send_timeout`](Self::send_timeout)
///   (10 s) ends the connection; so does an overflowing inbox, through the hub's close order
///   (4001).
/// - **Silent clients.** The client is pinged every half of
///   [`idle_timeout`](Self::idle_timeout) (60 s), and closed with 1001 `idle` when it has sent
///   nothing, not even a pong, for the whole of it. The pings of all connections fall on a
///   grid of whole seconds, so an idle server wakes for them in batches.
/// - **The hub's close order.** A kick, a takeover or a shutdown closes the socket with the
///   code and reason the hub gave ([`CloseReason`]).
/// - **Oversized messages.** A client message over axum's limit
///   ([`WebSocketUpgrade::max_message_size`](axum::extract::ws::WebSocketUpgrade::max_message_size))
///   closes the socket with 1009.
pub struct SessionSocket {
    // Dropped in this order: the session's handle goes before the socket closes, so that a
    // client that sees its socket close and reconnects at once finds its old connection gone
    // from the hub (when no other clone of the handle is left).
    session: WsSession,
    socket: WebSocket,
    /// Hub events taken from the inbox; the first `written` of them are in the socket's sink.
    events: Vec<HubEvent>,
    written: usize,
    /// When the write under way must be done by.
    deadline: Option<Instant>,
    send_timeout: Duration,
    batch: usize,
    deliver: fn(&Delivery) -> Message,
    keep_alive: Option<KeepAlive>,
    done: bool,
}

/// What woke the loop.
enum Woke {
    Frame(Option<Result<Message, axum::Error>>),
    Events(usize),
    Ping,
}

impl SessionSocket {
    /// Runs `socket` with `session`, with the default settings. Call it inside
    /// `on_upgrade`, in the task that serves the socket.
    pub fn new(socket: WebSocket, session: WsSession) -> Self {
        let keep_alive = KeepAlive::new(IDLE_TIMEOUT, session.wake_ups());
        SessionSocket {
            session,
            socket,
            events: Vec::new(),
            written: 0,
            deadline: None,
            send_timeout: SEND_TIMEOUT,
            batch: BATCH,
            deliver: |delivery| Message::from(delivery),
            keep_alive: Some(keep_alive),
            done: false,
        }
    }

    /// How long one write (a batch of hub messages, or one [`send`](Self::send)) may take
    /// before the client counts as gone. Default 10 s.
    #[must_use]
    pub fn send_timeout(mut self, timeout: Duration) -> Self {
        self.send_timeout = timeout;
        self
    }

    /// How long the client may stay silent before it is closed (it is pinged at half of
    /// this); `None` turns pings and the idle close off. Default 60 s.
    #[must_use]
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.keep_alive = timeout.map(|timeout| KeepAlive::new(timeout, self.session.wake_ups()));
        self
    }

    /// Most hub messages written before one flush. Default 64; at least 1.
    #[must_use]
    pub fn batch(mut self, messages: usize) -> Self {
        self.batch = messages.max(1);
        self
    }

    /// How a hub message becomes a frame. By default the payload as it is (text as a text
    /// frame, bytes as a binary frame); a client that resumes needs each message's
    /// [offset](crate::hub::Offset) too, which a function given here can add.
    ///
    /// ```no_run
    /// # use axum::extract::ws::{Message, WebSocket};
    /// # use ws_session::{WsSession, hub::Delivery, socket::SessionSocket};
    /// fn with_offset(delivery: &Delivery) -> Message {
    ///     let text = delivery.text().unwrap_or_default();
    ///     Message::Text(format!("{}:{text}", delivery.offset()).into())
    /// }
    /// # fn run(socket: WebSocket, session: WsSession) {
    /// let socket = SessionSocket::new(socket, session).deliver_with(with_offset);
    /// # }
    /// ```
    #[must_use]
    pub fn deliver_with(mut self, deliver: fn(&Delivery) -> Message) -> Self {
        self.deliver = deliver;
        self
    }

    /// The session this socket serves.
    pub fn session(&self) -> &WsSession {
        &self.session
    }

    /// The client's next text or binary frame, writing the hub's messages to the client while
    /// it waits; `None` once the connection is over (the client left or failed, the hub closed
    /// it, it was too slow or silent, or its message was too big). Pings and pongs are
    /// answered here and not yielded. Cancel-safe.
    pub async fn recv(&mut self) -> Option<Message> {
        while !self.done {
            if self.written < self.events.len() || self.deadline.is_some() {
                // Boxed, as writes are: a connection waiting for its client holds only what
                // waiting needs.
                Box::pin(self.forward()).await;
                continue;
            }
            let woke = {
                let keep_alive = self.keep_alive.as_mut();
                tokio::select! {
                    frame = self.socket.recv() => Woke::Frame(frame),
                    taken = self.session.recv_many(&mut self.events, self.batch) => Woke::Events(taken),
                    _ = tick(keep_alive) => Woke::Ping,
                }
            };
            match woke {
                Woke::Frame(frame) => {
                    if let Some(keep) = &mut self.keep_alive {
                        keep.heard();
                    }
                    match frame {
                        Some(Ok(frame @ (Message::Text(_) | Message::Binary(_)))) => {
                            return Some(frame);
                        }
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                        Some(Err(error)) if too_big(&error) => {
                            self.close_with(&CloseReason::new(close_code::SIZE, "message too big"))
                                .await;
                        }
                        Some(Ok(Message::Close(_)) | Err(_)) | None => self.done = true,
                    }
                }
                Woke::Events(0) => self.done = true,
                Woke::Events(_) => {}
                Woke::Ping => self.ping().await,
            }
        }
        None
    }

    /// Sends one frame to the client, within the send timeout.
    ///
    /// # Errors
    ///
    /// The socket's error, or a timeout, when the client is gone or too slow: the connection
    /// is over, and [`recv`](Self::recv) returns `None` from then on.
    pub async fn send(&mut self, frame: impl Into<Message>) -> Result<(), axum::Error> {
        self.send_all([frame.into()]).await
    }

    /// Sends frames in order with one flush, within the send timeout.
    ///
    /// # Errors
    ///
    /// As [`send`](Self::send).
    pub async fn send_all(
        &mut self,
        frames: impl IntoIterator<Item = Message>,
    ) -> Result<(), axum::Error> {
        let socket = &mut self.socket;
        let written = async move {
            for frame in frames {
                socket.feed(frame).await?;
            }
            socket.flush().await
        };
        // Boxed: a write, with its timer, is held only while it runs, not in every connection's
        // waiting task.
        let result = match Box::pin(tokio::time::timeout(self.send_timeout, written)).await {
            Ok(result) => result,
            Err(elapsed) => Err(axum::Error::new(elapsed)),
        };
        if result.is_err() {
            self.done = true;
        }
        result
    }

    /// Closes the connection with `reason`'s code and reason, after the hub messages already
    /// taken are written.
    pub async fn close(mut self, reason: &CloseReason) {
        if !self.done {
            self.forward().await;
        }
        self.close_with(reason).await;
    }

    /// Writes the events taken (up to a close order) and flushes, within the send timeout;
    /// ends the connection when the client does not keep up or the hub closed it.
    /// Cancel-safe: what is written stays written, and the next call goes on from there.
    async fn forward(&mut self) {
        let deadline = *self
            .deadline
            .get_or_insert_with(|| Instant::now() + self.send_timeout);
        let written = tokio::time::timeout_at(deadline, self.write_events()).await;
        self.deadline = None;
        let close = match written {
            Ok(Ok(close)) => close,
            Ok(Err(_)) | Err(_) => {
                self.done = true;
                None
            }
        };
        self.events.clear();
        self.written = 0;
        if let Some(reason) = close {
            self.close_with(&reason).await;
        }
    }

    /// Feeds the events not yet in the sink, then flushes; returns the close order it stopped
    /// at, if any.
    async fn write_events(&mut self) -> Result<Option<CloseReason>, axum::Error> {
        while let Some(event) = self.events.get(self.written) {
            let frame = match event {
                HubEvent::Message(delivery) => (self.deliver)(delivery),
                HubEvent::Close(reason) => {
                    let reason = reason.clone();
                    self.socket.flush().await?;
                    return Ok(Some(reason));
                }
            };
            poll_fn(|cx| Sink::poll_ready(std::pin::Pin::new(&mut self.socket), cx)).await?;
            Sink::start_send(std::pin::Pin::new(&mut self.socket), frame)?;
            self.written += 1;
        }
        self.socket.flush().await?;
        Ok(None)
    }

    async fn ping(&mut self) {
        let Some(keep) = &self.keep_alive else {
            return;
        };
        if keep.is_silent() {
            tracing::debug!(session = %self.session.id(), "silent client: closing");
            self.close_with(&CloseReason::new(close_code::AWAY, "idle"))
                .await;
        } else if self.send(Message::Ping(Default::default())).await.is_err() {
            self.done = true;
        }
    }

    /// Sends a close frame and ends the loop.
    async fn close_with(&mut self, reason: &CloseReason) {
        let _ = self.send(Message::from(reason.clone())).await;
        self.done = true;
    }
}

impl std::fmt::Debug for SessionSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SessionSocket")
            .field("session", &self.session)
            .field("waiting", &(self.events.len() - self.written))
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

/// The next tick of the pings, or never when they are off.
async fn tick(keep_alive: Option<&mut KeepAlive>) {
    match keep_alive {
        Some(keep_alive) => {
            keep_alive.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// Whether a read failed on a message or frame over the size limit.
fn too_big(error: &axum::Error) -> bool {
    use std::error::Error as _;
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(tungstenite::Error::Capacity(_)) = cause.downcast_ref::<tungstenite::Error>() {
            return true;
        }
        source = cause.source();
    }
    false
}
