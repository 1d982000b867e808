//! Wake-ups shared by many tasks at the same few instants: one timer for all of them.
//!
//! Every open connection wakes twice a minute to ping its client. With a timer of its own per
//! connection, each of those wake-ups walks the runtime's timer wheel, which moves every timer
//! through several levels before it fires, touching each connection's timer several times over.
//! On a server with tens of thousands of idle connections that bookkeeping costs more than the
//! pings themselves. Here the tasks that wait for the same instant share one entry (a list of
//! wakers), and one task sleeps until the earliest entry, then wakes its whole list at once.
//!
//! A waiter that goes away takes its waker out ([`WakeUps::forget`]), so nothing keeps a closed
//! connection's task alive until its instant comes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;

/// The shared wake-ups of one layer. Cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct WakeUps {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Told when an instant earlier than every other one is added.
    earlier: Notify,
}

#[derive(Default)]
struct State {
    due: BTreeMap<Instant, Vec<Waker>>,
    /// Whether a task is firing the wake-ups.
    firing: bool,
}

impl WakeUps {
    /// Ready once `at` has come; until then the task is woken at `at`. `registered` is the
    /// waiter's own record of the waker it left for `at` (`None` at first), so that polling
    /// again adds nothing. Call [`forget`](Self::forget) with it when the waiter goes away
    /// before `at`.
    pub(crate) fn poll_at(
        &self,
        at: Instant,
        registered: &mut Option<Waker>,
        cx: &mut Context<'_>,
    ) -> Poll<()> {
        if Instant::now() >= at {
            *registered = None;
            return Poll::Ready(());
        }
        if registered
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            return Poll::Pending;
        }
        if let Some(stale) = registered.take() {
            self.forget(at, &stale);
        }
        let waker = cx.waker().clone();
        let mut state = self.shared.lock();
        let earliest = state
            .due
            .first_key_value()
            .is_none_or(|(first, _)| at < *first);
        state.due.entry(at).or_default().push(waker.clone());
        *registered = Some(waker);
        if !state.firing {
            state.firing = true;
            tokio::spawn(fire(Arc::downgrade(&self.shared)));
        } else if earliest {
            self.shared.earlier.notify_one();
        }
        Poll::Pending
    }

    /// Takes out the waker a waiter left for `at`.
    pub(crate) fn forget(&self, at: Instant, waker: &Waker) {
        let mut state = self.shared.lock();
        if let Some(wakers) = state.due.get_mut(&at) {
            if let Some(position) = wakers.iter().position(|held| held.will_wake(waker)) {
                wakers.swap_remove(position);
            }
            if wakers.is_empty() {
                state.due.remove(&at);
            }
        }
    }

    #[cfg(test)]
    fn waiting(&self) -> usize {
        self.shared.lock().due.values().map(Vec::len).sum()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Marks the wake-ups as not fired by anyone when the firing task ends, however it ends (the
/// runtime it ran on may shut down), so that the next waiter starts another.
struct Firing {
    shared: Weak<Shared>,
    /// Cleared when the task itself marked the end, under the same lock that saw nobody wait.
    armed: bool,
}

impl Drop for Firing {
    fn drop(&mut self) {
        if let (true, Some(shared)) = (self.armed, self.shared.upgrade()) {
            shared.lock().firing = false;
        }
    }
}

/// Sleeps until the earliest instant, wakes everyone waiting for it and for any earlier one,
/// and ends once nobody waits.
async fn fire(shared: Weak<Shared>) {
    let mut firing = Firing {
        shared: shared.clone(),
        armed: true,
    };
    loop {
        let Some(strong) = shared.upgrade() else {
            return;
        };
        let next = {
            let mut state = strong.lock();
            let now = Instant::now();
            let later = state.due.split_off(&(now + Duration::from_nanos(1)));
            let due = std::mem::replace(&mut state.due, later);
            let next = state.due.first_key_value().map(|(at, _)| *at);
            if next.is_none() {
                state.firing = false;
            }
            drop(state);
            due.into_values().flatten().for_each(Waker::wake);
            next
        };
        let Some(next) = next else {
            // `firing` is false already: the guard must not clear a successor's mark.
            firing.armed = false;
            return;
        };
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            () = strong.earlier.notified() => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::future::poll_fn;

    async fn until(wake_ups: &WakeUps, at: Instant) {
        let mut registered = None;
        poll_fn(|cx| wake_ups.poll_at(at, &mut registered, cx)).await;
    }

    /// Waits for `at` no longer than `limit`; whether `at` came.
    async fn wait_for(
        wake_ups: &WakeUps,
        at: Instant,
        registered: &mut Option<Waker>,
        limit: Duration,
    ) -> bool {
        tokio::time::timeout(limit, poll_fn(|cx| wake_ups.poll_at(at, registered, cx)))
            .await
            .is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn waiters_wake_at_their_instant_and_not_before() {
        let wake_ups = WakeUps::default();
        let start = Instant::now();
        let at = start + Duration::from_secs(30);
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let wake_ups = wake_ups.clone();
                tokio::spawn(async move {
                    until(&wake_ups, at).await;
                    Instant::now()
                })
            })
            .collect();
        let earlier = {
            let wake_ups = wake_ups.clone();
            tokio::spawn(async move {
                until(&wake_ups, start + Duration::from_secs(5)).await;
                Instant::now()
            })
        };
        assert_eq!(earlier.await.unwrap(), start + Duration::from_secs(5));
        for waiter in waiters {
            assert_eq!(waiter.await.unwrap(), at);
        }
        assert_eq!(wake_ups.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiter_that_goes_away_leaves_nothing_behind() {
        let wake_ups = WakeUps::default();
        let at = Instant::now() + Duration::from_secs(30);
        let mut registered = None;
        assert!(!wait_for(&wake_ups, at, &mut registered, Duration::from_secs(1)).await);
        assert_eq!(wake_ups.waiting(), 1);
        wake_ups.forget(at, registered.as_ref().unwrap());
        assert_eq!(wake_ups.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn polling_again_adds_no_second_waker() {
        let wake_ups = WakeUps::default();
        let at = Instant::now() + Duration::from_secs(30);
        let mut registered = None;
        for _ in 0..3 {
            wait_for(&wake_ups, at, &mut registered, Duration::from_millis(10)).await;
        }
        assert_eq!(wake_ups.waiting(), 1);
    }

    #[test]
    fn a_new_runtime_fires_after_the_old_one_shut_down() {
        let wake_ups = WakeUps::default();
        for _ in 0..2 {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_time()
                .start_paused(true)
                .build()
                .unwrap();
            let wake_ups = wake_ups.clone();
            runtime.block_on(async move {
                // Left waiting when the runtime shuts down: its firing task goes with it.
                let left = wake_ups.clone();
                tokio::spawn(async move {
                    until(&left, Instant::now() + Duration::from_secs(3600)).await;
                });
                tokio::task::yield_now().await;
                until(&wake_ups, Instant::now() + Duration::from_secs(1)).await;
            });
        }
    }
}
