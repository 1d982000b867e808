//! # Resume: the same session after a drop, a deploy or a crash
//!
//! A phone that loses signal for two seconds, a rolling deploy, a crashed instance: with a
//! resume window, none of them costs the user their session.
//!
//! ```rust,no_run
//! use std::time::Duration;
//! use ws_session::resume::Resume;
//! use ws_session::{MemoryStore, SessionLayer};
//!
//! let layer = SessionLayer::new(MemoryStore::new()).resume(
//!     Resume::within(Duration::from_secs(120)) // how long a dropped session is kept
//!         .keep_messages(256)                  // per target, for missed messages (the default)
//!         .max_detached_per_user(16),          // the default
//! );
//! ```
//!
//! - **The window.** Without one (the default), a session is removed the moment its socket
//!   drops, as before. With one, the drop **detaches** the session: it leaves this instance's
//!   keep-alive and hub, and stays in the store with its data, its rooms and its place in the
//!   user index (it is still listed by `user_sessions`, and still a member of its rooms) for the
//!   window; then every key of it expires.
//! - **The token.** Every session has a resume token (`session.resume_token().expose()`: the
//!   session id, a dot and 128 bits from the OS's CSPRNG). Send it to the client. The store keeps
//!   only its SHA-256 (through `sha2`) and compares in constant time; the token is never logged,
//!   nor in an error, nor in `Debug` output.
//! - **The claim.** A client that reconnects within the window presents the token — by default
//!   as `?resume=TOKEN&offset=OFFSET` on the upgrade request (`SessionLayer::resume_from`
//!   replaces that step). In **one atomic round trip** the store checks the token's hash and
//!   that the user identified on the new request is the session's (an anonymous session: the
//!   token alone), rotates the token, and attaches the session to the new connection. The
//!   handler gets the same session id, data and rooms, `session.recovered() == true` and a new
//!   token; the old one no longer works. Of two reconnects racing with one token, exactly one
//!   wins. Every failed claim — an unknown, used, forged or expired token, another user, input
//!   that is not a token — quietly gets a fresh session (`recovered() == false`): no error, no
//!   hint whether the session exists, never someone else's session.
//! - **Takeover.** When the session is still attached somewhere (a half-open socket, another
//!   instance, a crashed instance), the claim takes it over: the older connection is closed with
//!   **4002** on whatever instance holds it, and dropping its handle no longer touches the
//!   session.
//! - **Missed messages.** With a window, the hub keeps what it sends to each target (everyone,
//!   each user, each room, each session), at most `keep_messages` per target and for
//!   `keep_for` (default: the window). Every delivered message carries an `offset`, increasing
//!   on every connection (time-based, so it keeps increasing across restarts). The client
//!   presents the last offset it saw; after a claim, the messages addressed to the session after
//!   it — sent while it was away, or lost in flight as its socket died — wait first in its inbox,
//!   in order and once each, then the live ones, with no gap and no duplicate at the seam (the
//!   connection subscribes before the history is read, and the two are merged by offset). A
//!   session reads only its own targets' histories, from its offset, and never what a room was
//!   sent before it joined, nor a message that left it out
//!   ([`Hub::send_to_room_except`](crate::hub::Hub::send_to_room_except)). `session.recovery()` says how many (`missed`) and whether that is
//!   all (`complete`: `false` when the client's offset is older than what is kept).
//! - **Per-user cap.** A user has at most `max_detached_per_user` detached sessions; a detach
//!   past the cap removes the user's oldest one, so a storm of reconnects cannot fill Redis.
//! - **Restart and crash.** `LiveSessions::shutdown()` closes every socket with 1001 and
//!   detaches their sessions, returning once the store has them: clients resume on the restarted
//!   instance or on another one. After a SIGKILL nothing detaches the sessions, but they stay in
//!   Redis, attached to the dead node, until their TTL runs out, and a resume within it succeeds
//!   on any instance (a takeover of the dead node).
//! - **What is not recovered.** A kicked or disconnected session (removed, never resumable); a
//!   session past its window (or, after a crash, its TTL); messages beyond what is kept
//!   (`complete: false`); messages to a room the session left. With `MemoryStore`, resume works
//!   within one process (network drops, takeovers, missed messages) but nothing survives a
//!   restart of the process.
//! - **Tracing.** `info` for a resume (session, user, epoch, missed, complete), a refused claim
//!   (with its reason: `malformed`, `unknown`, `token` or `user`; never the token), a takeover,
//!   and the removal of a user's oldest detached sessions; `debug` for a detach and for detached
//!   sessions found expired (the memory store's sweep; a Redis detach counts those of the user).
//!
//! What a resume costs beside a fresh connect, and what Redis keeps per detached session, is
//! measured on the [performance page](crate::guide#performance).
