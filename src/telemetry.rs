//! The crate's metrics, through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`): every name and label in this one place, and the metrics guide (`guide::metrics`) says what each
//! counts. Without the feature, or without a recorder installed, each function here costs
//! nothing.

#![cfg_attr(not(feature = "metrics"), allow(unused_variables, dead_code))]

#[cfg(feature = "metrics")]
use std::collections::{HashMap, VecDeque};
#[cfg(feature = "metrics")]
use std::sync::Mutex;
use std::time::Duration;
#[cfg(feature = "metrics")]
use std::time::Instant;

use crate::error::Error;

/// Gauge: connections open on this instance.
pub(crate) const OPEN_SESSIONS: &str = "ws_session_open_sessions";
/// Gauge: sessions this instance detached that are within their window and were not resumed
/// here.
pub(crate) const DETACHED_SESSIONS: &str = "ws_session_detached_sessions";
/// Gauge: hub topics (channels) this instance is subscribed to.
pub(crate) const HUB_SUBSCRIPTIONS: &str = "ws_session_hub_subscriptions";
/// Gauge: payload bytes the in-process hub keeps for resumes (`MemoryStore`; a Redis store
/// keeps its count in Redis, see the Redis guide).
pub(crate) const HISTORY_BYTES: &str = "ws_session_hub_history_bytes";
/// Counter: sessions created.
pub(crate) const CREATED: &str = "ws_session_sessions_created_total";
/// Counter: sessions removed when their connection went (no resume window).
pub(crate) const REMOVED: &str = "ws_session_sessions_removed_total";
/// Counter: sessions detached when their connection went.
pub(crate) const DETACHED: &str = "ws_session_sessions_detached_total";
/// Counter: detached sessions found expired.
pub(crate) const EXPIRED: &str = "ws_session_detached_expired_total";
/// Counter: sessions resumed.
pub(crate) const RESUMED: &str = "ws_session_sessions_resumed_total";
/// Counter: resume claims refused, by `reason`.
pub(crate) const REFUSED: &str = "ws_session_resume_refused_total";
/// Counter: upgrade requests refused before a session was opened, by `reason` (`origin`,
/// `user_sessions`, `rate`).
pub(crate) const UPGRADES_REFUSED: &str = "ws_session_upgrades_refused_total";
/// Counter: resumes that took a session over from a connection still attached.
pub(crate) const TAKEOVERS: &str = "ws_session_takeovers_total";
/// Counter: users kicked.
pub(crate) const KICKS: &str = "ws_session_kicks_total";
/// Counter: connections closed with 4001, their inbox overflowed.
pub(crate) const SLOW_CONSUMERS: &str = "ws_session_slow_consumer_closes_total";
/// Counter: store operations that failed, by `kind`.
pub(crate) const STORE_ERRORS: &str = "ws_session_store_errors_total";
/// Counter: Redis pub/sub connections lost and made again.
pub(crate) const PUBSUB_RECONNECTS: &str = "ws_session_pubsub_reconnects_total";
/// Histogram: store operation time in seconds, by `operation`.
pub(crate) const STORE_SECONDS: &str = "ws_session_store_operation_seconds";

#[cfg(feature = "metrics")]
fn count(name: &'static str, by: u64) {
    metrics::counter!(name).increment(by);
}

