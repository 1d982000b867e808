//! One pub/sub connection of a node, as its task uses it: classic pub/sub (`SUBSCRIBE`) on one
//! server, sharded pub/sub (`SSUBSCRIBE`) on a cluster.
//!
//! On a cluster every channel of the hub carries the hub's hash tag, so all of them live in
//! one slot, and the node's one connection goes to the master that serves it. Every
//! subscription of that connection is then in one slot: when it breaks, or the slot moves to
//! another master (a failover), the task opens a new connection to the slot's master and
//! subscribes again to everything, a batch at a time. No subscription of another slot can be
//! left behind on the old connection, which is how a client that resubscribes shard channels
//! of several slots on one node can lose some.

use std::collections::{HashSet, VecDeque};

use ::redis::aio::{MultiplexedConnection, PubSubSink, PubSubStream};
use ::redis::{AsyncConnectionConfig, ConnectionAddr, ConnectionInfo, ProtocolVersion, PushInfo};
use ::redis::{PushKind, RedisResult, Value};
use futures_util::{FutureExt, StreamExt};
use tokio::sync::mpsc;

use crate::error::{Error, Result};
use crate::store::redis::RedisStore;
use crate::store::redis::reply::{bytes, string};

/// A pub/sub connection.
pub(super) enum Subscription {
    /// `SUBSCRIBE` on one server (alone, or the master Sentinel names).
    Classic {
        sink: PubSubSink,
        stream: PubSubStream,
    },
    /// `SSUBSCRIBE` on the master of the hub's slot of a cluster, over RESP3: messages come
    /// as pushes.
    Sharded {
        conn: MultiplexedConnection,
        pushes: mpsc::UnboundedReceiver<PushInfo>,
        /// The master's address, `host:port`.
        master: String,
        /// The channels this connection holds and has not asked to leave: a `sunsubscribe`
        /// push for one of them is the server's own (the slot moved).
        holding: HashSet<Vec<u8>>,
        /// Pushes that arrived before a subscription's answer, read as they stood then.
        backlog: VecDeque<Next>,
    },
}

/// One message: its channel and its payload.
pub(super) type Message = (Vec<u8>, Vec<u8>);

/// What a connection produced.
pub(super) enum Next {
    /// A message.
    Message(Message),
    /// Nothing a node wants (a confirmation, for one).
    Nothing,
    /// The connection broke, or the server dropped its subscriptions (its slot moved).
    Lost,
}

impl Subscription {
    /// A classic connection.
    pub(super) fn classic(pubsub: ::redis::aio::PubSub) -> Self {
        let (sink, stream) = pubsub.split();
        Subscription::Classic { sink, stream }
    }

    /// A sharded connection to the master that serves the hub's slot now, which the store
    /// asks the cluster for; `seed` says how to talk to a node (user, password).
    pub(super) async fn sharded(store: &RedisStore, seed: &ConnectionInfo) -> Result<Self> {
        let (host, port) = hub_master(store).await?;
        let settings = seed
            .redis_settings()
            .clone()
            .set_protocol(ProtocolVersion::RESP3);
        let info = seed
            .clone()
            .set_addr(ConnectionAddr::Tcp(host.clone(), port))
            .set_redis_settings(settings);
        let (sender, pushes) = mpsc::unbounded_channel();
        let config = AsyncConnectionConfig::new()
            .set_push_sender(sender)
            .set_response_timeout(Some(store.operation_timeout()));
        let opened = async {
            ::redis::Client::open(info)?
                .get_multiplexed_async_connection_with_config(&config)
                .await
        };
        let conn = opened.await.map_err(|error| Error::Unavailable {
            reason: "cannot connect for sharded pub/sub".to_owned(),
            source: Some(Box::new(error)),
        })?;
        Ok(Subscription::Sharded {
            conn,
            pushes,
            master: format!("{host}:{port}"),
            holding: HashSet::new(),
            backlog: VecDeque::new(),
        })
    }

    /// The master a sharded connection goes to.
    pub(super) fn master(&self) -> Option<&str> {
        match self {
            Subscription::Classic { .. } => None,
            Subscription::Sharded { master, .. } => Some(master),
        }
    }

