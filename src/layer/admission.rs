//! How fast one instance opens sessions: a rate, a short queue, then `503` with `Retry-After`.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};

use governor::{DefaultDirectRateLimiter, Quota};
use http::HeaderValue;

/// How many upgrades per second an instance opens sessions for, and how many wait their turn.
///
/// When every client of an instance reconnects at once (after a deploy, or a network blip),
/// opening all their sessions at once would ask the store for thousands of creates and claims
/// in the same second, and with Redis shared by every instance, slow everyone. With an
/// admission rate, the layer opens at most `per_second` sessions per second (after a burst of
/// as many), lets up to [`queue`](Self::queue) upgrades wait for their turn, and answers the
/// rest at once with `503 Service Unavailable` and a `Retry-After` of the seconds the queue
/// needs to drain, before anything is created. A client that retries with a jittered backoff
/// (as the demo page does) then comes back when there is room.
///
/// ```
/// use ws_session::{Admission, MemoryStore, SessionLayer};
///
/// let layer = SessionLayer::new(MemoryStore::new())
///     .admission(Admission::per_second(2_000).queue(4_000));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    per_second: NonZeroU32,
    queue: usize,
}

impl Admission {
    /// At most `per_second` sessions opened per second (at least one), in bursts of as many;
    /// as many upgrades may wait, which is a second of waiting at most.
    pub fn per_second(per_second: u32) -> Self {
        let per_second = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        Admission {
            per_second,
            queue: per_second.get() as usize,
        }
    }

    /// How many upgrades may wait for their turn (default: one second's worth); past it, an
    /// upgrade gets `503` at once.
    #[must_use]
    pub fn queue(mut self, upgrades: usize) -> Self {
        self.queue = upgrades;
        self
    }
}

/// An upgrade refused because the queue was full: answer `503` with this `Retry-After`.
#[derive(Debug)]
pub(crate) struct Busy {
    pub(crate) retry_after: HeaderValue,
}

/// The admission of one layer: its rate, and the upgrades waiting.
pub(crate) struct Admitter {
    limiter: DefaultDirectRateLimiter,
    waiting: AtomicUsize,
    queue: usize,
    retry_after: HeaderValue,
}

impl Admitter {
    pub(crate) fn new(admission: Admission) -> Self {
        let drain_secs = admission
            .queue
            .div_ceil(admission.per_second.get() as usize)
            .max(1);
        Admitter {
            limiter: DefaultDirectRateLimiter::direct(Quota::per_second(admission.per_second)),
            waiting: AtomicUsize::new(0),
            queue: admission.queue,
            retry_after: HeaderValue::from(drain_secs),
        }
    }

    /// Waits for this upgrade's turn; [`Busy`] at once when the queue is full.
    pub(crate) async fn admit(&self) -> Result<(), Busy> {
        if self.limiter.check().is_ok() {
            return Ok(());
        }
        if self.waiting.fetch_add(1, Ordering::AcqRel) >= self.queue {
            self.waiting.fetch_sub(1, Ordering::AcqRel);
            return Err(Busy {
                retry_after: self.retry_after.clone(),
            });
        }
        // Leaves the queue however the wait ends, the request dropped included.
        let _waiting = Waiting(&self.waiting);
        self.limiter.until_ready().await;
        Ok(())
    }
}

/// One upgrade in the queue; leaves it on drop.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use super::*;

    #[tokio::test]
    async fn a_burst_passes_then_the_queue_waits_then_the_rest_is_busy() {
        let admitter = Arc::new(Admitter::new(Admission::per_second(10).queue(5)));
        for _ in 0..10 {
            admitter
                .admit()
                .await
                .expect("the burst is admitted at once");
        }
        // Five wait their turn; the sixth is refused at once, with the queue's drain time.
        let waiting: Vec<_> = (0..5)
            .map(|_| {
                let admitter = Arc::clone(&admitter);
                tokio::spawn(async move { admitter.admit().await.is_ok() })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        let busy = admitter.admit().await.expect_err("the queue is full");
        assert_eq!(busy.retry_after, "1");
        let started = Instant::now();
        for task in waiting {
            assert!(task.await.unwrap(), "a queued upgrade was refused");
        }
        // Ten per second: the fifth waited about half a second.
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(admitter.waiting.load(Ordering::Acquire), 0);
    }

    #[tokio::test]
    async fn a_dropped_wait_leaves_the_queue() {
        let admitter = Admitter::new(Admission::per_second(1).queue(1));
        admitter.admit().await.unwrap();
        let wait = tokio::time::timeout(Duration::from_millis(10), admitter.admit()).await;
        assert!(wait.is_err(), "the second upgrade waited for its turn");
        assert_eq!(admitter.waiting.load(Ordering::Acquire), 0);
    }

    #[test]
    fn retry_after_is_the_seconds_the_queue_needs() {
        let admitter = Admitter::new(Admission::per_second(100).queue(250));
        assert_eq!(admitter.retry_after, "3");
    }
}
