//! A [`RedisStore`] on a Redis Cluster: its constructor, and the steps an operation takes
//! there beyond its one script call.
//!
//! On a cluster every script touches the keys of one slot, declared as its `KEYS` (see
//! `keys.rs` for the layout). A session's keys and its user's share a slot; the hub's keys
//! (its clock, the histories, the rooms' member sets) share another. So where a script on one
//! server also renews a user set, a room's set or a history, the script on a cluster leaves
//! that to a second call, in the other key's slot, made here before the operation answers:
//!
//! - a write that renewed a session's TTL names the session, and `keep_index.lua` keeps its
//!   user set and rooms alive past it (then the rooms' sets, in the hub's slot);
//! - a removal answers the session's rooms, and the session leaves the rooms' sets and loses
//!   its history in the hub's slot (see [`forget_in_hub`](RedisStore::forget_in_hub));
//! - a script that needs the keys of a user's other sessions (a listing, a create at the cap)
//!   answers `NEED_KEYS` when the caller did not declare them, and the store reads the user's
//!   set and calls again with them.

use std::sync::{Arc, Weak};
use std::time::Duration;

use ::redis::{IntoConnectionInfo, Value};
use futures_util::future::join_all;

use super::RedisStore;
use super::cluster_pool::{ClusterPool, WATCH_EVERY, cluster_client};
use super::command::Command;
use super::conn::{DEFAULT_TIMEOUT, Failure, redis_error, server_url};
use super::keys::{Keys, Layout, Slot, check_cluster_prefix};
use super::pool::{Connections, Pool, PubSubSource};
use super::reply::{string, unexpected};
use super::scripts::NEED_KEYS;
use super::write::Write;
use crate::error::{Error, Result};
use crate::store::envelope::Stream;

/// How many times an operation reads keys again after a script answered `NEED_KEYS` (a user
/// whose sessions change under it the whole time), before it fails.
pub(super) const KEY_READS: usize = 3;

impl RedisStore {
    /// Connects to the Redis Cluster that the nodes at `seeds` (`host:port`, or
    /// `redis://[user:password@]host:port`) belong to, and returns a store on it, after
    /// checking with a `PING` that it answers.
    ///
    /// The store keeps one connection to each master, follows slots as they move, and lays
    /// its keys out so that each atomic operation touches one slot while the sessions of
    /// different users spread over every master (see the [Redis guide](crate::guide::redis)).
    /// A session id on a cluster starts with its user's slot tag: make ids with
    /// [`new_session_id`](crate::SessionStore::new_session_id) (a
    /// [`SessionLayer`](crate::SessionLayer) does).
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use ws_session::RedisStore;
    ///
    /// # async fn run() -> ws_session::Result<()> {
    /// let seeds = ["10.0.0.1:6379", "10.0.0.2:6379", "10.0.0.3:6379"];
    /// let store = RedisStore::connect_cluster(&seeds, "app", Duration::from_secs(3600)).await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`Error::Backend`] for no seed, a malformed address, or a prefix holding `{` or `}`
    /// (which would make hash tags of their own); [`Error::Unavailable`] when the cluster does
    /// not answer within the default timeout of 2 seconds.
    pub async fn connect_cluster<S: AsRef<str>>(
        seeds: &[S],
        prefix: impl Into<String>,
        ttl: Duration,
    ) -> Result<Self> {
        let prefix = prefix.into();
        check_cluster_prefix(&prefix).map_err(|reason| Error::Backend(reason.into()))?;
        let urls: Vec<String> = seeds.iter().map(|seed| server_url(seed.as_ref())).collect();
        if urls.is_empty() {
            return Err(Error::Backend("no Redis Cluster node given".into()));
        }
        let seeds = urls
            .iter()
            .map(|url| url.as_str().into_connection_info())
            .collect::<std::result::Result<Vec<_>, _>>()
            .map_err(redis_error)?;
        let client = cluster_client(seeds.clone(), DEFAULT_TIMEOUT).map_err(redis_error)?;
        let conn = match tokio::time::timeout(DEFAULT_TIMEOUT, client.get_async_connection()).await
        {
            Ok(conn) => conn.map_err(redis_error)?,
            Err(_) => return Err(Error::timed_out(DEFAULT_TIMEOUT)),
        };
        let seed = seeds[0].clone();
        let keys = Keys::new(prefix, Layout::Cluster);
        let pool = Pool::Cluster(Arc::new(ClusterPool::new(seeds, conn, DEFAULT_TIMEOUT)));
        let mut store = RedisStore::on(pool, keys, ttl);
        Arc::make_mut(&mut store.inner).pubsub = Some(PubSubSource::Cluster(Box::new(seed)));
        tokio::spawn(watch(Arc::downgrade(&store.inner.connections)));
        store.run(&Command::new("PING")).await?;
        Ok(store)
    }

