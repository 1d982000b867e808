//! The sessions that are open on this server instance: kept alive in batches, removed when
//! their handle goes. Which connections are open, and to whom they belong, is the hub node's
//! state; this keeps them alive and tracks their removal from the store.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::task::TaskTracker;

use super::record::new_session_id;
use crate::hub::node::{Connection, Node};
use crate::hub::{CloseReason, Hub};
use crate::resume::claim::unclaim;
use crate::resume::{Resume, ResumeToken};
use crate::store::attachment::{Detach, TokenHash};
use crate::store::backend::Backend;
use crate::store::history::HistoryPolicy;
use crate::store::keep_alive::indexes_due;
use crate::store::{AnyStore, SessionStore};
use crate::telemetry::DetachedGauge;
use crate::wake_ups::WakeUps;

/// How many detaches a shutdown has in flight at once: enough to keep Redis busy, few enough
/// that another instance's command never waits behind more than a millisecond or so of them.
const SHUTDOWN_IN_FLIGHT: usize = 64;

/// How long a shutdown waits for the opens in flight to finish.
const OPENS_FINISH_WITHIN: Duration = Duration::from_secs(30);

/// The live sessions of a layer: shared by the layer, its services and every handle it gave
/// out.
pub(crate) struct Live {
    pub(crate) store: AnyStore,
    /// This instance's node of the hub: the open connections.
    pub(crate) node: Arc<Node>,
    removals: TaskTracker,
    refresher_started: AtomicBool,
    /// How a session whose connection goes is kept for a resume; `None`: it is removed.
    detach: Option<Detach>,
    /// The sessions this instance detached, for the gauge of detached sessions.
    pub(crate) detached_gauge: Arc<DetachedGauge>,
    /// Set when a shutdown begins: from then on no session is opened here.
    closing: AtomicBool,
    /// Opens in flight: sessions being created or claimed, not yet open on the node.
    opening: AtomicUsize,
    /// The timer the socket loops of this layer share for their pings.
    pub(crate) wake_ups: WakeUps,
}

/// One open in flight (see [`Live::begin_open`]); over when dropped.
pub(crate) struct Opening(Arc<Live>);

impl Drop for Opening {
    fn drop(&mut self) {
        self.0.opening.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Live {
    /// The live sessions of a new layer on `store`, on a new hub node; with `resume`, how
    /// sessions are kept when their connection goes, and what the hub keeps of its messages
    /// for them.
    pub(crate) fn new(store: AnyStore, resume: Option<Resume>) -> Self {
        let node = Node::new(new_session_id().into(), &store);
        let resume = resume.filter(Resume::is_on);
        node.set_policy(resume.as_ref().map_or(HistoryPolicy::OFF, Resume::history));
        Live {
            store,
            node,
            removals: TaskTracker::new(),
            refresher_started: AtomicBool::new(false),
            detach: resume.as_ref().map(Resume::detach),
            detached_gauge: Arc::default(),
            closing: AtomicBool::new(false),
            opening: AtomicUsize::new(0),
            wake_ups: WakeUps::default(),
        }
    }

    /// Counts an open (a create or a claim) in flight until the returned guard drops, once the
    /// session's connection is open on the node; `None` once a shutdown began, when nothing
    /// may be opened here any more.
    pub(crate) fn begin_open(self: &Arc<Self>) -> Option<Opening> {
        self.opening.fetch_add(1, Ordering::SeqCst);
        let opening = Opening(Arc::clone(self));
        (!self.closing.load(Ordering::SeqCst)).then_some(opening)
    }

    /// The detach of these sessions, if they are kept for resumes.
    pub(crate) fn detach(&self) -> Option<Detach> {
        self.detach
    }

    /// The hub of this layer's node.
    pub(crate) fn hub(&self) -> Hub {
        Hub::new(Arc::clone(&self.node), self.store.clone())
    }

    /// The handle of session `id` lets go of `connection`: it leaves this node and, if it
    /// still owned its session, the session is detached (when `detach` and a resume window
    /// allow) or removed, in a tracked task. A connection that was taken over, kicked or shut
    /// down no longer owns its session and leaves it as it is.
    ///
    /// The store's task is tracked before the connection leaves the node, so whoever sees the
    /// connection gone and then waits for the removals waits for this one too.
    pub(crate) fn release(&self, id: &str, connection: &Arc<Connection>, detach: bool) {
        if connection.release() {
            let detach = self.detach().filter(|_| detach);
            let store = self.store.clone();
            let here = Arc::clone(&self.detached_gauge);
            let owned_id = id.to_owned();
            let epoch = connection.epoch;
            self.track(id, async move {
                detach_or_remove(&store, &here, &owned_id, epoch, detach).await;
            });
        }
        self.node.unregister(id, connection);
    }

    /// Runs `work` for session `id` as a tracked task, or says why it cannot.
    fn track(&self, id: &str, work: impl Future<Output = ()> + Send + 'static) {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                self.removals.spawn_on(work, &runtime);
            }
            Err(_) => tracing::warn!(
                session = %id,
                "session handle dropped outside a Tokio runtime; the session will expire by TTL"
            ),
        }
    }

