//! What the tests and the comparative harnesses of `ws-session` share, from one place: a
//! private `redis-server` per test process, the chat example's router, chat clients over real
//! sockets, the chat example as a process, and a WebSocket over HTTP/2.

/// The chat example's router and protocol, as `examples/chat/app.rs` writes them.
#[path = "../../examples/chat/app.rs"]
pub mod app;
pub mod chat_client;
pub mod cluster;
pub mod h2_socket;
pub mod process;
pub mod redis_server;
pub mod sentinel;
