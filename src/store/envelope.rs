//! What nodes send each other: a topic (who it is for) and an envelope (what it is), and the
//! envelope's bytes on the wire of a broker that carries bytes.
// The wire form is what the Redis broker carries; the in-process one passes envelopes as they are.
#![cfg_attr(not(feature = "redis"), allow(dead_code))]

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::message::{CloseReason, Offset, Payload};

/// Whom a published envelope is for. Each node subscribes only to the topics its connections
/// need: its own node topic, `All`, and the users and rooms of its connections.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Topic {
    /// Every connection on every node.
    All,
    /// One node: envelopes for single sessions held there.
    Node(Arc<str>),
    /// Every connection of a user.
    User(String),
    /// Every member of a room.
    Room(String),
}

/// Where the messages sent to a target are kept for sessions that resume: the history of
/// everyone, of a user, of a room, or of one session (what was sent to it alone).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Stream {
    All,
    User(String),
    Room(String),
    Session(String),
}

impl Topic {
    /// The history that keeps what is sent on this topic; `None` for a node topic, whose
    /// messages are kept by their session.
    pub(crate) fn stream(&self) -> Option<Stream> {
        match self {
            Topic::All => Some(Stream::All),
            Topic::Node(_) => None,
            Topic::User(user) => Some(Stream::User(user.clone())),
            Topic::Room(room) => Some(Stream::Room(room.clone())),
        }
    }
}

/// What travels on a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope {
    /// On a node topic, the one session it is for. On any other topic, the session it leaves
    /// out (the sender's own connection), or `None` for everyone the topic reaches.
    pub(crate) to: Option<String>,
    /// The message's place in the store's history, when the broker keeps one.
    pub(crate) offset: Option<Offset>,
    pub(crate) body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    Message(Payload),
    Close(CloseReason),
    /// The session was claimed by a resume: its connection attached before `epoch` closes
    /// with 4002.
    TakeOver {
        epoch: u64,
    },
}

pub(crate) const TEXT: u8 = b'T';
pub(crate) const BINARY: u8 = b'B';
const CLOSE: u8 = b'C';
const TAKE_OVER: u8 = b'X';

impl Envelope {
    pub(crate) fn message(to: Option<String>, payload: Payload) -> Self {
        Envelope {
            to,
            offset: None,
            body: Body::Message(payload),
        }
    }

    pub(crate) fn close(to: Option<String>, reason: CloseReason) -> Self {
        Envelope {
            to,
            offset: None,
            body: Body::Close(reason),
        }
    }

    pub(crate) fn take_over(to: String, epoch: u64) -> Self {
        Envelope {
            to: Some(to),
            offset: None,
            body: Body::TakeOver { epoch },
        }
    }

    /// The session a message on `topic` leaves out: `to`, on every topic but a node's.
    pub(crate) fn left_out(&self, topic: &Topic) -> Option<&str> {
        match topic {
            Topic::Node(_) => None,
            Topic::All | Topic::User(_) | Topic::Room(_) => self.to.as_deref(),
        }
    }

    /// The kind byte of the envelope on the wire.
    pub(crate) fn kind(&self) -> u8 {
        match &self.body {
            Body::Message(Payload::Text(_)) => TEXT,
            Body::Message(Payload::Binary(_)) => BINARY,
            Body::Close(_) => CLOSE,
            Body::TakeOver { .. } => TAKE_OVER,
        }
    }

    /// The envelope as bytes: a kind byte; the offset's length (one byte; 0 for none) and
    /// decimal digits; the target session's length (two bytes, big-endian; 0 for none) and
    /// id; then the text or bytes of a message, a close's code (two bytes) and reason, or a
    /// takeover's epoch in decimal.
    ///
    /// A broker that assigns offsets itself (the Redis scripts) writes the same bytes: the
    /// kind, the offset it assigned, then [`target`](Self::target) and the payload.
    pub(crate) fn encode(&self) -> Bytes {
        let offset = self.offset.map(|offset| offset.to_string());
        let offset = offset.as_deref().unwrap_or("");
        let body_len = match &self.body {
            Body::Message(payload) => payload.len(),
            Body::Close(reason) => 2 + reason.reason.len(),
            Body::TakeOver { .. } => 20,
        };
        let mut out = BytesMut::with_capacity(4 + offset.len() + 32 + body_len);
        out.put_u8(self.kind());
        out.put_u8(u8::try_from(offset.len()).unwrap_or(0));
        out.put_slice(offset.as_bytes());
        self.put_target(&mut out);
        match &self.body {
            Body::Message(payload) => out.put_slice(payload.as_bytes()),
            Body::Close(reason) => {
                out.put_u16(reason.code);
                out.put_slice(reason.reason.as_bytes());
            }
            Body::TakeOver { epoch } => out.put_slice(epoch.to_string().as_bytes()),
        }
        out.freeze()
    }