    /// The handle of a resumed session whose upgrade failed lets go of `connection`: the session
    /// goes back to the token its client presented (`previous`), detached, in a tracked task.
    pub(crate) fn unclaim(
        &self,
        id: &str,
        connection: &Arc<Connection>,
        user_id: &str,
        current: &ResumeToken,
        previous: TokenHash,
    ) {
        if connection.release() {
            let (store, node_id) = (self.store.clone(), Arc::clone(self.node.id()));
            let (user_id, current) = (user_id.to_owned(), current.clone());
            let detach = self.detach();
            self.track(id, async move {
                unclaim(&store, &node_id, &user_id, &current, previous, detach).await;
            });
        }
        self.node.unregister(id, connection);
    }

    /// Closes every connection here with 1001 and detaches their sessions (removes them without
    /// a resume window), [`SHUTDOWN_IN_FLIGHT`] store calls at a time, then waits for every
    /// removal or detach started before. Returns how many connections were closed.
    pub(crate) async fn shutdown(&self) -> usize {
        // No open starts from now on; those in flight (each bounded by the store's timeout)
        // finish first, so that their connections are among those closed below. A claim that
        // went through on an instance about to exit, its welcome never sent, would leave its
        // client with a token that no longer works.
        self.closing.store(true, Ordering::SeqCst);
        let waited = std::time::Instant::now();
        while self.opening.load(Ordering::SeqCst) > 0 && waited.elapsed() < OPENS_FINISH_WITHIN {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let detach = self.detach();
        let mut owned = Vec::new();
        let mut closed = 0;
        for (id, connection) in self.node.connections() {
            if connection.take_from_handle() {
                owned.push((id, connection.epoch));
            }
            if connection.inbox.close(CloseReason::GOING_AWAY) {
                closed += 1;
            }
        }
        let store = &self.store;
        futures_util::stream::iter(&owned)
            .for_each_concurrent(SHUTDOWN_IN_FLIGHT, |(id, epoch)| {
                detach_or_remove(store, &self.detached_gauge, id, *epoch, detach)
            })
            .await;
        tracing::info!(
            sessions = owned.len(),
            detached = detach.is_some(),
            "shutdown: sockets closed with 1001"
        );
        self.wait_for_removals().await;
        closed
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

    /// Starts, once per layer, the timer that keeps open sessions alive: every tick restarts
    /// the TTL of each open session, and a tick renews their indexes too when the next tick
    /// would come too late for them (see `keep_alive.rs`).
    ///
    /// The task holds only a weak reference, so it ends once the layer and every handle are gone.
    pub(crate) fn start_refresher(self: &Arc<Self>, every: Duration, batch: usize) {
        if self.refresher_started.swap(true, Ordering::AcqRel) {
            return;
        }
        let live = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval_at(Instant::now() + every, every);
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            let mut indexes_renewed = Instant::now();
            loop {
                ticks.tick().await;
                let Some(live) = live.upgrade() else {
                    break;
                };
                live.refresh(batch).await;
                if indexes_due(indexes_renewed.elapsed(), every, live.store.ttl())
                    && live.renew_indexes(batch).await
                {
                    indexes_renewed = Instant::now();
                }
            }
        });
    }

    /// Restarts the TTL of every open session, `batch` ids per store call. Returns how many
    /// were refreshed.
    pub(crate) async fn refresh(&self, batch: usize) -> usize {
        self.detached_gauge.refresh();
        let ids = self.node.connection_ids();
        let mut refreshed = 0;
        for chunk in ids.chunks(batch.max(1)) {
            match self.store.keep_alive(chunk).await {
                Ok(missing) => {
                    refreshed += chunk.len() - missing.len();
                    if !missing.is_empty() {
                        tracing::warn!(
                            count = missing.len(),
                            first = %missing[0],
                            "open sessions vanished from the store; closing them with 1012"
                        );
                    }
                    self.close_vanished(&missing);
                }
                Err(error) => {
                    tracing::warn!(error = %error.chain(), sessions = chunk.len(), "session refresh failed");
                }
            }
        }
        tracing::trace!(refreshed, open = ids.len(), "sessions refreshed");
        refreshed
    }

