//! The Redis broker: one dedicated pub/sub connection per node, subscriptions made on demand,
//! and a reconnect that subscribes again to everything the node needs.
//!
//! The node says what it needs ([`subscribe`](RedisTransport::subscribe) and
//! [`unsubscribe`](RedisTransport::unsubscribe) change a wanted set and return at once); one
//! task per node owns the pub/sub connection and brings the connection's subscriptions in line
//! with the wanted set, in batches, whenever it changes or the connection is new. Publishing
//! goes through the store's ordinary pool, bounded by the store's timeout.

use std::collections::HashSet;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use tokio::sync::{Notify, mpsc, oneshot};

use super::subscription::{self, Message, Next, Subscription};
use super::wanted::Wanted;
use super::{HubSend, KeptMessage};
use crate::error::{Error, Result};
use crate::store::envelope::{Body, Envelope, Topic};
use crate::store::history::{HistoryPolicy, ReadBudget, ReadFrom, Replayed};
use crate::store::message::Payload;
use crate::store::redis::RedisStore;
use crate::store::redis::pool::PubSubSource;
use crate::store::subscriber::Subscriber;

/// Most channels in one `SUBSCRIBE` or `UNSUBSCRIBE`.
const BATCH: usize = 500;
/// The first wait before reconnecting, doubled after each failure up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often a node on a cluster asks which master serves the hub's slot.
const MASTER_CHECK: Duration = Duration::from_millis(500);

pub(crate) struct RedisTransport {
    store: RedisStore,
    /// The node's id, which numbers its sends on a cluster (see `lua/lib/first_send.lua`).
    node_id: Arc<str>,
    shared: Arc<Shared>,
    node: Weak<dyn Subscriber>,
    started: OnceLock<()>,
    /// The queue of the node's publisher task, started with the first publish.
    publisher: OnceLock<mpsc::Sender<Outgoing>>,
}

/// Most messages the publish queue of a node holds; a publish that finds it full fails.
const PUBLISH_QUEUE: usize = 64 * 1024;
/// Most messages one pipeline carries.
const PUBLISH_BATCH: usize = 256;

/// One message waiting to be published, and who waits for the answer.
struct Outgoing {
    send: HubSend,
    done: oneshot::Sender<Result<()>>,
}

/// What the node and the connection task share.
#[derive(Default)]
struct Shared {
    wanted: Mutex<Wanted>,
    /// Wakes the task when `wanted` changes or the transport is dropped.
    changed: Notify,
}

impl RedisTransport {
    pub(crate) fn new(store: RedisStore, node: Weak<dyn Subscriber>, node_id: Arc<str>) -> Self {
        RedisTransport {
            store,
            node_id,
            shared: Arc::default(),
            node,
            started: OnceLock::new(),
            publisher: OnceLock::new(),
        }
    }

    pub(crate) fn subscribe(&self, topic: &Topic) {
        let channel = self.store.keys().channel(topic);
        lock(&self.shared.wanted).want(channel);
        self.start();
        self.shared.changed.notify_one();
    }

    pub(crate) fn unsubscribe(&self, topic: &Topic) {
        let channel = self.store.keys().channel(topic);
        lock(&self.shared.wanted).unwant(&channel);
        self.shared.changed.notify_one();
    }

    pub(crate) async fn ready(&self, topics: &[Topic]) -> Result<()> {
        let needed = topics.iter().map(|topic| self.store.keys().channel(topic));
        let Some((waiter, woken)) = lock(&self.shared.wanted).wait(needed) else {
            return Ok(());
        };
        let timeout = self.store.operation_timeout();
        match tokio::time::timeout(timeout, woken).await {
            Ok(Ok(())) => Ok(()),
            _ => {
                lock(&self.shared.wanted).forget(waiter);
                Err(Error::Unavailable {
                    reason: format!("Redis pub/sub subscription not confirmed within {timeout:?}"),
                    source: None,
                })
            }
        }
    }

