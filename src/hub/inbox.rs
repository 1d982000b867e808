//! A connection's inbox: the bounded queue between the hub and the handler's socket loop.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::store::message::{CloseReason, Delivery, Offset, Payload};

/// How much one connection's inbox may hold before the connection counts as too slow.
///
/// Whichever bound a message would break first, the inbox drops what it holds and closes the
/// connection with [`CloseReason::TOO_SLOW`] (4001). So a client that stops reading costs the
/// server at most these bounds, and never slows delivery to anyone else.
///
/// ```
/// use ws_session::hub::InboxLimits;
///
/// let limits = InboxLimits::default();
/// assert_eq!(limits.messages, 1024);
/// assert_eq!(limits.bytes, 4 * 1024 * 1024);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct InboxLimits {
    /// Most messages waiting at once (default 1,024).
    pub messages: usize,
    /// Most payload bytes waiting at once (default 4 MiB).
    pub bytes: usize,
}

impl Default for InboxLimits {
    fn default() -> Self {
        InboxLimits {
            messages: 1024,
            bytes: 4 * 1024 * 1024,
        }
    }
}

impl InboxLimits {
    /// Limits of `messages` messages and `bytes` bytes (each at least 1).
    pub fn new(messages: usize, bytes: usize) -> Self {
        InboxLimits {
            messages: messages.max(1),
            bytes: bytes.max(1),
        }
    }
}

/// What became of a message pushed into an inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pushed {
    /// It waits for the handler.
    Queued,
    /// It would have broken a bound: the inbox dropped everything and now closes with 4001.
    Overflowed,
    /// The inbox is closing or closed; the message was dropped.
    Dropped,
}

/// The queue of one connection. The hub pushes, the handler's socket loop receives.
pub(crate) struct Inbox {
    state: Mutex<State>,
    ready: Notify,
    limits: InboxLimits,
}

#[derive(Default)]
struct State {
    queue: VecDeque<Delivery>,
    bytes: usize,
    /// The offset of the last message queued.
    last: u64,
    /// A close waiting to be received.
    close: Option<CloseReason>,
    /// The close was received: nothing more comes.
    ended: bool,
}

impl Inbox {
    pub(crate) fn new(limits: InboxLimits) -> Self {
        Inbox {
            state: Mutex::new(State::default()),
            ready: Notify::new(),
            limits,
        }
    }

    /// Queues a message at `offset` (the broker's; without one, one more than the last), or
    /// closes the inbox with 4001 when the message would break a bound.
    pub(crate) fn push(&self, payload: Payload, offset: Option<Offset>) -> Pushed {
        let dropped;
        {
            let mut state = self.lock();
            if state.close.is_some() || state.ended {
                return Pushed::Dropped;
            }
            let len = payload.len();
            let fits = state.queue.len() < self.limits.messages
                && state.bytes.saturating_add(len) <= self.limits.bytes;
            if fits {
                let offset = offset.unwrap_or(Offset(state.last + 1));
                state.last = state.last.max(offset.0);
                state.queue.push_back(Delivery { offset, payload });
                state.bytes += len;
                drop(state);
                self.ready.notify_one();
                return Pushed::Queued;
            }
            dropped = std::mem::take(&mut state.queue);
            state.bytes = 0;
            state.close = Some(CloseReason::TOO_SLOW);
        }
        // The dropped messages are freed without holding the lock.
        drop(dropped);
        self.ready.notify_one();
        Pushed::Overflowed
    }

    /// Puts `missed` (messages from the history, in order) in front of what waits, for a
    /// connection that resumed: what arrived live meanwhile and is also in `missed` is kept
    /// once, and everything comes out in offset order. At most the inbox's message bound is
    /// kept, the newest; returns how many of the messages now waiting were missed (the first
    /// ones out) and whether all of `missed` fitted.
    pub(crate) fn replay(&self, missed: Vec<Delivery>) -> (usize, bool) {
        let mut state = self.lock();
        if missed.is_empty() || state.close.is_some() || state.ended {
            return (0, true);
        }
        let last_missed = missed.iter().map(|delivery| delivery.offset).max();
        let mut all: Vec<Delivery> = missed;
        all.extend(state.queue.drain(..));
        all.sort_by_key(|delivery| delivery.offset);
        all.dedup_by_key(|delivery| delivery.offset);
        let mut fitted = true;
        if all.len() > self.limits.messages {
            all.drain(..all.len() - self.limits.messages);
            fitted = false;
        }
        let mut bytes: usize = all.iter().map(|delivery| delivery.payload.len()).sum();
        while bytes > self.limits.bytes && !all.is_empty() {
            bytes -= all.remove(0).payload.len();
            fitted = false;
        }
        let count = all
            .iter()
            .take_while(|delivery| Some(delivery.offset) <= last_missed)
            .count();
        state.last = state
            .last
            .max(all.last().map_or(0, |delivery| delivery.offset.0));
        state.bytes = bytes;
        state.queue = all.into();
        drop(state);
        self.ready.notify_one();
        (count, fitted)
    }