    /// The target part of the wire form: the session id's length (two bytes) and the id.
    pub(crate) fn target(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.to.as_deref().map_or(0, str::len));
        self.put_target(&mut out);
        out
    }

    fn put_target(&self, out: &mut impl BufMut) {
        let to = self.to.as_deref().unwrap_or("");
        // Session ids are at most `Limits::max_id_len` bytes, far below 64 KiB.
        let len = to.len().min(usize::from(u16::MAX));
        out.put_u16(u16::try_from(len).unwrap_or(u16::MAX));
        out.put_slice(&to.as_bytes()[..len]);
    }

    /// The envelope `bytes` encode, or `None` when they are not one. Only a binary payload is
    /// copied out of `bytes`; a text becomes its `Arc<str>` straight away.
    pub(crate) fn decode(mut bytes: &[u8]) -> Option<Envelope> {
        if bytes.remaining() < 2 {
            return None;
        }
        let kind = bytes.get_u8();
        let offset_len = usize::from(bytes.get_u8());
        let (offset, bytes) = bytes.split_at_checked(offset_len)?;
        let offset = if offset.is_empty() {
            None
        } else {
            Some(std::str::from_utf8(offset).ok()?.parse().ok()?)
        };
        let (to, mut rest) = split_target(bytes)?;
        let to = if to.is_empty() {
            None
        } else {
            Some(std::str::from_utf8(to).ok()?.to_owned())
        };
        let body = match kind {
            TEXT | BINARY => Body::Message(payload(kind, rest)?),
            CLOSE => {
                if rest.remaining() < 2 {
                    return None;
                }
                let code = rest.get_u16();
                let reason = std::str::from_utf8(rest).ok()?.to_owned();
                Body::Close(CloseReason::new(code, reason))
            }
            TAKE_OVER => Body::TakeOver {
                epoch: std::str::from_utf8(rest).ok()?.parse().ok()?,
            },
            _ => return None,
        };
        Some(Envelope { to, offset, body })
    }
}

/// The session id of the target part at the start of `bytes` (two bytes of length, then the
/// id; empty for none), and what follows it; `None` when `bytes` do not start with one.
pub(crate) fn split_target(mut bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    if bytes.remaining() < 2 {
        return None;
    }
    let len = usize::from(bytes.get_u16());
    bytes.split_at_checked(len)
}

/// The payload of kind `kind` (text or binary) in `bytes`, as history keeps it.
pub(crate) fn payload(kind: u8, bytes: &[u8]) -> Option<Payload> {
    match kind {
        TEXT => Some(Payload::Text(std::str::from_utf8(bytes).ok()?.into())),
        BINARY => Some(Payload::Binary(Bytes::copy_from_slice(bytes))),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_of_envelope_survives_the_wire() {
        let envelopes = [
            Envelope::message(None, "héllo".into()),
            Envelope::message(Some("abc".into()), vec![0u8, 255, 7].into()),
            Envelope::message(None, "".into()),
            Envelope::close(Some("s1".into()), CloseReason::KICKED),
            Envelope::close(None, CloseReason::new(4100, "custom")),
            Envelope::take_over("s1".into(), 7),
            Envelope {
                offset: Some(Offset(290_000_000_000_123)),
                ..Envelope::message(Some("s2".into()), "x".into())
            },
        ];
        for envelope in envelopes {
            assert_eq!(Envelope::decode(&envelope.encode()), Some(envelope));
        }
    }

    #[test]
    fn garbage_is_not_an_envelope() {
        for bytes in [
            &b""[..],
            b"T",
            b"T\x00\x00\x05ab",
            b"Z\x00\x00\x00hi",
            b"C\x00\x00\x00\x0f",
            b"T\x00\x00\x00\xff\xfe",
            b"T\x02x1\x00\x00hi",
            b"T\x05\x00\x00",
            b"X\x00\x00\x00seven",
        ] {
            assert_eq!(Envelope::decode(bytes), None, "{bytes:?}");
        }
    }
}