    /// The slot of `key`, as the cluster computes it.
    pub(super) async fn cluster_keyslot(&self, key: &str) -> Result<i64> {
        let mut command = Command::new("CLUSTER");
        command.arg("KEYSLOT").arg(key);
        match self.run(&command).await? {
            Value::Int(slot) => Ok(slot),
            other => Err(unexpected("a slot", &other)),
        }
    }

    /// The cluster's slot ranges, each with its master and replicas (`CLUSTER SLOTS`).
    pub(super) async fn cluster_slots(&self) -> Result<Vec<Value>> {
        let mut command = Command::new("CLUSTER");
        command.arg("SLOTS");
        match self.run(&command).await? {
            Value::Array(ranges) => Ok(ranges),
            other => Err(unexpected("the cluster's slots", &other)),
        }
    }

    /// The answer of one call of the write script on a cluster, `{results, renewed}`, as one
    /// result per write, after keeping alive the indexes of the sessions it renewed.
    pub(super) async fn cluster_results(
        &self,
        writes: &[Write],
        reply: Value,
    ) -> std::result::Result<Vec<Value>, Failure> {
        let malformed = |other: &Value| {
            Failure::Redis(::redis::RedisError::from((
                ::redis::ErrorKind::UnexpectedReturnType,
                "the write script did not answer one result per write",
                format!("{} writes, answer {other:?}", writes.len()),
            )))
        };
        let Value::Array(mut parts) = reply else {
            return Err(malformed(&reply));
        };
        let (Some(Value::Array(renewed)), Some(Value::Array(results))) = (parts.pop(), parts.pop())
        else {
            return Err(malformed(&Value::Array(parts)));
        };
        if results.len() != writes.len() {
            return Err(malformed(&Value::Array(results)));
        }
        let mut sessions = Vec::with_capacity(renewed.len() / 2);
        let mut renewed = renewed.into_iter();
        while let (Some(id), Some(user)) = (renewed.next(), renewed.next()) {
            if let (Ok(id), Ok(user)) = (string(id), string(user)) {
                sessions.push((id, user));
            }
        }
        self.keep_renewed(&sessions).await;
        Ok(results)
    }

    /// Keeps alive the user sets and rooms of `sessions` (id and user), whose TTLs a script
    /// renewed: `keep_index.lua` in each session's slot, then the rooms' sets in the hub's.
    /// A failure is logged and left to the next renewal or keep-alive: the operation that
    /// renewed the session succeeded.
    pub(super) async fn keep_renewed(&self, sessions: &[(String, String)]) {
        let keys = &self.inner.keys;
        let calls = sessions.iter().filter_map(|(id, user)| {
            let slot = keys.session_slot(id).ok()?;
            let mut command = Command::script(&self.inner.scripts.keep_index, 3);
            command
                .key(&keys.session, slot, id)
                .key(&keys.user_sessions, slot, user)
                .key(&keys.session_rooms, slot, id);
            Some(async move { self.run(&command).await })
        });
        let mut rooms = Vec::new();
        for answer in join_all(calls).await {
            match answer {
                Ok(Value::Array(names)) => {
                    rooms.extend(names.into_iter().filter_map(|name| string(name).ok()));
                }
                Ok(other) => tracing::debug!(answer = ?other, "keep_index answered oddly"),
                Err(error) => tracing::debug!(%error, "a session's indexes were not kept alive"),
            }
        }
        rooms.sort_unstable();
        rooms.dedup();
        if let Err(error) = self.keep_rooms_alive(&rooms).await {
            tracing::debug!(%error, "rooms' sets were not kept alive");
        }
    }

