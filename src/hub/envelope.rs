//! What nodes send each other: a topic (who it is for) and an envelope (what it is), and the
//! envelope's bytes on the wire of a broker that carries bytes.

use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::message::{CloseReason, Payload};

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

/// What travels on a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope {
    /// The one session it is for, on a node topic; `None` for everyone the topic reaches.
    pub(crate) to: Option<String>,
    pub(crate) body: Body,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    Message(Payload),
    Close(CloseReason),
}

const TEXT: u8 = b'T';
const BINARY: u8 = b'B';
const CLOSE: u8 = b'C';

impl Envelope {
    pub(crate) fn message(to: Option<String>, payload: Payload) -> Self {
        Envelope {
            to,
            body: Body::Message(payload),
        }
    }

    pub(crate) fn close(to: Option<String>, reason: CloseReason) -> Self {
        Envelope {
            to,
            body: Body::Close(reason),
        }
    }

    /// The envelope as bytes: a kind byte, the target session's length (two bytes, big-endian;
    /// 0 for none) and id, then the text or bytes of a message, or a close's code (two bytes)
    /// and reason.
    pub(crate) fn encode(&self) -> Bytes {
        let to = self.to.as_deref().unwrap_or("");
        let body_len = match &self.body {
            Body::Message(payload) => payload.len(),
            Body::Close(reason) => 2 + reason.reason.len(),
        };
        let mut out = BytesMut::with_capacity(3 + to.len() + body_len);
        let kind = match &self.body {
            Body::Message(Payload::Text(_)) => TEXT,
            Body::Message(Payload::Binary(_)) => BINARY,
            Body::Close(_) => CLOSE,
        };
        out.put_u8(kind);
        // Session ids are at most `Limits::max_id_len` bytes, far below 64 KiB.
        out.put_u16(u16::try_from(to.len()).unwrap_or(u16::MAX));
        out.put_slice(&to.as_bytes()[..to.len().min(usize::from(u16::MAX))]);
        match &self.body {
            Body::Message(payload) => out.put_slice(payload.as_bytes()),
            Body::Close(reason) => {
                out.put_u16(reason.code);
                out.put_slice(reason.reason.as_bytes());
            }
        }
        out.freeze()
    }

    /// The envelope `bytes` encode, or `None` when they are not one. Only a binary payload is
    /// copied out of `bytes`; a text becomes its `Arc<str>` straight away.
    pub(crate) fn decode(mut bytes: &[u8]) -> Option<Envelope> {
        if bytes.remaining() < 3 {
            return None;
        }
        let kind = bytes.get_u8();
        let to_len = usize::from(bytes.get_u16());
        let (to, mut rest) = bytes.split_at_checked(to_len)?;
        let to = if to.is_empty() {
            None
        } else {
            Some(std::str::from_utf8(to).ok()?.to_owned())
        };
        let body = match kind {
            TEXT => Body::Message(Payload::Text(std::str::from_utf8(rest).ok()?.into())),
            BINARY => Body::Message(Payload::Binary(Bytes::copy_from_slice(rest))),
            CLOSE => {
                if rest.remaining() < 2 {
                    return None;
                }
                let code = rest.get_u16();
                let reason = std::str::from_utf8(rest).ok()?.to_owned();
                Body::Close(CloseReason::new(code, reason))
            }
            _ => return None,
        };
        Some(Envelope { to, body })
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
            b"T\x00\x05ab",
            b"X\x00\x00hi",
            b"C\x00\x00\x0f",
            b"T\x00\x00\xff\xfe",
        ] {
            assert_eq!(Envelope::decode(bytes), None, "{bytes:?}");
        }
    }
}
