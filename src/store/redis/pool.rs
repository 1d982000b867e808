//! Where a store's connections come from, and how a connection found wrong is replaced.
//!
//! A store talks to one server at a fixed address (a pool of bb8-redis), to the master a set
//! of Redis Sentinels names (a pool whose every new connection asks the sentinels again, see
//! [`SentinelManager`]), or to a Redis Cluster (redis-rs's cluster connection, which keeps one
//! multiplexed connection per node and follows the slots as they move). The store checks a
//! connection out only to clone its handle, a [`Link`].

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use ::redis::aio::{ConnectionLike, MultiplexedConnection};
use ::redis::cluster_async::ClusterConnection;
use ::redis::{Cmd, Pipeline, RedisError, RedisResult, Value};
use bb8::{ManageConnection, RunError};

use super::RedisPool;
use super::cluster_pool::ClusterPool;
use super::master::{MasterFinder, is_master};

/// The pool of a store.
#[derive(Clone)]
pub(super) enum Pool {
    /// Connections to one server at a fixed address.
    Server(RedisPool),
    /// One connection (see `pool_builder`) to whichever server the sentinels name as the
    /// master when it is opened.
    Sentinel(bb8::Pool<SentinelManager>),
    /// A Redis Cluster, through one connection to each node.
    Cluster(Arc<ClusterPool>),
}

/// A handle on one connection of the pool.
pub(super) enum Link {
    /// To one server.
    Server(MultiplexedConnection),
    /// To whichever node of the cluster serves each command's slot.
    Cluster(ClusterConnection),
}

impl Link {
    /// Sends `cmd` and waits for its answer, `left` at most.
    pub(super) async fn send(&mut self, cmd: &Cmd, left: Duration) -> RedisResult<Value> {
        match self {
            Link::Server(conn) => {
                conn.set_response_timeout(left);
                conn.send_packed_command(cmd).await
            }
            Link::Cluster(conn) => within(left, conn.req_packed_command(cmd)).await,
        }
    }

    /// Sends the `count` commands of `pipeline` and waits for their answers, `left` at most.
    /// On a cluster they must all name keys of one slot.
    pub(super) async fn send_pipeline(
        &mut self,
        pipeline: &Pipeline,
        count: usize,
        left: Duration,
    ) -> RedisResult<Vec<Value>> {
        match self {
            Link::Server(conn) => {
                conn.set_response_timeout(left);
                conn.send_packed_commands(pipeline, 0, count).await
            }
            Link::Cluster(conn) => within(left, conn.req_packed_commands(pipeline, 0, count)).await,
        }
    }
}

/// `answer`, unless `left` runs out first (an IO error of kind `TimedOut`).
async fn within<T>(
    left: Duration,
    answer: impl std::future::Future<Output = RedisResult<T>>,
) -> RedisResult<T> {
    match tokio::time::timeout(left, answer).await {
        Ok(answer) => answer,
        Err(_) => Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()),
    }
}

/// The pool of a store and what keeps it healthy, shared by all clones of the store.
pub(super) struct Connections {
    pub(super) pool: Pool,
    /// Set while one operation checks the pool for wrong connections.
    pub(super) healing: AtomicBool,
    /// Counts the new masters the sentinels have named, so that the hub's pub/sub connection
    /// moves to each (always 0 on one server).
    pub(super) switches: tokio::sync::watch::Sender<u64>,
}

impl Connections {
    pub(super) fn new(pool: Pool) -> Arc<Self> {
        Arc::new(Connections {
            pool,
            healing: AtomicBool::new(false),
            switches: tokio::sync::watch::Sender::new(0),
        })
    }
}

/// How [`Pool::heal`] decides that a pooled connection must be replaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Check {
    /// Replace it when it does not answer a `PING` in time.
    Answers,
    /// Replace it when it does not answer `ROLE` in time, or its server is no master.
    IsMaster,
    /// Replace it whatever it answers: the sentinels have named a new master.
    Replace,
}

impl Pool {
    /// A handle on one of the pool's connections.
    pub(super) async fn get(&self) -> Result<Link, RunError<RedisError>> {
        match self {
            Pool::Server(pool) => pool.get().await.map(|conn| Link::Server((*conn).clone())),
            Pool::Sentinel(pool) => pool.get().await.map(|conn| Link::Server((*conn).clone())),
            Pool::Cluster(pool) => Ok(Link::Cluster(pool.get())),
        }
    }

    /// How many connections the pool holds (a cluster's counts as one).
    pub(super) fn connections(&self) -> u32 {
        match self {
            Pool::Server(pool) => pool.state().connections,
            Pool::Sentinel(pool) => pool.state().connections,
            Pool::Cluster(_) => 1,
        }
    }

    /// A new connection outside the pool; `None` on a cluster, which has no one server.
    pub(super) async fn dedicated(&self) -> Option<Result<MultiplexedConnection, RedisError>> {
        match self {
            Pool::Server(pool) => Some(pool.dedicated_connection().await),
            Pool::Sentinel(pool) => Some(pool.dedicated_connection().await),
            Pool::Cluster(_) => None,
        }
    }

