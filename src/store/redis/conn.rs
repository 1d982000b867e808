//! Talking to Redis: the pool, one command within the store's timeout, and recovery from
//! dead connections.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ::redis::{Cmd, ErrorKind, RedisError, RedisResult, ServerErrorKind, Value};
use bb8::{ErrorSink, RunError};
use tokio::time::Instant;

use super::RedisStore;
use super::command::Command;
use super::pool::{Check, Link, Pool};
use super::reply::string;
use super::scripts::StoreScript;
use crate::error::{Error, Result};

/// How long [`RedisStore::connect`]'s pool waits for a connection, and the default operation
/// timeout.
pub(super) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);

/// The pool configuration [`RedisStore::connect`] uses.
///
/// bb8-redis never reports a connection as broken, so a multiplexed connection that died with
/// its server would stay in the pool and fail every operation after Redis is back. Rather than
/// a `PING` on every checkout (one extra round trip per operation), the store checks the
/// pool's connections only after an operation has found one dead, and replaces the dead ones
/// in place (see `RedisStore::heal_pool`), so the pool needs no health check of its own.
///
/// It holds a single connection: operations check it out only to clone its multiplexed
/// handle, so every concurrent operation is pipelined on one socket, which costs Redis and
/// the application fewer system calls per operation than spreading them over several.
pub(super) fn pool_builder<M>() -> bb8::Builder<M>
where
    M: bb8::ManageConnection<Error = RedisError>,
{
    bb8::Pool::builder()
        .max_size(1)
        .connection_timeout(DEFAULT_TIMEOUT)
        .test_on_check_out(false)
        .error_sink(Box::new(LogConnectionErrors))
}

/// Sends the pool's failed connection attempts to `tracing`, which bb8 would otherwise drop.
#[derive(Debug, Clone, Copy)]
struct LogConnectionErrors;

impl ErrorSink<RedisError> for LogConnectionErrors {
    fn sink(&self, error: RedisError) {
        tracing::debug!(%error, "redis connection attempt failed");
    }

    fn boxed_clone(&self) -> Box<dyn ErrorSink<RedisError>> {
        Box::new(*self)
    }
}

/// Why a command got no answer. It can be cloned, so that every caller of one group commit
/// is told the same.
#[derive(Clone, Debug)]
pub(super) enum Failure {
    /// The server answered with an error, or the connection failed.
    Redis(RedisError),
    /// The pool gave no connection in time.
    NoConnection,
    /// The answer did not come in time.
    TimedOut,
}

impl RedisStore {
    /// Sends one command and returns the server's answer, all within the store's timeout.
    ///
    /// A script unknown to the server (a fresh or restarted Redis answers `NOSCRIPT`) is loaded,
    /// and the command sent again, within the same time.
    pub(super) async fn run(&self, command: &Command<'_>) -> Result<Value> {
        let deadline = Instant::now() + self.inner.timeout;
        self.run_until(command, deadline)
            .await
            .map_err(|failure| self.error(failure))
    }

    /// [`run`](Self::run), with the answer awaited until `deadline`, and a failure that can be
    /// handed to several callers.
    ///
    /// When the failure shows that a connection is dead (its server went away), the pool is
    /// healed before it is returned, so that the store works again as soon as Redis is back.
    /// The command is not retried: it may have reached the server before the connection broke.
    pub(super) async fn run_until(
        &self,
        command: &Command<'_>,
        deadline: Instant,
    ) -> std::result::Result<Value, Failure> {
        let mut conn = self.connection(deadline).await?;
        let mut reply = send(&mut conn, command.cmd(), deadline).await;
        if let Some(script) = command.script_called()
            && matches!(&reply, Err(err) if err.kind() == ErrorKind::Server(ServerErrorKind::NoScript))
        {
            reply = match (&conn, command.with_text()) {
                // On a cluster, the script goes to the node of the call's keys alone.
                (Link::Cluster(_), Some(eval)) => send(&mut conn, &eval, deadline).await,
                _ => match send(&mut conn, &script.load_cmd(), deadline).await {
                    Ok(_) => send(&mut conn, command.cmd(), deadline).await,
                    Err(err) => Err(err),
                },
            };
        }
        match reply {
            Ok(value) => Ok(value),
            Err(err) => Err(self.failed(err).await),
        }
    }

