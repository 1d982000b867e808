//! # Metrics
//!
//! With the `metrics` feature (on by default) the crate reports through the
//! [`metrics`](https://docs.rs/metrics) facade; install any recorder (the chat example installs
//! `metrics-exporter-prometheus` and serves `GET /metrics`). Without a recorder, or without the
//! feature, nothing is recorded and nothing is paid.
//!
//! | name | type | labels | what |
//! |------|------|--------|------|
//! | `ws_session_open_sessions` | gauge | | connections open on this instance |
//! | `ws_session_detached_sessions` | gauge | | sessions this instance detached that are within their window and were not resumed here |
//! | `ws_session_hub_subscriptions` | gauge | | hub topics (Redis channels) this instance is subscribed to |
//! | `ws_session_hub_history_bytes` | gauge | | payload bytes `MemoryStore`'s hub keeps for resumes (a Redis store counts them in `{prefix}:hub:kept_total`) |
//! | `ws_session_sessions_created_total` | counter | | sessions created for upgrades |
//! | `ws_session_sessions_removed_total` | counter | | sessions removed when their connection went (no resume window) |
//! | `ws_session_sessions_detached_total` | counter | | sessions detached when their connection went |
//! | `ws_session_detached_expired_total` | counter | | detached sessions found expired (by the memory store's sweep; with Redis, by the detaches of their user) |
//! | `ws_session_sessions_resumed_total` | counter | | sessions resumed with their token |
//! | `ws_session_resume_refused_total` | counter | `reason`: `malformed`, `unknown`, `token`, `user` | resume claims refused (each got a fresh session) |
//! | `ws_session_upgrades_refused_total` | counter | `reason`: `origin`, `user_sessions`, `rate` | upgrades refused before a session was opened: a foreign `Origin` (403), a user at its session cap (429), too many resume attempts (429) |
//! | `ws_session_takeovers_total` | counter | | resumes that took a session over from a connection still attached |
//! | `ws_session_kicks_total` | counter | | users kicked |
//! | `ws_session_slow_consumer_closes_total` | counter | | connections closed with 4001 because their inbox overflowed |
//! | `ws_session_store_errors_total` | counter | `kind`: `unavailable`, `backend`, `corrupt`, `serialization`; `operation` | store operations that failed (a missing session or a broken limit is an answer, not counted) |
//! | `ws_session_pubsub_reconnects_total` | counter | | Redis pub/sub connections lost and opened again |
//! | `ws_session_store_operation_seconds` | histogram | `operation` (the store method) | time of each store operation the layer, the hub and the handles make |
