//! Resume: the same session after a network drop, a restart of the server, or a crash.
//!
//! With a [`Resume`] window on the [`SessionLayer`](crate::SessionLayer), a session whose socket
//! drops is **detached** instead of removed: its data, its rooms and its place in the user index
//! stay in the store for the window, then expire. Every session has a [`ResumeToken`]
//! ([`WsSession::resume_token`](crate::WsSession::resume_token)); a client that reconnects
//! within the window and presents it (by default `?resume=TOKEN&offset=OFFSET` on the upgrade
//! request) gets the same session back:
//!
//! - **The claim** checks the token's hash and the user in one atomic store operation, rotates
//!   the token (the old one stops working) and attaches the session to the new connection. Of
//!   two reconnects racing with one token, exactly one wins. A claim that fails for any reason
//!   quietly gets a fresh session: the client learns nothing about sessions it does not hold.
//! - **Takeover.** When the session is still attached elsewhere (a half-open socket, another
//!   instance), its older connection is closed with 4002
//!   ([`CloseReason::TAKEN_OVER`](crate::hub::CloseReason::TAKEN_OVER)), and dropping that
//!   older handle no longer touches the session.
//! - **Missed messages.** The hub keeps what it sends, per target (everyone, a user, a room, a
//!   session), bounded by count and by time. After a claim, the messages addressed to the
//!   session after the client's last [`Offset`] wait first in its inbox, in
//!   order, each once, then the live ones.
//!   [`WsSession::recovery`](crate::WsSession::recovery) says how many and whether that is all
//!   of them.
//! - **Restart and crash.** [`LiveSessions::shutdown`](crate::LiveSessions::shutdown) closes
//!   every socket with 1001 and detaches their sessions. After a crash, the sessions stay in
//!   Redis until their TTL runs out and can be resumed on any instance.
//!
//! [`MemoryStore`](crate::MemoryStore) supports all of this within one process (network drops,
//! takeovers, missed messages); its sessions do not survive a restart of the process.
//!
//! The [resume guide](crate::guide::resume) tells in full what survives what, and what a
//! resume costs the store.

pub(crate) mod attempts;
pub(crate) mod claim;
mod token;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::request::Parts;

pub use self::token::ResumeToken;
use crate::store::attachment::Detach;
use crate::store::history::HistoryPolicy;
use crate::store::message::Offset;

/// The resume window of a [`SessionLayer`](crate::SessionLayer), and what is kept for it.
///
/// ```
/// use std::time::Duration;
/// use ws_session::resume::Resume;
///
/// let resume = Resume::within(Duration::from_secs(120))
///     .keep_messages(500)
///     .max_detached_per_user(4);
/// assert_eq!(resume.window(), Duration::from_secs(120));
/// assert_eq!(resume.retention(), Duration::from_secs(120));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resume {
    window: Duration,
    keep: usize,
    keep_bytes: usize,
    total_bytes: usize,
    retention: Option<Duration>,
    max_detached_per_user: usize,
    attempts_per_minute: u32,
}

impl Resume {
    /// Detached sessions are kept for `window`; the hub keeps the last 256 messages (at most
    /// 1 MiB) of each target for as long, 64 MiB in all, and each user may have 16 detached
    /// sessions.
    pub fn within(window: Duration) -> Self {
        Resume {
            window,
            keep: 256,
            keep_bytes: 1024 * 1024,
            total_bytes: 64 * 1024 * 1024,
            retention: None,
            max_detached_per_user: 16,
            attempts_per_minute: 30,
        }
    }

    /// How many messages of each target (everyone, each user, each room, each session) the
    /// hub keeps for resumes (default 256; at least 1). An offset older than what is kept
    /// gets an incomplete replay.
    #[must_use]
    pub fn keep_messages(mut self, messages: usize) -> Self {
        self.keep = messages.max(1);
        self
    }

    /// How many payload bytes of each target the hub keeps for resumes (default 1 MiB): past
    /// it, the oldest messages of the target go first.
    #[must_use]
    pub fn keep_bytes(mut self, bytes: usize) -> Self {
        self.keep_bytes = bytes;
        self
    }

    /// How many payload bytes the hub keeps for resumes in all, for every target together
    /// (default 64 MiB). Past it, the targets written to least recently lose what is kept for
    /// them first; a session that then resumes from before is told its replay is incomplete.
    ///
    /// Messages for a target without any session (a room nobody is in, a user with no session)
    /// are never kept. On Redis the bound holds per store prefix; with the defaults, the
    /// histories take at most about 64 MiB of Redis memory plus Redis's own overhead per entry.
    #[must_use]
    pub fn keep_total_bytes(mut self, bytes: usize) -> Self {
        self.total_bytes = bytes;
        self
    }