#[cfg(not(feature = "metrics"))]
fn count(_: &'static str, _: u64) {}

#[cfg(feature = "metrics")]
fn set(name: &'static str, value: usize) {
    metrics::gauge!(name).set(value as f64);
}

#[cfg(not(feature = "metrics"))]
fn set(_: &'static str, _: usize) {}

/// Describes every metric to the recorder (its `# HELP` line), and makes every counter without
/// labels show from the start, at 0. Called when a layer is made.
pub(crate) fn describe() {
    #[cfg(feature = "metrics")]
    {
        use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
        describe_gauge!(OPEN_SESSIONS, "Connections open on this instance.");
        describe_gauge!(
            DETACHED_SESSIONS,
            "Sessions this instance detached, within their window and not resumed here."
        );
        describe_gauge!(
            HISTORY_BYTES,
            "Payload bytes the in-process hub keeps for resumes."
        );
        describe_gauge!(
            HUB_SUBSCRIPTIONS,
            "Hub topics this instance is subscribed to."
        );
        let counters = [
            (CREATED, "Sessions created for upgrades."),
            (REMOVED, "Sessions removed when their connection went."),
            (DETACHED, "Sessions detached when their connection went."),
            (EXPIRED, "Detached sessions found expired."),
            (RESUMED, "Sessions resumed with their token."),
            (REFUSED, "Resume claims refused, by reason."),
            (
                UPGRADES_REFUSED,
                "Upgrade requests refused before a session was opened, by reason.",
            ),
            (
                TAKEOVERS,
                "Resumes that took over a connection still attached.",
            ),
            (KICKS, "Users kicked."),
            (
                SLOW_CONSUMERS,
                "Connections closed with 4001, their inbox overflowed.",
            ),
            (
                STORE_ERRORS,
                "Store operations that failed, by kind and operation.",
            ),
            (
                PUBSUB_RECONNECTS,
                "Redis pub/sub connections lost and opened again.",
            ),
        ];
        for (name, help) in counters {
            describe_counter!(name, help);
            if name != REFUSED && name != STORE_ERRORS && name != UPGRADES_REFUSED {
                metrics::counter!(name).increment(0);
            }
        }
        describe_histogram!(
            STORE_SECONDS,
            Unit::Seconds,
            "Time of store operations, by operation."
        );
    }
}

pub(crate) fn open_sessions(open: usize) {
    set(OPEN_SESSIONS, open);
}

pub(crate) fn hub_subscriptions(topics: usize) {
    set(HUB_SUBSCRIPTIONS, topics);
}

pub(crate) fn history_bytes(bytes: usize) {
    set(HISTORY_BYTES, bytes);
}

pub(crate) fn created() {
    count(CREATED, 1);
}

pub(crate) fn removed() {
    count(REMOVED, 1);
}

pub(crate) fn expired(sessions: usize) {
    if sessions > 0 {
        count(EXPIRED, sessions as u64);
    }
}

pub(crate) fn resumed() {
    count(RESUMED, 1);
}

pub(crate) fn refused(reason: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(REFUSED, "reason" => reason).increment(1);
}

pub(crate) fn refused_upgrade(reason: &'static str) {
    #[cfg(feature = "metrics")]
    metrics::counter!(UPGRADES_REFUSED, "reason" => reason).increment(1);
}

pub(crate) fn takeover() {
    count(TAKEOVERS, 1);
}

pub(crate) fn kick() {
    count(KICKS, 1);
}

pub(crate) fn slow_consumer() {
    count(SLOW_CONSUMERS, 1);
}

pub(crate) fn pubsub_reconnect() {
    count(PUBSUB_RECONNECTS, 1);
}

/// The time a store operation took, and its failure if it was the store's (not the caller's:
/// a missing session or a broken limit is an answer, not a failure).
pub(crate) fn store_operation<T>(
    operation: &'static str,
    took: Duration,
    result: &Result<T, Error>,
) {
    #[cfg(feature = "metrics")]
    {
        metrics::histogram!(STORE_SECONDS, "operation" => operation).record(took.as_secs_f64());
        let kind = match result {
            Err(Error::Unavailable { .. }) => Some("unavailable"),
            Err(Error::Backend(_)) => Some("backend"),
            Err(Error::Corrupt { .. }) => Some("corrupt"),
            Err(Error::Serialization { .. }) => Some("serialization"),
            _ => None,
        };
        if let Some(kind) = kind {
            metrics::counter!(STORE_ERRORS, "kind" => kind, "operation" => operation).increment(1);
        }
    }
}

/// The sessions this instance detached, until their window passes or they are resumed here:
/// what [`DETACHED_SESSIONS`] shows. Each update costs O(1) amortized: ids leave in the order
/// their windows end. Kept only with the `metrics` feature.
#[derive(Default)]
pub(crate) struct DetachedGauge {
    #[cfg(feature = "metrics")]
    state: Mutex<Windows>,
}

/// Detached ids and the end of their windows, and the same in the order the windows end (the
/// window is one for a layer, so that is the order of the detaches).
#[cfg(feature = "metrics")]
#[derive(Default)]
struct Windows {
    until: HashMap<String, Instant>,
    order: VecDeque<(Instant, String)>,
}

#[cfg(feature = "metrics")]
impl Windows {
    /// Forgets the ids whose window has ended, and sets the gauge.
    fn publish(&mut self) {
        let now = Instant::now();
        while self.order.front().is_some_and(|(end, _)| *end <= now) {
            if let Some((end, id)) = self.order.pop_front()
                && self.until.get(&id) == Some(&end)
            {
                self.until.remove(&id);
            }
        }
        set(DETACHED_SESSIONS, self.until.len());
    }
}

impl DetachedGauge {
    pub(crate) fn detached(&self, id: &str, window: Duration) {
        count(DETACHED, 1);
        #[cfg(feature = "metrics")]
        {
            let end = Instant::now() + window;
            let mut windows = self.lock();
            windows.until.insert(id.to_owned(), end);
            windows.order.push_back((end, id.to_owned()));
            windows.publish();
        }
    }

    pub(crate) fn resumed(&self, id: &str) {
        #[cfg(feature = "metrics")]
        {
            let mut windows = self.lock();
            windows.until.remove(id);
            windows.publish();
        }
    }

    /// Forgets what passed its window and sets the gauge.
    pub(crate) fn refresh(&self) {
        #[cfg(feature = "metrics")]
        self.lock().publish();
    }

    #[cfg(feature = "metrics")]
    fn lock(&self) -> std::sync::MutexGuard<'_, Windows> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}
