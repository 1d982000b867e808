//! [`RedisStore`]: sessions in Redis (7 or later) or Valkey, shared by every server instance.
//!
//! # Layout
//!
//! On one server (alone or behind Sentinel), with the prefix `app`, the sessions and the user
//! index are:
//!
//! | key                          | type | holds |
//! |------------------------------|------|-------|
//! | `app:session:{id}`           | Hash | the session |
//! | `app:user_sessions:{user}`   | Set  | the ids of the user's sessions |
//!
//! On a Redis Cluster the same names carry a hash tag after their kind
//! (`app:session:{T}:{id}`, `app:user_sessions:{T}:{user}`, where `T` is the user's slot tag,
//! which the session id starts with), so that each operation's keys share a slot. The hub's
//! rooms, the detached sessions of resume and the hub's history add more keys; every name is
//! built in `keys.rs`, whose table lists them all, and the [Redis guide](crate::guide::redis)
//! describes both layouts.
//!
//! Fields of a session hash:
//!
//! | field              | value |
//! |--------------------|-------|
//! | `data:{key}`       | the value of data key `key`, as compact JSON text |
//! | `meta:user_id`     | the user the session belongs to |
//! | `meta:created_at`  | creation time, milliseconds since the Unix epoch, in decimal |
//! | `meta:last_active` | time of the last write or touch, in the same unit |
//! | `meta:epoch`       | which attachment holds the session (1, one more per resume) |
//! | `meta:since`       | the hub offset when the session was created |
//! | `meta:node`, `meta:rooms`, `meta:token`, `meta:detached` | the hub node holding its connection, its room count, the SHA-256 of its resume token, when it was detached |
//! | `meta:set_until`   | a time (Redis's clock, ms) until which the user set is known to live |
//! | `meta:lives_until` | when (Redis's clock, ms) the TTL its creation or last renewing write gave it runs out |
//! | `meta:bytes`       | the bytes of its data keys and values, checked against `Limits::max_session_bytes` |
//!
//! Data fields always start with `data:`, so no data key can collide with a `meta:` field.
//!
//! ```text
//! $ redis-cli HGETALL app:session:3f2a...
//! 1) "meta:user_id"      2) "alice"
//! 3) "meta:created_at"   4) "1700000000000"
//! 5) "meta:last_active"  6) "1700000004200"
//! 7) "data:preferences"  8) "{\"theme\":\"dark\"}"
//! $ redis-cli SMEMBERS app:user_sessions:alice
//! 1) "3f2a..."
//! ```
//!
//! # TTLs
//!
//! Every key carries a TTL. A session hash expires [`ttl`](SessionStore::ttl) after its last
//! [`touch`](SessionStore::touch) or keep-alive, and at least 63/64 of it after its last write;
//! writes and touches also set `meta:last_active`, the keep-alive does not. Renewing the TTL
//! costs Redis more than the write itself, so a write renews it only when the hash's
//! `meta:lives_until` (written by its creation and by each renewing write) is less than 63/64
//! of a TTL away: a session written all the time is renewed about once per 64th of its TTL, and
//! at most once a second; a session written less often, on every write. A write that does not
//! renew moves no expiry, so it has nothing to keep alive either. A detach, the only script that
//! gives a hash a shorter TTL, deletes the field.
//!
//! The keys that index sessions (a user's set, a room's members, a session's rooms) live
//! longer than the sessions they index: whenever a script sets a session's TTL, it makes sure
//! that the session's user set and rooms live at least four TTLs and a second more, giving them
//! five TTLs and a second when they would not. So a set always outlives its longest-lived
//! member, and the keep-alive of a layer's open sessions (see
//! [`SessionLayer::refresh_interval`](crate::SessionLayer::refresh_interval)) costs one
//! `PEXPIRE` per session and tick, plus one per index key every two TTLs. The session hash
//! remembers, in `meta:set_until`, until when its user set is known to live (written at
//! creation; no script shortens a set's TTL or deletes a set while one of its sessions lives),
//! so a write reads the set's TTL only when that time is less than four TTLs and a second away:
//! about once per TTL for a session written all the time. A [`touch`](SessionStore::touch)
//! always reads it, so a set whose TTL was changed behind the store's back is repaired by the
//! next touch. Ids of expired sessions stay in the set until
//! [`get_user_sessions`](SessionStore::get_user_sessions) prunes them, or the set itself
//! expires.
//!
//! # Round trips and atomicity
//!
//! Each operation is one command: `HGETALL` for [`get_session`](SessionStore::get_session),
//! `HMGET` for [`get_session_data`](SessionStore::get_session_data), and a Lua script (sent as
//! `EVALSHA`) for everything else. Scripts run atomically, so server instances writing
//! different keys of one session at the same time never lose each other's writes, and a write
//! to a session that has expired fails without recreating any part of it.
//!
//! Writes (`set_session_data`, `update_session_data`, `delete_session_data`,
//! `clear_session_data`, `touch`) that are in the air at the same time share one call of the
//! write script: a *group commit*. A lone write goes out at once; writes that arrive while
//! four calls are in flight queue for the next call, at most 64 sessions and 256 KiB of
//! arguments per call. The script applies them in order, each atomically and with its own
//! checks, and answers each apart, so a write that is refused (or finds a key of the wrong
//! type) changes nothing and leaves the others as they are; each caller keeps its own timeout.
//!
//! On one server the scripts derive the user set's key from the session's `meta:user_id`, so
//! they touch keys that are not passed as `KEYS`: that layout needs a single Redis master, at a
//! fixed address ([`RedisStore::connect`]) or found through Redis Sentinel
//! ([`RedisStore::connect_sentinel`], which follows the master through failovers). On a Redis
//! Cluster ([`RedisStore::connect_cluster`]) every script declares every key it touches, all of
//! one slot, and an operation that also writes a key of another slot makes a second call there
//! (see `cluster.rs`).
//!
//! The scripts carry the store's prefixes, TTL and key limit as constants, so stores configured
//! differently run scripts of their own. A store loads its scripts whenever Redis answers
//! `NOSCRIPT`: on a new or restarted server, or after `SCRIPT FLUSH`.

