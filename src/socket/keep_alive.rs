//! When a connection pings its client, and when it gives a silent client up.
//!
//! Every connection pings at half its idle timeout. The pings of all connections fall on one
//! grid (whole seconds for the default timeout), so an idle server with many connections
//! wakes once per step for every ping due then, rather than once per connection at scattered
//! times; and the connections due at one instant share one timer of the layer
//! ([`WakeUps`]), so the wake-ups, the timer work and the pongs that answer come in batches.

use std::future::poll_fn;
use std::sync::OnceLock;
use std::task::Waker;
use std::time::Duration;

use tokio::time::Instant;

use crate::wake_ups::WakeUps;

/// The largest step of the grid the pings fall on.
const GRID: Duration = Duration::from_secs(1);

/// The pings of one connection and when its client was last heard.
pub(super) struct KeepAlive {
    idle_timeout: Duration,
    period: Duration,
    /// The next ping.
    next: Instant,
    heard: Instant,
    wake_ups: WakeUps,
    /// The waker left with `wake_ups` for `next`.
    registered: Option<Waker>,
}

impl KeepAlive {
    pub(super) fn new(idle_timeout: Duration, wake_ups: WakeUps) -> Self {
        let (period, step) = period_and_step(idle_timeout);
        KeepAlive {
            idle_timeout,
            period,
            next: on_grid(Instant::now() + period, step),
            heard: Instant::now(),
            wake_ups,
            registered: None,
        }
    }

    /// The client sent something (a frame, a pong).
    pub(super) fn heard(&mut self) {
        self.heard = Instant::now();
    }

    /// Whether the client has been silent for the whole idle timeout.
    pub(super) fn is_silent(&self) -> bool {
        self.heard.elapsed() >= self.idle_timeout
    }

    /// The next time to ping (or to give a silent client up). Cancel-safe.
    pub(super) async fn tick(&mut self) {
        let (wake_ups, registered, at) = (&self.wake_ups, &mut self.registered, self.next);
        poll_fn(|cx| wake_ups.poll_at(at, registered, cx)).await;
        // Pings missed (the loop was busy) are skipped, and the next stays on the grid.
        let now = Instant::now();
        while self.next <= now {
            self.next += self.period;
        }
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        if let Some(waker) = self.registered.take() {
            self.wake_ups.forget(self.next, &waker);
        }
    }
}

/// How often to ping (half the idle timeout, down to a whole number of steps) and the step of
/// the grid: a second, or less for short timeouts.
fn period_and_step(idle_timeout: Duration) -> (Duration, Duration) {
    let half = (idle_timeout / 2).max(Duration::from_millis(1));
    let step = GRID.min(half / 8).max(Duration::from_millis(1));
    let steps = (half.as_nanos() / step.as_nanos()).max(1);
    (step * steps as u32, step)
}

/// The first point of the grid of `step` at or after `at`. The grid starts where the process
/// first asked, so that every connection shares it.
fn on_grid(at: Instant, step: Duration) -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    let since = at.saturating_duration_since(origin).as_nanos();
    let step_nanos = step.as_nanos();
    let steps = since.div_ceil(step_nanos);
    origin + Duration::from_nanos((steps * step_nanos) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_timeout_pings_every_thirty_whole_seconds() {
        assert_eq!(
            period_and_step(Duration::from_secs(60)),
            (Duration::from_secs(30), Duration::from_secs(1))
        );
        // Down to a whole number of seconds, never later than half the timeout.
        assert_eq!(
            period_and_step(Duration::from_secs(45)).0,
            Duration::from_secs(22)
        );
        // Short timeouts get a finer grid.
        assert_eq!(
            period_and_step(Duration::from_millis(400)),
            (Duration::from_millis(200), Duration::from_millis(25))
        );
    }

    #[tokio::test]
    async fn connections_opened_apart_ping_at_the_same_instants() {
        let step = Duration::from_secs(1);
        let first = on_grid(Instant::now() + Duration::from_millis(30_100), step);
        let second = on_grid(Instant::now() + Duration::from_millis(30_700), step);
        assert_eq!(first, second);
        let now = Instant::now();
        let next = on_grid(now, step);
        assert!(next >= now && next - now <= step);
    }
}