    /// Asks the handler to close the connection, dropping the messages still waiting.
    /// Returns `false` when the inbox was closing already (the first reason wins).
    pub(crate) fn close(&self, reason: CloseReason) -> bool {
        let dropped = {
            let mut state = self.lock();
            if state.close.is_some() || state.ended {
                return false;
            }
            state.close = Some(reason);
            state.bytes = 0;
            std::mem::take(&mut state.queue)
        };
        drop(dropped);
        self.ready.notify_one();
        true
    }

    /// The next event: a close first, if one is waiting, then messages in order. `None` once
    /// the close has been received. Cancel-safe: an event is taken only when it is returned.
    pub(crate) async fn recv(&self) -> Option<HubEvent> {
        loop {
            if let Some(event) = self.try_recv() {
                return event;
            }
            // `notify_one` stores a permit when nobody waits, so a push between the check
            // above and this wait is not missed.
            self.ready.notified().await;
        }
    }

    /// Waits for at least one event, then moves up to `limit` of them (a close first, if one is
    /// waiting, and nothing after it) into `events`. Returns how many it moved: 0 only once the
    /// inbox has ended (or for a `limit` of 0). Cancel-safe, as [`recv`](Self::recv) is.
    pub(crate) async fn recv_many(&self, events: &mut Vec<HubEvent>, limit: usize) -> usize {
        if limit == 0 {
            return 0;
        }
        loop {
            let moved = self.take(events, limit);
            if moved > 0 || self.lock().ended {
                return moved;
            }
            self.ready.notified().await;
        }
    }

    /// Moves up to `limit` events that are there now into `events`.
    fn take(&self, events: &mut Vec<HubEvent>, limit: usize) -> usize {
        let mut state = self.lock();
        if let Some(reason) = state.close.take() {
            state.ended = true;
            events.push(HubEvent::Close(reason));
            return 1;
        }
        let count = limit.min(state.queue.len());
        let mut bytes = 0;
        events.extend(state.queue.drain(..count).map(|delivery| {
            bytes += delivery.payload.len();
            HubEvent::Message(delivery)
        }));
        state.bytes -= bytes;
        count
    }

    /// The next event if there is one now: `Some(None)` when the inbox has ended.
    pub(crate) fn try_recv(&self) -> Option<Option<HubEvent>> {
        let mut state = self.lock();
        if let Some(reason) = state.close.take() {
            state.ended = true;
            return Some(Some(HubEvent::Close(reason)));
        }
        if let Some(delivery) = state.queue.pop_front() {
            state.bytes -= delivery.payload.len();
            return Some(Some(HubEvent::Message(delivery)));
        }
        if state.ended {
            return Some(None);
        }
        None
    }

    /// How many messages and payload bytes wait now.
    pub(crate) fn queued(&self) -> (usize, usize) {
        let state = self.lock();
        (state.queue.len(), state.bytes)
    }

