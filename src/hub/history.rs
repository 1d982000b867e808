//! What the hub keeps of its messages for sessions that resume: the policy, and the
//! in-process history of [`MemoryStore`](crate::MemoryStore)'s broker. (The Redis broker keeps
//! its history in Redis streams; see `store/redis/lua/publish.lua`.)
//!
//! Every message sent to a target is kept in the history of that target — everyone, a user, a
//! room, or one session — under its offset. A session that resumes reads, from the histories of
//! the targets it belongs to, what came after the last offset its client saw, and from when it
//! joined each target.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::envelope::Stream;
use super::message::{Delivery, Offset, Payload};
use crate::session::now_ms;

/// How much history the hub keeps: at most `keep` messages per target, none older than
/// `retention`. `keep == 0` keeps nothing (no resume window).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct HistoryPolicy {
    pub(crate) keep: usize,
    pub(crate) retention: Duration,
}

impl HistoryPolicy {
    pub(crate) const OFF: HistoryPolicy = HistoryPolicy {
        keep: 0,
        retention: Duration::ZERO,
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

impl Replayed {
    /// Puts the messages of several histories into one offset order.
    pub(crate) fn sorted(mut missed: Vec<Delivery>, complete: bool) -> Self {
        missed.sort_by_key(|delivery| delivery.offset);
        missed.dedup_by_key(|delivery| delivery.offset);
        Replayed { missed, complete }
    }
}

/// The history of the in-process broker, and its clock. Its lock also orders the broker's
/// deliveries, so offsets increase on every connection.
#[derive(Default)]
pub(crate) struct LocalHistory {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    last: Offset,
    streams: HashMap<Stream, Kept>,
    /// When every stream was last trimmed by age.
    swept: Option<Instant>,
}

struct Kept {
    entries: VecDeque<(Offset, Instant, Payload)>,
    /// The highest offset dropped from this history, by count or by age.
    max_dropped: Offset,
    /// When a message was last added.
    written: Instant,
}

impl Kept {
    fn trim(&mut self, policy: HistoryPolicy, now: Instant) {
        while self.entries.len() > policy.keep
            || self
                .entries
                .front()
                .is_some_and(|(_, at, _)| now.duration_since(*at) > policy.retention)
        {
            if let Some((offset, _, _)) = self.entries.pop_front() {
                self.max_dropped = self.max_dropped.max(offset);
            }
        }
    }
}

impl LocalHistory {
    /// Gives the next offset to a message for `stream` (kept there under `policy`), then runs
    /// `deliver` with it, all under the history's lock: deliveries happen in offset order.
    pub(crate) fn record<T>(
        &self,
        stream: &Stream,
        payload: &Payload,
        policy: HistoryPolicy,
        deliver: impl FnOnce(Offset) -> T,
    ) -> T {
        let mut state = lock(&self.state);
        let offset = Offset::next(state.last, now_ms());
        state.last = offset;
        let now = Instant::now();
        let kept = state.streams.entry(stream.clone()).or_insert_with(|| Kept {
            entries: VecDeque::new(),
            max_dropped: Offset::default(),
            written: now,
        });
        kept.written = now;
        kept.entries.push_back((offset, now, payload.clone()));
        kept.trim(policy, now);
        if state
            .swept
            .is_none_or(|at| now.duration_since(at) > policy.retention)
        {
            state.swept = Some(now);
            // A history nobody wrote to for twice the retention is dropped whole, as a Redis
            // stream expires.
            state.streams.retain(|_, kept| {
                kept.trim(policy, now);
                now.duration_since(kept.written) <= policy.retention * 2
            });
        }
        deliver(offset)
    }

    /// The current offset of the clock: messages sent from now on have higher ones.
    pub(crate) fn now(&self) -> Offset {
        let floor = Offset(Offset::at(now_ms()).0.saturating_sub(1));
        lock(&self.state).last.max(floor)
    }

    /// What each history holds after its starting point, at most `policy.keep` from each.
    pub(crate) fn read(&self, from: &[ReadFrom], policy: HistoryPolicy) -> Replayed {
        let mut state = lock(&self.state);
        let now = Instant::now();
        let mut missed = Vec::new();
        let mut complete = true;
        for ReadFrom { stream, after } in from {
            let Some(kept) = state.streams.get_mut(stream) else {
                continue;
            };
            kept.trim(policy, now);
            if kept.max_dropped > *after {
                complete = false;
            }
            missed.extend(
                kept.entries
                    .iter()
                    .filter(|(offset, _, _)| offset > after)
                    .map(|(offset, _, payload)| Delivery {
                        offset: *offset,
                        payload: payload.clone(),
                    }),
            );
        }
        drop(state);
        Replayed::sorted(missed, complete)
    }

    /// Drops the history of one session (it was removed).
    pub(crate) fn forget(&self, stream: &Stream) {
        lock(&self.state).streams.remove(stream);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: HistoryPolicy = HistoryPolicy {
        keep: 3,
        retention: Duration::from_secs(60),
    };

    fn texts(replayed: &Replayed) -> Vec<String> {
        replayed
            .missed
            .iter()
            .map(|delivery| delivery.text().unwrap().to_owned())
            .collect()
    }

    #[test]
    fn offsets_increase_and_reads_start_after_a_point() {
        let history = LocalHistory::default();
        let room = Stream::Room("r".into());
        let offsets: Vec<Offset> = ["a", "b", "c"]
            .iter()
            .map(|text| history.record(&room, &(*text).into(), POLICY, |offset| offset))
            .collect();
        assert!(offsets.windows(2).all(|pair| pair[0] < pair[1]));
        let read = history.read(
            &[ReadFrom {
                stream: room.clone(),
                after: offsets[0],
            }],
            POLICY,
        );
        assert_eq!(texts(&read), ["b", "c"]);
        assert!(read.complete);
    }

    #[test]
    fn a_start_before_what_is_kept_is_incomplete() {
        let history = LocalHistory::default();
        let all = Stream::All;
        let first = history.record(&all, &"0".into(), POLICY, |offset| offset);
        for n in 1..5 {
            history.record(&all, &n.to_string().into(), POLICY, |_| ());
        }
        let from = |after| {
            [ReadFrom {
                stream: all.clone(),
                after,
            }]
        };
        let read = history.read(&from(Offset::default()), POLICY);
        assert_eq!(texts(&read), ["2", "3", "4"]);
        assert!(!read.complete);
        let read = history.read(&from(first), POLICY);
        assert!(!read.complete, "1 was dropped, and came after the start");
        let two = read.missed[0].offset;
        assert!(history.read(&from(two), POLICY).complete);
    }

    #[test]
    fn several_histories_merge_in_offset_order() {
        let history = LocalHistory::default();
        let (a, b) = (Stream::Room("a".into()), Stream::User("u".into()));
        history.record(&a, &"1".into(), POLICY, |_| ());
        history.record(&b, &"2".into(), POLICY, |_| ());
        history.record(&a, &"3".into(), POLICY, |_| ());
        let from = [a, b].map(|stream| ReadFrom {
            stream,
            after: Offset::default(),
        });
        assert_eq!(texts(&history.read(&from, POLICY)), ["1", "2", "3"]);
    }
}