    /// Loads `script` into the server, within the store's timeout; on a cluster, into the
    /// node at `node` (`host`, `port`) alone.
    pub(super) async fn load_script(
        &self,
        script: &StoreScript,
        node: Option<(String, u16)>,
    ) -> Result<()> {
        let deadline = Instant::now() + self.inner.timeout;
        let mut conn = self
            .connection(deadline)
            .await
            .map_err(|failure| self.error(failure))?;
        let loaded = match (&mut conn, node) {
            (Link::Cluster(cluster), Some((host, port))) => {
                let left = deadline.saturating_duration_since(Instant::now());
                let routing = ::redis::cluster_routing::RoutingInfo::SingleNode(
                    ::redis::cluster_routing::SingleNodeRoutingInfo::ByAddress { host, port },
                );
                match tokio::time::timeout(left, cluster.route_command(script.load_cmd(), routing))
                    .await
                {
                    Ok(loaded) => loaded,
                    Err(_) => Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()),
                }
            }
            (conn, _) => send(conn, &script.load_cmd(), deadline).await,
        };
        match loaded {
            Ok(_) => Ok(()),
            Err(err) => Err(self.error(self.failed(err).await)),
        }
    }

    /// The error a caller gets for `failure`.
    pub(super) fn error(&self, failure: Failure) -> Error {
        match failure {
            Failure::Redis(err) => redis_error(err),
            Failure::TimedOut => Error::timed_out(self.inner.timeout),
            Failure::NoConnection => Error::Unavailable {
                reason: "no Redis connection available in the pool".to_owned(),
                source: Some(Box::new(RunError::<RedisError>::TimedOut)),
            },
        }
    }

    /// Sends `count` commands at once and waits for all their answers, within the store's
    /// timeout. An error reply among the answers is not an error of the call: it is one of the
    /// answers.
    pub(super) async fn run_pipeline(
        &self,
        pipeline: &::redis::Pipeline,
        count: usize,
    ) -> Result<Vec<Value>> {
        let deadline = Instant::now() + self.inner.timeout;
        let mut conn = self
            .connection(deadline)
            .await
            .map_err(|failure| self.error(failure))?;
        let left = deadline.saturating_duration_since(Instant::now());
        let reply = if left.is_zero() {
            Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into())
        } else {
            conn.send_pipeline(pipeline, count, left).await
        };
        match reply {
            Ok(values) => Ok(values),
            Err(err) => Err(self.error(self.failed(err).await)),
        }
    }

    /// A new connection outside the pool, to the same server as the store's operations (the
    /// master, through Sentinel). For administration and inspection; the store's own
    /// operations never need it.
    ///
    /// # Errors
    ///
    /// [`Error::Unavailable`] when no connection opens within the store's timeout;
    /// [`Error::Backend`] for a store on a Redis Cluster, which has no one server.
    pub async fn dedicated_connection(&self) -> Result<::redis::aio::MultiplexedConnection> {
        let timeout = self.inner.timeout;
        match tokio::time::timeout(timeout, self.inner.connections.pool.dedicated()).await {
            Ok(Some(Ok(conn))) => Ok(conn),
            Ok(Some(Err(err))) => Err(redis_error(err)),
            Ok(None) => Err(Error::Backend(
                "a store on a Redis Cluster has no one server to connect to".into(),
            )),
            Err(_) => Err(Error::timed_out(timeout)),
        }
    }

    /// Fails when the server is a node of a Redis Cluster, where the scripts of the one-server
    /// layout, which touch keys of several slots, would fail one operation after another.
    pub(super) async fn refuse_cluster(&self) -> Result<()> {
        let mut info = Command::new("INFO");
        info.arg("cluster");
        let info = match self.run(&info).await {
            Ok(info) => string(info).unwrap_or_default(),
            Err(error) if error.is_unavailable() => return Err(error),
            // A proxy or a managed Redis that refuses `INFO` is not a cluster node the store
            // can tell: let it be.
            Err(_) => return Ok(()),
        };
        if info.lines().any(|line| line.trim() == "cluster_enabled:1") {
            return Err(Error::Backend(
                "this Redis server is a node of a Redis Cluster, where the one-server layout's \
                 scripts would touch keys of several slots: connect with \
                 RedisStore::connect_cluster"
                    .into(),
            ));
        }
        Ok(())
    }

    /// A handle on one of the pool's connections, waiting for it until `deadline` at most.
    ///
    /// A pooled connection is multiplexed: its handle is cheap to clone, and clones send their
    /// commands down the same socket. So the store checks a connection out only long enough to
    /// clone its handle and puts it straight back. Concurrent operations then share the pool's
    /// connections and are pipelined on them, instead of each holding a connection of its own
    /// for a whole round trip.
    async fn connection(&self, deadline: Instant) -> std::result::Result<Link, Failure> {
        match tokio::time::timeout_at(deadline, self.inner.connections.pool.get()).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(RunError::User(err))) => Err(Failure::Redis(err)),
            Ok(Err(RunError::TimedOut)) => Err(Failure::NoConnection),
            Err(_) => Err(Failure::TimedOut),
        }
    }

    /// What a failed reply means, after healing the pool when the error shows that a
    /// connection is wrong.
    ///
    /// On one server, a connection is wrong when it is dead (its server went away); the pool
    /// is healed before the error is returned, so that the store works again as soon as Redis
    /// is back. Through Sentinel, a connection is also wrong when its server stopped being the
    /// master (`READONLY`, `NOREPLICAS`, `MASTERDOWN`) or stopped answering in time (a paused
    /// or partitioned master); on a cluster, also when a slot has no master where the client
    /// looked (`CLUSTERDOWN`, or a redirection it could not follow); the pool is healed in the
    /// background, so that the caller hears of the failure within its timeout.
    async fn failed(&self, err: RedisError) -> Failure {
        let pool = &self.inner.connections.pool;
        match pool {
            Pool::Server(_) if connection_lost(&err) => {
                tracing::debug!(error = %err, "a Redis connection is dead; checking the pool");
                self.heal_pool(Check::Answers).await;
            }
            Pool::Sentinel(_) | Pool::Cluster(_)
                if connection_lost(&err) || err.is_timeout() || demoted(&err) =>
            {
                tracing::debug!(error = %err, "a Redis connection may not reach the master; checking the pool");
                // While a heal runs, the failures it is healing need no task of their own.
                if !self.inner.connections.healing.load(Ordering::Acquire) {
                    let store = self.clone();
                    tokio::spawn(async move { store.heal_pool(Check::IsMaster).await });
                }
            }
            _ => {}
        }
        if err.is_timeout() {
            Failure::TimedOut
        } else {
            Failure::Redis(err)
        }
    }

    /// Checks the pool's connections as `check` says and replaces the ones that fail it. One
    /// operation at a time does this; the others carry on.
    async fn heal_pool(&self, check: Check) {
        struct Done<'a>(&'a AtomicBool);
        impl Drop for Done<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        let connections = &self.inner.connections;
        if connections.healing.swap(true, Ordering::AcqRel) {
            return;
        }
        let _done = Done(&connections.healing);
        connections.pool.heal(check, self.inner.timeout).await;
    }
}

