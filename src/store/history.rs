//! What the hub keeps of its messages for sessions that resume: the policy, and what a resume
//! reads. The in-process history of [`MemoryStore`](crate::MemoryStore)'s broker is in
//! `memory/history.rs`; the Redis broker keeps its history in Redis streams (see
//! `redis/lua/publish.lua`).
//!
//! Every message sent to a target is kept in the history of that target — everyone, a user, a
//! room, or one session — under its offset. A session that resumes reads, from the histories of
//! the targets it belongs to, what came after the last offset its client saw, and from when it
//! joined each target.

use std::time::Duration;

use super::envelope::Stream;
use super::message::{Delivery, Offset};

/// How much history the hub keeps: at most `keep` messages and `keep_bytes` bytes per target,
/// none older than `retention`, and at most `total_bytes` for every target together (past it,
/// the targets written to least recently lose their history first). `keep == 0` keeps nothing
/// (no resume window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HistoryPolicy {
    pub(crate) keep: usize,
    pub(crate) retention: Duration,
    pub(crate) keep_bytes: usize,
    pub(crate) total_bytes: usize,
}

impl HistoryPolicy {
    pub(crate) const OFF: HistoryPolicy = HistoryPolicy {
        keep: 0,
        retention: Duration::ZERO,
        keep_bytes: 0,
        total_bytes: 0,
    };

    pub(crate) fn is_on(&self) -> bool {
        self.keep > 0
    }

    /// The retention in milliseconds, at least 1.
    pub(crate) fn retention_ms(&self) -> u64 {
        u64::try_from(self.retention.as_millis())
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

/// What one resume may read of the histories: the bounds of the inbox it goes into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReadBudget {
    pub(crate) messages: usize,
    pub(crate) bytes: usize,
}

/// Takes, from messages in descending offset order, the newest that fit `budget`: stops at the
/// first that does not fit. Returns them in ascending order, and whether every message was
/// taken.
pub(crate) fn newest_within(
    descending: impl IntoIterator<Item = Delivery>,
    budget: ReadBudget,
) -> (Vec<Delivery>, bool) {
    let mut taken = Vec::new();
    let mut bytes = 0usize;
    let mut all = true;
    for delivery in descending {
        let len = delivery.payload.len();
        if taken.len() >= budget.messages || bytes.saturating_add(len) > budget.bytes {
            all = false;
            break;
        }
        bytes += len;
        taken.push(delivery);
    }
    taken.reverse();
    (taken, all)
}

/// Where reading a session's missed messages starts in one history: after `after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReadFrom {
    pub(crate) stream: Stream,
    pub(crate) after: Offset,
}

/// The missed messages of a resumed session, in offset order, and whether they are all of
/// them (nothing after the starting points was dropped from the history).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Replayed {
    pub(crate) missed: Vec<Delivery>,
    pub(crate) complete: bool,
}