    /// Gives the sets of `rooms` (in the hub's slot) their index TTL, unless they live longer.
    pub(super) async fn keep_rooms_alive(&self, rooms: &[String]) -> Result<()> {
        if rooms.is_empty() {
            return Ok(());
        }
        let keys = &self.inner.keys;
        let mut command = Command::script(&self.inner.scripts.keep_alive, rooms.len());
        for room in rooms {
            command.key(&keys.room_members, Slot::NONE, room);
        }
        command.arg("i");
        self.run(&command).await.map(drop)
    }

    /// Keeps the history of session `id` (in the hub's slot) for `ttl`, and the sets of its
    /// `rooms` for their index TTL: what a claim or a detach renews there. A failure is
    /// logged: the session's own keys were written.
    pub(super) async fn keep_in_hub(&self, id: &str, ttl: Duration, rooms: &[String]) {
        let keys = &self.inner.keys;
        let mut command = Command::new("PEXPIRE");
        command
            .arg(keys.history(&Stream::Session(id.to_owned())))
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1));
        if let Err(error) = self.run(&command).await {
            tracing::debug!(%error, "a session's history was not kept alive");
        }
        if let Err(error) = self.keep_rooms_alive(rooms).await {
            tracing::debug!(%error, "rooms' sets were not kept alive");
        }
    }

    /// Removes session `id` on a cluster: reads its owner, removes it with its owner's keys
    /// declared, then takes it out of its rooms' sets and deletes its history.
    pub(super) async fn remove_on_cluster(&self, id: &str, slot: Slot) -> Result<()> {
        let keys = &self.inner.keys;
        for _ in 0..KEY_READS {
            let mut owner = Command::new("HGET");
            owner.key(&keys.session, slot, id).arg(super::META_USER_ID);
            let user = match self.run(&owner).await? {
                Value::Nil => {
                    // Gone already; what it left in the hub's slot expires with it.
                    return Ok(());
                }
                user => string(user)?,
            };
            let mut command = Command::script(&self.inner.scripts.remove, 4);
            command
                .key(&keys.session, slot, id)
                .key(&keys.user_sessions, slot, &user)
                .key(&keys.user_detached, slot, &user)
                .key(&keys.session_rooms, slot, id)
                .arg(id)
                .arg(&user);
            match self.run(&command).await? {
                Value::Int(NEED_KEYS) => continue,
                Value::Array(rooms) => {
                    let rooms = rooms.into_iter().map(string).collect::<Result<Vec<_>>>()?;
                    self.forget_in_hub(&[(id.to_owned(), rooms)]).await;
                    return Ok(());
                }
                other => return Err(unexpected("the rooms of a removed session", &other)),
            }
        }
        Err(keys_kept_changing(id))
    }

    /// Takes each session of `forgotten` (id and rooms) out of its rooms' sets and deletes its
    /// history: the traces a removal leaves in the hub's slot on a cluster. A failure is
    /// logged: a room's set names the session until a read of its members finds it gone, and
    /// the history expires.
    pub(super) async fn forget_in_hub(&self, forgotten: &[(String, Vec<String>)]) {
        let keys = &self.inner.keys;
        let mut pipeline = ::redis::pipe();
        let mut count = 0;
        for (id, rooms) in forgotten {
            for room in rooms {
                let mut command = Command::new("SREM");
                command.key(&keys.room_members, Slot::NONE, room).arg(id);
                pipeline.add_command(command.cmd().clone());
                count += 1;
            }
            let mut command = Command::new("DEL");
            command.arg(keys.history(&Stream::Session(id.clone())));
            pipeline.add_command(command.cmd().clone());
            count += 1;
        }
        if count == 0 {
            return;
        }
        if let Err(error) = self.run_pipeline(&pipeline, count).await {
            tracing::debug!(%error, "removed sessions were not taken out of the hub's keys");
        }
    }

    /// The list script's answer for `user_id`: on a cluster, with the keys of the user's
    /// sessions declared (read from the user's set first).
    pub(super) async fn list(&self, user_id: &str) -> Result<Value> {
        let keys = &self.inner.keys;
        let slot = keys.user_slot(user_id);
        let mut ids: Vec<String> = Vec::new();
        for _ in 0..KEY_READS {
            let mut command = Command::script(&self.inner.scripts.list, 1 + ids.len());
            command.key(&keys.user_sessions, slot, user_id);
            for id in &ids {
                command.key(&keys.session, slot, id);
            }
            command.arg(user_id);
            match self.run(&command).await? {
                Value::Int(NEED_KEYS) => ids = self.members(keys, slot, user_id).await?,
                reply => return Ok(reply),
            }
        }
        Err(keys_kept_changing(user_id))
    }

    /// The ids in the set of `user_id`.
    pub(super) async fn members(
        &self,
        keys: &Keys,
        slot: Slot,
        user_id: &str,
    ) -> Result<Vec<String>> {
        let mut command = Command::new("SMEMBERS");
        command.key(&keys.user_sessions, slot, user_id);
        match self.run(&command).await? {
            Value::Array(ids) | Value::Set(ids) => ids.into_iter().map(string).collect(),
            other => Err(unexpected("a set of session ids", &other)),
        }
    }
}

