//! The store's operations on its maps: expiry, guarded reads and writes, the user index.

use std::time::Instant;

use super::entry::{Entry, EntryGuard};
use super::{FAR_FUTURE, Index, Inner};
use crate::error::{Error, Result};
use crate::session::record::{SessionData, now_ms};

impl Inner {
    /// The expiry of a session written at `now`.
    pub(super) fn expiry(&self, now: Instant) -> Instant {
        now.checked_add(self.ttl)
            .unwrap_or_else(|| now + FAR_FUTURE)
    }

    /// Marks a session written at `now`, restarting its TTL, with `active` (ms since the Unix
    /// epoch) as its last-active time.
    ///
    /// `now` must be read while the session's guard is held: then a session that some other
    /// operation has seen expired can never come back to life. `active` is wall-clock time and
    /// decides nothing; like the Redis store, an operation reads it once, before it starts.
    pub(super) fn refresh(&self, entry: &mut Entry, now: Instant, active: u64) {
        entry.last_active = active;
        entry.expires_at = self.expiry(now);
    }

    /// Runs `renew` on each live session of `ids`, with the instant it was seen live, and
    /// returns the ids that are not live. Checks every id before it renews any.
    pub(super) fn renew_each(
        &self,
        ids: &[impl AsRef<str>],
        renew: impl Fn(&mut Entry, Instant),
    ) -> Result<Vec<String>> {
        for id in ids {
            self.limits.check_session_id(id.as_ref())?;
        }
        let missing = ids
            .iter()
            .map(AsRef::as_ref)
            .filter(|id| match self.live_mut(id) {
                Some((mut entry, now)) => {
                    renew(&mut entry, now);
                    false
                }
                None => true,
            })
            .map(str::to_owned)
            .collect();
        Ok(missing)
    }

    /// The guard on session `id` if it is live, and the instant it was seen live.
    pub(super) fn live_mut(&self, id: &str) -> Option<(EntryGuard<'_>, Instant)> {
        let entry = self.sessions.get_mut(id)?;
        let now = Instant::now();
        entry.is_live(now).then_some((entry, now))
    }

    /// Runs `write` on session `id` if it is live, refreshing its TTL after a successful write.
    ///
    /// The guard is released before this returns, so whatever `write` hands back (values it
    /// replaced, say) is dropped by the caller without holding up the session's shard.
    pub(super) fn write<T>(
        &self,
        id: &str,
        write: impl FnOnce(&mut Entry) -> Result<T>,
    ) -> Result<T> {
        let active = now_ms();
        let (mut entry, now) = self.live_mut(id).ok_or_else(|| Error::not_found(id))?;
        let out = write(&mut entry)?;
        self.refresh(&mut entry, now, active);
        Ok(out)
    }

    /// Runs `read` on session `id` if it is live.
    pub(super) fn read<T>(&self, id: &str, read: impl FnOnce(&Entry) -> T) -> Option<T> {
        let entry = self.sessions.get(id)?;
        entry.is_live(Instant::now()).then(|| read(&entry))
    }

    /// Inserts `entries` into `data`, unless that would take it past the key limit.
    ///
    /// Returns what `data` no longer needs (the values it replaced), for the caller to drop
    /// once the session's guard is released.
    pub(super) fn merge(
        &self,
        id: &str,
        data: &mut SessionData,
        mut entries: SessionData,
    ) -> Result<SessionData> {
        // Only a session that could pass the limit pays for counting the keys it lacks.
        if data.len().saturating_add(entries.len()) > self.limits.max_keys {
            let fresh = entries
                .keys()
                .filter(|key| !data.contains_key(*key))
                .count();
            if fresh > 0 {
                self.limits.check_key_count(id, data.len() + fresh)?;
            }
        }
        // Keys the session holds take their new values in place; the old values go back into
        // `entries`, whose keys are not needed.
        let mut fresh = false;
        for (key, value) in &mut entries {
            match data.get_mut(key) {
                Some(held) => std::mem::swap(held, value),
                None => fresh = true,
            }
        }
        if fresh {
            for (key, value) in std::mem::take(&mut entries) {
                // The keys found above hold their new values already.
                if let serde_json::map::Entry::Vacant(vacant) = data.entry(key) {
                    vacant.insert(value);
                }
            }
        }
        Ok(entries)
    }

    /// Drops `id` from the index of `user_id` unless it is a live session of that user, and
    /// drops the user's set when it is left empty.
    pub(super) fn prune(&self, user_id: &str, id: &str) {
        prune_from(&self.users, user_id, id, |id| {
            self.read(id, |entry| entry.user_id == user_id)
                .unwrap_or(false)
        });
    }

    /// Drops `id` from the set of `room` unless it is a live session in that room, and drops
    /// the room's set when it is left empty.
    pub(super) fn prune_room(&self, room: &str, id: &str) {
        prune_from(&self.rooms, room, id, |id| {
            self.read(id, |entry| entry.rooms.contains_key(room))
                .unwrap_or(false)
        });
    }

    /// Drops the entries of a session that is gone from the user index and its rooms.
    pub(super) fn forget(&self, id: &str, entry: &Entry) {
        self.prune(&entry.user_id, id);
        for room in entry.rooms.keys() {
            self.prune_room(room, id);
        }
        self.bus
            .history
            .forget(&crate::store::envelope::Stream::Session(id.to_owned()));
    }

    /// Drops every expired session and its entries in the user index and the rooms.
    pub(super) fn sweep(&self) {
        let now = Instant::now();
        let mut dead = Vec::new();
        self.sessions.retain(|id, entry| {
            let live = entry.is_live(now);
            if !live {
                // The entry leaves the map: its parts move out instead of being copied.
                let gone = Entry {
                    user_id: std::mem::take(&mut entry.user_id),
                    data: std::mem::take(&mut entry.data),
                    rooms: std::mem::take(&mut entry.rooms),
                    node: entry.node.take(),
                    token: entry.token.take(),
                    ..*entry
                };
                dead.push((id.clone(), gone));
            }
            live
        });
        for (id, entry) in &dead {
            self.forget(id, entry);
            if entry.detached_at.is_some() {
                crate::telemetry::expired(1);
                tracing::debug!(session = %id, user = %entry.user_id, "detached session expired");
            }
        }
        if !dead.is_empty() {
            tracing::trace!(expired = dead.len(), "expired sessions swept");
        }
        self.bus.history.sweep();
    }
}

/// Drops `id` from `index[name]` unless `keep(id)` holds, and drops the set when it is left
/// empty. `keep` reads the session map while the set is held: the lock order.
fn prune_from(index: &Index, name: &str, id: &str, keep: impl FnOnce(&str) -> bool) {
    let emptied = match index.get_mut(name) {
        Some(mut ids) => {
            if !keep(id) {
                ids.remove(id);
            }
            ids.is_empty()
        }
        None => false,
    };
    if emptied {
        index.remove_if(name, |_, ids| ids.is_empty());
    }
}