    /// Queues `envelope` for `topic` now, behind every envelope this node queued before; the
    /// future resolves once Redis has taken it. A message is kept in the topic's history first
    /// when `policy` keeps one. The node's publisher task sends what is queued in pipelines, so
    /// a burst of publishes costs one write, in order.
    pub(crate) fn publish(
        &self,
        topic: &Topic,
        envelope: &Envelope,
        policy: HistoryPolicy,
    ) -> impl Future<Output = Result<()>> + Send + 'static {
        let channel = self.store.keys().channel(topic);
        let send = match (&envelope.body, topic.stream()) {
            (Body::Message(payload), Some(stream)) if policy.is_on() => HubSend::Kept {
                channel,
                stream,
                message: kept(envelope, payload, policy),
            },
            _ => HubSend::Plain {
                channel,
                envelope: envelope.encode(),
            },
        };
        self.queue(send)
    }

    /// Queues a message to one session (`envelope.to`), in this node's order, and waits for
    /// the answer: `NotFound` when there is no such session.
    pub(crate) async fn send_to_session(
        &self,
        envelope: &Envelope,
        policy: HistoryPolicy,
    ) -> Result<()> {
        let Body::Message(payload) = &envelope.body else {
            return Err(Error::Backend("only messages go to one session".into()));
        };
        let send = HubSend::Session {
            id: envelope.to.clone().unwrap_or_default(),
            message: kept(envelope, payload, policy),
        };
        self.queue(send).await
    }

    /// The newest messages the histories `from` hold after their starting points, as many
    /// as fit `budget`, read in short steps.
    pub(crate) async fn replay(
        &self,
        reader: &str,
        from: &[ReadFrom],
        budget: ReadBudget,
    ) -> Result<Replayed> {
        self.store.replay(reader, from, budget).await
    }

    fn queue(&self, send: HubSend) -> impl Future<Output = Result<()>> + Send + 'static {
        let (done, answer) = oneshot::channel();
        let outgoing = Outgoing { send, done };
        let queued = self.publisher().and_then(|queue| {
            queue.try_send(outgoing).map_err(|_| Error::Unavailable {
                reason: "the hub's publish queue is full".to_owned(),
                source: None,
            })
        });
        // The publisher task gives up within the store's timeout; this waits a little longer.
        let timeout = self.store.operation_timeout() + Duration::from_millis(100);
        async move {
            queued?;
            match tokio::time::timeout(timeout, answer).await {
                Ok(Ok(result)) => result,
                Ok(Err(_)) => Err(Error::Unavailable {
                    reason: "the hub's publisher stopped".to_owned(),
                    source: None,
                }),
                Err(_) => Err(Error::timed_out(timeout)),
            }
        }
    }

    /// The queue of this node's publisher task, started on first use.
    fn publisher(&self) -> Result<&mpsc::Sender<Outgoing>> {
        if let Some(queue) = self.publisher.get() {
            return Ok(queue);
        }
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| Error::Unavailable {
            reason: "the hub publishes from within a Tokio runtime only".to_owned(),
            source: None,
        })?;
        Ok(self.publisher.get_or_init(|| {
            let (queue, waiting) = mpsc::channel(PUBLISH_QUEUE);
            runtime.spawn(publish_queued(
                self.store.clone(),
                Arc::clone(&self.node_id),
                waiting,
            ));
            queue
        }))
    }

    pub(crate) fn subscriptions(&self) -> usize {
        lock(&self.shared.wanted).subscribed()
    }

    /// Starts the connection task, once, from the first subscription (which runs in a Tokio
    /// runtime).
    fn start(&self) {
        self.started.get_or_init(|| {
            let task = Task {
                store: self.store.clone(),
                shared: Arc::clone(&self.shared),
                node: self.node.clone(),
            };
            tokio::spawn(task.run());
        });
    }
}

impl Drop for RedisTransport {
    fn drop(&mut self) {
        lock(&self.shared.wanted).closed = true;
        self.shared.changed.notify_one();
    }
}

/// The task that owns a node's pub/sub connection.
struct Task {
    store: RedisStore,
    shared: Arc<Shared>,
    node: Weak<dyn Subscriber>,
}

/// Why a connection stopped serving.
enum Ended {
    /// The node is gone: stop for good.
    Closed,
    /// The connection broke: connect again.
    Lost,
    /// The sentinels named a new master: connect to it.
    Moved,
}

