//! # Behind an authentication layer
//!
//! The authentication layer runs **before** the session layer. In a `ServiceBuilder` the first
//! layer added runs first; with axum's `Router::layer` the layer added last runs first.
//! The repository's `examples/auth.rs` (`cargo run --example auth`) is a whole server: a
//! bearer-token check written as ordinary `axum::middleware::from_fn` middleware puts the
//! `UserId` in, and `SessionLayer` with its default step reads it:
//!
//! ```rust,no_run
//! use axum::{Router, extract::Request, middleware::{self, Next}, response::{IntoResponse, Response}, routing::get};
//! use http::StatusCode;
//! use tower::ServiceBuilder;
//! use ws_session::{MemoryStore, SessionLayer, UserId};
//!
//! async fn authenticate(mut request: Request, next: Next) -> Response {
//!     let user = request
//!         .headers()
//!         .get("authorization")
//!         .and_then(|value| value.to_str().ok())
//!         .and_then(|value| value.strip_prefix("Bearer "))
//!         .and_then(|token| (token == "alice-secret").then_some("alice")); // look the token up
//!     match user {
//!         Some(user) => {
//!             request.extensions_mut().insert(UserId::new(user));
//!             next.run(request).await
//!         }
//!         None => StatusCode::UNAUTHORIZED.into_response(),
//!     }
//! }
//!
//! # async fn ws_handler() {}
//! let app: Router = Router::new().route("/ws", get(ws_handler)).layer(
//!     ServiceBuilder::new()
//!         .layer(middleware::from_fn(authenticate)) // first: authenticates
//!         .layer(SessionLayer::new(MemoryStore::new())), // then: opens the session
//! );
//! ```
//!
//! In the wrong order the session layer finds no `UserId`: the upgrade gets `401`, never an
//! anonymous session, and the log says at `warn` which order to use. The common tower-http
//! layers around it — `TraceLayer`, `TimeoutLayer` (a request timeout ends with the `101`
//! response, not with the socket), `CompressionLayer`, `CorsLayer`, `SetRequestIdLayer` (the
//! request id reaches the handler beside the session) — leave the upgrade and the session's
//! life as they are, in a `ServiceBuilder`, with `Router::layer`, with `route_layer` and in a
//! nested router; the crate's tests check each of these. The layer needs no axum router at
//! all: it serves around a `tower::service_fn` with hyper directly just as well.