    /// How long the hub keeps a message for resumes (default: the window).
    #[must_use]
    pub fn keep_for(mut self, retention: Duration) -> Self {
        self.retention = Some(retention);
        self
    }

    /// How many detached sessions one user may have (default 16; at least 1). A detach past
    /// the cap removes the user's oldest detached session, so that a storm of reconnects
    /// cannot fill the store.
    #[must_use]
    pub fn max_detached_per_user(mut self, sessions: usize) -> Self {
        self.max_detached_per_user = sessions.max(1);
        self
    }

    /// How many resume attempts one session may get per minute, across every token presented
    /// for it (default 30; at least 1). An attempt over it is answered `429 Too Many Requests`
    /// with `Retry-After`, and claims nothing, so that guessing a token, or a client stuck in a
    /// loop, costs the store little.
    #[must_use]
    pub fn attempts_per_minute(mut self, attempts: u32) -> Self {
        self.attempts_per_minute = attempts.max(1);
        self
    }

    /// The bound on the resume attempts of each session.
    pub(crate) fn attempts(&self) -> attempts::Attempts {
        attempts::Attempts::per_minute(
            std::num::NonZeroU32::new(self.attempts_per_minute)
                .unwrap_or(std::num::NonZeroU32::MIN),
        )
    }

    /// How long a detached session is kept.
    pub fn window(&self) -> Duration {
        self.window
    }

    /// How long the hub keeps a message.
    pub fn retention(&self) -> Duration {
        self.retention.unwrap_or(self.window)
    }

    /// The detach that goes with this window.
    pub(crate) fn detach(&self) -> Detach {
        Detach::new(self.window, self.max_detached_per_user)
    }

    /// What the hub keeps of its messages.
    pub(crate) fn history(&self) -> HistoryPolicy {
        HistoryPolicy {
            keep: self.keep,
            retention: self.retention(),
            keep_bytes: self.keep_bytes,
            total_bytes: self.total_bytes,
        }
    }

    /// Whether there is a window at all.
    pub(crate) fn is_on(&self) -> bool {
        !self.window.is_zero()
    }
}

/// What a client presented to resume: a token (as text, checked by the layer) and the last
/// offset it saw, if any.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Presented {
    /// The token's text.
    pub token: String,
    /// The offset of the last hub message the client received; `None` when it saw none.
    pub offset: Option<Offset>,
}

impl Presented {
    /// A token and, if the client has one, its last offset.
    pub fn new(token: impl Into<String>, offset: Option<Offset>) -> Self {
        Presented {
            token: token.into(),
            offset,
        }
    }
}

impl fmt::Debug for Presented {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Presented")
            .field("token", &"..")
            .field("offset", &self.offset)
            .finish()
    }
}

/// The step that reads what an upgrade request presents to resume.
pub(crate) type Reader = Arc<dyn Fn(&Parts) -> Option<Presented> + Send + Sync>;

/// The default step: the `resume` and `offset` parameters of the query, URL-decoded. An
/// offset that is not one counts as none.
///
/// ```
/// use ws_session::resume::{Presented, from_query};
///
/// let request = http::Request::get("/ws?user=a&resume=c1.ab%63&offset=42").body(()).unwrap();
/// let (parts, ()) = request.into_parts();
/// let presented = from_query(&parts).unwrap();
/// assert_eq!(presented.token, "c1.abc");
/// assert_eq!(presented.offset.map(|offset| offset.to_string()).as_deref(), Some("42"));
/// ```
pub fn from_query(parts: &Parts) -> Option<Presented> {
    let query = parts.uri.query()?;
    let mut token = None;
    let mut offset = None;
    for (name, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*name {
            "resume" if !value.is_empty() => token = Some(value.into_owned()),
            "offset" => offset = value.parse().ok(),
            _ => {}
        }
    }
    token.map(|token| Presented { token, offset })
}

/// What a resumed connection got back: how many missed messages wait first in its inbox, and
/// whether they are all it missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Recovery {
    /// How many messages the client had not received wait first in the inbox.
    pub missed: usize,
    /// `false` when messages after the client's offset were no longer kept (its offset is
    /// older than the hub's history), or could not be read.
    pub complete: bool,
}
