//! The channels a node wants, which of them its pub/sub connection holds, and who waits for
//! them.
//!
//! Every change is kept by channel, so the cost of a subscription, an unsubscription or a
//! confirmation does not grow with the number of channels or of waiters: in a storm of tens of
//! thousands of connections each wanting its user's channel, the connection task looks only at
//! what changed, and a confirmation wakes only those who wait for that channel.

use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};

use tokio::sync::oneshot;

/// A waiter for channels (see [`Wanted::wait`]).
pub(super) type WaiterId = u64;

#[derive(Default)]
pub(super) struct Wanted {
    /// Channel -> whether the current connection is subscribed to it.
    channels: HashMap<Vec<u8>, bool>,
    /// Channels wanted or dropped since the connection task last looked.
    changed: HashSet<Vec<u8>>,
    /// Channel -> the waiters that need it.
    waiting: HashMap<Vec<u8>, Vec<WaiterId>>,
    /// Waiter -> how many of its channels are not subscribed yet, and its wake-up.
    waiters: HashMap<WaiterId, (usize, oneshot::Sender<()>)>,
    next_waiter: WaiterId,
    /// The transport is gone: the task ends.
    pub(super) closed: bool,
}

impl Wanted {
    /// The node needs `channel`.
    pub(super) fn want(&mut self, channel: Vec<u8>) {
        self.channels.insert(channel.clone(), false);
        self.changed.insert(channel);
    }

    /// The node no longer needs `channel`. Whoever still waits for it is told it will not come.
    pub(super) fn unwant(&mut self, channel: &[u8]) {
        if self.channels.remove(channel).is_some() {
            self.changed.insert(channel.to_vec());
        }
        for id in self.waiting.remove(channel).unwrap_or_default() {
            self.waiters.remove(&id);
        }
    }

    /// Waits for `needed`: `None` when the connection holds them all already, else the waiter
    /// and the wake-up that comes once it does.
    pub(super) fn wait(
        &mut self,
        needed: impl IntoIterator<Item = Vec<u8>>,
    ) -> Option<(WaiterId, oneshot::Receiver<()>)> {
        let missing: HashSet<Vec<u8>> = needed
            .into_iter()
            .filter(|channel| self.channels.get(channel) != Some(&true))
            .collect();
        if missing.is_empty() {
            return None;
        }
        let id = self.next_waiter;
        self.next_waiter += 1;
        let (wake, woken) = oneshot::channel();
        self.waiters.insert(id, (missing.len(), wake));
        for channel in missing {
            self.waiting.entry(channel).or_default().push(id);
        }
        Some((id, woken))
    }

    /// A waiter gave up.
    pub(super) fn forget(&mut self, id: WaiterId) {
        self.waiters.remove(&id);
    }

    /// Marks `channels` subscribed (those still wanted) and wakes the waiters now satisfied.
    pub(super) fn confirm(&mut self, channels: &[Vec<u8>]) {
        for channel in channels {
            let Some(active) = self.channels.get_mut(channel) else {
                continue;
            };
            *active = true;
            for id in self.waiting.remove(channel).unwrap_or_default() {
                if let Entry::Occupied(mut waiter) = self.waiters.entry(id) {
                    waiter.get_mut().0 -= 1;
                    if waiter.get().0 == 0 {
                        let (_, wake) = waiter.remove();
                        let _ = wake.send(());
                    }
                }
            }
        }
    }

    /// What the connection, which holds `current`, must subscribe to and drop now. A channel
    /// wanted again before it was dropped is still held: it is confirmed here.
    pub(super) fn plan(&mut self, current: &HashSet<Vec<u8>>) -> (Vec<Vec<u8>>, Vec<Vec<u8>>) {
        let (mut add, mut drop, mut kept) = (Vec::new(), Vec::new(), Vec::new());
        for channel in std::mem::take(&mut self.changed) {
            match (self.channels.get(&channel), current.contains(&channel)) {
                (Some(false), true) => kept.push(channel),
                (Some(false), false) => add.push(channel),
                (None, true) => drop.push(channel),
                _ => {}
            }
        }
        self.confirm(&kept);
        (add, drop)
    }

    /// A new connection holds nothing: every wanted channel is to be subscribed again.
    pub(super) fn reset(&mut self) {
        for (channel, active) in &mut self.channels {
            *active = false;
            self.changed.insert(channel.clone());
        }
    }

    /// How many channels the connection holds.
    pub(super) fn subscribed(&self) -> usize {
        self.channels.values().filter(|active| **active).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn channel(name: &str) -> Vec<u8> {
        name.as_bytes().to_vec()
    }

    #[test]
    fn a_waiter_wakes_once_every_channel_it_needs_is_held() {
        let mut wanted = Wanted::default();
        wanted.want(channel("a"));
        wanted.want(channel("b"));
        let (_, mut woken) = wanted.wait([channel("a"), channel("b")]).unwrap();
        let (add, drop) = wanted.plan(&HashSet::new());
        assert_eq!(add.len(), 2);
        assert!(drop.is_empty());
        wanted.confirm(&[channel("a")]);
        assert!(woken.try_recv().is_err(), "b is not held yet");
        wanted.confirm(&[channel("b")]);
        assert!(woken.try_recv().is_ok());
        assert!(wanted.wait([channel("a"), channel("b")]).is_none());
        assert_eq!(wanted.subscribed(), 2);
    }

    #[test]
    fn only_what_changed_is_planned() {
        let mut wanted = Wanted::default();
        wanted.want(channel("a"));
        let (add, _) = wanted.plan(&HashSet::new());
        wanted.confirm(&add);
        let current: HashSet<Vec<u8>> = add.into_iter().collect();
        assert_eq!(wanted.plan(&current), (vec![], vec![]));
        wanted.unwant(b"a");
        assert_eq!(wanted.plan(&current), (vec![], vec![channel("a")]));
    }

    #[test]
    fn wanted_again_before_it_was_dropped_is_held_still() {
        let mut wanted = Wanted::default();
        wanted.want(channel("a"));
        wanted.plan(&HashSet::new());
        wanted.confirm(&[channel("a")]);
        let current = HashSet::from([channel("a")]);
        wanted.unwant(b"a");
        wanted.want(channel("a"));
        let (_, mut woken) = wanted.wait([channel("a")]).unwrap();
        assert_eq!(wanted.plan(&current), (vec![], vec![]));
        assert!(woken.try_recv().is_ok());
    }

    #[test]
    fn a_new_connection_subscribes_to_everything_again() {
        let mut wanted = Wanted::default();
        for name in ["a", "b", "c"] {
            wanted.want(channel(name));
        }
        let (add, _) = wanted.plan(&HashSet::new());
        wanted.confirm(&add);
        wanted.reset();
        assert_eq!(wanted.subscribed(), 0);
        let (mut add, drop) = wanted.plan(&HashSet::new());
        add.sort();
        assert_eq!(add, [channel("a"), channel("b"), channel("c")]);
        assert!(drop.is_empty());
    }

    #[test]
    fn a_channel_no_longer_wanted_fails_its_waiters_at_once() {
        let mut wanted = Wanted::default();
        wanted.want(channel("a"));
        let (_, mut woken) = wanted.wait([channel("a")]).unwrap();
        wanted.unwant(b"a");
        assert!(matches!(
            woken.try_recv(),
            Err(oneshot::error::TryRecvError::Closed)
        ));
    }
}
