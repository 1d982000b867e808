//! The in-process broker: the nodes of one process that share a [`MemoryStore`], and the
//! topics each is subscribed to. Delivery is a function call, in the publisher's task.
//!
//! [`MemoryStore`]: crate::MemoryStore

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::envelope::{Envelope, Topic};
use super::node::Node;

/// Topic -> the nodes subscribed to it, by node id.
#[derive(Default)]
pub(crate) struct LocalBus {
    topics: DashMap<Topic, HashMap<Arc<str>, Weak<Node>>>,
}

pub(crate) struct LocalTransport {
    bus: Arc<LocalBus>,
    node: Weak<Node>,
    node_id: Arc<str>,
    subscriptions: AtomicUsize,
}

impl LocalTransport {
    pub(crate) fn new(bus: Arc<LocalBus>, node: Weak<Node>, node_id: &Arc<str>) -> Self {
        LocalTransport {
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
            self.subscriptions.fetch_add(1, Ordering::Relaxed);
        }
    }

    pub(crate) fn unsubscribe(&self, topic: &Topic) {
        if let Entry::Occupied(mut nodes) = self.bus.topics.entry(topic.clone()) {
            if nodes.get_mut().remove(&self.node_id).is_some() {
                self.subscriptions.fetch_sub(1, Ordering::Relaxed);
            }
            if nodes.get().is_empty() {
                nodes.remove();
            }
        }
    }

    pub(crate) fn publish(&self, topic: &Topic, envelope: &Envelope) {
        // The nodes are collected first, so that no guard on the bus is held while they
        // deliver (a delivery may make a node unsubscribe).
        let nodes: Vec<Arc<Node>> = match self.bus.topics.get(topic) {
            Some(nodes) => nodes.values().filter_map(Weak::upgrade).collect(),
            None => return,
        };
        for node in nodes {
            node.dispatch(topic, envelope);
        }
    }

    pub(crate) fn subscriptions(&self) -> usize {
        self.subscriptions.load(Ordering::Relaxed)
    }
}

impl Drop for LocalTransport {
    fn drop(&mut self) {
        let node_id = &self.node_id;
        self.bus.topics.retain(|_, nodes| {
            nodes.remove(node_id);
            !nodes.is_empty()
        });
    }
}
