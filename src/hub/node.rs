//! This instance's node of the hub: the open connections, the users and rooms they belong to,
//! and the topics those need. The node is the one owner of this state; the broker only carries
//! envelopes between nodes.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::broker::{Broker, Transport};
use super::envelope::{Body, Envelope, Topic};
use super::inbox::{Inbox, InboxLimits, Pushed};
use super::message::CloseReason;
use crate::error::Result;

/// One open connection, as the node knows it.
pub(crate) struct Connection {
    pub(crate) user_id: String,
    pub(crate) inbox: Inbox,
    /// The rooms this connection is in (on this node; the store holds the same).
    rooms: Mutex<BTreeSet<String>>,
}

type Members = HashMap<String, Arc<Connection>>;

pub(crate) struct Node {
    id: Arc<str>,
    transport: Transport,
    connections: DashMap<String, Arc<Connection>>,
    /// User id -> the user's connections here. Lock order: a guard on `users` or `rooms` may
    /// be held while `live` or a connection's own locks are taken, never the other way round.
    users: DashMap<String, Members>,
    /// Room name -> the room's members here.
    rooms: DashMap<String, Members>,
    /// How many connections are open here; the node topics are subscribed while it is not 0.
    live: Mutex<usize>,
    received: AtomicU64,
    slow_closed: AtomicU64,
}

/// Counters of a node, for tests and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct HubStats {
    /// Connections open on this instance.
    pub connections: usize,
    /// Topics (channels) this instance is subscribed to.
    pub subscriptions: usize,
    /// Envelopes this instance received from the broker.
    pub received: u64,
    /// Connections closed with 4001 because their inbox overflowed.
    pub slow_closed: u64,
    /// Messages waiting in the inboxes of this instance's connections, now.
    pub queued_messages: usize,
    /// Payload bytes waiting in the inboxes of this instance's connections, now.
    pub queued_bytes: usize,
}

impl Node {
    pub(crate) fn new(id: Arc<str>, broker: &Broker) -> Arc<Node> {
        Arc::new_cyclic(|weak| Node {
            transport: broker.transport(weak, &id),
            id,
            connections: DashMap::new(),
            users: DashMap::new(),
            rooms: DashMap::new(),
            live: Mutex::new(0),
            received: AtomicU64::new(0),
            slow_closed: AtomicU64::new(0),
        })
    }

    pub(crate) fn id(&self) -> &Arc<str> {
        &self.id
    }

    pub(crate) fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Opens a connection for session `id` of `user_id` and waits until the broker delivers
    /// what is sent to it. On error the connection is not open.
    pub(crate) async fn register(
        &self,
        id: &str,
        user_id: &str,
        limits: InboxLimits,
    ) -> Result<Arc<Connection>> {
        let connection = Arc::new(Connection {
            user_id: user_id.to_owned(),
            inbox: Inbox::new(limits),
            rooms: Mutex::new(BTreeSet::new()),
        });
        self.connections
            .insert(id.to_owned(), Arc::clone(&connection));
        self.add_member(&self.users, Topic::User, user_id, id, &connection);
        {
            let mut live = lock(&self.live);
            if *live == 0 {
                self.transport.subscribe(&Topic::All);
                self.transport.subscribe(&Topic::Node(Arc::clone(&self.id)));
            }
            *live += 1;
        }
        let ready = self
            .transport
            .ready(&[
                Topic::Node(Arc::clone(&self.id)),
                Topic::All,
                Topic::User(user_id.to_owned()),
            ])
            .await;
        if let Err(error) = ready {
            self.unregister(id);
            return Err(error);
        }
        Ok(connection)
    }

    /// Closes the connection of session `id` here: it leaves its user and rooms, and topics
    /// nobody here needs any more are unsubscribed.
    pub(crate) fn unregister(&self, id: &str) {
        let Some((_, connection)) = self.connections.remove(id) else {
            return;
        };
        self.remove_member(&self.users, Topic::User, &connection.user_id, id);
        let rooms = std::mem::take(&mut *lock(&connection.rooms));
        for room in &rooms {
            self.remove_member(&self.rooms, Topic::Room, room, id);
        }
        let mut live = lock(&self.live);
        *live -= 1;
        if *live == 0 {
            self.transport.unsubscribe(&Topic::All);
            self.transport
                .unsubscribe(&Topic::Node(Arc::clone(&self.id)));
        }
    }

    /// Puts the connection of `id` into `room` here, and waits until the broker delivers the
    /// room's messages. Returns `false` when it was in the room already.
    pub(crate) async fn join(&self, id: &str, room: &str) -> Result<bool> {
        let Some(connection) = self.connection(id) else {
            return Ok(false);
        };
        if !lock(&connection.rooms).insert(room.to_owned()) {
            return Ok(false);
        }
        self.add_member(&self.rooms, Topic::Room, room, id, &connection);
        if let Err(error) = self.transport.ready(&[Topic::Room(room.to_owned())]).await {
            self.leave(id, room);
            return Err(error);
        }
        Ok(true)
    }