    /// Whether a close is waiting or was received.
    #[cfg(test)]
    pub(crate) fn is_closing(&self) -> bool {
        let state = self.lock();
        state.close.is_some() || state.ended
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while the lock is held leaves the queue consistent: every change is one step.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn message(event: Option<Option<HubEvent>>) -> (u64, String) {
        match event {
            Some(Some(HubEvent::Message(delivery))) => (
                delivery.offset.0,
                delivery.text().expect("a text message").to_owned(),
            ),
            other => panic!("expected a message, got {other:?}"),
        }
    }

    #[test]
    fn messages_come_out_in_order_with_increasing_offsets() {
        let inbox = Inbox::new(InboxLimits::default());
        assert_eq!(inbox.push("a".into(), None), Pushed::Queued);
        assert_eq!(inbox.push("b".into(), None), Pushed::Queued);
        assert_eq!(inbox.queued(), (2, 2));
        assert_eq!(message(inbox.try_recv()), (1, "a".into()));
        assert_eq!(message(inbox.try_recv()), (2, "b".into()));
        assert_eq!(inbox.queued(), (0, 0));
        assert!(inbox.try_recv().is_none());
    }

    #[test]
    fn too_many_messages_close_with_4001_and_free_the_queue() {
        let inbox = Inbox::new(InboxLimits::new(3, 1 << 20));
        for _ in 0..3 {
            assert_eq!(inbox.push("x".into(), None), Pushed::Queued);
        }
        assert_eq!(inbox.push("x".into(), None), Pushed::Overflowed);
        assert_eq!(inbox.queued(), (0, 0));
        assert_eq!(inbox.push("x".into(), None), Pushed::Dropped);
        assert_eq!(
            inbox.try_recv(),
            Some(Some(HubEvent::Close(CloseReason::TOO_SLOW)))
        );
        assert_eq!(inbox.try_recv(), Some(None));
    }

    #[test]
    fn too_many_bytes_close_with_4001() {
        let inbox = Inbox::new(InboxLimits::new(100, 10));
        assert_eq!(inbox.push("12345".into(), None), Pushed::Queued);
        assert_eq!(inbox.push("12345".into(), None), Pushed::Queued);
        assert_eq!(inbox.push("1".into(), None), Pushed::Overflowed);
        assert!(inbox.is_closing());
        assert_eq!(inbox.queued(), (0, 0));
    }

    #[test]
    fn a_close_jumps_the_queue_and_the_first_reason_wins() {
        let inbox = Inbox::new(InboxLimits::default());
        inbox.push("a".into(), None);
        assert!(inbox.close(CloseReason::KICKED));
        assert!(!inbox.close(CloseReason::TOO_SLOW));
        assert_eq!(
            inbox.try_recv(),
            Some(Some(HubEvent::Close(CloseReason::KICKED)))
        );
        assert_eq!(inbox.try_recv(), Some(None));
        assert!(!inbox.close(CloseReason::KICKED));
    }

    #[tokio::test]
    async fn recv_many_takes_what_is_there_up_to_the_limit() {
        let inbox = Inbox::new(InboxLimits::default());
        for text in ["a", "b", "c"] {
            inbox.push(text.into(), None);
        }
        let mut events = Vec::new();
        assert_eq!(inbox.recv_many(&mut events, 2).await, 2);
        assert_eq!(inbox.queued(), (1, 1));
        assert_eq!(inbox.recv_many(&mut events, 10).await, 1);
        let offsets: Vec<u64> = events
            .iter()
            .map(|event| match event {
                HubEvent::Message(delivery) => delivery.offset.0,
                HubEvent::Close(_) => panic!("{event:?}"),
            })
            .collect();
        assert_eq!(offsets, [1, 2, 3]);
        inbox.push("d".into(), None);
        inbox.close(CloseReason::KICKED);
        events.clear();
        assert_eq!(inbox.recv_many(&mut events, 10).await, 1);
        assert_eq!(events, [HubEvent::Close(CloseReason::KICKED)]);
        assert_eq!(inbox.recv_many(&mut events, 10).await, 0);
    }

    #[test]
    fn a_replay_comes_first_in_offset_order_and_once() {
        let inbox = Inbox::new(InboxLimits::default());
        // Live messages that arrived while the history was read: 12 is also in the history.
        inbox.push("12".into(), Some(Offset(12)));
        inbox.push("20".into(), Some(Offset(20)));
        let missed = [10, 11, 12]
            .map(|n| Delivery {
                offset: Offset(n),
                payload: n.to_string().into(),
            })
            .to_vec();
        assert_eq!(inbox.replay(missed), (3, true));
        let order: Vec<u64> = std::iter::from_fn(|| inbox.try_recv().flatten())
            .map(|event| match event {
                HubEvent::Message(delivery) => delivery.offset.0,
                HubEvent::Close(_) => panic!("{event:?}"),
            })
            .collect();
        assert_eq!(order, [10, 11, 12, 20]);
        assert_eq!(inbox.queued(), (0, 0));
    }

    #[test]
    fn a_replay_longer_than_the_bound_keeps_the_newest() {
        let inbox = Inbox::new(InboxLimits::new(2, 1 << 20));
        let missed = (1..=5)
            .map(|n| Delivery {
                offset: Offset(n),
                payload: "x".into(),
            })
            .collect();
        assert_eq!(inbox.replay(missed), (2, false));
        let Some(Some(HubEvent::Message(first))) = inbox.try_recv() else {
            panic!("a message");
        };
        assert_eq!(first.offset, Offset(4));
    }

    #[tokio::test]
    async fn recv_waits_for_a_push() {
        let inbox = std::sync::Arc::new(Inbox::new(InboxLimits::default()));
        let waiting = tokio::spawn({
            let inbox = inbox.clone();
            async move { inbox.recv().await }
        });
        tokio::task::yield_now().await;
        inbox.push(vec![1u8, 2].into(), None);
        let event = waiting.await.unwrap();
        let Some(HubEvent::Message(delivery)) = event else {
            panic!("{event:?}");
        };
        assert_eq!(delivery.payload().as_bytes(), &[1, 2]);
    }
}
