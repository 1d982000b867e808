//! The keep-alive of a layer's open sessions on Redis: one `PEXPIRE` per key, many keys per
//! script call (see `lua/keep_alive.lua` and the crate's `keep_alive.rs`). On a cluster, one
//! call per slot, all at once.

use std::sync::Arc;

use ::redis::Value;
use futures_util::future::join_all;

use super::RedisStore;
use super::cluster::by_slot;
use super::command::Command;
use super::keys::Slot;
use super::reply::{string, unexpected};
use crate::error::Result;
use crate::store::keep_alive::Indexes;

impl RedisStore {
    /// Restarts the TTL of sessions `ids`; returns those that are gone.
    pub(super) async fn keep_sessions_alive(&self, ids: &[Arc<str>]) -> Result<Vec<String>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut slots = Vec::with_capacity(ids.len());
        for id in ids {
            slots.push(self.session_slot(id)?);
        }
        let calls = by_slot(ids, &slots).into_iter().map(|(slot, ids)| {
            let mut command = Command::script(&self.inner.scripts.keep_alive, ids.len());
            for id in ids {
                command.key(&self.inner.keys.session, slot, id);
            }
            command.arg("s");
            async move { self.run(&command).await }
        });
        let mut missing = Vec::new();
        for answer in join_all(calls).await {
            match answer? {
                Value::Array(gone) => {
                    for id in gone {
                        missing.push(string(id)?);
                    }
                }
                other => return Err(unexpected("a list of session ids", &other)),
            }
        }
        Ok(missing)
    }

    /// Gives the keys of `indexes` their index TTL, unless they live longer already.
    pub(super) async fn keep_index_keys(&self, indexes: &Indexes) -> Result<()> {
        if indexes.is_empty() {
            return Ok(());
        }
        let keys = &self.inner.keys;
        // The calls, by slot: `None` for the hub's (the rooms' sets), which is every key's on
        // one server.
        let mut calls: Vec<(Option<Slot>, Command<'_>, usize)> = Vec::new();
        let mut add = |slot: Option<Slot>, head: &str, key_slot: Slot, name: &str| {
            let slot = slot.filter(|_| self.on_cluster());
            let at = match calls.iter().position(|(seen, _, _)| *seen == slot) {
                Some(at) => at,
                None => {
                    calls.push((slot, Command::parts(), 0));
                    calls.len() - 1
                }
            };
            calls[at].1.key(head, key_slot, name);
            calls[at].2 += 1;
        };
        for id in &indexes.sessions {
            let slot = self.session_slot(id)?;
            add(Some(slot), &keys.session_rooms, slot, id);
        }
        for user in &indexes.users {
            let slot = keys.user_slot(user);
            add(Some(slot), &keys.user_sessions, slot, user);
        }
        for room in &indexes.rooms {
            add(None, &keys.room_members, Slot::NONE, room);
        }
        let calls = calls.iter().map(|(_, parts, count)| {
            let mut command = Command::script(&self.inner.scripts.keep_alive, *count);
            command.append(parts, 0, usize::MAX).arg("i");
            async move { self.run(&command).await }
        });
        for answer in join_all(calls).await {
            match answer? {
                Value::Int(super::scripts::OK) => {}
                other => return Err(unexpected("OK", &other)),
            }
        }
        Ok(())
    }
}