mod cluster;
mod cluster_pool;
mod command;
mod conn;
mod group_commit;
pub(crate) mod hub;
mod keep_alive;
pub(crate) mod keys;
mod master;
mod pool;
mod reply;
#[cfg(test)]
mod resend_tests;
mod resume;
mod rooms;
mod scripts;
mod sentinel;
#[cfg(test)]
mod tests;
mod write;

use std::fmt;
use std::sync::{Arc, Weak};
use std::time::Duration;

use ::redis::Value;
use bb8_redis::RedisConnectionManager;
use serde_json::Value as Json;

use crate::error::{Error, Result};
use crate::limits::Limits;
use crate::session::record::{Session, SessionData};
use crate::store::SessionStore;
use crate::store::attachment::{Attach, Claim, Claimed, Detach, Detached};
use crate::store::backend::Backend;
use crate::store::keep_alive::Indexes;
use crate::store::message::Member;
use crate::store::subscriber::Subscriber;
use crate::store::transport::Transport;
use cluster::by_slot;
use command::Command;
use conn::{DEFAULT_TIMEOUT, pool_builder, redis_error};
use group_commit::GroupCommit;
use keys::{Keys, Layout, Slot};
use pool::{Connections, Pool, PubSubSource};
use reply::{bytes, decode_json, decode_session, hash_fields, missing_field, string, unexpected};
use scripts::Scripts;
use write::Write;

/// `url` as it may be logged: the password of a `redis://user:password@host` URL replaced by
/// `***`. Text that is not a URL is not shown at all.
///
/// ```
/// use ws_session::store::redis::redacted_url;
///
/// assert_eq!(redacted_url("redis://app:s3cret@db:6379/0"), "redis://app:***@db:6379/0");
/// assert_eq!(redacted_url("redis://db:6379"), "redis://db:6379");
/// assert_eq!(redacted_url("not a url s3cret"), "(not a URL)");
/// ```
pub fn redacted_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) => {
            if parsed.password().is_some() {
                // A URL with a password has a host, so this cannot fail.
                let _ = parsed.set_password(Some("***"));
            }
            parsed.to_string()
        }
        Err(_) => "(not a URL)".to_owned(),
    }
}

/// The connection pool a [`RedisStore`] runs on.
pub type RedisPool = bb8::Pool<RedisConnectionManager>;