    /// Takes the connection of `id` out of `room` here. Returns `false` when it was not in it.
    pub(crate) fn leave(&self, id: &str, room: &str) -> bool {
        let Some(connection) = self.connection(id) else {
            return false;
        };
        if !lock(&connection.rooms).remove(room) {
            return false;
        }
        self.remove_member(&self.rooms, Topic::Room, room, id);
        true
    }

    /// The rooms of the connection of `id`, sorted.
    pub(crate) fn rooms_of(&self, id: &str) -> Vec<String> {
        self.connection(id)
            .map(|connection| lock(&connection.rooms).iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The ids of every connection open here.
    pub(crate) fn connection_ids(&self) -> Vec<String> {
        self.connections
            .iter()
            .map(|entry| entry.key().clone())
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.connections.len()
    }

    /// Asks every connection open here to close with `reason`. Returns how many were asked.
    pub(crate) fn close_all(&self, reason: &CloseReason) -> usize {
        self.connections
            .iter()
            .filter(|entry| entry.inbox.close(reason.clone()))
            .count()
    }

    pub(crate) fn stats(&self) -> HubStats {
        let (queued_messages, queued_bytes) = self
            .connections
            .iter()
            .map(|entry| entry.inbox.queued())
            .fold((0, 0), |(m, b), (dm, db)| (m + dm, b + db));
        HubStats {
            queued_messages,
            queued_bytes,
            connections: self.connections.len(),
            subscriptions: self.transport.subscriptions(),
            received: self.received.load(Ordering::Relaxed),
            slow_closed: self.slow_closed.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn connection(&self, id: &str) -> Option<Arc<Connection>> {
        self.connections.get(id).map(|entry| Arc::clone(&entry))
    }

    /// Hands an envelope that arrived on `topic` to the connections here that it is for.
    pub(crate) fn dispatch(&self, topic: &Topic, envelope: &Envelope) {
        self.received.fetch_add(1, Ordering::Relaxed);
        match topic {
            Topic::All => {
                for entry in &self.connections {
                    self.deliver(entry.key(), entry.value(), &envelope.body);
                }
            }
            Topic::Node(_) => {
                if let Some(id) = &envelope.to
                    && let Some(connection) = self.connection(id)
                {
                    self.deliver(id, &connection, &envelope.body);
                }
            }
            Topic::User(name) => self.deliver_to(self.users.get(name), &envelope.body),
            Topic::Room(name) => self.deliver_to(self.rooms.get(name), &envelope.body),
        }
    }

    /// Delivers `body` to every member of a user or room entry, if there is one.
    fn deliver_to(
        &self,
        members: Option<dashmap::mapref::one::Ref<'_, String, Members>>,
        body: &Body,
    ) {
        for (id, connection) in members.iter().flat_map(|members| members.iter()) {
            self.deliver(id, connection, body);
        }
    }

    fn deliver(&self, id: &str, connection: &Connection, body: &Body) {
        match body {
            Body::Message(payload) => {
                if connection.inbox.push(payload.clone()) == Pushed::Overflowed {
                    self.slow_closed.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(
                        session = %id,
                        user = %connection.user_id,
                        "slow consumer: inbox overflowed, its messages dropped; closing with 4001"
                    );
                }
            }
            Body::Close(reason) => {
                if connection.inbox.close(reason.clone()) {
                    tracing::debug!(session = %id, code = reason.code, "connection asked to close");
                }
            }
        }
    }

    /// Adds a member to `map[name]`, subscribing to the topic when it is the first one here.
    /// The broker is told while the entry is locked, so it sees the changes in their order.
    fn add_member(
        &self,
        map: &DashMap<String, Members>,
        topic: fn(String) -> Topic,
        name: &str,
        id: &str,
        connection: &Arc<Connection>,
    ) {
        let mut members = map.entry(name.to_owned()).or_default();
        if members.is_empty() {
            let topic = topic(name.to_owned());
            tracing::debug!(node = %self.id, ?topic, "first local member: subscribing");
            self.transport.subscribe(&topic);
        }
        members.insert(id.to_owned(), Arc::clone(connection));
    }

    /// Removes a member from `map[name]`, dropping the entry and its subscription with the
    /// last one.
    fn remove_member(
        &self,
        map: &DashMap<String, Members>,
        topic: fn(String) -> Topic,
        name: &str,
        id: &str,
    ) {
        if let Entry::Occupied(mut members) = map.entry(name.to_owned()) {
            members.get_mut().remove(id);
            if members.get().is_empty() {
                members.remove();
                let topic = topic(name.to_owned());
                tracing::debug!(node = %self.id, ?topic, "last local member gone: unsubscribing");
                self.transport.unsubscribe(&topic);
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
