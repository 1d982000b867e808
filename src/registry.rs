//! The sessions that are open on this server instance: kept alive in batches, removed when
//! their handle goes. Which connections are open, and to whom they belong, is the hub node's
//! state; the registry keeps them alive and tracks their removal from the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::task::TaskTracker;

use crate::hub::node::Node;
use crate::session::new_session_id;
use crate::store::dyn_store::DynStore;

/// State shared by a layer, its services, its hub and every handle it gave out.
pub(crate) struct Registry {
    pub(crate) store: Arc<dyn DynStore>,
    /// This instance's node of the hub: the open connections.
    pub(crate) node: Arc<Node>,
    removals: TaskTracker,
    refresher_started: AtomicBool,
}

impl Registry {
    pub(crate) fn new(store: Arc<dyn DynStore>) -> Self {
        let node = Node::new(new_session_id().into(), &store.broker());
        Registry {
            store,
            node,
            removals: TaskTracker::new(),
            refresher_started: AtomicBool::new(false),
        }
    }

    /// Closes the connection of `id` on this node and removes its session from the store in a
    /// tracked task.
    pub(crate) fn remove(&self, id: String) {
        self.node.unregister(&id);
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            tracing::warn!(
                session = %id,
                "session handle dropped outside a Tokio runtime; the session will expire by TTL"
            );
            return;
        };
        let store = Arc::clone(&self.store);
        self.removals.spawn_on(
            async move {
                match store.remove_session(&id).await {
                    Ok(()) => tracing::debug!(session = %id, "session removed"),
                    Err(error) => tracing::warn!(
                        session = %id,
                        %error,
                        "could not remove session; it will expire by TTL"
                    ),
                }
            },
            &runtime,
        );
    }

    /// How many sessions are open on this instance.
    pub(crate) fn len(&self) -> usize {
        self.node.len()
    }

    /// Waits until every removal started so far has finished.
    pub(crate) async fn wait_for_removals(&self) {
        self.removals.close();
        self.removals.wait().await;
        self.removals.reopen();
    }

    /// Starts, once per registry, the timer that keeps open sessions alive.
    ///
    /// The task holds only a weak reference, so it ends once the layer and every handle are gone.
    pub(crate) fn start_refresher(self: &Arc<Self>, every: Duration, batch: usize) {
        if self.refresher_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let registry = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let Some(registry) = registry.upgrade() else {
                    break;
                };
                registry.refresh(batch).await;
            }
        });
    }

    /// Touches every open session, `batch` ids per store call. Returns how many were refreshed.
    pub(crate) async fn refresh(&self, batch: usize) -> usize {
        let ids = self.node.connection_ids();
        let mut refreshed = 0;
        for chunk in ids.chunks(batch.max(1)) {
            match self.store.touch(chunk).await {
                Ok(missing) => {
                    refreshed += chunk.len() - missing.len();
                    if !missing.is_empty() {
                        tracing::warn!(
                            count = missing.len(),
                            first = %missing[0],
                            "open sessions are missing from the store and were not refreshed"
                        );
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, sessions = chunk.len(), "session refresh failed");
                }
            }
        }
        tracing::trace!(refreshed, open = ids.len(), "sessions refreshed");
        refreshed
    }
}
/// A view of the sessions a [`SessionLayer`](crate::SessionLayer) has open on this server
/// instance, for metrics and graceful shutdown.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// use ws_session::{MemoryStore, SessionLayer};
///
/// let layer = SessionLayer::new(MemoryStore::new());
/// let sessions = layer.live_sessions();
/// // ... serve until shutdown, then:
/// sessions.wait_for_removals().await;
/// assert_eq!(sessions.len(), 0);
/// # }
/// ```
#[derive(Clone)]
pub struct LiveSessions {
    pub(crate) registry: Arc<Registry>,
    pub(crate) batch: usize,
}

impl LiveSessions {
    /// How many sessions are open on this instance (their handles are alive).
    pub fn len(&self) -> usize {
        self.registry.len()
    }

    /// `true` when no session is open on this instance.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until every session removal started so far (by dropped handles) has reached the
    /// store. Call it after the server has stopped and the sockets have closed, so that a
    /// graceful shutdown leaves no session behind.
    pub async fn wait_for_removals(&self) {
        self.registry.wait_for_removals().await;
    }

    /// Asks every connection open on this instance to close with `reason` — for a shutdown,
    /// [`CloseReason::GOING_AWAY`](crate::hub::CloseReason::GOING_AWAY) (1001): each handler's
    /// [`recv`](crate::WsSession::recv) yields the close, its socket loop sends the close frame
    /// and ends, and the session is removed when the handle drops. Returns how many were asked.
    /// Follow it with [`wait_for_removals`](Self::wait_for_removals) once the sockets are done.
    pub fn close_all(&self, reason: &crate::hub::CloseReason) -> usize {
        self.registry.node.close_all(reason)
    }

    /// Refreshes the TTL of every open session now, instead of waiting for the next tick.
    /// Returns how many were refreshed.
    pub async fn refresh_now(&self) -> usize {
        self.registry.refresh(self.batch).await
    }
}

impl std::fmt::Debug for LiveSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSessions")
            .field("open", &self.len())
            .finish()
    }
}