/// `address` as the URL of a server: `host:port` becomes `redis://host:port`; a URL stays as
/// it is.
pub(super) fn server_url(address: &str) -> String {
    if address.contains("://") {
        address.to_owned()
    } else {
        format!("redis://{address}")
    }
}

/// Sends `cmd` on `conn` and waits for the answer until `deadline` at most.
async fn send(conn: &mut Link, cmd: &Cmd, deadline: Instant) -> RedisResult<Value> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into());
    }
    // An error reply arrives as a value: make it an error. Only the top level can be one: the
    // store's commands and scripts never return errors nested in arrays, so a long listing is
    // not walked for them.
    match conn.send(cmd, left).await? {
        Value::ServerError(err) => Err(err.into()),
        value => Ok(value),
    }
}

/// Whether `err` means the connection can never answer again (not merely a slow reply).
fn connection_lost(err: &RedisError) -> bool {
    !err.is_timeout()
        && (err.is_io_error() || err.is_connection_dropped() || err.is_unrecoverable_error())
}

/// Whether `err` says that its server is not (or no longer) a master that takes writes, or
/// (on a cluster) that the slot it was sent for has no master there.
fn demoted(err: &RedisError) -> bool {
    matches!(
        err.code(),
        Some("READONLY" | "NOREPLICAS" | "MASTERDOWN" | "CLUSTERDOWN" | "MOVED" | "ASK")
    )
}

/// The error codes of a server that is up but cannot take the command now: full (`OOM`, at
/// `maxmemory` with `noeviction`), read-only (`READONLY`, a replica), loading its data
/// (`LOADING`), busy with a script (`BUSY`), short of replicas that acknowledge writes
/// (`NOREPLICAS`, under `min-replicas-to-write`), or between primaries; on a cluster, a slot
/// that is moving or has moved (`TRYAGAIN`, `MOVED` and `ASK` the client could not follow in
/// time) or a cluster without a master for some slot (`CLUSTERDOWN`).
const NOT_NOW: [&str; 10] = [
    "OOM",
    "READONLY",
    "NOREPLICAS",
    "LOADING",
    "BUSY",
    "TRYAGAIN",
    "MASTERDOWN",
    "CLUSTERDOWN",
    "MOVED",
    "ASK",
];

/// Maps a Redis error: a lost or refused connection, a timeout or a server that cannot serve
/// now (see `NOT_NOW`) is [`Error::Unavailable`]; any other error reply is
/// [`Error::Backend`].
pub(super) fn redis_error(err: RedisError) -> Error {
    let code = err.code().filter(|code| NOT_NOW.contains(code));
    let transient = code.is_some()
        || matches!(
            err.kind(),
            ErrorKind::Io
                | ErrorKind::Server(
                    ServerErrorKind::BusyLoading
                        | ServerErrorKind::ReadOnly
                        | ServerErrorKind::TryAgain
                        | ServerErrorKind::MasterDown
                        | ServerErrorKind::ClusterDown
                )
        )
        || err.is_connection_dropped()
        || err.is_connection_refusal()
        || err.is_timeout();
    if transient {
        let reason = match code {
            Some(code) => format!("Redis answered {code}"),
            None => format!("Redis {}", err.category()),
        };
        Error::Unavailable {
            reason,
            source: Some(Box::new(err)),
        }
    } else {
        Error::Backend(Box::new(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_unavailable_and_replies_are_backend_errors() {
        let io = RedisError::from(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        assert!(redis_error(io).is_unavailable());
        let reply = RedisError::from((ErrorKind::Client, "bad"));
        assert!(matches!(redis_error(reply), Error::Backend(_)));
    }
}
