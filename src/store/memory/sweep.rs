//! The background thread that reclaims the memory of expired sessions.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, Weak};
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Inner, MemoryStore};

/// The handle of the sweep thread.
pub(super) struct Sweeper {
    /// The thread waits on the other end of this channel; dropping it (with the store) wakes
    /// the thread and ends it.
    pub(super) _stop: mpsc::Sender<()>,
    /// The thread itself, kept so that tests can see it end.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(super) thread: Mutex<Option<JoinHandle<()>>>,
}

impl MemoryStore {
    /// Starts the sweep thread unless it runs already.
    pub(super) fn start_sweeper(&self) {
        self.inner.sweeper.get_or_init(|| {
            let (stop, wait) = mpsc::channel();
            let inner = Arc::downgrade(&self.inner);
            let interval = self.inner.sweep_interval;
            let spawned = std::thread::Builder::new()
                .name("ws-session-sweep".to_owned())
                .spawn(move || sweep_until_dropped(&inner, &wait, interval));
            match spawned {
                Ok(thread) => Some(Sweeper {
                    _stop: stop,
                    thread: Mutex::new(Some(thread)),
                }),
                Err(error) => {
                    // Expired sessions stay invisible; only their memory is kept longer.
                    tracing::warn!(%error, "cannot start the session sweep thread");
                    None
                }
            }
        });
    }
}

/// The body of the sweep thread: every `interval`, drops the expired sessions of the store,
/// until the store is gone.
fn sweep_until_dropped(inner: &Weak<Inner>, wait: &mpsc::Receiver<()>, interval: Duration) {
    loop {
        match wait.recv_timeout(interval) {
            Err(RecvTimeoutError::Timeout) => {}
            // Nobody sends: the channel only disconnects, when the store is dropped.
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let Some(inner) = inner.upgrade() else {
            return;
        };
        inner.sweep();
    }
}
