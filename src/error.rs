//! The one error type of the crate.

use std::fmt;

/// A shorthand for `Result<T, ws_session::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in a session operation.
///
/// The variants that wrap another error keep it as their [`source`](std::error::Error::source),
/// so a caller can always reach the Redis or serde error underneath.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The session does not exist: it was never created, was removed, or expired.
    ///
    /// A mutation that fails this way wrote nothing.
    #[error("session {id:?} not found")]
    NotFound {
        /// The session id that was asked for.
        id: String,
    },

    /// `create_session` was given an id that is already taken by a live session.
    #[error("session {id:?} already exists")]
    AlreadyExists {
        /// The id that is taken.
        id: String,
    },

    /// The input broke one of the store's [`Limits`](crate::Limits); nothing was written.
    #[error("invalid input: {0}")]
    InvalidInput(#[from] InvalidInput),

    /// The store could not be reached in time (Redis down, network cut, pool exhausted).
    ///
    /// The operation may be retried; the store recovers on its own once the backend is back.
    #[error("session store unavailable: {reason}")]
    Unavailable {
        /// What failed: a timeout, a refused connection, ...
        reason: String,
        /// The backend error, when there is one (a timeout has none).
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// A value read from the store is not valid JSON or not a well-formed session.
    #[error("corrupt data in session {id:?} at {field:?}")]
    Corrupt {
        /// The session the bad data belongs to.
        id: String,
        /// The data key (or reserved metadata field) that holds the bad data.
        field: String,
        /// Why the data could not be read.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },

    /// A value could not be turned into the requested Rust type, or back into JSON.
    #[error("value at key {key:?} does not fit the requested type")]
    Serialization {
        /// The data key whose value did not fit.
        key: String,
        /// The serde error.
        #[source]
        source: serde_json::Error,
    },

    /// The backend answered with an error that is none of the above (a Redis error reply, say).
    #[error("session store backend error")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    pub(crate) fn not_found(id: &str) -> Self {
        Error::NotFound { id: id.to_owned() }
    }

    pub(crate) fn already_exists(id: &str) -> Self {
        Error::AlreadyExists { id: id.to_owned() }
    }

    #[cfg(feature = "redis")]
    pub(crate) fn timed_out(after: std::time::Duration) -> Self {
        Error::Unavailable {
            reason: format!("no answer within {after:?}"),
            source: None,
        }
    }

    /// `true` for [`Error::NotFound`].
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound { .. })
    }

    /// `true` for [`Error::Unavailable`]: the backend could not be reached and a retry may succeed.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Error::Unavailable { .. })
    }

    /// The error and every [`source`](std::error::Error::source) under it, as one line for a
    /// log: `outer: inner: innermost`.
    ///
    /// ```
    /// let error = ws_session::Error::Backend("OOM command not allowed".into());
    /// assert_eq!(
    ///     error.chain().to_string(),
    ///     "session store backend error: OOM command not allowed"
    /// );
    /// ```
    pub fn chain(&self) -> Chain<'_> {
        Chain(self)
    }
}

/// An error with its chain of sources, from [`Error::chain`].
#[derive(Debug, Clone, Copy)]
pub struct Chain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(error) = source {
            write!(f, ": {error}")?;
            source = error.source();
        }
        Ok(())
    }
}

/// Which limit an input broke. Carried by [`Error::InvalidInput`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidInput {
    /// A data key was the empty string.
    EmptyKey,
    /// A data key was longer than [`Limits::max_key_len`](crate::Limits::max_key_len).
    KeyTooLong {
        /// The offending key (cut to the limit).
        key: String,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// A value's JSON text was longer than [`Limits::max_value_len`](crate::Limits::max_value_len).
    ValueTooLarge {
        /// The key the value was meant for.
        key: String,
        /// The value's JSON length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The write would leave the session with more than
    /// [`Limits::max_keys`](crate::Limits::max_keys) keys.
    TooManyKeys {
        /// The session.
        id: String,
        /// The limit.
        max: usize,
    },
    /// The write would leave the session holding more than
    /// [`Limits::max_session_bytes`](crate::Limits::max_session_bytes) bytes of data.
    SessionTooLarge {
        /// The session.
        id: String,
        /// The bytes it would hold.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// The user has [`Limits::max_user_sessions`](crate::Limits::max_user_sessions) sessions
    /// already; no new one is created.
    TooManySessions {
        /// The user.
        user_id: String,
        /// The limit.
        max: usize,
    },
    /// A session id or user id was empty.
    EmptyId {
        /// `"session id"` or `"user id"`.
        what: &'static str,
    },
    /// A session id or user id was longer than [`Limits::max_id_len`](crate::Limits::max_id_len).
    IdTooLong {
        /// `"session id"` or `"user id"`.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// On a Redis Cluster, a session id that does not start with the slot tag of its user
    /// (see [`SessionStore::new_session_id`](crate::SessionStore::new_session_id)).
    IdWithoutSlot {
        /// The session id.
        id: String,
    },
    /// A room name was the empty string.
    EmptyRoom,
    /// A room name was longer than [`Limits::max_room_len`](crate::Limits::max_room_len).
    RoomTooLong {
        /// The offending name (cut to the limit).
        room: String,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
    /// Joining would put the session in more than [`Limits::max_rooms`](crate::Limits::max_rooms)
    /// rooms.
    TooManyRooms {
        /// The session.
        id: String,
        /// The limit.
        max: usize,
    },
    /// A hub message was larger than
    /// [`Limits::max_message_len`](crate::Limits::max_message_len).
    MessageTooLarge {
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        max: usize,
    },
}

impl fmt::Display for InvalidInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InvalidInput::EmptyKey => f.write_str("data key is empty"),
            InvalidInput::KeyTooLong { key, len, max } => {
                write!(
                    f,
                    "data key {key:?}... is {len} bytes, over the limit of {max}"
                )
            }
            InvalidInput::ValueTooLarge { key, len, max } => write!(
                f,
                "value for key {key:?} is {len} bytes of JSON, over the limit of {max}"
            ),
            InvalidInput::TooManyKeys { id, max } => {
                write!(f, "session {id:?} would hold more than {max} keys")
            }
            InvalidInput::SessionTooLarge { id, len, max } => write!(
                f,
                "session {id:?} would hold {len} bytes of data, over the limit of {max}"
            ),
            InvalidInput::TooManySessions { user_id, max } => {
                write!(f, "user {user_id:?} has {max} sessions already, the limit")
            }
            InvalidInput::EmptyId { what } => write!(f, "{what} is empty"),
            InvalidInput::IdTooLong { what, len, max } => {
                write!(f, "{what} is {len} bytes, over the limit of {max}")
            }
            InvalidInput::IdWithoutSlot { id } => write!(
                f,
                "session id {id:?} does not start with its user's slot tag, which a Redis \
                 Cluster needs: make it with SessionStore::new_session_id"
            ),
            InvalidInput::EmptyRoom => f.write_str("room name is empty"),
            InvalidInput::RoomTooLong { room, len, max } => {
                write!(
                    f,
                    "room name {room:?}... is {len} bytes, over the limit of {max}"
                )
            }
            InvalidInput::TooManyRooms { id, max } => {
                write!(f, "session {id:?} would be in more than {max} rooms")
            }
            InvalidInput::MessageTooLarge { len, max } => {
                write!(f, "message is {len} bytes, over the limit of {max}")
            }
        }
    }
}

impl std::error::Error for InvalidInput {}
