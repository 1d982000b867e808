//! The broker: how envelopes travel between the nodes that share a store. In this process for
//! [`MemoryStore`](crate::MemoryStore), over Redis pub/sub for
//! [`RedisStore`](crate::RedisStore).

use std::fmt;
use std::sync::{Arc, Weak};

use super::envelope::{Envelope, Stream, Topic};
use super::history::{HistoryPolicy, ReadBudget, ReadFrom, Replayed};
use super::local::{LocalBus, LocalTransport};
use super::message::Payload;
use super::node::Node;
#[cfg(feature = "redis")]
use super::redis::RedisTransport;
use crate::error::Result;
use crate::store::dyn_store::DynStore;

/// How a store's hub reaches the connections held by other server instances.
///
/// Every store provides one through [`SessionStore::broker`](crate::SessionStore::broker):
/// [`MemoryStore`](crate::MemoryStore) connects the layers that share it inside one process,
/// and [`RedisStore`](crate::RedisStore) connects every instance through Redis pub/sub. A store
/// of your own can return [`Broker::in_process`].
///
/// Guarantees, whichever the broker: delivery is at most once; the envelopes one node
/// publishes reach each connection in the order they were published; a node receives only the
/// topics its connections need.
#[derive(Clone)]
pub struct Broker {
    kind: Kind,
}

#[derive(Clone)]
enum Kind {
    Local(Arc<LocalBus>),
    #[cfg(feature = "redis")]
    Redis(crate::RedisStore),
}

impl Broker {
    /// A broker for the layers that share this value, in this process only.
    pub fn in_process() -> Self {
        Broker {
            kind: Kind::Local(Arc::new(LocalBus::default())),
        }
    }

    pub(crate) fn local(bus: Arc<LocalBus>) -> Self {
        Broker {
            kind: Kind::Local(bus),
        }
    }

    #[cfg(feature = "redis")]
    pub(crate) fn redis(store: crate::RedisStore) -> Self {
        Broker {
            kind: Kind::Redis(store),
        }
    }

    /// The transport of one node on this broker.
    pub(crate) fn transport(&self, node: &Weak<Node>, node_id: &Arc<str>) -> Transport {
        match &self.kind {
            Kind::Local(bus) => {
                Transport::Local(LocalTransport::new(Arc::clone(bus), node.clone(), node_id))
            }
            #[cfg(feature = "redis")]
            Kind::Redis(store) => {
                Transport::Redis(RedisTransport::new(store.clone(), node.clone()))
            }
        }
    }
}

impl fmt::Debug for Broker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match &self.kind {
            Kind::Local(_) => "in-process",
            #[cfg(feature = "redis")]
            Kind::Redis(_) => "redis",
        };
        f.debug_struct("Broker").field("kind", &kind).finish()
    }
}

/// The answer to a publish: whether the broker took the envelope.
pub(crate) type Published = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>;

/// One node's end of the broker.
///
/// `subscribe` and `unsubscribe` record what the node needs, in the order it says so, and
/// return at once; `ready` waits until the broker delivers a topic.
pub(crate) enum Transport {
    Local(LocalTransport),
    #[cfg(feature = "redis")]
    Redis(RedisTransport),
}

impl Transport {
    pub(crate) fn subscribe(&self, topic: &Topic) {
        match self {
            Transport::Local(local) => local.subscribe(topic),
            #[cfg(feature = "redis")]
            Transport::Redis(redis) => redis.subscribe(topic),
        }
    }

    pub(crate) fn unsubscribe(&self, topic: &Topic) {
        match self {
            Transport::Local(local) => local.unsubscribe(topic),
            #[cfg(feature = "redis")]
            Transport::Redis(redis) => redis.unsubscribe(topic),
        }
    }

    /// Waits until every one of `topics` is delivered to this node.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`](crate::Error::Unavailable) when the broker cannot confirm them in
    /// time; the topics stay wanted, and are subscribed once the broker is back.
    pub(crate) async fn ready(&self, topics: &[Topic]) -> Result<()> {
        match self {
            Transport::Local(_) => Ok(()),
            #[cfg(feature = "redis")]
            Transport::Redis(redis) => redis.ready(topics).await,
        }
    }

    /// Publishes `envelope` to every node subscribed to `topic`, this one included; a message
    /// is kept in the topic's history first when `policy` keeps one.
    ///
    /// The envelope takes its place in this node's order now, when this is called; the future
    /// says whether the broker took it.
    pub(crate) fn publish(
        &self,
        topic: &Topic,
        envelope: &Envelope,
        policy: HistoryPolicy,
    ) -> Published {
        match self {
            Transport::Local(local) => {
                local.publish(topic, topic.stream().as_ref(), envelope, policy);
                Box::pin(std::future::ready(Ok(())))
            }
            #[cfg(feature = "redis")]
            Transport::Redis(redis) => Box::pin(redis.publish(topic, envelope, policy)),
        }
    }

    /// Sends `payload` to session `id` alone: kept in its history when `policy` keeps one (so a
    /// detached session gets it when it resumes), and delivered to its connection if it has
    /// one. With Redis this is one script call, in this node's order.
    ///
    /// # Errors
    ///
    /// `NotFound` when the session does not exist; `Unavailable` when the store or the broker
    /// cannot be reached.
    pub(crate) async fn send_to_session(
        &self,
        store: &dyn DynStore,
        id: &str,
        payload: Payload,
        policy: HistoryPolicy,
    ) -> Result<()> {
        let envelope = Envelope::message(Some(id.to_owned()), payload);
        match self {
            Transport::Local(local) => {
                let node = store.session_node(id).await?;
                let stream = Stream::Session(id.to_owned());
                match node {
                    Some(node) => {
                        local.publish(&Topic::Node(node.into()), Some(&stream), &envelope, policy);
                    }
                    None if policy.is_on() => local.keep(&stream, &envelope, policy),
                    None => {}
                }
                Ok(())
            }
            #[cfg(feature = "redis")]
            Transport::Redis(redis) => redis.send_to_session(&envelope, policy).await,
        }
    }

    /// The newest messages the histories `from` hold after their starting points, as many
    /// as fit `budget`.
    ///
    /// # Errors
    ///
    /// `Unavailable` when the store cannot be reached.
    pub(crate) async fn replay(
        &self,
        from: &[ReadFrom],
        policy: HistoryPolicy,
        budget: ReadBudget,
    ) -> Result<Replayed> {
        if !policy.is_on() || from.is_empty() {
            return Ok(Replayed {
                missed: Vec::new(),
                complete: true,
            });
        }
        match self {
            Transport::Local(local) => Ok(local.replay(from, policy, budget)),
            #[cfg(feature = "redis")]
            Transport::Redis(redis) => redis.replay(from, budget).await,
        }
    }

    /// How many topics this node is subscribed to.
    pub(crate) fn subscriptions(&self) -> usize {
        match self {
            Transport::Local(local) => local.subscriptions(),
            #[cfg(feature = "redis")]
            Transport::Redis(redis) => redis.subscriptions(),
        }
    }
}