/// Sessions in Redis, shared by every server instance that uses the same prefix.
///
/// See the [module documentation](self) for the keys and fields it writes. Cloning is cheap:
/// clones share one pool and configuration.
///
/// ```no_run
/// use std::time::Duration;
/// use ws_session::{RedisStore, SessionStore};
///
/// # async fn run() -> ws_session::Result<()> {
/// let store = RedisStore::connect("redis://127.0.0.1/", "app", Duration::from_secs(24 * 3600))
///     .await?
///     .timeout(Duration::from_millis(500));
///
/// store.create_session("c1", "alice").await?;
/// store.set_session_data("c1", "theme", "dark".into()).await?;
/// assert_eq!(store.get_session_data("c1", "theme").await?, Some("dark".into()));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    /// The pool, and what the store's clones share to keep it healthy.
    connections: Arc<Connections>,
    /// The names of the store's keys and of its hub's channels.
    keys: Arc<Keys>,
    /// Opens the hub's pub/sub connections, which a pool cannot give.
    pubsub: Option<PubSubSource>,
    ttl: Duration,
    limits: Limits,
    /// The store's scripts, which carry its prefixes, TTL and key limit.
    scripts: Arc<Scripts>,
    timeout: Duration,
    /// The writes waiting to share the next call of the write script. Clones of the store
    /// share it; a store given other limits (other scripts) gets its own.
    commit: Arc<GroupCommit>,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let inner = &*self.inner;
        f.debug_struct("RedisStore")
            .field("prefix", &inner.keys.prefix)
            .field("ttl", &inner.ttl)
            .field("timeout", &inner.timeout)
            .field("limits", &inner.limits)
            .field("connections", &inner.connections.pool.connections())
            .finish()
    }
}

impl RedisStore {
    /// A store on `pool`, keeping its keys under `prefix` and its sessions for `ttl`.
    ///
    /// The pool's configuration is the caller's. Whatever it is, a connection that an operation
    /// finds dead is replaced in place, so the store recovers from a Redis outage; a pool with
    /// bb8's default `test_on_check_out(true)` also pays a `PING` per operation, which
    /// [`connect`](Self::connect)'s pool does not. Limits are [`Limits::default`] and the operation timeout
    /// is 2 seconds until changed with [`limits`](Self::limits) and [`timeout`](Self::timeout).
    ///
    /// The hub needs a pub/sub connection of its own, which a pool cannot give: give the store
    /// a client for it with [`pubsub_client`](Self::pubsub_client) (a store made by
    /// [`connect`](Self::connect) has one). Without it, upgrades behind a
    /// [`SessionLayer`](crate::SessionLayer) on this store fail with `503` and an error in the
    /// log.
    pub fn new(pool: RedisPool, prefix: impl Into<String>, ttl: Duration) -> Self {
        RedisStore::on(
            Pool::Server(pool),
            Keys::new(prefix.into(), Layout::Server),
            ttl,
        )
    }

    /// A store on `pool`, naming its keys with `keys`, with the default limits and timeout and
    /// no pub/sub source.
    fn on(pool: Pool, keys: Keys, ttl: Duration) -> Self {
        let keys = Arc::new(keys);
        let limits = Limits::default();
        let scripts = scripts_for(&keys, ttl, &limits);
        RedisStore {
            inner: Arc::new(Inner {
                connections: Connections::new(pool),
                keys,
                pubsub: None,
                ttl,
                limits,
                scripts,
                timeout: DEFAULT_TIMEOUT,
                commit: Arc::default(),
            }),
        }
    }