    /// Renews the indexes of every open session (their users' sets, their rooms' members and
    /// their lists of rooms), `batch` keys per store call. Returns whether every call worked.
    pub(crate) async fn renew_indexes(&self, batch: usize) -> bool {
        let mut renewed = true;
        for part in self.node.indexes().split(batch) {
            if let Err(error) = self.store.keep_indexes(&part).await {
                tracing::warn!(error = %error.chain(), keys = part.len(), "index refresh failed");
                renewed = false;
            }
        }
        renewed
    }

    /// Closes the connections here whose sessions vanished from the store with 1012, so that
    /// their clients reconnect; there is nothing left to detach or remove.
    fn close_vanished(&self, ids: &[String]) {
        for id in ids {
            if let Some(connection) = self.node.connection(id) {
                connection.take_from_handle();
                connection.inbox.close(CloseReason::SERVICE_RESTART);
            }
        }
    }
}

/// Detaches session `id` of attachment `epoch` when `detach` says so, else removes it, and
/// logs what became of it.
async fn detach_or_remove(
    store: &AnyStore,
    here: &DetachedGauge,
    id: &str,
    epoch: u64,
    detach: Option<Detach>,
) {
    let Some(detach) = detach else {
        match store.remove_session(id).await {
            Ok(()) => {
                crate::telemetry::removed();
                tracing::debug!(session = %id, "session removed");
            }
            Err(error) => tracing::warn!(
                session = %id,
                error = %error.chain(),
                "could not remove session; it will expire by TTL"
            ),
        }
        return;
    };
    match store.detach_session(id, epoch, &detach).await {
        Ok(detached) => {
            crate::telemetry::expired(detached.expired);
            if detached.detached {
                here.detached(id, detach.window);
                tracing::debug!(session = %id, window = ?detach.window, "session detached");
            } else {
                tracing::debug!(session = %id, "session gone or held by a newer connection; left as it is");
            }
            if detached.expired > 0 {
                tracing::debug!(count = detached.expired, "detached sessions expired");
            }
            if !detached.evicted.is_empty() {
                tracing::info!(
                    removed = ?detached.evicted,
                    max = detach.max_per_user,
                    "too many detached sessions for one user: the oldest removed"
                );
            }
        }
        Err(error) => tracing::warn!(
            session = %id,
            error = %error.chain(),
            "could not detach session; it will expire by TTL"
        ),
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
    pub(crate) live: Arc<Live>,
    pub(crate) batch: usize,
}

impl LiveSessions {
    /// How many sessions are open on this instance (their handles are alive).
    pub fn len(&self) -> usize {
        self.live.len()
    }

    /// `true` when no session is open on this instance.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Waits until every session removal started so far (by dropped handles) has reached the
    /// store. Call it after the server has stopped and the sockets have closed, so that a
    /// graceful shutdown leaves no session behind.
    pub async fn wait_for_removals(&self) {
        self.live.wait_for_removals().await;
    }

    /// Asks every connection open on this instance to close with `reason` — for a shutdown,
    /// [`CloseReason::GOING_AWAY`](crate::hub::CloseReason::GOING_AWAY) (1001): each handler's
    /// [`recv`](crate::WsSession::recv) yields the close, its socket loop sends the close frame
    /// and ends, and the session is removed when the handle drops. Returns how many were asked.
    /// Follow it with [`wait_for_removals`](Self::wait_for_removals) once the sockets are done.
    pub fn close_all(&self, reason: &crate::hub::CloseReason) -> usize {
        self.live.node.close_all(reason)
    }

    /// Shuts this instance's sessions down gracefully, in one call. From its start, the layer
    /// opens no session any more: an upgrade gets `503` with `Retry-After: 1`, so that its
    /// client goes to another instance or comes back to the restarted one; the upgrades
    /// already opening finish first. Then every socket is asked to
    /// close with 1001 ([`CloseReason::GOING_AWAY`](crate::hub::CloseReason::GOING_AWAY)), and
    /// every session is detached — with a [resume window](crate::resume), so that its client
    /// resumes it on the restarted instance or another one — or removed, without one. Returns
    /// once the store has them all, with how many sockets were asked to close. The handlers'
    /// socket loops then send their close frames and end; dropping their handles changes
    /// nothing more.
    ///
    /// Stop accepting connections first (close the listener), then call this: clients that
    /// reconnect while the sessions detach are then refused by the kernel, at no cost to the
    /// instance, rather than each accepted and answered `503`, and a restarted process can
    /// take the address at once.
    pub async fn shutdown(&self) -> usize {
        self.live.shutdown().await
    }

    /// Refreshes the TTL of every open session now, instead of waiting for the next tick.
    /// Returns how many were refreshed.
    pub async fn refresh_now(&self) -> usize {
        let refreshed = self.live.refresh(self.batch).await;
        self.live.renew_indexes(self.batch).await;
        refreshed
    }
}

impl std::fmt::Debug for LiveSessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveSessions")
            .field("open", &self.len())
            .finish()
    }
}