impl Task {
    async fn run(self) {
        let mut backoff = MIN_BACKOFF;
        let mut connected_before = false;
        let mut switches = self.store.master_switches();
        loop {
            match self.connect().await {
                Ok(pubsub) => {
                    if connected_before {
                        crate::telemetry::pubsub_reconnect();
                        tracing::info!(
                            prefix = self.store.prefix(),
                            "Redis pub/sub connection recovered; subscribing again"
                        );
                    }
                    connected_before = true;
                    backoff = MIN_BACKOFF;
                    match self.serve(pubsub).await {
                        Ended::Closed => return,
                        Ended::Lost => {
                            tracing::warn!(
                                prefix = self.store.prefix(),
                                "Redis pub/sub connection lost; reconnecting"
                            );
                        }
                        Ended::Moved => {
                            tracing::info!(
                                prefix = self.store.prefix(),
                                "Redis has a new master; moving the pub/sub connection there"
                            );
                        }
                    }
                }
                Err(error) => {
                    tracing::warn!(
                        error = %error.chain(),
                        retry_in = ?backoff,
                        "cannot open the Redis pub/sub connection"
                    );
                    // A new master named by the sentinels is worth trying at once.
                    tokio::select! {
                        () = tokio::time::sleep(jitter(backoff)) => {}
                        _ = switches.changed() => {}
                    }
                    // On a cluster the task cannot hear of a new master: it asks as often as
                    // it would check.
                    let most = if self.store.on_cluster() {
                        MASTER_CHECK
                    } else {
                        MAX_BACKOFF
                    };
                    backoff = (backoff * 2).min(most);
                }
            }
            if self.is_closed() {
                return;
            }
        }
    }

    fn is_closed(&self) -> bool {
        lock(&self.shared.wanted).closed || self.node.strong_count() == 0
    }

    async fn connect(&self) -> Result<Subscription> {
        let Some(source) = self.store.pubsub_source() else {
            return Err(Error::Backend(
                "this RedisStore has no pub/sub client: build it with RedisStore::connect, or \
                 give RedisStore::new's store one with .pubsub_client(client)"
                    .into(),
            ));
        };
        let timeout = self.store.operation_timeout();
        let opened = async {
            if let PubSubSource::Cluster(seed) = source {
                return Subscription::sharded(&self.store, seed).await;
            }
            match source.open().await {
                Some(Ok(pubsub)) => Ok(Subscription::classic(pubsub)),
                Some(Err(error)) => Err(Error::Unavailable {
                    reason: "cannot connect for pub/sub".to_owned(),
                    source: Some(Box::new(error)),
                }),
                None => Err(Error::Backend("no pub/sub source".into())),
            }
        };
        match tokio::time::timeout(timeout, opened).await {
            Ok(opened) => opened,
            Err(_) => Err(Error::timed_out(timeout)),
        }
    }

    /// Serves one connection: keeps its subscriptions in line with the wanted set, and hands
    /// every message to the node, until the connection breaks or the node is gone.
    ///
    /// When the sentinels name a new master, or another master serves the hub's slot of a
    /// cluster (looked at every [`MASTER_CHECK`]), the connection is given up even if it
    /// still works: its server no longer gets the messages published on the new master.
    async fn serve(&self, mut subscription: Subscription) -> Ended {
        let mut switches = self.store.master_switches();
        switches.mark_unchanged();
        let mut check = tokio::time::interval(MASTER_CHECK);
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        check.reset();
        // A new connection is subscribed to nothing.
        lock(&self.shared.wanted).reset();
        let mut current: HashSet<Vec<u8>> = HashSet::new();
        loop {
            if self.is_closed() {
                return Ended::Closed;
            }
            // Bring the connection in line with what changed in the wanted set.
            let (add, drop_) = lock(&self.shared.wanted).plan(&current);
            for batch in add.chunks(BATCH) {
                if let Err(error) = subscription.subscribe(batch).await {
                    tracing::debug!(%error, "SUBSCRIBE failed");
                    return Ended::Lost;
                }
                current.extend(batch.iter().cloned());
                lock(&self.shared.wanted).confirm(batch);
                crate::telemetry::hub_subscriptions(current.len());
                tracing::debug!(channels = batch.len(), "subscribed");
            }
            for batch in drop_.chunks(BATCH) {
                if let Err(error) = subscription.unsubscribe(batch).await {
                    tracing::debug!(%error, "UNSUBSCRIBE failed");
                    return Ended::Lost;
                }
                for channel in batch {
                    current.remove(channel);
                }
                crate::telemetry::hub_subscriptions(current.len());
                tracing::debug!(channels = batch.len(), "unsubscribed");
            }
            // A change made while the batches were out has stored a wake-up: it is served on
            // the next turn.
            tokio::select! {
                () = self.shared.changed.notified() => {}
                _ = switches.changed() => return Ended::Moved,
                _ = check.tick(), if subscription.master().is_some() => {
                    if self.hub_master_moved(&subscription).await {
                        return Ended::Moved;
                    }
                }
                next = subscription.next() => {
                    let Some(node) = self.node.upgrade() else {
                        return Ended::Closed;
                    };
                    let mut next = Some(next);
                    // Take whatever else has arrived before looking at the wanted set again.
                    while let Some(produced) = next {
                        match produced {
                            Next::Message(message) => self.hand_over(&*node, &message),
                            Next::Nothing => {}
                            Next::Lost => return Ended::Lost,
                        }
                        next = subscription.next_ready();
                    }
                }
            }
        }
    }

