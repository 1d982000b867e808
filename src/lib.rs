//! Server-side sessions for the WebSocket clients of [axum] and [tower] servers, in memory or in
//! Redis, with a hub that reaches every connection on every instance and a resume that brings a
//! dropped client back to its session.
//!
//! Every client that upgrades to a WebSocket behind a [`SessionLayer`] gets a session with typed
//! data ([`WsSession`]): created at the upgrade, kept alive while the socket is open, removed
//! when it drops (or, with a [resume window](resume), kept for a while so that the client can
//! come back to it). Handlers join rooms and send to sessions, users, rooms or everyone through
//! the [`hub`]; [`SessionSocket`](socket::SessionSocket) runs the socket and the session together.
//!
//! ```no_run
//! use axum::{Router, extract::ws::{Message, WebSocketUpgrade}, response::IntoResponse, routing::get};
//! use ws_session::{MemoryStore, SessionLayer, WsSession, socket::SessionSocket};
//!
//! async fn ws(upgrade: WebSocketUpgrade, session: WsSession) -> impl IntoResponse {
//!     upgrade.on_upgrade(|socket| async move {
//!         let visits: u32 = session.get("visits").await.ok().flatten().unwrap_or(0);
//!         let _ = session.set("visits", &(visits + 1)).await;
//!         let _ = session.join("lobby").await;
//!         let mut socket = SessionSocket::new(socket, session.clone());
//!         while let Some(Message::Text(text)) = socket.recv().await {
//!             let _ = session.hub().send_to_room("lobby", text.as_str()).await;
//!         }
//!     })
//! }
//!
//! # async fn run() {
//! let app: Router = Router::new()
//!     .route("/ws", get(ws))
//!     .layer(SessionLayer::new(MemoryStore::new()).allow_anonymous(true));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await.unwrap();
//! axum::serve(listener, app).await.unwrap();
//! # }
//! ```
//!
//! # Where to go from here
//!
//! - [`SessionLayer`]: the tower layer, and how it identifies the user
//!   ([`UserId`], [`SessionLayer::identify`]) and checks the Origin ([`OriginCheck`]).
//! - [`WsSession`]: the handle: typed data, rooms, the user's other sessions, the hub.
//! - [`socket`]: the socket loop, and the conversions into axum's frames.
//! - [`hub`]: sending across instances, and its [guarantees](hub#guarantees).
//! - [`resume`]: the resume window and its settings.
//! - [`MemoryStore`], [`RedisStore`], [`AnyStore`]: the stores, and one chosen at run time;
//!   [`SessionStore`]: the operations of a store, usable without the layer.
//! - The [guides](guide): the lifecycle, the hub, resume, authentication, HTTP/2, limits and
//!   errors, deploying, the Redis layout and metrics.
//!
//! # Cargo features
//!
//! | feature | default | what it adds |
//! |---|---|---|
//! | `axum` | yes | [`socket`]: the socket loop and conversions into axum's WebSocket frames |
//! | `redis` | yes | [`RedisStore`], on a bb8-redis pool |
//! | `metrics` | yes | counters, gauges and a histogram through the `metrics` facade ([metrics guide](guide::metrics)) |
//! | `http2` | no | WebSockets over HTTP/2 (extended CONNECT), through `hyper` ([HTTP/2 guide](guide::http2)) |
//!
//! The minimum supported Rust version is 1.88.
//!
//! [axum]: https://docs.rs/axum
//! [tower]: https://docs.rs/tower
#![deny(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
pub mod guide;
pub mod hub;
mod layer;
mod limits;
pub mod resume;
mod session;
#[cfg(feature = "axum")]
#[cfg_attr(docsrs, doc(cfg(feature = "axum")))]
pub mod socket;
pub mod store;
mod telemetry;
mod wake_ups;

pub use error::{Chain, Error, InvalidInput, Result};
pub use layer::{
    Admission, Identification, OriginCheck, ResponseFuture, SessionLayer, SessionService, UserId,
};
pub use limits::Limits;
pub use session::{
    LiveSessions, MissingSessionLayer, Session, SessionData, WsSession, from_value, new_session_id,
    to_value,
};
pub use store::memory::MemoryStore;
#[cfg(feature = "redis")]
pub use store::redis::{RedisPool, RedisStore};
pub use store::{AnyStore, SessionStore};

/// The README's Rust examples, compiled as doctests so that they keep compiling.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
