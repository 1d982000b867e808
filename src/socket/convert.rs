//! The hub's messages and close reasons as axum's WebSocket frames.

use axum::extract::ws::{CloseFrame, Message};

use crate::hub::{CloseReason, Delivery, Payload};

/// A payload as the frame of its kind: a text frame for text, a binary frame for bytes.
///
/// ```
/// use axum::extract::ws::Message;
/// use ws_session::hub::Payload;
///
/// assert_eq!(Message::from(Payload::from("hi")), Message::Text("hi".into()));
/// assert_eq!(Message::from(Payload::from(vec![1u8])), Message::Binary(vec![1u8].into()));
/// ```
impl From<Payload> for Message {
    fn from(payload: Payload) -> Self {
        Message::from(&payload)
    }
}

impl From<&Payload> for Message {
    fn from(payload: &Payload) -> Self {
        match payload {
            Payload::Text(text) => Message::Text(text.as_ref().into()),
            Payload::Binary(bytes) => Message::Binary(bytes.clone()),
        }
    }
}

/// A delivered message as its payload's frame; the offset is left out (see
/// [`SessionSocket::deliver_with`](super::SessionSocket::deliver_with) to send it along).
impl From<Delivery> for Message {
    fn from(delivery: Delivery) -> Self {
        Message::from(delivery.payload())
    }
}

impl From<&Delivery> for Message {
    fn from(delivery: &Delivery) -> Self {
        Message::from(delivery.payload())
    }
}

/// A close reason as the close frame that tells the client its code and reason.
///
/// ```
/// use axum::extract::ws::CloseFrame;
/// use ws_session::hub::CloseReason;
///
/// let frame = CloseFrame::from(CloseReason::KICKED);
/// assert_eq!((frame.code, frame.reason.as_str()), (4000, "kicked"));
/// ```
impl From<CloseReason> for CloseFrame {
    fn from(reason: CloseReason) -> Self {
        CloseFrame::from(&reason)
    }
}

impl From<&CloseReason> for CloseFrame {
    fn from(reason: &CloseReason) -> Self {
        CloseFrame {
            code: reason.code,
            reason: reason.reason.as_ref().into(),
        }
    }
}

/// A close reason as a close message, ready to send.
impl From<CloseReason> for Message {
    fn from(reason: CloseReason) -> Self {
        Message::Close(Some(reason.into()))
    }
}