    /// Whether another master than the one `subscription` goes to serves the hub's slot now.
    /// A cluster that cannot tell (its nodes are failing over) is asked again next time.
    async fn hub_master_moved(&self, subscription: &Subscription) -> bool {
        match subscription::hub_master(&self.store).await {
            Ok((host, port)) => subscription.master() != Some(format!("{host}:{port}").as_str()),
            Err(_) => false,
        }
    }

    fn hand_over(&self, node: &dyn Subscriber, (channel, payload): &Message) {
        let Some(topic) = self.store.keys().topic(channel) else {
            return;
        };
        match Envelope::decode(payload) {
            Some(envelope) => node.deliver(&topic, &envelope),
            None => tracing::warn!(
                channel = %String::from_utf8_lossy(channel),
                "dropped a hub message that is not an envelope"
            ),
        }
    }
}

/// The body of a node's publisher task: sends what is queued, in order, in pipelines, and
/// answers each caller. Ends when the transport is dropped.
async fn publish_queued(
    store: RedisStore,
    node_id: Arc<str>,
    mut waiting: mpsc::Receiver<Outgoing>,
) {
    // The number of this node's last send (see `lua/lib/first_send.lua`). Node ids are
    // fresh, and a node has one publisher.
    let mut seq = 0;
    let mut batch = Vec::with_capacity(PUBLISH_BATCH);
    let mut sends = Vec::with_capacity(PUBLISH_BATCH);
    let mut callers = Vec::with_capacity(PUBLISH_BATCH);
    while waiting.recv_many(&mut batch, PUBLISH_BATCH).await > 0 {
        for outgoing in batch.drain(..) {
            sends.push(outgoing.send);
            callers.push(outgoing.done);
        }
        let result = store.send_hub(&sends, &node_id, &mut seq).await;
        sends.clear();
        let mut callers = callers.drain(..);
        match result {
            Ok(answers) => {
                for (caller, answer) in callers.zip(answers) {
                    let _ = caller.send(answer);
                }
            }
            Err(error) => {
                // Every caller hears of the failure; the first one gets the error itself, with
                // its source.
                let first = callers.next();
                for caller in callers {
                    let _ = caller.send(Err(Error::Unavailable {
                        reason: error.to_string(),
                        source: None,
                    }));
                }
                if let Some(first) = first {
                    let _ = first.send(Err(error));
                }
            }
        }
    }
}

/// The message of `envelope` as the scripts that keep it take it.
fn kept(envelope: &Envelope, payload: &Payload, policy: HistoryPolicy) -> KeptMessage {
    KeptMessage {
        kind: envelope.kind(),
        target: envelope.target(),
        payload: payload.clone(),
        policy,
    }
}

/// `wait`, give or take a quarter, so that nodes that lost Redis together do not all come back
/// at the same instant.
fn jitter(wait: Duration) -> Duration {
    let quarter = wait / 4;
    wait - quarter + quarter.mul_f64(2.0 * rand::random::<f64>())
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