    /// Connects to the Redis server at `url` (`redis://[user:password@]host[:port][/db]`) and
    /// returns a store on a new pool, after checking with a `PING` that the server answers.
    ///
    /// The pool holds one connection, on which concurrent operations are pipelined. It waits
    /// at most 2 seconds for a new connection and sends no health check on checkout: a connection lost in an outage is replaced by the operation that finds it
    /// dead, so the store works again once Redis is back.
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] for a malformed URL, or a server that is a node of a Redis Cluster
    /// (not supported yet); [`Error::Unavailable`] when the server does not answer within the
    /// default timeout of 2 seconds.
    pub async fn connect(url: &str, prefix: impl Into<String>, ttl: Duration) -> Result<Self> {
        let manager = RedisConnectionManager::new(url).map_err(redis_error)?;
        let client = ::redis::Client::open(url).map_err(redis_error)?;
        let store = RedisStore::new(pool_builder().build_unchecked(manager), prefix, ttl)
            .pubsub_client(client);
        store.run(&Command::new("PING")).await?;
        store.refuse_cluster().await?;
        Ok(store)
    }

    /// Sets the size limits the store enforces.
    #[must_use]
    pub fn limits(mut self, limits: Limits) -> Self {
        let inner = Arc::make_mut(&mut self.inner);
        inner.scripts = scripts_for(&inner.keys, inner.ttl, &limits);
        inner.commit = Arc::default();
        inner.limits = limits;
        self
    }

    /// Sets the client that opens the hub's pub/sub connection (one per
    /// [`SessionLayer`](crate::SessionLayer) on this store), for a store made with
    /// [`new`](Self::new). Use the same server as the pool.
    #[must_use]
    pub fn pubsub_client(mut self, client: ::redis::Client) -> Self {
        Arc::make_mut(&mut self.inner).pubsub = Some(PubSubSource::Server(client));
        self
    }

    /// Sets the time an operation may take, from waiting for a pooled connection to the
    /// server's answer (default 2 seconds). An operation that runs out of time fails with
    /// [`Error::Unavailable`].
    ///
    /// The wait for a pooled connection and the wait for the answer share this time: the
    /// answer is awaited for whatever the checkout left of it.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        Arc::make_mut(&mut self.inner).timeout = timeout;
        self
    }

    /// The prefix of every key the store writes.
    pub fn prefix(&self) -> &str {
        &self.inner.keys.prefix
    }

    /// The names of the store's keys and channels.
    pub(crate) fn keys(&self) -> &Keys {
        &self.inner.keys
    }

    /// Whether the store runs on a Redis Cluster.
    pub(crate) fn on_cluster(&self) -> bool {
        self.inner.keys.layout == Layout::Cluster
    }

    /// Checks session id `id` and returns the slot segment of its keys.
    fn session_slot(&self, id: &str) -> Result<Slot> {
        self.inner.limits.check_session_id(id)?;
        Ok(self.inner.keys.session_slot(id)?)
    }

    /// Where the hub's pub/sub connections go, if the store knows.
    pub(in crate::store::redis) fn pubsub_source(&self) -> Option<&PubSubSource> {
        self.inner.pubsub.as_ref()
    }

    /// Changes each time the sentinels name a new master (never on one server).
    pub(in crate::store::redis) fn master_switches(&self) -> tokio::sync::watch::Receiver<u64> {
        self.inner.connections.switches.subscribe()
    }

    /// The time one operation may take.
    pub(crate) fn operation_timeout(&self) -> Duration {
        self.inner.timeout
    }

    /// The connection pool of a store on one server (made by [`connect`](Self::connect) or
    /// [`new`](Self::new)); `None` for a store through Sentinel, whose connections go wherever
    /// the sentinels name the master, and for a store on a Redis Cluster.
    pub fn pool(&self) -> Option<&RedisPool> {
        match &self.inner.connections.pool {
            Pool::Server(pool) => Some(pool),
            Pool::Sentinel(_) | Pool::Cluster(_) => None,
        }
    }

    /// Runs a script that answers with a status code, and maps the code to a result.
    async fn run_status(&self, id: &str, command: &Command<'_>) -> Result<()> {
        self.run_changed(id, command).await.map(drop)
    }

    /// Runs a script that answers with a status code: `true` for `OK`, `false` for
    /// `UNCHANGED`, and the error each other code stands for.
    async fn run_changed(&self, id: &str, command: &Command<'_>) -> Result<bool> {
        let reply = self.run(command).await?;
        self.status(id, reply)
    }

    /// The meaning of a script's status code for session `id`: `true` for `OK`, `false` for
    /// `UNCHANGED`, and the error each other code stands for. An error reply of Redis in its
    /// place (a write of the write script refused by a failed read) is that error.
    fn status(&self, id: &str, reply: Value) -> Result<bool> {
        match reply {
            Value::Int(scripts::OK) => Ok(true),
            Value::Int(scripts::UNCHANGED) => Ok(false),
            Value::Int(scripts::NOT_FOUND) => Err(Error::not_found(id)),
            Value::Int(scripts::NO_OWNER) => Err(missing_field(id, META_USER_ID)),
            Value::Int(scripts::TOO_MANY_KEYS) => {
                Err(Error::InvalidInput(crate::InvalidInput::TooManyKeys {
                    id: id.to_owned(),
                    max: self.inner.limits.max_keys,
                }))
            }
            Value::Int(scripts::TAKEN) => Err(Error::already_exists(id)),
            Value::Array(items) if items.first() == Some(&Value::Int(scripts::TOO_LARGE)) => {
                let len = match items.get(1) {
                    Some(Value::Int(len)) => usize::try_from(*len).unwrap_or(usize::MAX),
                    _ => usize::MAX,
                };
                Err(Error::InvalidInput(crate::InvalidInput::SessionTooLarge {
                    id: id.to_owned(),
                    len,
                    max: self.inner.limits.max_session_bytes,
                }))
            }
            Value::Int(scripts::TOO_MANY_ROOMS) => {
                Err(Error::InvalidInput(crate::InvalidInput::TooManyRooms {
                    id: id.to_owned(),
                    max: self.inner.limits.max_rooms,
                }))
            }
            Value::ServerError(err) => Err(redis_error(err.into())),
            other => Err(unexpected("a status code", &other)),
        }
    }

    /// Sends a write of `id` through the group commit and maps its status.
    async fn write_status(&self, id: &str, write: Write) -> Result<()> {
        let reply = self.commit(write).await?;
        self.status(id, reply).map(drop)
    }

    /// A command that names the session hash of `id` (whose keys have the slot segment
    /// `slot`) as its first argument.
    fn on_session(&self, name: &'static str, id: &str, slot: Slot) -> Command<'_> {
        let mut command = Command::new(name);
        command.key(&self.inner.keys.session, slot, id);
        command
    }
}

