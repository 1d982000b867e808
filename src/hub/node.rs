//! This instance's node of the hub: the open connections, the users and rooms they belong to,
//! and the topics those need. The node is the one owner of this state; the broker only carries
//! envelopes between nodes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use litemap::LiteMap;

use super::inbox::{Inbox, InboxLimits, Pushed};
use crate::error::Result;
use crate::store::AnyStore;
use crate::store::backend::Backend;
use crate::store::envelope::{Body, Envelope, Topic};
use crate::store::history::HistoryPolicy;
use crate::store::keep_alive::Indexes;
use crate::store::message::CloseReason;
use crate::store::subscriber::Subscriber;
use crate::store::transport::{Published, Transport};

/// One open connection, as the node knows it.
pub(crate) struct Connection {
    pub(crate) user_id: String,
    pub(crate) inbox: Inbox,
    /// Which attachment of its session this connection is: 1 for a new session, one more on
    /// each resume. A takeover closes the connections of lower epochs.
    pub(crate) epoch: u64,
    /// Whether this connection still owns its session (see [`Ownership`]).
    owner: AtomicU8,
    /// The rooms this connection is in (on this node; the store holds the same): a sorted
    /// list, as small as the few rooms of most connections need.
    rooms: Mutex<LiteMap<String, ()>>,
}

/// Who decides what becomes of a connection's session when its handle goes.
const OWNED: u8 = 0;
/// The handle let go of the session: it was detached or removed.
const RELEASED: u8 = 1;
/// Something else decided: a resume took the session over, a kick removed it, or a shutdown
/// detached it.
const TAKEN: u8 = 2;

