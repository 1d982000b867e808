//! The keep-alive of a layer's open sessions on Redis: one `PEXPIRE` per key, many keys per
//! script call (see `lua/keep_alive.lua` and the crate's `keep_alive.rs`).

use std::sync::Arc;

use ::redis::Value;

use super::RedisStore;
use super::command::Command;
use super::reply::{string, unexpected};
use crate::error::Result;
use crate::store::keep_alive::Indexes;

impl RedisStore {
    /// Restarts the TTL of sessions `ids`; returns those that are gone.
    pub(super) async fn keep_sessions_alive(&self, ids: &[Arc<str>]) -> Result<Vec<String>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        for id in ids {
            self.inner.limits.check_session_id(id)?;
        }
        let mut command = Command::script(&self.inner.scripts.keep_alive, ids.len());
        for id in ids {
            command.joined(&self.inner.keys.session, id);
        }
        command.arg("s");
        match self.run(&command).await? {
            Value::Array(missing) => missing.into_iter().map(string).collect(),
            other => Err(unexpected("a list of session ids", &other)),
        }
    }

    /// Gives the keys of `indexes` their index TTL, unless they live longer already.
    pub(super) async fn keep_index_keys(&self, indexes: &Indexes) -> Result<()> {
        if indexes.is_empty() {
            return Ok(());
        }
        let keys = &self.inner.keys;
        let mut command = Command::script(&self.inner.scripts.keep_alive, indexes.len());
        for id in &indexes.sessions {
            command.joined(&keys.session_rooms, id);
        }
        for user in &indexes.users {
            command.joined(&keys.user_sessions, user);
        }
        for room in &indexes.rooms {
            command.joined(&keys.room_members, room);
        }
        command.arg("i");
        match self.run(&command).await? {
            Value::Int(super::scripts::OK) => Ok(()),
            other => Err(unexpected("OK", &other)),
        }
    }
}
