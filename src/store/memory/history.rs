//! The history of the in-process broker: per target, the messages kept for sessions that
//! resume, bounded by the [`HistoryPolicy`], and the broker's clock.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::Instant;

use crate::session::record::now_ms;
use crate::store::envelope::Stream;
use crate::store::history::{HistoryPolicy, ReadBudget, ReadFrom, Replayed, newest_within};
use crate::store::message::{Delivery, Offset, Payload};

/// The history of the in-process broker, and its clock. Its lock also orders the broker's
/// deliveries, so offsets increase on every connection.
#[derive(Default)]
pub(crate) struct MemoryHistory {
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    last: Offset,
    streams: HashMap<Stream, Kept>,
    /// The payload bytes held by every stream together.
    bytes: usize,
    /// The policy of the last message kept: what the sweep trims by.
    policy: Option<HistoryPolicy>,
}

struct Kept {
    /// Each message's offset, when it was kept, its payload, and the session it leaves out.
    entries: VecDeque<(Offset, Instant, Payload, Option<Box<str>>)>,
    /// The payload bytes of `entries`.
    bytes: usize,
    /// The highest offset dropped from this history, by count, bytes, age or the store's bound.
    max_dropped: Offset,
    /// When a message was last added.
    written: Instant,
}

impl Kept {
    /// Drops what is beyond the policy's count and bytes, or older than its retention. Returns
    /// the bytes freed.
    fn trim(&mut self, policy: HistoryPolicy, now: Instant) -> usize {
        let before = self.bytes;
        while self.entries.len() > policy.keep
            || self.bytes > policy.keep_bytes
            || self
                .entries
                .front()
                .is_some_and(|(_, at, _, _)| now.duration_since(*at) > policy.retention)
        {
            let Some((offset, _, payload, _)) = self.entries.pop_front() else {
                break;
            };
            self.bytes -= payload.len();
            self.max_dropped = self.max_dropped.max(offset);
        }
        before - self.bytes
    }

    /// Drops everything; a reader from before the last message is told it missed some.
    fn drop_all(&mut self) -> usize {
        if let Some((offset, _, _, _)) = self.entries.back() {
            self.max_dropped = self.max_dropped.max(*offset);
        }
        self.entries.clear();
        std::mem::take(&mut self.bytes)
    }
}

impl MemoryHistory {
    /// Gives the next offset to a message for `stream`, keeps it there under `policy` when
    /// `keep` says so (the target has a session to deliver it to), then runs `deliver` with
    /// the offset, all under the history's lock: deliveries happen in offset order. A message
    /// that leaves out session `left_out` is not read by a resume of that session.
    pub(crate) fn record<T>(
        &self,
        stream: &Stream,
        payload: &Payload,
        left_out: Option<&str>,
        policy: HistoryPolicy,
        keep: bool,
        deliver: impl FnOnce(Offset) -> T,
    ) -> T {
        let mut state = lock(&self.state);
        let offset = Offset::next(state.last, now_ms());
        state.last = offset;
        if keep && policy.is_on() {
            state.keep(stream, offset, payload, left_out, policy);
            crate::telemetry::history_bytes(state.bytes);
        }
        deliver(offset)
    }

    /// The current offset of the clock: messages sent from now on have higher ones.
    pub(crate) fn now(&self) -> Offset {
        let floor = Offset(Offset::at(now_ms()).0.saturating_sub(1));
        lock(&self.state).last.max(floor)
    }

    /// The newest messages of the histories `from` after their starting points that fit
    /// `budget`, in offset order, but those that leave out session `reader`; incomplete when
    /// any was left out or dropped before.
    pub(crate) fn read(
        &self,
        reader: &str,
        from: &[ReadFrom],
        policy: HistoryPolicy,
        budget: ReadBudget,
    ) -> Replayed {
        let mut state = lock(&self.state);
        let now = Instant::now();
        let mut found: Vec<&(Offset, Instant, Payload, Option<Box<str>>)> = Vec::new();
        let mut complete = true;
        let state = &mut *state;
        for ReadFrom { stream, .. } in from {
            if let Some(kept) = state.streams.get_mut(stream) {
                state.bytes -= kept.trim(policy, now);
            }
        }
        for ReadFrom { stream, after } in from {
            let Some(kept) = state.streams.get(stream) else {
                continue;
            };
            if kept.max_dropped > *after {
                complete = false;
            }
            found.extend(kept.entries.iter().filter(|(offset, _, _, left_out)| {
                offset > after && left_out.as_deref() != Some(reader)
            }));
        }
        found.sort_unstable_by_key(|entry| std::cmp::Reverse(entry.0));
        found.dedup_by_key(|entry| entry.0);
        let (missed, all) = newest_within(
            found.into_iter().map(|(offset, _, payload, _)| Delivery {
                offset: *offset,
                payload: payload.clone(),
            }),
            budget,
        );
        Replayed {
            missed,
            complete: complete && all,
        }
    }

