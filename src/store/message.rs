//! What the hub carries: payloads, deliveries with their offsets, close reasons, room members.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// The body of a hub message, like a WebSocket data frame: text or binary.
///
/// Cloning is cheap (a reference count): a message sent to a room of a thousand members is
/// held once in memory, whatever the number of inboxes it sits in.
///
/// ```
/// use ws_session::hub::Payload;
///
/// let text = Payload::from("hello");
/// assert_eq!(text.as_text(), Some("hello"));
/// assert_eq!(text.len(), 5);
/// let binary = Payload::from(vec![1u8, 2, 3]);
/// assert_eq!(binary.as_text(), None);
/// assert_eq!(binary.as_bytes(), &[1, 2, 3]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// UTF-8 text (a WebSocket text frame).
    Text(Arc<str>),
    /// Bytes (a WebSocket binary frame).
    Binary(Bytes),
}

impl Payload {
    /// The text, for a text payload.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Payload::Text(text) => Some(text),
            Payload::Binary(_) => None,
        }
    }

    /// The payload's bytes (a text's UTF-8 encoding).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Payload::Text(text) => text.as_bytes(),
            Payload::Binary(bytes) => bytes,
        }
    }

    /// The payload's size in bytes.
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    /// `true` for an empty payload.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl From<&str> for Payload {
    fn from(text: &str) -> Self {
        Payload::Text(text.into())
    }
}

impl From<String> for Payload {
    fn from(text: String) -> Self {
        Payload::Text(text.into())
    }
}

impl From<Arc<str>> for Payload {
    fn from(text: Arc<str>) -> Self {
        Payload::Text(text)
    }
}

impl From<Vec<u8>> for Payload {
    fn from(bytes: Vec<u8>) -> Self {
        Payload::Binary(bytes.into())
    }
}

impl From<Bytes> for Payload {
    fn from(bytes: Bytes) -> Self {
        Payload::Binary(bytes)
    }
}

/// The position of a message in what a connection receives: each message delivered to a
/// connection has a higher offset than the one before.
///
/// With a [resume window](crate::resume::Resume), an offset is the message's place in the order of
/// every message the hub sent through the store (time-based, so it keeps increasing across
/// restarts of the application and of Redis); a client shows back the last one it saw when it
/// resumes, and gets what came after. Without one, it counts the connection's messages from 1.
///
/// Treat it as opaque text (its [`Display`](fmt::Display) form, a decimal number).
///
/// ```
/// use ws_session::hub::Offset;
///
/// let offset: Offset = "1234".parse().unwrap();
/// assert_eq!(offset.to_string(), "1234");
/// assert!("12a".parse::<Offset>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Offset(pub(crate) u64);

/// Milliseconds from the Unix epoch to 2026-01-01, where the time-based offsets start.
pub(crate) const CLOCK_EPOCH_MS: u64 = 1_767_225_600_000;
/// Offsets per millisecond of the clock; 2^12 keeps every offset below 2^53 for 69 years, so
/// that Redis' Lua (whose numbers are doubles) computes them exactly.
pub(crate) const OFFSETS_PER_MS: u64 = 4096;

impl Offset {
    /// The offset after `last` at wall-clock time `now_ms`: the time's own offset, or one more
    /// than `last` when that is higher (a busy millisecond, or a clock set back).
    pub(crate) fn next(last: Offset, now_ms: u64) -> Offset {
        Offset(Self::at(now_ms).0.max(last.0 + 1))
    }

    /// The lowest offset of wall-clock time `now_ms`.
    pub(crate) fn at(now_ms: u64) -> Offset {
        Offset(now_ms.saturating_sub(CLOCK_EPOCH_MS) * OFFSETS_PER_MS)
    }
}

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The error of parsing an [`Offset`] from text that is not one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidOffset;

impl fmt::Display for InvalidOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not a hub offset")
    }
}

impl std::error::Error for InvalidOffset {}

impl std::str::FromStr for Offset {
    type Err = InvalidOffset;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        // Plain digits only: no sign, no spaces.
        if text.is_empty() || text.len() > 20 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return Err(InvalidOffset);
        }
        text.parse().map(Offset).map_err(|_| InvalidOffset)
    }
}

impl Serialize for Offset {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

/// One message the hub delivered to a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub(crate) offset: Offset,
    pub(crate) payload: Payload,
}

impl Delivery {
    /// Where the message stands in this connection's stream.
    pub fn offset(&self) -> Offset {
        self.offset
    }

    /// The message.
    pub fn payload(&self) -> &Payload {
        &self.payload
    }

    /// The message, for a text message.
    pub fn text(&self) -> Option<&str> {
        self.payload.as_text()
    }

    /// The message, taken out of the delivery.
    pub fn into_payload(self) -> Payload {
        self.payload
    }
}

/// Why the server closes a connection, and the WebSocket close code that says so.
///
/// ```
/// use ws_session::hub::CloseReason;
///
/// assert_eq!(CloseReason::KICKED.code, 4000);
/// assert_eq!(CloseReason::TOO_SLOW.code, 4001);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseReason {
    /// The WebSocket close code.
    pub code: u16,
    /// A short text for the close frame (at most 123 bytes fit in one).
    pub reason: Cow<'static, str>,
}

impl CloseReason {
    /// 1001: the server is going away (a shutdown or a restart).
    pub const GOING_AWAY: CloseReason = CloseReason::fixed(1001, "server going away");
    /// 1012: the session vanished from the store (Redis restarted without its data, say); the
    /// client should reconnect, and gets a fresh session.
    pub const SERVICE_RESTART: CloseReason = CloseReason::fixed(1012, "session lost, reconnect");
    /// 4000: the session was disconnected by the server (a kick); it is removed.
    pub const KICKED: CloseReason = CloseReason::fixed(4000, "kicked");
    /// 4001: the connection did not read its messages fast enough and its inbox overflowed.
    pub const TOO_SLOW: CloseReason = CloseReason::fixed(4001, "too slow");
    /// 4002: another connection took the session over.
    pub const TAKEN_OVER: CloseReason = CloseReason::fixed(4002, "taken over");

    /// A reason with a code and text of your own.
    pub fn new(code: u16, reason: impl Into<Cow<'static, str>>) -> Self {
        CloseReason {
            code,
            reason: reason.into(),
        }
    }

    const fn fixed(code: u16, reason: &'static str) -> Self {
        CloseReason {
            code,
            reason: Cow::Borrowed(reason),
        }
    }
}

/// A member of a room: one session (connection) and its user.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Member {
    /// The session id.
    pub session_id: String,
    /// The user the session belongs to.
    pub user_id: String,
}
