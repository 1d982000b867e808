//! # Deploying safely
//!
//! A WebSocket server faces the internet; the crate's defaults protect it, and a few server
//! settings that the crate cannot own must be set by the application (the chat example sets
//! them all).
//!
//! **What the crate does by default.**
//!
//! - **Origin.** Every upgrade's `Origin` is checked before the user is identified: a page of
//!   another site gets `403` and nothing is created. The default, `OriginCheck::same_origin()`,
//!   allows pages served by the same host and port, and requests without `Origin` (not a
//!   browser). Replace it with `SessionLayer::check_origin`: `OriginCheck::allow_list([...])`,
//!   `OriginCheck::same_origin_and([...])`, a predicate, or `OriginCheck::any()` when nothing
//!   reaches the server with a browser's cookies. Without this check, any web page could open a
//!   socket as your logged-in visitor.
//! - **Nothing a client sends grows without bound.** A message to a room nobody is in, or to a
//!   user without a session, is delivered to nobody and kept for nobody. What the hub keeps for
//!   resumes is bounded per target (`Resume::keep_messages`, 256; `Resume::keep_bytes`, 1 MiB)
//!   and in all (`Resume::keep_total_bytes`, 64 MiB per store prefix; past it, the targets written
//!   to least recently lose their history first, and a session resuming from before is told its
//!   replay is incomplete). `MemoryStore` reclaims expired history on its sweep, without waiting
//!   for the next message. A session holds at most 1 MiB of data and a user at most 64 sessions
//!   (`Limits::max_session_bytes`, `Limits::max_user_sessions`; past the cap, `429`).
//! - **A resume cannot stall Redis.** It reads only the newest messages its inbox can take
//!   (`InboxLimits`: 1,024 messages, 4 MiB), in steps of at most 64 messages per history, each
//!   step ending once past 256 KiB, merging them as they come; what did not fit makes the
//!   replay `complete: false`.
//! - **Resume attempts** are bounded per session (`Resume::attempts_per_minute`, 30): past it,
//!   `429` with `Retry-After`, and nothing is claimed.
//! - **No secret in the crate's logs**: the resume token is never logged, the layer logs a
//!   request's path, never its query, and `store::redis::redacted_url` shows a Redis URL without
//!   its password. At `trace`, tungstenite logs whole frames, and the welcome carries the token:
//!   keep `tungstenite` at `debug` or below, as the chat example does.
//!
//! **What the server must set.** `axum::serve` has none of these; the chat example serves with
//! hyper-util's connection builder (`examples/chat/serve.rs`) to set them:
//!
//! | setting | why | chat example |
//! |---------|-----|--------------|
//! | WebSocket message and frame size (`WebSocketUpgrade::max_message_size`, `max_frame_size`) | tungstenite reads up to 64 MiB messages and 16 MiB frames whole by default | 1 MiB; a larger one is closed with 1009 before it is buffered |
//! | header-read timeout (`http1().header_read_timeout`, with a timer) | a client that sends half a request holds a connection forever | 30 s |
//! | pings and an idle timeout, in the socket loop | a peer that vanished without a FIN holds its socket and session | ping at 30 s, close at 60 s of silence |
//! | a cap on open connections, WebSockets included | file descriptors and memory are finite | 10,000 |
//! | a send rate per connection (`governor`) | one client can make the hub fan out without pause | 100/s, bursts of 200 |
//! | a listen backlog that holds a reconnect storm (`tokio::net::TcpSocket::listen`) | see below | 4,096 |
//! | an admission rate for new and resumed sessions (`SessionLayer::admission`) | see below | 5,000/s, 10,000 queued |
//!
//! **Restarts and reconnect storms.** When an instance shuts down (or a load balancer moves its
//! clients), every one of its clients reconnects within a second or two, to a restarted
//! process or to the others. Four things keep that storm from hurting:
//!
//! - **The listen backlog.** `TcpListener::bind` asks the kernel to queue 128 connections
//!   waiting for `accept`; past that, the kernel drops the handshakes, and each client's TCP
//!   stack tries again only a second later, then two, then four. Ten thousand clients arriving
//!   in the same second then take seconds longer than they need. Listen through
//!   `tokio::net::TcpSocket` with a backlog of a few thousand (Linux caps it at
//!   `net.core.somaxconn`, 4,096 by default), as `examples/chat/serve.rs` does.
//! - **An admission rate.** Each new or resumed session is a few store calls; with every
//!   instance on one Redis, a storm of them slows every other client's operations too.
//!   `SessionLayer::admission(Admission::per_second(n).queue(q))` opens at most `n` sessions
//!   per second per instance, lets `q` upgrades wait for their turn, and answers the rest with
//!   `503` and `Retry-After` before anything is created.
//! - **A shutdown that stops accepting first.** On SIGTERM, close the listener, then call
//!   `LiveSessions::shutdown`: the clients that reconnect while the sessions detach are refused
//!   by the kernel and try the restarted process or another instance, rather than each being
//!   accepted and answered `503` by an instance that is going away, which slows its detach.
//!   `examples/chat/serve.rs` does it in that order.
//! - **Clients that come back with jitter.** A client that retries at a random moment within a
//!   growing window (the demo page: anywhere up to 0.5 s, then 1, 2, 4, at most 8 s) spreads
//!   a storm over time instead of returning all in the same instant.
//!
//! **Many connections on one instance.** What an open connection costs stays flat as their
//! number grows (`docs/performance.md` in the repository has the figures, measured up to the
//! largest number one process could hold on the machine, and their projection to 100,000):
//!
//! - **File descriptors.** Each connection is one, and Redis's connections a few more: raise
//!   the process's open-file limit (`ulimit -n`, `LimitNOFILE=` in a systemd unit) above the
//!   connection cap, and set the cap (`MAX_CONNECTIONS` in the chat example) below it.
//! - **Memory.** Most of a connection's memory is its WebSocket's buffers, which axum sizes:
//!   `WebSocketUpgrade::read_buffer_size` (the chat example sets 4 KiB, down from 128 KiB) and
//!   the kernel's socket buffers. The session, its place in the hub and its socket loop add
//!   about 1.5 KiB.
//! - **Idle CPU.** An idle connection costs one ping and one pong every half idle timeout, and
//!   one keep-alive of its session every half TTL (one `PEXPIRE` on Redis, many per call). A
//!   longer `idle_timeout` pings less often; keep it under what the load balancers between the
//!   clients and the server allow a silent connection (often 60 s).
//!
//! **What `/metrics` tells.** The chat example serves its metrics on the public port, as a demo:
//! the number of open sessions, resumes and why they were refused, kicks. In production, serve
//! `/metrics` on a private port or behind authentication.
//!
//! **Failure semantics.** An operation that times out (`Error::Unavailable` after the store's
//! timeout) may still have been applied: Redis may run a script whose answer was lost. A retried
//! `set` is harmless; a retried send may deliver twice, and each delivered message carries an
//! `offset`, so a client drops a message whose offset it has seen. A live connection whose
//! session vanished from the store (Redis restarted without its data) is found by the keep-alive
//! and closed with 1012; the demo page reconnects on it and gets a fresh session.
