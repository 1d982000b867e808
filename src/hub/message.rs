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

/// The position of a message in the stream of one connection: the first message delivered to
/// a connection has offset 1, and each next one is one higher.
///
/// Treat it as opaque text (its [`Display`](fmt::Display) form): it is what a client shows
/// back to say which messages it has seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Offset(pub(crate) u64);

impl fmt::Display for Offset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
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

/// What a connection's inbox yields: a message, or the order to close.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HubEvent {
    /// A message sent to this connection (to its session, its user, one of its rooms, or
    /// everyone).
    Message(Delivery),
    /// The server closes this connection: send a close frame with this code and end the socket
    /// loop. The inbox yields nothing after it.
    Close(CloseReason),
}

/// A member of a room: one session (connection) and its user.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Member {
    /// The session id.
    pub session_id: String,
    /// The user the session belongs to.
    pub user_id: String,
}
