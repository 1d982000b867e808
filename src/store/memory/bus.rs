//! The in-process broker: the nodes of one process that share a [`MemoryStore`], and the
//! topics each is subscribed to. Delivery is a function call, in the publisher's task.
//!
//! [`MemoryStore`]: crate::MemoryStore

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, Weak};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::history::MemoryHistory;
use crate::error::{Error, Result};
use crate::store::envelope::{Body, Envelope, Stream, Topic};
use crate::store::history::{HistoryPolicy, ReadBudget, ReadFrom, Replayed};
use crate::store::subscriber::Subscriber;

/// Topic -> the nodes subscribed to it, by node id; and the history of what was sent.
#[derive(Default)]
pub(crate) struct MemoryBus {
    topics: DashMap<Topic, HashMap<Arc<str>, Weak<dyn Subscriber>>>,
    pub(crate) history: MemoryHistory,
    /// Who tells whether a target has sessions (the memory store that owns this bus).
    targets: RwLock<Option<Weak<dyn Targets>>>,
}

/// Whether a target has a session that a message kept for it could ever reach: a room with a
/// member, a user with a session, a session that exists, anyone at all for everyone.
///
/// And which node holds the connection of a session, for a message to that session alone.
pub(crate) trait Targets: Send + Sync {
    fn has_sessions(&self, stream: &Stream) -> bool;

    /// The node of session `id`: `None` for a session created without one.
    ///
    /// # Errors
    ///
    /// `NotFound` for a missing session; `InvalidInput` for a bad id.
    fn session_node(&self, id: &str) -> Result<Option<String>>;
}

impl MemoryBus {
    /// Sets who answers [`Targets::has_sessions`] for this bus (again when the store moved).
    pub(crate) fn set_targets(&self, targets: Weak<dyn Targets>) {
        *self
            .targets
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(targets);
    }

    /// Whether a message for `stream` is worth keeping: without anyone to ask, it is.
    fn has_sessions(&self, stream: &Stream) -> bool {
        self.targets()
            .is_none_or(|targets| targets.has_sessions(stream))
    }

    /// The node of session `id`; without a store to ask, there is no such session.
    fn session_node(&self, id: &str) -> Result<Option<String>> {
        match self.targets() {
            Some(targets) => targets.session_node(id),
            None => Err(Error::not_found(id)),
        }
    }

    fn targets(&self) -> Option<std::sync::Arc<dyn Targets>> {
        self.targets
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .and_then(Weak::upgrade)
    }
}

pub(crate) struct MemoryTransport {
    bus: Arc<MemoryBus>,
    node: Weak<dyn Subscriber>,
    node_id: Arc<str>,
    subscriptions: AtomicUsize,
}

impl MemoryTransport {
    pub(crate) fn new(bus: Arc<MemoryBus>, node: Weak<dyn Subscriber>, node_id: &Arc<str>) -> Self {
        MemoryTransport {
            bus,
            node,
            node_id: Arc::clone(node_id),
            subscriptions: AtomicUsize::new(0),
        }
    }

    pub(crate) fn subscribe(&self, topic: &Topic) {
        let mut nodes = self.bus.topics.entry(topic.clone()).or_default();
        if nodes
            .insert(Arc::clone(&self.node_id), self.node.clone())
            .is_none()
        {
            let count = self.subscriptions.fetch_add(1, Ordering::Relaxed) + 1;
            crate::telemetry::hub_subscriptions(count);
        }
    }

    pub(crate) fn unsubscribe(&self, topic: &Topic) {
        if let Entry::Occupied(mut nodes) = self.bus.topics.entry(topic.clone()) {
            if nodes.get_mut().remove(&self.node_id).is_some() {
                let count = self.subscriptions.fetch_sub(1, Ordering::Relaxed) - 1;
                crate::telemetry::hub_subscriptions(count);
            }
            if nodes.get().is_empty() {
                nodes.remove();
            }
        }
    }

    /// Delivers `envelope` to the nodes subscribed to `topic`; a message is first kept in the
    /// history of `stream` (the topic's own, or the session's for a node topic) when the policy
    /// keeps one, and delivered with its offset.
    pub(crate) fn publish(
        &self,
        topic: &Topic,
        stream: Option<&Stream>,
        envelope: &Envelope,
        policy: HistoryPolicy,
    ) {
        match (&envelope.body, stream) {
            (Body::Message(payload), Some(stream)) if policy.is_on() => {
                let keep = self.bus.has_sessions(stream);
                let left_out = envelope.left_out(topic);
                self.bus
                    .history
                    .record(stream, payload, left_out, policy, keep, |offset| {
                        let envelope = Envelope {
                            offset: Some(offset),
                            ..envelope.clone()
                        };
                        self.deliver(topic, &envelope);
                    });
            }
            _ => self.deliver(topic, envelope),
        }
    }

    /// Keeps a message in the history of `stream` without delivering it (to a detached
    /// session).
    pub(crate) fn keep(&self, stream: &Stream, envelope: &Envelope, policy: HistoryPolicy) {
        if let Body::Message(payload) = &envelope.body {
            self.bus
                .history
                .record(stream, payload, None, policy, true, |_| ());
        }
    }

    fn deliver(&self, topic: &Topic, envelope: &Envelope) {
        // The nodes are collected first, so that no guard on the bus is held while they
        // deliver (a delivery may make a node unsubscribe).
        let nodes: Vec<Arc<dyn Subscriber>> = match self.bus.topics.get(topic) {
            Some(nodes) => nodes.values().filter_map(Weak::upgrade).collect(),
            None => return,
        };
        for node in nodes {
            node.deliver(topic, envelope);
        }
    }

    pub(crate) fn replay(
        &self,
        reader: &str,
        from: &[ReadFrom],
        policy: HistoryPolicy,
        budget: ReadBudget,
    ) -> Replayed {
        self.bus.history.read(reader, from, policy, budget)
    }

    /// The node of session `id`, asked of the store that owns the bus.
    ///
    /// # Errors
    ///
    /// `NotFound` for a missing session; `InvalidInput` for a bad id.
    pub(crate) fn session_node(&self, id: &str) -> Result<Option<String>> {
        self.bus.session_node(id)
    }

    pub(crate) fn subscriptions(&self) -> usize {
        self.subscriptions.load(Ordering::Relaxed)
    }
}

impl Drop for MemoryTransport {
    fn drop(&mut self) {
        let node_id = &self.node_id;
        self.bus.topics.retain(|_, nodes| {
            nodes.remove(node_id);
            !nodes.is_empty()
        });
    }
}
