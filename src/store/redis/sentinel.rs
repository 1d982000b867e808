//! A [`RedisStore`] through Redis Sentinel: its constructors, and the task that moves the
//! store to each master the sentinels name.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use ::redis::RedisConnectionInfo;
use futures_util::StreamExt;

use super::command::Command;
use super::conn::{DEFAULT_TIMEOUT, pool_builder, redis_error, server_url};
use super::keys::{Keys, Layout};
use super::master::MasterFinder;
use super::pool::{Check, Pool, PubSubSource, SentinelManager};
use super::{Connections, RedisStore};
use crate::error::{Error, Result};

/// The channel on which the sentinel that leads a failover announces the replica it is about
/// to promote (`SLAVEOF NO ONE` follows).
const SELECTED: &str = "+selected-slave";
/// The channel on which the sentinel that leads a failover announces the replica it promoted.
const PROMOTED: &str = "+promoted-slave";
/// The channel on which every sentinel announces a new master.
const SWITCHED: &str = "+switch-master";
/// How often a store asks a selected replica whether it is master yet, and for how long.
const PROMOTION_POLL: Duration = Duration::from_millis(20);
const PROMOTION_WAIT: Duration = Duration::from_secs(10);
/// The first wait before the watcher connects to a sentinel again, doubled up to `MAX_BACKOFF`.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// How often a watcher with nothing to do looks whether its store is gone.
const LOOK_AGAIN: Duration = Duration::from_secs(5);

impl RedisStore {
    /// Connects through Redis Sentinel to the master named `master` that the sentinels at
    /// `sentinels` (`host:port`, or `redis://[:password@]host:port` for a sentinel behind a
    /// password) watch, and returns a store on it, after checking with a `PING` that the
    /// master answers.
    ///
    /// Every connection the store opens (its pool's and its hub's pub/sub connection) asks
    /// every sentinel for the master again, goes to the one most of them name, and checks that
    /// the server calls itself master. The
    /// store listens to every sentinel: when the replica a sentinel selects for promotion
    /// answers as master, or a sentinel announces a new master, or an operation finds its
    /// server read-only, no longer a master or not answering in time, the store replaces its
    /// connections; meanwhile operations fail with [`Error::Unavailable`] within their
    /// timeout. See the [Redis guide](crate::guide::redis) for what the store does in a
    /// failover and what a failover can lose.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use ws_session::RedisStore;
    ///
    /// # async fn run() -> ws_session::Result<()> {
    /// let sentinels = ["10.0.0.1:26379", "10.0.0.2:26379", "10.0.0.3:26379"];
    /// let store =
    ///     RedisStore::connect_sentinel(&sentinels, "mymaster", "app", Duration::from_secs(3600))
    ///         .await?;
    /// # Ok(())
    /// # }
    /// ```
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
        let settings = RedisConnectionInfo::default();
        RedisStore::connect_sentinel_with(sentinels, master, settings, prefix, ttl).await
    }

    /// As [`connect_sentinel`](Self::connect_sentinel), with `settings` telling how to talk to
    /// the master and its replicas: user, password, database, protocol (the redis crate's
    /// `RedisConnectionInfo`).
    ///
    /// # Errors
    ///
    /// As [`connect_sentinel`](Self::connect_sentinel).
    pub async fn connect_sentinel_with<S: AsRef<str>>(
        sentinels: &[S],
        master: &str,
        settings: RedisConnectionInfo,
        prefix: impl Into<String>,
        ttl: Duration,
    ) -> Result<Self> {
        let urls: Vec<String> = sentinels
            .iter()
            .map(|address| server_url(address.as_ref()))
            .collect();
        if urls.is_empty() {
            return Err(Error::Backend("no Redis Sentinel address given".into()));
        }
        let listened = urls
            .iter()
            .map(|url| ::redis::Client::open(url.as_str()))
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(redis_error)?;
        let finder = Arc::new(MasterFinder::new(
            listened.clone(),
            master.to_owned(),
            settings,
        ));
        let pool = pool_builder().build_unchecked(SentinelManager::new(Arc::clone(&finder)));
        let keys = Keys::new(prefix.into(), Layout::Server);
        let mut store = RedisStore::on(Pool::Sentinel(pool), keys, ttl);
        Arc::make_mut(&mut store.inner).pubsub = Some(PubSubSource::Sentinel(Arc::clone(&finder)));
        let watch = Arc::new(Watch {
            connections: Arc::downgrade(&store.inner.connections),
            finder,
            master: master.to_owned(),
            named: std::sync::Mutex::new(None),
            awaiting: AtomicBool::new(false),
            timeout: DEFAULT_TIMEOUT,
        });
        for sentinel in listened {
            tokio::spawn(Arc::clone(&watch).listen_to(sentinel));
        }
        store.run(&Command::new("PING")).await?;
        Ok(store)
    }
}

/// Listens on every sentinel for the promotion of a replica of one master, and moves the
/// store's connections to each new master as soon as it answers as master (the leading
/// sentinel names the replica it selects; the store asks that replica until it is promoted)
/// or one sentinel names it, without waiting
/// for an operation to fail on the old one (which, paused or cut off, might answer later as a
/// master and take writes that the new master never sees), and without waiting for the hub's
/// subscriber to notice (on a paused master it never would).
struct Watch {
    /// The store's connections; the listeners end once the store is gone.
    connections: Weak<Connections>,
    /// Told of each new master, so that new connections try it first.
    finder: Arc<MasterFinder>,
    master: String,
    /// The last event acted on: its channel and the new master's address. The
    /// news of one promotion, heard from every sentinel, moves the connections once when the
    /// leading sentinel promotes the replica, and once more when a sentinel names it master:
    /// only then do the sentinels give its address to a new connection.
    named: std::sync::Mutex<Option<(String, (String, u16))>>,
    /// Set while one listener asks a selected replica whether it is master yet.
    awaiting: AtomicBool,
    timeout: Duration,
}

