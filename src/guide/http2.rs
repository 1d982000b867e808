//! # WebSockets over HTTP/2
//!
//! WebSockets over HTTP/2 (RFC 8441, extended `CONNECT`) get a session each, several on one
//! connection. The server must accept extended CONNECT — `axum::serve` does (it enables
//! hyper's `enable_connect_protocol`); with hyper directly, call
//! `http2().enable_connect_protocol()` on the connection builder — and the route must accept
//! `CONNECT` besides `GET` (`get(handler).connect(handler)`, or `any(handler)`), with axum's
//! `http2` feature for `WebSocketUpgrade`. The crate's tests open two WebSockets on one HTTP/2
//! connection with the `h2` crate and check each session's life.