    /// Checks every pooled connection as `check` says, each within `timeout`, and replaces the
    /// ones that fail it with fresh connections (which, through Sentinel, go to the master the
    /// sentinels name now). Stops at the first replacement that cannot be opened.
    pub(super) async fn heal(&self, check: Check, timeout: Duration) {
        match self {
            Pool::Server(pool) => heal(pool, check, timeout).await,
            Pool::Sentinel(pool) => heal_single(pool, check, timeout).await,
            // A new cluster connection waits for every node, a silent one up to its connect
            // timeout.
            Pool::Cluster(pool) => pool.renew(timeout.max(Duration::from_secs(3)), false).await,
        }
    }
}

/// [`Pool::heal`] for a pool of one connection that is checked without being held, so that a
/// check waiting on a silent server (a paused master answers nothing until the timeout) does
/// not hold up a replacement that another heal knows is due.
async fn heal_single<M>(pool: &bb8::Pool<M>, check: Check, timeout: Duration)
where
    M: ManageConnection<Connection = MultiplexedConnection, Error = RedisError>,
{
    let mut handle = match tokio::time::timeout(timeout, pool.get()).await {
        Ok(Ok(conn)) => (*conn).clone(),
        _ => return,
    };
    if passes(&mut handle, check, timeout).await {
        return;
    }
    let Some(fresh) = replacement(pool, timeout).await else {
        return;
    };
    if let Ok(Ok(mut conn)) = tokio::time::timeout(timeout, pool.get()).await {
        *conn = fresh;
        tracing::debug!(?check, "replaced a Redis connection");
    }
}

async fn heal<M>(pool: &bb8::Pool<M>, check: Check, timeout: Duration)
where
    M: ManageConnection<Connection = MultiplexedConnection, Error = RedisError>,
{
    // Hold every checked connection until the end, so that no connection is checked twice.
    let mut checked = Vec::new();
    for _ in 0..pool.state().connections {
        let Ok(Ok(mut conn)) = tokio::time::timeout(timeout, pool.get()).await else {
            break;
        };
        if !passes(&mut conn, check, timeout).await {
            let Some(fresh) = replacement(pool, timeout).await else {
                break;
            };
            *conn = fresh;
            tracing::debug!(?check, "replaced a Redis connection");
        }
        checked.push(conn);
    }
}

/// A new connection to put in place of a wrong one, opened within `timeout`; `None` (after
/// saying why) when none opens.
async fn replacement<M>(pool: &bb8::Pool<M>, timeout: Duration) -> Option<MultiplexedConnection>
where
    M: ManageConnection<Connection = MultiplexedConnection, Error = RedisError>,
{
    match tokio::time::timeout(timeout, pool.dedicated_connection()).await {
        Ok(Ok(fresh)) => Some(fresh),
        Ok(Err(error)) => {
            tracing::debug!(%error, "no Redis connection to replace a wrong one with");
            None
        }
        Err(_) => {
            tracing::debug!("a new Redis connection did not open in time");
            None
        }
    }
}

/// Whether `conn` passes `check` within `timeout`.
async fn passes(conn: &mut MultiplexedConnection, check: Check, timeout: Duration) -> bool {
    let probe = match check {
        Check::Replace => return false,
        Check::Answers => ::redis::cmd("PING"),
        Check::IsMaster => ::redis::cmd("ROLE"),
    };
    let answer = tokio::time::timeout(timeout, probe.query_async::<Value>(conn)).await;
    match (check, answer) {
        (Check::IsMaster, Ok(Ok(Value::Array(role)))) => is_master(&role),
        (_, Ok(Ok(_))) => check == Check::Answers,
        _ => false,
    }
}

/// Where the hub's pub/sub connections go.
#[derive(Clone)]
pub(super) enum PubSubSource {
    /// One server at a fixed address.
    Server(::redis::Client),
    /// The master the sentinels name when each connection is opened.
    Sentinel(Arc<MasterFinder>),
    /// The master that serves the hub's slot of a cluster when each connection is opened,
    /// reached with the settings (user, password) of the first seed node.
    Cluster(Box<::redis::ConnectionInfo>),
}

impl PubSubSource {
    /// A new classic pub/sub connection; `None` on a cluster, whose hub subscribes to shard
    /// channels (see `hub/subscription.rs`).
    pub(super) async fn open(&self) -> Option<Result<::redis::aio::PubSub, RedisError>> {
        match self {
            PubSubSource::Server(client) => Some(client.get_async_pubsub().await),
            PubSubSource::Sentinel(finder) => Some(match finder.master().await {
                Ok(master) => master.get_async_pubsub().await,
                Err(error) => Err(error),
            }),
            PubSubSource::Cluster(_) => None,
        }
    }
}

/// Opens connections to the master that Redis Sentinel names at the time of each connect, and
/// checks that the server it reaches calls itself master (a server the sentinels still name
/// after it was demoted is refused).
pub(super) struct SentinelManager {
    finder: Arc<MasterFinder>,
}

impl SentinelManager {
    pub(super) fn new(finder: Arc<MasterFinder>) -> Self {
        SentinelManager { finder }
    }
}

impl ManageConnection for SentinelManager {
    type Connection = MultiplexedConnection;
    type Error = RedisError;

    async fn connect(&self) -> Result<MultiplexedConnection, RedisError> {
        let master = self.finder.master().await?;
        master.get_multiplexed_async_connection().await
    }

    async fn is_valid(&self, conn: &mut MultiplexedConnection) -> Result<(), RedisError> {
        ::redis::cmd("PING").query_async::<()>(conn).await
    }

    fn has_broken(&self, _: &mut MultiplexedConnection) -> bool {
        false
    }
}