    /// Drops the history of one session (it was removed).
    pub(crate) fn forget(&self, stream: &Stream) {
        let mut state = lock(&self.state);
        if let Some(kept) = state.streams.remove(stream) {
            state.bytes -= kept.bytes;
            crate::telemetry::history_bytes(state.bytes);
        }
    }

    /// Trims every history by age, and drops those nobody wrote to for twice the retention,
    /// as a Redis stream expires. The memory store's sweep calls it, so expired history is
    /// reclaimed without waiting for the next message.
    pub(crate) fn sweep(&self) {
        let mut state = lock(&self.state);
        let Some(policy) = state.policy else {
            return;
        };
        let now = Instant::now();
        let mut freed = 0;
        state.streams.retain(|_, kept| {
            freed += kept.trim(policy, now);
            let live = now.duration_since(kept.written) <= policy.retention * 2;
            if !live {
                freed += kept.bytes;
            }
            live
        });
        state.bytes -= freed;
        crate::telemetry::history_bytes(state.bytes);
    }

    /// The payload bytes every history holds together.
    #[cfg(test)]
    pub(crate) fn bytes(&self) -> usize {
        lock(&self.state).bytes
    }
}

impl State {
    fn keep(
        &mut self,
        stream: &Stream,
        offset: Offset,
        payload: &Payload,
        left_out: Option<&str>,
        policy: HistoryPolicy,
    ) {
        self.policy = Some(policy);
        let now = Instant::now();
        let kept = self.streams.entry(stream.clone()).or_insert_with(|| Kept {
            entries: VecDeque::new(),
            bytes: 0,
            max_dropped: Offset::default(),
            written: now,
        });
        kept.written = now;
        kept.entries
            .push_back((offset, now, payload.clone(), left_out.map(Box::from)));
        kept.bytes += payload.len();
        let freed = kept.trim(policy, now);
        self.bytes = self.bytes + payload.len() - freed;
        // Over the store's bound: the histories written to least recently go first, whole.
        while self.bytes > policy.total_bytes {
            let Some(oldest) = self
                .streams
                .iter_mut()
                .filter(|(other, kept)| *other != stream && kept.bytes > 0)
                .min_by_key(|(_, kept)| kept.written)
                .map(|(_, kept)| kept)
            else {
                break;
            };
            self.bytes -= oldest.drop_all();
        }
        if self.bytes > policy.total_bytes
            && let Some(kept) = self.streams.get_mut(stream)
        {
            self.bytes -= kept.drop_all();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const POLICY: HistoryPolicy = HistoryPolicy {
        keep: 3,
        retention: Duration::from_secs(60),
        keep_bytes: 1 << 20,
        total_bytes: 1 << 30,
    };

    const ALL_OF_IT: ReadBudget = ReadBudget {
        messages: 1000,
        bytes: 1 << 20,
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
        let history = MemoryHistory::default();
        let room = Stream::Room("r".into());
        let offsets: Vec<Offset> = ["a", "b", "c"]
            .iter()
            .map(|text| history.record(&room, &(*text).into(), None, POLICY, true, |offset| offset))
            .collect();
        assert!(offsets.windows(2).all(|pair| pair[0] < pair[1]));
        let read = history.read(
            "",
            &[ReadFrom {
                stream: room.clone(),
                after: offsets[0],
            }],
            POLICY,
            ALL_OF_IT,
        );
        assert_eq!(texts(&read), ["b", "c"]);
        assert!(read.complete);
    }

    #[test]
    fn a_start_before_what_is_kept_is_incomplete() {
        let history = MemoryHistory::default();
        let all = Stream::All;
        let first = history.record(&all, &"0".into(), None, POLICY, true, |offset| offset);
        for n in 1..5 {
            history.record(&all, &n.to_string().into(), None, POLICY, true, |_| ());
        }
        let from = |after| {
            [ReadFrom {
                stream: all.clone(),
                after,
            }]
        };
        let read = history.read("", &from(Offset::default()), POLICY, ALL_OF_IT);
        assert_eq!(texts(&read), ["2", "3", "4"]);
        assert!(!read.complete);
        let read = history.read("", &from(first), POLICY, ALL_OF_IT);
        assert!(!read.complete, "1 was dropped, and came after the start");
        let two = read.missed[0].offset;
        assert!(history.read("", &from(two), POLICY, ALL_OF_IT).complete);
    }

    #[test]
    fn several_histories_merge_in_offset_order() {
        let history = MemoryHistory::default();
        let (a, b) = (Stream::Room("a".into()), Stream::User("u".into()));
        history.record(&a, &"1".into(), None, POLICY, true, |_| ());
        history.record(&b, &"2".into(), None, POLICY, true, |_| ());
        history.record(&a, &"3".into(), None, POLICY, true, |_| ());
        let from = [a, b].map(|stream| ReadFrom {
            stream,
            after: Offset::default(),
        });
        assert_eq!(
            texts(&history.read("", &from, POLICY, ALL_OF_IT)),
            ["1", "2", "3"]
        );
    }

    fn from_start(streams: &[&Stream]) -> Vec<ReadFrom> {
        streams
            .iter()
            .map(|stream| ReadFrom {
                stream: (*stream).clone(),
                after: Offset::default(),
            })
            .collect()
    }

    #[test]
    fn each_history_is_bounded_in_bytes() {
        let history = MemoryHistory::default();
        let room = Stream::Room("r".into());
        let policy = HistoryPolicy {
            keep_bytes: 10,
            ..POLICY
        };
        for text in ["aaaa", "bbbb", "cccc"] {
            history.record(&room, &text.into(), None, policy, true, |_| ());
        }
        assert_eq!(history.bytes(), 8);
        let read = history.read("", &from_start(&[&room]), policy, ALL_OF_IT);
        assert_eq!(texts(&read), ["bbbb", "cccc"]);
        assert!(!read.complete, "aaaa was dropped");
    }

    #[test]
    fn past_the_total_the_least_recently_written_history_goes() {
        let history = MemoryHistory::default();
        let (a, b, c) = (
            Stream::Room("a".into()),
            Stream::Room("b".into()),
            Stream::Room("c".into()),
        );
        let policy = HistoryPolicy {
            total_bytes: 10,
            ..POLICY
        };
        history.record(&a, &"aaaa".into(), None, policy, true, |_| ());
        std::thread::sleep(Duration::from_millis(2));
        history.record(&b, &"bbbb".into(), None, policy, true, |_| ());
        std::thread::sleep(Duration::from_millis(2));
        history.record(&c, &"cccc".into(), None, policy, true, |_| ());
        assert_eq!(history.bytes(), 8);
        let read = history.read("", &from_start(&[&a]), policy, ALL_OF_IT);
        assert!(read.missed.is_empty());
        assert!(!read.complete, "a's history was dropped whole");
        let read = history.read("", &from_start(&[&b, &c]), policy, ALL_OF_IT);
        assert_eq!(texts(&read), ["bbbb", "cccc"]);
        assert!(read.complete);
    }

    #[test]
    fn a_message_not_kept_still_gets_an_offset() {
        let history = MemoryHistory::default();
        let room = Stream::Room("empty".into());
        let first = history.record(&room, &"x".into(), None, POLICY, false, |offset| offset);
        let second = history.record(&room, &"y".into(), None, POLICY, false, |offset| offset);
        assert!(first < second);
        assert_eq!(history.bytes(), 0);
        assert!(
            history
                .read("", &from_start(&[&room]), POLICY, ALL_OF_IT)
                .missed
                .is_empty()
        );
    }

    #[test]
    fn a_read_takes_the_newest_that_fit_its_budget() {
        let history = MemoryHistory::default();
        let (a, b) = (Stream::Room("a".into()), Stream::User("u".into()));
        for (stream, text) in [(&a, "1"), (&b, "22"), (&a, "333"), (&b, "4444")] {
            history.record(stream, &text.into(), None, POLICY, true, |_| ());
        }
        let from = from_start(&[&a, &b]);
        let by_count = ReadBudget {
            messages: 2,
            bytes: 1000,
        };
        let read = history.read("", &from, POLICY, by_count);
        assert_eq!(texts(&read), ["333", "4444"]);
        assert!(!read.complete);
        let by_bytes = ReadBudget {
            messages: 10,
            bytes: 8,
        };
        let read = history.read("", &from, POLICY, by_bytes);
        assert_eq!(texts(&read), ["333", "4444"], "22 would make 7 + 2 bytes");
        assert!(!read.complete);
    }

    #[test]
    fn the_sweep_reclaims_histories_nobody_writes_to() {
        let history = MemoryHistory::default();
        let room = Stream::Room("r".into());
        let policy = HistoryPolicy {
            retention: Duration::from_millis(20),
            ..POLICY
        };
        history.record(&room, &"old".into(), None, policy, true, |_| ());
        assert_eq!(history.bytes(), 3);
        std::thread::sleep(Duration::from_millis(50));
        history.sweep();
        assert_eq!(history.bytes(), 0);
        assert!(lock(&history.state).streams.is_empty());
    }
}