/// The scripts of a store with these prefixes, TTL and limits.
fn scripts_for(keys: &Keys, ttl: Duration, limits: &Limits) -> Arc<Scripts> {
    Arc::new(Scripts::new(&scripts::Config {
        keys,
        strict: keys.layout == Layout::Cluster && cfg!(debug_assertions),
        ttl,
        max_keys: limits.max_keys,
        max_rooms: limits.max_rooms,
        max_session_bytes: limits.max_session_bytes,
        max_user_sessions: limits.max_user_sessions,
    }))
}

impl SessionStore for RedisStore {
    fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    fn enforced_limits(&self) -> Limits {
        self.inner.limits
    }

    fn new_session_id(&self, user_id: &str) -> String {
        self.inner.keys.new_session_id(Some(user_id))
    }

    async fn create_session(&self, id: &str, user_id: &str) -> Result<Session> {
        self.create(id, user_id, None).await
    }

    async fn get_session(&self, id: &str) -> Result<Option<Session>> {
        let slot = match self.session_slot(id) {
            Ok(slot) => slot,
            // No session can have an id that does not fit the layout.
            Err(Error::InvalidInput(crate::InvalidInput::IdWithoutSlot { .. })) => return Ok(None),
            Err(error) => return Err(error),
        };
        let reply = self.run(&self.on_session("HGETALL", id, slot)).await?;
        let fields = hash_fields(reply)?;
        if fields.is_empty() {
            return Ok(None);
        }
        decode_session(id, fields).map(Some)
    }

    async fn set_session_data(&self, id: &str, key: &str, value: Json) -> Result<()> {
        let inner = &*self.inner;
        let slot = self.session_slot(id)?;
        let write = Write::set(
            &inner.keys,
            &inner.limits,
            id,
            slot,
            [(key, &value)].into_iter(),
        )?;
        self.write_status(id, write).await
    }

    async fn get_session_data(&self, id: &str, key: &str) -> Result<Option<Json>> {
        let limits = &self.inner.limits;
        let slot = self.session_slot(id)?;
        limits.check_key(key)?;
        let mut command = self.on_session("HMGET", id, slot);
        command.arg(META_USER_ID).joined(DATA, key);
        let mut items = match self.run(&command).await? {
            Value::Array(items) if items.len() == 2 => items.into_iter(),
            other => return Err(unexpected("two HMGET values", &other)),
        };
        let (user, value) = (items.next(), items.next());
        if matches!(user, Some(Value::Nil)) {
            return Err(Error::not_found(id));
        }
        match value {
            Some(Value::Nil) | None => Ok(None),
            Some(value) => {
                let text = bytes(value)?;
                decode_json(id, key, &text).map(Some)
            }
        }
    }

    async fn update_session_data(&self, id: &str, data: SessionData) -> Result<()> {
        let limits = &self.inner.limits;
        let slot = self.session_slot(id)?;
        limits.check_key_count(id, data.len())?;
        let entries = data.iter().map(|(k, v)| (k.as_str(), v));
        let write = Write::set(&self.inner.keys, limits, id, slot, entries)?;
        self.write_status(id, write).await
    }

