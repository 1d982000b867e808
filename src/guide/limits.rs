//! # Limits and errors
//!
//! The same on both stores, configurable with `Limits`; breaking one is
//! `Error::InvalidInput` and writes nothing.
//!
//! | limit | default |
//! |-------|---------|
//! | data key | non-empty, at most 256 bytes |
//! | value | at most 64 KiB of JSON text |
//! | keys per session | at most 1,024 |
//! | session id, user id | non-empty, at most 256 bytes |
//! | room name | non-empty, at most 256 bytes |
//! | rooms per session | at most 64 |
//! | hub message | at most 64 KiB of text or bytes |
//! | data per session | at most 1 MiB (every key's length plus its value's JSON length) |
//! | sessions per user | at most 64, live or detached (an upgrade past it gets `429`) |
//!
//! ## Errors
//!
//! One `#[non_exhaustive]` enum, `Error`: `NotFound`, `AlreadyExists`, `InvalidInput` (which
//! limit, which key), `Unavailable` (the store could not be reached in time, or Redis cannot take
//! the command now: `OOM` at `maxmemory`, `READONLY`, `LOADING`, `BUSY`), `Corrupt` (a stored
//! value that is not valid JSON, with its key), `Serialization` (a value that does not fit the
//! requested type, with its key) and `Backend`. The Redis or serde error underneath is kept as
//! the `source()`; `error.chain()` prints the error with every source under it, as the crate's
//! own log lines do. An upgrade refused because the store is `Unavailable` gets `503`.
