//! Guides: how the crate behaves, for the people who build on it and run it.
//!
//! Each guide is a page of its own; the API pages they link to hold the details.
//!
//! | guide | for | what it explains |
//! |---|---|---|
//! | [The lifecycle of a session](lifecycle) | everyone | from the upgrade to the last drop; the store on its own |
//! | [The socket loop](crate::socket) | handler authors | [`SessionSocket`](crate::socket::SessionSocket): the client's frames in, the hub's messages out |
//! | [The hub](hub) | handler authors | sending to sessions, users, rooms and everyone, on every instance |
//! | [The hub's guarantees](crate::hub#guarantees) | handler authors | at most once, in order per sender, offsets, slow clients |
//! | [Resume](resume) | handler and client authors | what survives a network drop, a deploy or a crash, and what does not |
//! | [Behind an authentication layer](auth) | application authors | where the user comes from, and in which order the layers run |
//! | [WebSockets over HTTP/2](http2) | application authors | extended CONNECT, several sockets on one connection |
//! | [Limits and errors](limits) | everyone | what is bounded, what each error means |
//! | [Deploying safely](deploying) | operators | the Origin check, what the server must set, failure semantics |
//! | [The Redis layout](redis) | operators | every key and channel, its type and its TTL; the rules the store keeps |
//! | [Metrics](metrics) | operators | every counter, gauge and histogram |
//!
//! # Performance
//!
//! The benches compare the crate with its peers (a bare axum server, socketioxide,
//! tower-sessions) side by side in one run. The current table, with the command that prints
//! each figure, is `docs/performance.md` in the repository.

pub mod auth;
pub mod deploying;
pub mod http2;
pub mod hub;
pub mod lifecycle;
pub mod limits;
pub mod metrics;
pub mod redis;
pub mod resume;