    async fn delete_session_data(&self, id: &str, key: &str) -> Result<()> {
        let slot = self.session_slot(id)?;
        self.inner.limits.check_key(key)?;
        let write = Write::delete(&self.inner.keys, id, slot, key);
        self.write_status(id, write).await
    }

    async fn clear_session_data(&self, id: &str) -> Result<()> {
        let slot = self.session_slot(id)?;
        let write = Write::clear(&self.inner.keys, id, slot);
        self.write_status(id, write).await
    }

    async fn remove_session(&self, id: &str) -> Result<()> {
        let slot = self.session_slot(id)?;
        if self.on_cluster() {
            return self.remove_on_cluster(id, slot).await;
        }
        let mut command = Command::script(&self.inner.scripts.remove, 1);
        command.key(&self.inner.keys.session, slot, id).arg(id);
        self.run_status(id, &command).await
    }

    async fn get_user_sessions(&self, user_id: &str) -> Result<Vec<Session>> {
        self.inner.limits.check_user_id(user_id)?;
        let items = match self.list(user_id).await? {
            Value::Array(items) if items.len() % 2 == 0 => items,
            other => return Err(unexpected("pairs of session id and fields", &other)),
        };
        let mut sessions = Vec::with_capacity(items.len() / 2);
        let mut items = items.into_iter();
        while let (Some(id), Some(fields)) = (items.next(), items.next()) {
            let id = string(id)?;
            sessions.push(decode_session(&id, hash_fields(fields)?)?);
        }
        Ok(sessions)
    }

    async fn touch(&self, ids: &[String]) -> Result<Vec<String>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut slots = Vec::with_capacity(ids.len());
        for id in ids {
            slots.push(self.session_slot(id)?);
        }
        // On a cluster, one touch per slot, all at once: each is one call of the write script.
        let touches = by_slot(ids, &slots).into_iter().map(|(slot, ids)| {
            let write = Write::touch(&self.inner.keys, slot, &ids);
            self.commit(write)
        });
        let mut missing = Vec::new();
        for answer in futures_util::future::join_all(touches).await {
            match answer? {
                Value::Array(gone) => {
                    for id in gone {
                        missing.push(string(id)?);
                    }
                }
                Value::ServerError(err) => return Err(redis_error(err.into())),
                other => return Err(unexpected("a list of session ids", &other)),
            }
        }
        Ok(missing)
    }
}

const META_USER_ID: &str = "meta:user_id";
const META_NODE: &str = "meta:node";
const META_CREATED_AT: &str = "meta:created_at";
const META_LAST_ACTIVE: &str = "meta:last_active";
const DATA: &str = "data:";

impl Backend for RedisStore {
    fn transport(&self, subscriber: Weak<dyn Subscriber>, node_id: &Arc<str>) -> Transport {
        Transport::Redis(hub::transport::RedisTransport::new(
            self.clone(),
            subscriber,
            Arc::clone(node_id),
        ))
    }

    fn fresh_session_id(&self, user_id: Option<&str>) -> String {
        self.inner.keys.new_session_id(user_id)
    }

    async fn create_attached_session(
        &self,
        id: &str,
        user_id: &str,
        attach: &Attach<'_>,
    ) -> Result<Session> {
        self.create(id, user_id, Some(attach)).await
    }

    async fn claim_session(&self, claim: &Claim<'_>) -> Result<Claimed> {
        self.claim(claim).await
    }

    async fn detach_session(&self, id: &str, epoch: u64, detach: &Detach) -> Result<Detached> {
        self.detach(id, epoch, detach).await
    }

    async fn session_node(&self, id: &str) -> Result<Option<String>> {
        self.node_of(id).await
    }

    async fn join_room(&self, id: &str, room: &str) -> Result<bool> {
        self.join(id, room).await
    }

    async fn leave_room(&self, id: &str, room: &str) -> Result<bool> {
        self.leave(id, room).await
    }

    async fn session_rooms(&self, id: &str) -> Result<Vec<String>> {
        self.rooms_of(id).await
    }

    async fn room_members(&self, room: &str) -> Result<Vec<Member>> {
        self.members_of(room).await
    }

    async fn keep_alive(&self, ids: &[Arc<str>]) -> Result<Vec<String>> {
        self.keep_sessions_alive(ids).await
    }

    async fn keep_indexes(&self, indexes: &Indexes) -> Result<()> {
        self.keep_index_keys(indexes).await
    }

    async fn remove_user_sessions(&self, user_id: &str) -> Result<Vec<String>> {
        self.remove_user(user_id).await
    }
}
