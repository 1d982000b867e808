//! The broker's end at one hub node: how envelopes travel between the nodes that share a
//! store. In this process for [`MemoryStore`](crate::MemoryStore), over Redis pub/sub for
//! [`RedisStore`](crate::RedisStore).
//!
//! Guarantees, whichever the broker: delivery is at most once; the envelopes one node
//! publishes reach each connection in the order they were published; a node receives only the
//! topics its connections need.

use super::envelope::{Envelope, Stream, Topic};
use super::history::{HistoryPolicy, ReadBudget, ReadFrom, Replayed};
use super::memory::bus::MemoryTransport;
use super::message::Payload;
#[cfg(feature = "redis")]
use super::redis::hub::transport::RedisTransport;
use crate::error::Result;

/// The answer to a publish: whether the broker took the envelope.
pub(crate) type Published = std::pin::Pin<Box<dyn std::future::Future<Output = Result<()>> + Send>>;

/// One node's end of the broker.
///
/// `subscribe` and `unsubscribe` record what the node needs, in the order it says so, and
/// return at once; `ready` waits until the broker delivers a topic.
pub(crate) enum Transport {
    Memory(MemoryTransport),
    #[cfg(feature = "redis")]
    Redis(RedisTransport),
}

impl Transport {
    pub(crate) fn subscribe(&self, topic: &Topic) {
        match self {
            Transport::Memory(local) => local.subscribe(topic),
            #[cfg(feature = "redis")]
            Transport::Redis(redis) => redis.subscribe(topic),
        }
    }

    pub(crate) fn unsubscribe(&self, topic: &Topic) {
        match self {
            Transport::Memory(local) => local.unsubscribe(topic),
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
    #[cfg_attr(not(feature = "redis"), allow(unused_variables))]
    pub(crate) async fn ready(&self, topics: &[Topic]) -> Result<()> {
        match self {
            Transport::Memory(_) => Ok(()),
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
            Transport::Memory(local) => {
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
        id: &str,
        payload: Payload,
        policy: HistoryPolicy,
    ) -> Result<()> {
        let envelope = Envelope::message(Some(id.to_owned()), payload);
        match self {
            Transport::Memory(local) => {
                let node = local.session_node(id)?;
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
        reader: &str,
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
            Transport::Memory(local) => Ok(local.replay(reader, from, policy, budget)),
            #[cfg(feature = "redis")]
            Transport::Redis(redis) => redis.replay(reader, from, budget).await,
        }
    }

    /// How many topics this node is subscribed to.
    pub(crate) fn subscriptions(&self) -> usize {
        match self {
            Transport::Memory(local) => local.subscriptions(),
            #[cfg(feature = "redis")]
            Transport::Redis(redis) => redis.subscriptions(),
        }
    }
}
