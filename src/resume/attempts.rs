//! How often a session may be asked for by resume attempts.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};

use governor::{DefaultKeyedRateLimiter, Quota};

/// The resume attempts of every session id, each bounded by one quota.
pub(crate) struct Attempts {
    limiter: DefaultKeyedRateLimiter<String>,
    checks: AtomicUsize,
}

/// After this many checks, the ids whose quota is whole again are forgotten, so that attempts
/// with ever new ids cannot grow the limiter.
const FORGET_EVERY: usize = 1024;

impl Attempts {
    pub(crate) fn per_minute(attempts: NonZeroU32) -> Self {
        Attempts {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_minute(attempts)),
            checks: AtomicUsize::new(0),
        }
    }

    /// Counts an attempt to resume session `id`; `false` when it is over the quota.
    pub(crate) fn allow(&self, id: &str) -> bool {
        if self.checks.fetch_add(1, Ordering::Relaxed) % FORGET_EVERY == FORGET_EVERY - 1 {
            self.limiter.retain_recent();
            self.limiter.shrink_to_fit();
        }
        self.limiter.check_key(&id.to_owned()).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_id_has_its_own_quota() {
        let attempts = Attempts::per_minute(NonZeroU32::new(2).unwrap());
        assert!(attempts.allow("a"));
        assert!(attempts.allow("a"));
        assert!(!attempts.allow("a"));
        assert!(attempts.allow("b"));
    }
}
