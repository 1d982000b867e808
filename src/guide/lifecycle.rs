//! # The lifecycle of a session
//!
//! From the upgrade to the last drop, what happens to a session, and what the store does on its own.
//!
//! 1. **Upgrade.** For a WebSocket upgrade request (HTTP/1.1 `Upgrade: websocket`, or the
//!    HTTP/2 extended CONNECT form), the layer identifies the user, draws a 128-bit random session
//!    id, creates the session in the store (store unreachable: `503`, nothing upgraded) and puts
//!    a [`WsSession`](crate::WsSession) handle into the request for the handler to extract. If the handler's
//!    response is not a successful upgrade, the session is removed at once. Every other request
//!    passes through untouched.
//! 2. **Open.** The connection is registered with this instance's hub node (its user's and, as
//!    it joins them, its rooms' topics are subscribed before the handler runs). The handler
//!    moves the handle into its socket task, usually with a
//!    [`SessionSocket`](crate::socket::SessionSocket), which writes what the hub sends the
//!    connection while it reads the client's frames. While any clone of the handle is alive,
//!    the session is kept alive: one timer per layer restarts the TTL of all of this
//!    instance's open sessions, many per store call (every half TTL by default; on Redis one
//!    `PEXPIRE` per session, and the keys that index them once every two TTLs).
//! 3. **Closed.** When the last clone of the handle is dropped — the client closed the socket,
//!    vanished without a close frame, or the handler returned — the connection leaves the hub
//!    at once (topics nobody here needs any more are unsubscribed) and, in a tracked task, the
//!    session is removed from the store with its rooms — or, with a [resume window](super::resume),
//!    detached: kept with its data, rooms and user index entry for the window, then expired.
//!    [`LiveSessions::wait_for_removals`](crate::LiveSessions::wait_for_removals) lets a graceful shutdown await every pending removal.
//! 4. **Resumed.** A client that reconnects within the window with the session's resume token
//!    gets it back, with the same session id on its new connection (see
//!    [the resume guide](super::resume)).
//! 5. **Shutdown.** [`LiveSessions::shutdown`](crate::LiveSessions::shutdown) (or
//!    `SessionLayer::shutdown()`) closes every
//!    socket of the instance with 1001 and detaches (without a window: removes) their sessions,
//!    returning once the store has them.
//! 6. **Crash.** If a server instance dies, nothing refreshes its sessions any more and Redis
//!    expires them after one TTL; until then they can be resumed on any instance. A short TTL
//!    (a minute, say) bounds how long they linger.
//!
//! ## The store on its own
//!
//! Every operation of the store is usable without the layer:
//!
//! ```rust
//! use serde_json::json;
//! use ws_session::{MemoryStore, SessionStore};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), ws_session::Error> {
//! let store = MemoryStore::new();
//! store.create_session("client-1", "alice").await?;
//! store.set_session_data("client-1", "theme", json!("dark")).await?;
//! assert_eq!(store.get_session_data("client-1", "theme").await?, Some(json!("dark")));
//! assert_eq!(store.get_user_sessions("alice").await?.len(), 1);
//! store.remove_session("client-1").await?;
//! assert!(store.get_session("client-1").await?.is_none());
//! # Ok(()) }
//! ```
//!
//! | operation             | meaning |
//! |-----------------------|---------|
//! | `create_session`      | new session for a client of a user; an id in use is `AlreadyExists`, never overwritten |
//! | `get_session`         | the whole session; `None` when missing or expired |
//! | `set_session_data`    | one key |
//! | `get_session_data`    | one key; missing key is `Ok(None)`, missing session `Err(NotFound)` |
//! | `update_session_data` | several keys at once, atomically |
//! | `delete_session_data` | one key |
//! | `clear_session_data`  | every key; the session stays |
//! | `remove_session`      | idempotent; also drops the session from its user's index |
//! | `get_user_sessions`   | every live session of a user, on every instance sharing the store |
//! | `touch`               | refreshes the TTL of many sessions in one call |
//!
//! Every mutation of a session that does not exist (never created, removed, or expired) is
//! `Err(NotFound)` and leaves nothing behind. Writes and `touch` extend a session's TTL; reads
//! do not. (On Redis, a write leaves at least 63/64 of the TTL, see below; `touch` and the
//! memory store restart it whole.)
