//! One write of the Redis store as the write script (`lua/write.lua`) takes it: its session
//! keys, its arguments, and the call that carries a batch of writes.
//!
//! A write is built, checked and encoded once, by its caller, before it knows whether it will
//! go out alone or in a batch (see `group_commit.rs`); the batch's call copies the bytes of
//! each write into place.

use serde_json::Value as Json;

use super::command::Command;
use super::keys::Keys;
use super::scripts::StoreScript;
use crate::error::Result;
use crate::limits::Limits;
use crate::session::record::now_ms;

/// One write, encoded.
pub(super) struct Write {
    /// The session hashes it writes (its first `sessions` arguments), then what the script
    /// reads for it: its kind, then its arguments.
    parts: Command<'static>,
    /// How many sessions it writes: one, or a touch's count.
    sessions: usize,
    /// The bytes of its keys and arguments.
    bytes: usize,
}

impl Write {
    /// Writes `entries` (data key and value) into session `id`, all or none: set and update.
    pub(super) fn set<'a>(
        keys: &Keys,
        limits: &Limits,
        id: &str,
        entries: impl ExactSizeIterator<Item = (&'a str, &'a Json)>,
    ) -> Result<Write> {
        let mut parts = Write::session(keys, id);
        // One entry, the common case, needs no count.
        match entries.len() {
            1 => parts.arg("s"),
            n => parts.arg("m").arg(n),
        };
        for (key, value) in entries {
            limits.check_key(key)?;
            parts.joined(DATA, key).json(key, value, limits)?;
        }
        Ok(Write::new(parts, 1))
    }

    /// Deletes data key `key` of session `id`.
    pub(super) fn delete(keys: &Keys, id: &str, key: &str) -> Write {
        let mut parts = Write::session(keys, id);
        parts.arg("d").joined(DATA, key);
        Write::new(parts, 1)
    }

    /// Removes every data key of session `id`.
    pub(super) fn clear(keys: &Keys, id: &str) -> Write {
        let mut parts = Write::session(keys, id);
        parts.arg("c");
        Write::new(parts, 1)
    }

    /// Refreshes the sessions `ids`.
    pub(super) fn touch(keys: &Keys, ids: &[String]) -> Write {
        let mut parts = Command::parts();
        for id in ids {
            parts.joined(&keys.session, id);
        }
        parts.arg("t").arg(ids.len());
        Write::new(parts, ids.len())
    }

    fn session(keys: &Keys, id: &str) -> Command<'static> {
        let mut key = Command::parts();
        key.joined(&keys.session, id);
        key
    }

    fn new(parts: Command<'static>, sessions: usize) -> Write {
        let bytes = parts.bytes();
        Write {
            parts,
            sessions,
            bytes,
        }
    }

    /// How many sessions the write writes.
    pub(super) fn sessions(&self) -> usize {
        self.sessions
    }

    /// How many bytes the write adds to a call.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }
}

/// The call of `script` (the store's write script) that applies `writes` in order. It answers
/// with an array of one result per write.
pub(super) fn batch_call<'s, 'w>(
    script: &'s StoreScript,
    writes: impl Iterator<Item = &'w Write> + Clone,
) -> Command<'s> {
    let keys = writes.clone().map(Write::sessions).sum();
    let mut command = Command::script(script, keys);
    for write in writes.clone() {
        command.append(&write.parts, 0, write.sessions);
    }
    command.arg(now_ms());
    for write in writes {
        command.append(&write.parts, write.sessions, usize::MAX);
    }
    command
}

const DATA: &str = "data:";
