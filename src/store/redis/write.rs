//! One write of the Redis store as the write script (`lua/write.lua`) takes it: its session
//! keys, its arguments, and the call that carries a batch of writes.
//!
//! A write is built, checked and encoded once, by its caller, before it knows whether it will
//! go out alone or in a batch (see `group_commit.rs`); the batch's call copies the bytes of
//! each write into place.

use serde_json::Value as Json;

use super::command::Command;
use super::keys::{Keys, Slot};
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
    /// The slot segment of its sessions' keys (on a cluster, a batch shares one).
    slot: Slot,
    /// The bytes of its keys and arguments.
    bytes: usize,
}

impl Write {
    /// Writes `entries` (data key and value) into session `id`, all or none: set and update.
    pub(super) fn set<'a>(
        keys: &Keys,
        limits: &Limits,
        id: &str,
        slot: Slot,
        entries: impl ExactSizeIterator<Item = (&'a str, &'a Json)>,
    ) -> Result<Write> {
        let mut parts = Write::session(keys, id, slot);
        // One entry, the common case, needs no count.
        match entries.len() {
            1 => parts.arg("s"),
            n => parts.arg("m").arg(n),
        };
        for (key, value) in entries {
            limits.check_key(key)?;
            parts.joined(DATA, key).json(key, value, limits)?;
        }
        Ok(Write::new(parts, 1, slot))
    }

    /// Deletes data key `key` of session `id`.
    pub(super) fn delete(keys: &Keys, id: &str, slot: Slot, key: &str) -> Write {
        let mut parts = Write::session(keys, id, slot);
        parts.arg("d").joined(DATA, key);
        Write::new(parts, 1, slot)
    }

    /// Removes every data key of session `id`.
    pub(super) fn clear(keys: &Keys, id: &str, slot: Slot) -> Write {
        let mut parts = Write::session(keys, id, slot);
        parts.arg("c");
        Write::new(parts, 1, slot)
    }

    /// Refreshes the sessions `ids`, whose keys all have the slot segment `slot`.
    pub(super) fn touch(keys: &Keys, slot: Slot, ids: &[&str]) -> Write {
        let mut parts = Command::parts();
        for id in ids {
            parts.key(&keys.session, slot, id);
        }
        parts.arg("t").arg(ids.len());
        Write::new(parts, ids.len(), slot)
    }

    fn session(keys: &Keys, id: &str, slot: Slot) -> Command<'static> {
        let mut key = Command::parts();
        key.key(&keys.session, slot, id);
        key
    }

    fn new(parts: Command<'static>, sessions: usize, slot: Slot) -> Write {
        let bytes = parts.bytes();
        Write {
            parts,
            sessions,
            slot,
            bytes,
        }
    }

    /// The slot segment of the write's sessions.
    pub(super) fn slot(&self) -> Slot {
        self.slot
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
