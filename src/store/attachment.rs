//! What a store keeps of a session's attachment to a connection, for resume: how a session is
//! attached, the claim of a detached (or taken-over) session, and the detach of a session whose
//! connection went. Crate-internal: the layer and the hub speak these to a store.

use std::fmt;
use std::time::Duration;

use super::message::Offset;

/// The SHA-256 of a resume token's secret, as a store keeps it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct TokenHash(pub(crate) [u8; 32]);

impl TokenHash {
    /// The hash in lowercase hex, as the Redis store keeps it.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn to_hex(self) -> String {
        hex::encode(self.0)
    }

    /// Whether `self` and `other` are the same hash, compared in constant time.
    pub(crate) fn matches(&self, other: &TokenHash) -> bool {
        use subtle::ConstantTimeEq;
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

/// How a new session is attached: the hub node holding its connection, and the hash of its
/// resume token (`None`: it cannot be resumed).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attach<'a> {
    /// The hub node holding the session's connection.
    pub(crate) node_id: &'a str,
    /// The hash of the session's resume token.
    pub(crate) token: Option<TokenHash>,
}

impl<'a> Attach<'a> {
    /// Attached to `node_id`, with no resume token.
    pub(crate) fn node(node_id: &'a str) -> Self {
        Attach {
            node_id,
            token: None,
        }
    }

    /// With the hash of a resume token.
    #[must_use]
    pub(crate) fn token(mut self, token: TokenHash) -> Self {
        self.token = Some(token);
        self
    }
}

/// A client's claim of a session it had: the token it presented, who it is now, and what the
/// session becomes when the claim succeeds.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claim<'a> {
    /// The session the presented token names.
    pub(crate) id: &'a str,
    /// The hash of the presented token.
    pub(crate) token: TokenHash,
    /// The user identified on the new request; the session must be this user's. (For an
    /// anonymous request: the session's own id, the user id of an anonymous session.)
    pub(crate) user_id: &'a str,
    /// The hash of the token that replaces the presented one.
    pub(crate) new_token: TokenHash,
    /// The hub node that holds the new connection.
    pub(crate) node_id: &'a str,
}

impl<'a> Claim<'a> {
    /// A claim of session `id` with the token hashed to `token`, by `user_id`, for a
    /// connection on `node_id`, rotating the token to `new_token`.
    pub(crate) fn new(
        id: &'a str,
        token: TokenHash,
        user_id: &'a str,
        new_token: TokenHash,
        node_id: &'a str,
    ) -> Self {
        Claim {
            id,
            token,
            user_id,
            new_token,
            node_id,
        }
    }
}

/// What a claim got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Claimed {
    /// The session is the claimer's now, attached to its node, with the new token.
    Resumed(Resumed),
    /// Nothing changed.
    Refused(Refusal),
}

/// A session a claim took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Resumed {
    /// Which attachment of the session this is (one more than the last).
    pub(crate) epoch: u64,
    /// The node that held the session's connection when it was claimed (a takeover), if any.
    pub(crate) previous_node: Option<String>,
    /// The hub's offset when the session was created: what was sent before is not its.
    pub(crate) since: Offset,
    /// The session's rooms, each with the hub's offset when the session joined it, sorted.
    pub(crate) rooms: Vec<(String, Offset)>,
}

impl Resumed {
    /// A claimed session.
    pub(crate) fn new(
        epoch: u64,
        previous_node: Option<String>,
        since: Offset,
        rooms: Vec<(String, Offset)>,
    ) -> Self {
        Resumed {
            epoch,
            previous_node,
            since,
            rooms,
        }
    }
}

/// Why a claim was refused. The client is never told; the layer gives it a fresh session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Refusal {
    /// The presented text is not a token.
    Malformed,
    /// No such session: never existed, removed, or expired.
    Unknown,
    /// The token is not the session's: a wrong or already used one.
    Token,
    /// The session belongs to another user.
    User,
}

impl Refusal {
    /// A short name, for logs and metrics.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Refusal::Malformed => "malformed",
            Refusal::Unknown => "unknown",
            Refusal::Token => "token",
            Refusal::User => "user",
        }
    }
}

/// How a session whose connection went is kept for a resume.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Detach {
    /// How long it is kept: its keys expire this long after the detach.
    pub(crate) window: Duration,
    /// Most detached sessions one user may have; the oldest go first.
    pub(crate) max_per_user: usize,
}

impl Detach {
    /// Kept for `window`, at most `max_per_user` per user.
    pub(crate) fn new(window: Duration, max_per_user: usize) -> Self {
        Detach {
            window,
            max_per_user,
        }
    }

    /// The window in milliseconds, at least 1.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    pub(crate) fn window_ms(&self) -> u64 {
        u64::try_from(self.window.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

/// What a detach did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Detached {
    /// `true` when the session was detached; `false` when it is gone, or held by a newer
    /// connection (nothing was written then).
    pub(crate) detached: bool,
    /// How many of the user's detached sessions were found expired.
    pub(crate) expired: usize,
    /// The user's oldest detached sessions, removed to keep within the cap.
    pub(crate) evicted: Vec<String>,
}

impl Detached {
    /// The outcome of a detach.
    pub(crate) fn new(detached: bool, expired: usize, evicted: Vec<String>) -> Self {
        Detached {
            detached,
            expired,
            evicted,
        }
    }
}
