//! A [`RedisStore`] through Redis Sentinel: its constructors, and the task that moves the
//! store to each master the sentinels name.

use std::sync::{Arc, Weak};
use std::time::Duration;

use ::redis::sentinel::{SentinelClient, SentinelServerType};
use futures_util::StreamExt;
use tokio::sync::Mutex;

use super::command::Command;
use super::conn::{DEFAULT_TIMEOUT, pool_builder, redis_error};
use super::pool::{Check, Pool, PubSubSource, SentinelManager};
use super::{Connections, RedisStore};
use crate::error::{Error, Result};

/// The channel on which a sentinel announces a new master.
const SWITCH_MASTER: &str = "+switch-master";
/// The first wait before the watcher connects to a sentinel again, doubled up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often a watcher with nothing to do looks whether its store is gone.
const LOOK_AGAIN: Duration = Duration::from_secs(5);

impl RedisStore {
    /// Connects through Redis Sentinel to the master named `master` that the sentinels at
    /// `sentinels` (`host:port` or `redis://host:port`) watch, and returns a store on it, after
    /// checking with a `PING` that the master answers.
    ///
    /// Every connection the store opens (its pool's and its hub's pub/sub connection) asks the
    /// sentinels for the master again and checks that the server calls itself master. When a
    /// sentinel announces a new master (`+switch-master`), or an operation finds its server
    /// read-only, no longer a master or not answering in time, the store replaces its
    /// connections; meanwhile operations fail with [`Error::Unavailable`] within their timeout.
    /// See the [Redis guide](crate::guide::redis) for what a failover can lose.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use ws_session::RedisStore;
    ///
    /// # async fn run() -> ws_session::Result<()> {
    /// let sentinels = ["10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"];
    /// let store = RedisStore::connect_sentinel(&sentinels, "mymaster", "app", Duration::from_secs(3600))
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// For a master or sentinels behind a password or TLS, build the redis crate's
    /// `SentinelClient` with its `SentinelClientBuilder` and use
    /// [`from_sentinel`](Self::from_sentinel).
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] for no sentinel or a malformed address; [`Error::Unavailable`] when
    /// no master answers within the default timeout of 2 seconds.
    pub async fn connect_sentinel<S: AsRef<str>>(
        sentinels: &[S],
        master: &str,
        prefix: impl Into<String>,
        ttl: Duration,
    ) -> Result<Self> {
        let urls: Vec<String> = sentinels
            .iter()
            .map(|address| sentinel_url(address.as_ref()))
            .collect();
        if urls.is_empty() {
            return Err(Error::Backend("no Redis Sentinel address given".into()));
        }
        let client =
            SentinelClient::build(urls, master.to_owned(), None, SentinelServerType::Master)
                .map_err(redis_error)?;
        let store = RedisStore::from_sentinel(client, master, prefix, ttl);
        store.run(&Command::new("PING")).await?;
        Ok(store)
    }

    /// A store on the master `master` of `client`, a client of the redis crate configured with
    /// the sentinels' addresses (and any password or TLS setting of the sentinels and of the
    /// master). Nothing is connected yet: the first operation connects. As
    /// [`connect_sentinel`](Self::connect_sentinel), the store follows the master through
    /// failovers and has a pub/sub source for its hub.
    ///
    /// Call it within a Tokio runtime: it starts the task that listens for `+switch-master`.
    pub fn from_sentinel(
        client: SentinelClient,
        master: &str,
        prefix: impl Into<String>,
        ttl: Duration,
    ) -> Self {
        let client = Arc::new(Mutex::new(client));
        let pool = pool_builder().build_unchecked(SentinelManager::new(Arc::clone(&client)));
        let mut store = RedisStore::on(Pool::Sentinel(pool), prefix.into(), ttl);
        Arc::make_mut(&mut store.inner).pubsub = Some(PubSubSource::Sentinel(Arc::clone(&client)));
        let watcher = Watcher {
            connections: Arc::downgrade(&store.inner.connections),
            client,
            master: master.to_owned(),
            timeout: DEFAULT_TIMEOUT,
        };
        tokio::spawn(watcher.run());
        store
    }
}

/// `address` as the URL of a sentinel: `host:port` becomes `redis://host:port`.
fn sentinel_url(address: &str) -> String {
    if address.contains("://") {
        address.to_owned()
    } else {
        format!("redis://{address}")
    }
}

/// Listens on a sentinel for `+switch-master` of one master, and moves the store's
/// connections to each new master as soon as it is named, without waiting for an operation
/// to fail on the old one (which, paused or cut off, might still answer later as a master
/// and take writes that the new master never sees).
struct Watcher {
    /// The store's connections; the watcher ends once the store is gone.
    connections: Weak<Connections>,
    client: Arc<Mutex<SentinelClient>>,
    master: String,
    timeout: Duration,
}

impl Watcher {
    async fn run(self) {
        let mut backoff = MIN_BACKOFF;
        while self.connections.strong_count() > 0 {
            match self.listen().await {
                Ok(()) => return,
                Err(error) => {
                    tracing::debug!(%error, retry_in = ?backoff, "cannot listen to Redis Sentinel");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Listens on one sentinel until its connection breaks (an error) or the store is gone.
    async fn listen(&self) -> std::result::Result<(), ::redis::RedisError> {
        let opened = async {
            let sentinel = self.client.lock().await.async_get_sentinel_client().await?;
            let mut pubsub = sentinel.get_async_pubsub().await?;
            pubsub.subscribe(SWITCH_MASTER).await?;
            Ok::<_, ::redis::RedisError>(pubsub)
        };
        let mut pubsub = match tokio::time::timeout(self.timeout, opened).await {
            Ok(opened) => opened?,
            Err(_) => return Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()),
        };
        let mut messages = pubsub.on_message();
        loop {
            tokio::select! {
                message = messages.next() => {
                    let Some(message) = message else {
                        return Err(std::io::Error::from(std::io::ErrorKind::ConnectionReset).into());
                    };
                    let payload = message.get_payload_bytes();
                    if names_master(payload, &self.master) {
                        let Some(connections) = self.connections.upgrade() else {
                            return Ok(());
                        };
                        tracing::info!(
                            master = %self.master,
                            "Redis Sentinel named a new master; moving the connections"
                        );
                        connections.switches.send_modify(|switches| *switches += 1);
                        connections.pool.heal(Check::Replace, self.timeout).await;
                    }
                }
                () = tokio::time::sleep(LOOK_AGAIN) => {
                    if self.connections.strong_count() == 0 {
                        return Ok(());
                    }
                }
            }
        }
    }
}

/// Whether a `+switch-master` payload (`name old-ip old-port new-ip new-port`) is about
/// `master`.
fn names_master(payload: &[u8], master: &str) -> bool {
    payload
        .split(|byte| *byte == b' ')
        .next()
        .is_some_and(|name| name == master.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_become_urls_and_switches_are_told_apart_by_name() {
        assert_eq!(sentinel_url("10.0.0.1:26379"), "redis://10.0.0.1:26379");
        assert_eq!(sentinel_url("redis://s1:26379"), "redis://s1:26379");
        assert!(names_master(
            b"mymaster 127.0.0.1 1 127.0.0.1 2",
            "mymaster"
        ));
        assert!(!names_master(
            b"mymaster2 127.0.0.1 1 127.0.0.1 2",
            "mymaster"
        ));
        assert!(!names_master(b"", "mymaster"));
    }
}