    pub(super) async fn subscribe(&mut self, channels: &[Vec<u8>]) -> RedisResult<()> {
        match self {
            Subscription::Classic { sink, .. } => sink.subscribe(channels).await,
            Subscription::Sharded { conn, .. } => {
                ::redis::cmd("SSUBSCRIBE")
                    .arg(channels)
                    .exec_async(conn)
                    .await
            }
        }
    }

    pub(super) async fn unsubscribe(&mut self, channels: &[Vec<u8>]) -> RedisResult<()> {
        match self {
            Subscription::Classic { sink, .. } => sink.unsubscribe(channels).await,
            Subscription::Sharded { conn, .. } => {
                ::redis::cmd("SUNSUBSCRIBE")
                    .arg(channels)
                    .exec_async(conn)
                    .await
            }
        }
    }

    /// What the connection produces next.
    pub(super) async fn next(&mut self) -> Next {
        match self {
            Subscription::Classic { stream, .. } => match stream.next().await {
                Some(message) => Next::Message(classic(&message)),
                None => Next::Lost,
            },
            Subscription::Sharded {
                pushes,
                holding,
                backlog,
                ..
            } => match backlog.pop_front() {
                Some(next) => next,
                None => match pushes.recv().await {
                    Some(push) => pushed(push, holding),
                    None => Next::Lost,
                },
            },
        }
    }

    /// What the connection has produced already, if anything.
    pub(super) fn next_ready(&mut self) -> Option<Next> {
        match self {
            Subscription::Classic { stream, .. } => stream.next().now_or_never().map(|message| {
                message.map_or(Next::Lost, |message| Next::Message(classic(&message)))
            }),
            Subscription::Sharded {
                pushes,
                holding,
                backlog,
                ..
            } => backlog
                .pop_front()
                .or_else(|| pushes.try_recv().ok().map(|push| pushed(push, holding))),
        }
    }
}

fn classic(message: &::redis::Msg) -> Message {
    (
        message.get_channel_name().as_bytes().to_vec(),
        message.get_payload_bytes().to_vec(),
    )
}

/// A push of a sharded connection, as a message or what it means; `holding` holds the
/// channels the connection subscribed to and has not asked to leave.
fn pushed(push: PushInfo, holding: &HashSet<Vec<u8>>) -> Next {
    let mut data = push.data.into_iter();
    match push.kind {
        PushKind::SMessage => match (data.next().map(bytes), data.next().map(bytes)) {
            (Some(Ok(channel)), Some(Ok(payload))) => Next::Message((channel, payload)),
            _ => Next::Nothing,
        },
        // The answer to the connection's own SUNSUBSCRIBE comes as pushes too. A `sunsubscribe`
        // of a channel it holds is the server's: it drops a connection's shard subscriptions
        // when their slot leaves it (a failover, a migration).
        PushKind::SUnsubscribe => match data.next().map(bytes) {
            Some(Ok(channel)) if !holding.contains(&channel) => Next::Nothing,
            _ => Next::Lost,
        },
        PushKind::Disconnection => Next::Lost,
        _ => Next::Nothing,
    }
}

/// The host and port of the master that serves the hub's slot, as the cluster tells.
pub(super) async fn hub_master(store: &RedisStore) -> Result<(String, u16)> {
    let keys = store.keys();
    let slot = store.cluster_keyslot(&keys.clock).await?;
    let shards = store.cluster_slots().await?;
    for range in shards {
        let Value::Array(parts) = range else { continue };
        let mut parts = parts.into_iter();
        let (Some(Value::Int(first)), Some(Value::Int(last)), Some(Value::Array(master))) =
            (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if !(first..=last).contains(&slot) {
            continue;
        }
        let mut master = master.into_iter();
        if let (Some(host), Some(Value::Int(port))) = (master.next(), master.next())
            && let (Ok(host), Ok(port)) = (string(host), u16::try_from(port))
        {
            return Ok((host, port));
        }
    }
    Err(Error::Unavailable {
        reason: "no master serves the hub's slot".to_owned(),
        source: None,
    })
}