impl Watch {
    /// Listens to one sentinel, connecting again after a failure, until the store is gone.
    async fn listen_to(self: Arc<Self>, sentinel: ::redis::Client) {
        let mut backoff = MIN_BACKOFF;
        while self.connections.strong_count() > 0 {
            match self.listen(&sentinel).await {
                Ok(()) => return,
                Err(error) => {
                    tracing::debug!(%error, retry_in = ?backoff, "cannot listen to a Redis Sentinel");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Listens until the connection breaks (an error) or the store is gone.
    async fn listen(
        self: &Arc<Self>,
        sentinel: &::redis::Client,
    ) -> std::result::Result<(), ::redis::RedisError> {
        let opened = async {
            let mut pubsub = sentinel.get_async_pubsub().await?;
            pubsub.subscribe(&[SELECTED, PROMOTED, SWITCHED]).await?;
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
                    let channel = message.get_channel_name();
                    let Some(address) = new_master(channel, message.get_payload_bytes(), &self.master) else {
                        continue;
                    };
                    if channel == SELECTED {
                        if !self.awaiting.swap(true, Ordering::AcqRel) {
                            tokio::spawn(Arc::clone(self).await_promotion(address));
                        }
                    } else if !self.moved(channel, address).await {
                        return Ok(());
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

    /// Asks the replica at `address`, which a sentinel selected for promotion, whether it is
    /// master yet, until it is (then moves the connections there) or `PROMOTION_WAIT` has
    /// passed. The sentinels themselves notice the promotion up to a second later, at their
    /// next `INFO` of the replica.
    async fn await_promotion(self: Arc<Self>, address: (String, u16)) {
        let deadline = tokio::time::Instant::now() + PROMOTION_WAIT;
        while tokio::time::Instant::now() < deadline && self.connections.strong_count() > 0 {
            let (host, port) = address.clone();
            let check = self.finder.answers_as_master(host, port);
            if let Ok(true) = tokio::time::timeout(self.timeout, check).await {
                self.moved(PROMOTED, address).await;
                break;
            }
            tokio::time::sleep(PROMOTION_POLL).await;
        }
        self.awaiting.store(false, Ordering::Release);
    }

    /// Moves the store's connections to the master at `address`, unless an event of the same
    /// channel moved them there already; `false` when the store is gone.
    async fn moved(&self, channel: &str, address: (String, u16)) -> bool {
        let Some(connections) = self.connections.upgrade() else {
            return false;
        };
        let elsewhere = {
            let mut named = self
                .named
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let event = (channel.to_owned(), address);
            if named.as_ref() == Some(&event) {
                return true;
            }
            let elsewhere = named.as_ref().map(|(_, address)| address) != Some(&event.1);
            self.finder.announce(event.1.clone());
            *named = Some(event);
            elsewhere
        };
        tracing::info!(
            master = %self.master,
            "Redis Sentinel named a new master; moving the connections"
        );
        // The hub's subscriber moves once per new address: each move leaves a moment without
        // subscriptions. The pool's one connection is cheap to replace on every event.
        if elsewhere {
            connections.switches.send_modify(|switches| *switches += 1);
        }
        connections.pool.heal(Check::Replace, self.timeout).await;
        true
    }
}

/// The address (ip, port) of the new master of `master` that a sentinel event announces:
/// `+selected-slave` or `+promoted-slave` (`slave ip:port ip port @ name master-ip
/// master-port`), or
/// `+switch-master` (`name old-ip old-port new-ip new-port`).
fn new_master(channel: &str, payload: &[u8], master: &str) -> Option<(String, u16)> {
    let payload = std::str::from_utf8(payload).ok()?;
    let words: Vec<&str> = payload.split(' ').collect();
    let (name, ip, port) = match channel {
        SELECTED | PROMOTED => (*words.get(5)?, words.get(2)?, words.get(3)?),
        SWITCHED => (*words.first()?, words.get(3)?, words.get(4)?),
        _ => return None,
    };
    let port = port.parse().ok()?;
    (name == master).then(|| ((*ip).to_owned(), port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_become_urls_and_events_name_the_new_master_of_one_name() {
        assert_eq!(
            super::super::conn::server_url("10.0.0.1:26379"),
            "redis://10.0.0.1:26379"
        );
        assert_eq!(
            super::super::conn::server_url("redis://s1:26379"),
            "redis://s1:26379"
        );
        let switched = b"mymaster 127.0.0.1 1 127.0.0.2 2";
        assert_eq!(
            new_master(SWITCHED, switched, "mymaster"),
            Some(("127.0.0.2".to_owned(), 2))
        );
        assert_eq!(new_master(SWITCHED, switched, "other"), None);
        let promoted = b"slave 127.0.0.2:2 127.0.0.2 2 @ mymaster 127.0.0.1 1";
        assert_eq!(
            new_master(PROMOTED, promoted, "mymaster"),
            Some(("127.0.0.2".to_owned(), 2))
        );
        assert_eq!(
            new_master(SELECTED, promoted, "mymaster"),
            Some(("127.0.0.2".to_owned(), 2))
        );
        assert_eq!(new_master(PROMOTED, b"slave", "mymaster"), None);
        assert_eq!(new_master("+sdown", switched, "mymaster"), None);
    }
}