/// The watcher of a store's cluster: every [`WATCH_EVERY`], renews the connection when the
/// masters of the slots changed. Ends when the store (every clone) is gone.
pub(super) async fn watch(connections: Weak<Connections>) {
    loop {
        tokio::time::sleep(WATCH_EVERY).await;
        let Some(connections) = connections.upgrade() else {
            return;
        };
        let Pool::Cluster(pool) = &connections.pool else {
            return;
        };
        // An operation's heal runs already: it renews the connection anyway.
        if connections
            .healing
            .swap(true, std::sync::atomic::Ordering::AcqRel)
        {
            continue;
        }
        pool.renew(3 * DEFAULT_TIMEOUT, true).await;
        connections
            .healing
            .store(false, std::sync::atomic::Ordering::Release);
    }
}

/// `ids` (with their slot segments, `slots`) grouped by slot, in the order each slot first
/// appears, each group in the order of `ids`.
pub(super) fn by_slot<'a, S: AsRef<str>>(
    ids: &'a [S],
    slots: &[Slot],
) -> Vec<(Slot, Vec<&'a str>)> {
    let mut groups: Vec<(Slot, Vec<&str>)> = Vec::new();
    for (id, slot) in ids.iter().zip(slots) {
        match groups.iter_mut().find(|(seen, _)| seen == slot) {
            Some((_, group)) => group.push(id.as_ref()),
            None => groups.push((*slot, vec![id.as_ref()])),
        }
    }
    groups
}

/// The error of an operation whose keys changed under it every time it read them.
pub(super) fn keys_kept_changing(what: &str) -> Error {
    Error::Unavailable {
        reason: format!("the sessions of {what:?} changed during each of {KEY_READS} attempts"),
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_grouped_by_slot_in_order() {
        let keys = Keys::new("app".into(), Layout::Cluster);
        let a1 = keys.new_session_id(Some("alice"));
        let b1 = keys.new_session_id(Some("bob"));
        let a2 = keys.new_session_id(Some("alice"));
        let ids = [a1.clone(), b1.clone(), a2.clone()];
        let slots: Vec<Slot> = ids
            .iter()
            .map(|id| keys.session_slot(id).unwrap())
            .collect();
        let groups = by_slot(&ids, &slots);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].1, [a1.as_str(), a2.as_str()]);
        assert_eq!(groups[1].1, [b1.as_str()]);
    }
}