impl Connection {
    /// Hands the session over from the handle to whoever calls this first. Returns `true`
    /// for the first caller only.
    fn take(&self, to: u8) -> bool {
        self.owner
            .compare_exchange(OWNED, to, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The handle lets go of the session; `true` when it still owned it and must detach or
    /// remove it.
    pub(crate) fn release(&self) -> bool {
        self.take(RELEASED)
    }

    /// The session is no longer this connection's to detach or remove; `true` when it was.
    pub(crate) fn take_from_handle(&self) -> bool {
        self.take(TAKEN)
    }
}

type Members = HashMap<String, Arc<Connection>>;

pub(crate) struct Node {
    id: Arc<str>,
    transport: Transport,
    /// Session id -> its connection here. The ids are shared: the keep-alive takes them all
    /// on every tick.
    connections: DashMap<Arc<str>, Arc<Connection>>,
    /// User id -> the user's connections here. Lock order: a guard on `users` or `rooms` may
    /// be held while `live` or a connection's own locks are taken, never the other way round.
    users: DashMap<String, Members>,
    /// Room name -> the room's members here.
    rooms: DashMap<String, Members>,
    /// How many connections are open here; the node topics are subscribed while it is not 0.
    live: Mutex<usize>,
    received: AtomicU64,
    slow_closed: AtomicU64,
    /// What the broker keeps of this node's messages for sessions that resume.
    keep: AtomicUsize,
    retention_ms: AtomicU64,
    keep_bytes: AtomicUsize,
    total_bytes: AtomicUsize,
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
    pub(crate) fn new(id: Arc<str>, store: &AnyStore) -> Arc<Node> {
        Arc::new_cyclic(|weak: &std::sync::Weak<Node>| Node {
            transport: store.transport(weak.clone(), &id),
            id,
            connections: DashMap::new(),
            users: DashMap::new(),
            rooms: DashMap::new(),
            live: Mutex::new(0),
            received: AtomicU64::new(0),
            slow_closed: AtomicU64::new(0),
            keep: AtomicUsize::new(0),
            retention_ms: AtomicU64::new(0),
            keep_bytes: AtomicUsize::new(0),
            total_bytes: AtomicUsize::new(0),
        })
    }

    /// What the broker keeps of the messages this node sends.
    pub(crate) fn policy(&self) -> HistoryPolicy {
        HistoryPolicy {
            keep: self.keep.load(Ordering::Relaxed),
            retention: Duration::from_millis(self.retention_ms.load(Ordering::Relaxed)),
            keep_bytes: self.keep_bytes.load(Ordering::Relaxed),
            total_bytes: self.total_bytes.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn set_policy(&self, policy: HistoryPolicy) {
        self.keep.store(policy.keep, Ordering::Relaxed);
        self.retention_ms
            .store(policy.retention_ms(), Ordering::Relaxed);
        self.keep_bytes.store(policy.keep_bytes, Ordering::Relaxed);
        self.total_bytes
            .store(policy.total_bytes, Ordering::Relaxed);
    }

    /// Publishes now, in this node's order, keeping messages as the policy says.
    pub(crate) fn publish(&self, topic: &Topic, envelope: &Envelope) -> Published {
        self.transport.publish(topic, envelope, self.policy())
    }

    pub(crate) fn id(&self) -> &Arc<str> {
        &self.id
    }

    pub(crate) fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Opens a connection for session `id` of `user_id`, attachment `epoch`, in `rooms`, and
    /// waits until the broker delivers what is sent to it. A connection of the same session
    /// open here already (an older attachment, taken over by a resume) is closed with 4002 and
    /// replaced. On error the connection is not open.
    pub(crate) async fn register(
        &self,
        id: &str,
        user_id: &str,
        limits: InboxLimits,
        epoch: u64,
        rooms: &[String],
    ) -> Result<Arc<Connection>> {
        let connection = Arc::new(Connection {
            user_id: user_id.to_owned(),
            inbox: Inbox::new(limits),
            epoch,
            owner: AtomicU8::new(OWNED),
            rooms: Mutex::new(rooms.iter().map(|room| (room.clone(), ())).collect()),
        });
        if let Some(older) = self
            .connections
            .insert(Arc::from(id), Arc::clone(&connection))
        {
            self.take_over(id, &older);
        }
        crate::telemetry::open_sessions(self.connections.len());
        self.add_member(&self.users, Topic::User, user_id, id, &connection);
        for room in rooms {
            self.add_member(&self.rooms, Topic::Room, room, id, &connection);
        }
        {
            let mut live = lock(&self.live);
            if *live == 0 {
                self.transport.subscribe(&Topic::All);
                self.transport.subscribe(&Topic::Node(Arc::clone(&self.id)));
            }
            *live += 1;
        }
        let mut topics = vec![
            Topic::Node(Arc::clone(&self.id)),
            Topic::All,
            Topic::User(user_id.to_owned()),
        ];
        topics.extend(rooms.iter().cloned().map(Topic::Room));
        if let Err(error) = self.transport.ready(&topics).await {
            self.unregister(id, &connection);
            return Err(error);
        }
        Ok(connection)
    }

    /// Closes `older`, a connection of session `id` that a resume took over, with 4002. Its
    /// handle no longer owns the session.
    fn take_over(&self, id: &str, older: &Arc<Connection>) {
        older.take_from_handle();
        self.forget_member(id, older);
        if older.inbox.close(CloseReason::TAKEN_OVER) {
            tracing::info!(session = %id, epoch = older.epoch, "connection taken over by a resume; closing with 4002");
        }
    }

    /// Closes connection `connection` of session `id` here, if it is still the session's
    /// connection here: it leaves its user and rooms, and topics nobody here needs any more are
    /// unsubscribed.
    pub(crate) fn unregister(&self, id: &str, connection: &Arc<Connection>) {
        if self
            .connections
            .remove_if(id, |_, held| Arc::ptr_eq(held, connection))
            .is_none()
        {
            return;
        }
        self.forget_member(id, connection);
    }

    /// Takes `connection` out of its user and rooms here, and counts it as gone.
    fn forget_member(&self, id: &str, connection: &Arc<Connection>) {
        crate::telemetry::open_sessions(self.connections.len());
        self.remove_member(
            &self.users,
            Topic::User,
            &connection.user_id,
            id,
            connection,
        );
        let rooms = std::mem::take(&mut *lock(&connection.rooms));
        for room in rooms.keys() {
            self.remove_member(&self.rooms, Topic::Room, room, id, connection);
        }
        let mut live = lock(&self.live);
        *live -= 1;
        if *live == 0 {
            self.transport.unsubscribe(&Topic::All);
            self.transport
                .unsubscribe(&Topic::Node(Arc::clone(&self.id)));
        }
    }

    /// Puts `connection` (of session `id`) into `room` here, and waits until the broker
    /// delivers the room's messages. Returns `false` when it was in the room already.
    pub(crate) async fn join(
        &self,
        id: &str,
        connection: &Arc<Connection>,
        room: &str,
    ) -> Result<bool> {
        if !self.is_open(id, connection)
            || lock(&connection.rooms)
                .try_insert(room.to_owned(), ())
                .is_some()
        {
            return Ok(false);
        }
        self.add_member(&self.rooms, Topic::Room, room, id, connection);
        if let Err(error) = self.transport.ready(&[Topic::Room(room.to_owned())]).await {
            self.leave(id, connection, room);
            return Err(error);
        }
        Ok(true)
    }

    /// Takes `connection` (of session `id`) out of `room` here. Returns `false` when it was
    /// not in it.
    pub(crate) fn leave(&self, id: &str, connection: &Arc<Connection>, room: &str) -> bool {
        if lock(&connection.rooms).remove(room).is_none() {
            return false;
        }
        self.remove_member(&self.rooms, Topic::Room, room, id, connection);
        true
    }

    /// The rooms of `connection`, sorted.
    pub(crate) fn rooms_of(connection: &Connection) -> Vec<String> {
        lock(&connection.rooms).keys().cloned().collect()
    }

    /// Whether `connection` is the connection of session `id` here.
    fn is_open(&self, id: &str, connection: &Arc<Connection>) -> bool {
        self.connections
            .get(id)
            .is_some_and(|held| Arc::ptr_eq(&held, connection))
    }

    /// Every connection open here, with its session id.
    pub(crate) fn connections(&self) -> Vec<(String, Arc<Connection>)> {
        self.connections
            .iter()
            .map(|entry| (entry.key().to_string(), Arc::clone(entry.value())))
            .collect()
    }

    /// The ids of every connection open here.
    pub(crate) fn connection_ids(&self) -> Vec<Arc<str>> {
        self.connections
            .iter()
            .map(|entry| entry.key().clone())
            .collect()
    }

    pub(crate) fn len(&self) -> usize {
        self.connections.len()
    }

    /// The index keys of the sessions open here: those of its connections that are in rooms,
    /// their users and their rooms.
    pub(crate) fn indexes(&self) -> Indexes {
        Indexes {
            sessions: self
                .connections
                .iter()
                .filter(|entry| !lock(&entry.rooms).is_empty())
                .map(|entry| entry.key().to_string())
                .collect(),
            users: self.users.iter().map(|entry| entry.key().clone()).collect(),
            rooms: self.rooms.iter().map(|entry| entry.key().clone()).collect(),
        }
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
    fn dispatch(&self, topic: &Topic, envelope: &Envelope) {
        self.received.fetch_add(1, Ordering::Relaxed);
        match topic {
            Topic::All => {
                let left_out = envelope.left_out(topic);
                for entry in &self.connections {
                    if left_out != Some(&**entry.key()) {
                        self.deliver(entry.key(), entry.value(), envelope);
                    }
                }
            }
            Topic::Node(_) => {
                if let Some(id) = &envelope.to
                    && let Some(connection) = self.connection(id)
                {
                    self.deliver(id, &connection, envelope);
                }
            }
            Topic::User(name) => self.deliver_to(self.users.get(name), topic, envelope),
            Topic::Room(name) => self.deliver_to(self.rooms.get(name), topic, envelope),
        }
    }

    /// Delivers `envelope`, which came on `topic`, to every member of a user or room entry, if
    /// there is one, but the session it leaves out.
    fn deliver_to(
        &self,
        members: Option<dashmap::mapref::one::Ref<'_, String, Members>>,
        topic: &Topic,
        envelope: &Envelope,
    ) {
        let left_out = envelope.left_out(topic);
        for (id, connection) in members.iter().flat_map(|members| members.iter()) {
            if left_out != Some(id.as_str()) {
                self.deliver(id, connection, envelope);
            }
        }
    }

    fn deliver(&self, id: &str, connection: &Arc<Connection>, envelope: &Envelope) {
        match &envelope.body {
            Body::Message(payload) => {
                if connection.inbox.push(payload.clone(), envelope.offset) == Pushed::Overflowed {
                    self.slow_closed.fetch_add(1, Ordering::Relaxed);
                    crate::telemetry::slow_consumer();
                    tracing::warn!(
                        session = %id,
                        user = %connection.user_id,
                        "slow consumer: inbox overflowed, its messages dropped; closing with 4001"
                    );
                }
            }
            Body::Close(reason) => {
                if reason.code == CloseReason::KICKED.code {
                    // The kicker removes the session; the handle must not detach it.
                    connection.take_from_handle();
                }
                if connection.inbox.close(reason.clone()) {
                    tracing::debug!(session = %id, code = reason.code, "connection asked to close");
                }
            }
            Body::TakeOver { epoch } => {
                if connection.epoch < *epoch {
                    let connection = Arc::clone(connection);
                    // Out of the user's or room's entry this was delivered through first.
                    if self
                        .connections
                        .remove_if(id, |_, held| Arc::ptr_eq(held, &connection))
                        .is_some()
                    {
                        self.take_over(id, &connection);
                    }
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
        connection: &Arc<Connection>,
    ) {
        if let Entry::Occupied(mut members) = map.entry(name.to_owned()) {
            // A newer connection of the same session stays.
            if members
                .get()
                .get(id)
                .is_some_and(|held| Arc::ptr_eq(held, connection))
            {
                members.get_mut().remove(id);
            }
            if members.get().is_empty() {
                // Told while the entry is still locked: a member added right after it
                // subscribes after this unsubscribe, not before it.
                let topic = topic(name.to_owned());
                tracing::debug!(node = %self.id, ?topic, "last local member gone: unsubscribing");
                self.transport.unsubscribe(&topic);
                members.remove();
            }
        }
    }
}

impl Subscriber for Node {
    fn deliver(&self, topic: &Topic, envelope: &Envelope) {
        self.dispatch(topic, envelope);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::message::Payload;
    use crate::{AnyStore, MemoryStore};

    /// A user's last connection leaving while the user's next one arrives, on two threads at
    /// once, over and over: the new connection must always be reachable through the user's
    /// topic. (The leaving side once unsubscribed after letting go of the user's entry, so the
    /// arriving side's subscription could be undone by it.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_member_arriving_as_the_last_one_leaves_stays_subscribed() {
        let store = AnyStore::from(MemoryStore::new());
        let node = Node::new("node".into(), &store);
        let register = |node: Arc<Node>, id: String| async move {
            node.register(&id, "u", InboxLimits::default(), 1, &[])
                .await
                .unwrap()
        };
        let mut old_id = "s0".to_owned();
        let mut old = register(Arc::clone(&node), old_id.clone()).await;
        for n in 1..20_000 {
            let new_id = format!("s{n}");
            let leaving = {
                let node = Arc::clone(&node);
                let (id, connection) = (old_id.clone(), Arc::clone(&old));
                tokio::spawn(async move { node.unregister(&id, &connection) })
            };
            let arriving = tokio::spawn(register(Arc::clone(&node), new_id.clone()));
            leaving.await.unwrap();
            let new = arriving.await.unwrap();
            let envelope = Envelope::message(None, Payload::from("ping"));
            drop(node.publish(&Topic::User("u".into()), &envelope));
            assert_eq!(
                new.inbox.queued().0,
                1,
                "iteration {n}: the user's message was lost"
            );
            let mut taken = Vec::new();
            new.inbox.recv_many(&mut taken, 8).await;
            (old_id, old) = (new_id, new);
        }
    }
}
