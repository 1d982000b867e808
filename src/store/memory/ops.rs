//! [`SessionStore`] for [`MemoryStore`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::mapref::entry::Entry as MapEntry;
use litemap::LiteMap;
use serde_json::Value;

use super::MemoryStore;
use super::entry::Entry;
use crate::error::{Error, InvalidInput, Result};
use crate::limits::Limits;
use crate::session::record::{Session, SessionData, now_ms};
use crate::store::SessionStore;
use crate::store::attachment::Attach;

impl MemoryStore {
    /// Creates session `id` of `user_id`, attached as `attach` says if it is.
    pub(super) fn create(
        &self,
        id: &str,
        user_id: &str,
        attach: Option<&Attach<'_>>,
    ) -> Result<Session> {
        let inner = &*self.inner;
        inner.limits.check_session_id(id)?;
        inner.limits.check_user_id(user_id)?;
        let created = now_ms();
        let since = inner.bus.history.now();
        let mut displaced = None;
        let result = {
            // The user's set is held while the session goes in, so that a concurrent prune of
            // the same id either runs before (and the id is added back below) or sees it live.
            let mut ids = match inner.users.get_mut(user_id) {
                Some(ids) => ids,
                None => inner.users.entry(user_id.to_owned()).or_default(),
            };
            // At the cap, ids of sessions that are gone are dropped before counting again.
            let max_sessions = inner.limits.max_user_sessions;
            if ids.len() >= max_sessions && !ids.contains(id) {
                ids.retain(|other| {
                    inner
                        .read(other, |entry| entry.user_id == user_id)
                        .unwrap_or(false)
                });
                if ids.len() >= max_sessions {
                    return Err(Error::InvalidInput(InvalidInput::TooManySessions {
                        user_id: user_id.to_owned(),
                        max: max_sessions,
                    }));
                }
            }
            let fresh = |now| Entry {
                user_id: user_id.to_owned(),
                data: SessionData::new(),
                data_bytes: 0,
                created_at: created,
                last_active: created,
                expires_at: inner.expiry(now),
                node: attach.map(|attach| Arc::from(attach.node_id)),
                rooms: LiteMap::new(),
                token: attach.and_then(|attach| attach.token),
                epoch: 1,
                since,
                detached_at: None,
            };
            match inner.sessions.entry(id.to_owned()) {
                MapEntry::Occupied(mut taken) => {
                    let now = Instant::now();
                    if taken.get().is_live(now) {
                        Err(Error::already_exists(id))
                    } else {
                        // An expired session that the sweep has not reclaimed yet.
                        displaced = Some(taken.insert(fresh(now)));
                        Ok(())
                    }
                }
                MapEntry::Vacant(vacant) => {
                    vacant.insert(fresh(Instant::now()));
                    Ok(())
                }
            }
            .map(|()| {
                ids.insert(id.to_owned());
            })
        };
        if let Err(err) = result {
            // `entry` may have made an empty set for this user.
            inner.users.remove_if(user_id, |_, ids| ids.is_empty());
            return Err(err);
        }
        if let Some(old) = displaced {
            // Keeps the id in the index of its user, if that is still the same user.
            inner.forget(id, &old);
        }
        self.start_sweeper();
        Ok(Session::new(id, user_id, created))
    }
}

impl SessionStore for MemoryStore {
    fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    fn enforced_limits(&self) -> Limits {
        self.inner.limits
    }

    async fn create_session(&self, id: &str, user_id: &str) -> Result<Session> {
        self.create(id, user_id, None)
    }

    async fn get_session(&self, id: &str) -> Result<Option<Session>> {
        self.inner.limits.check_session_id(id)?;
        Ok(self.inner.read(id, |entry| entry.to_session(id)))
    }

    async fn set_session_data(&self, id: &str, key: &str, value: Value) -> Result<()> {
        let limits = &self.inner.limits;
        limits.check_session_id(id)?;
        limits.check_key(key)?;
        limits.check_value(key, &value)?;
        let size = Entry::size_of(key, &value);
        let replaced = self.inner.write(id, |entry| {
            let bytes = entry.bytes_after([(key, size)]);
            limits.check_session_bytes(id, bytes)?;
            if let Some(held) = entry.data.get_mut(key) {
                entry.data_bytes = bytes;
                return Ok(Some(std::mem::replace(held, value)));
            }
            limits.check_key_count(id, entry.data.len() + 1)?;
            entry.data.insert(key.to_owned(), value);
            entry.data_bytes = bytes;
            Ok(None)
        })?;
        // Dropped here, with the session's guard released.
        drop(replaced);
        Ok(())
    }

    async fn get_session_data(&self, id: &str, key: &str) -> Result<Option<Value>> {
        let limits = &self.inner.limits;
        limits.check_session_id(id)?;
        limits.check_key(key)?;
        self.inner
            .read(id, |entry| entry.data.get(key).cloned())
            .ok_or_else(|| Error::not_found(id))
    }

    async fn update_session_data(&self, id: &str, data: SessionData) -> Result<()> {
        let inner = &*self.inner;
        let limits = &inner.limits;
        limits.check_session_id(id)?;
        limits.check_key_count(id, data.len())?;
        limits.check_entries(&data)?;
        let sizes: Vec<usize> = data
            .iter()
            .map(|(key, value)| Entry::size_of(key, value))
            .collect();
        let replaced = inner.write(id, |entry| {
            let bytes =
                entry.bytes_after(data.keys().map(String::as_str).zip(sizes.iter().copied()));
            limits.check_session_bytes(id, bytes)?;
            let replaced = inner.merge(id, &mut entry.data, data)?;
            entry.data_bytes = bytes;
            Ok(replaced)
        })?;
        // Dropped here, with the session's guard released.
        drop(replaced);
        Ok(())
    }

    async fn delete_session_data(&self, id: &str, key: &str) -> Result<()> {
        let limits = &self.inner.limits;
        limits.check_session_id(id)?;
        limits.check_key(key)?;
        let removed = self.inner.write(id, |entry| {
            let removed = entry.data.remove(key);
            if let Some(value) = &removed {
                entry.data_bytes -= Entry::size_of(key, value);
            }
            Ok(removed)
        })?;
        // Dropped here, with the session's guard released.
        drop(removed);
        Ok(())
    }

    async fn clear_session_data(&self, id: &str) -> Result<()> {
        self.inner.limits.check_session_id(id)?;
        let cleared = self.inner.write(id, |entry| {
            entry.data_bytes = 0;
            Ok(std::mem::take(&mut entry.data))
        })?;
        // Dropped here, with the session's guard released.
        drop(cleared);
        Ok(())
    }

    async fn remove_session(&self, id: &str) -> Result<()> {
        let inner = &*self.inner;
        inner.limits.check_session_id(id)?;
        if let Some((_, entry)) = inner.sessions.remove(id) {
            // Lets the race tests hit the window between the two maps more often.
            #[cfg(test)]
            std::thread::yield_now();
            // A create of the same id may have slipped in since; `forget` keeps it if so.
            inner.forget(id, &entry);
        }
        Ok(())
    }

    async fn get_user_sessions(&self, user_id: &str) -> Result<Vec<Session>> {
        let inner = &*self.inner;
        inner.limits.check_user_id(user_id)?;
        let mut sessions = Vec::new();
        let emptied = match inner.users.get_mut(user_id) {
            Some(mut ids) => {
                // Users before sessions: the lock order.
                ids.retain(|id| {
                    let session = inner
                        .read(id, |entry| {
                            (entry.user_id == user_id).then(|| entry.to_session(id))
                        })
                        .flatten();
                    let live = session.is_some();
                    sessions.extend(session);
                    live
                });
                ids.is_empty()
            }
            None => false,
        };
        if emptied {
            inner.users.remove_if(user_id, |_, ids| ids.is_empty());
        }
        Ok(sessions)
    }

    async fn touch(&self, ids: &[String]) -> Result<Vec<String>> {
        let inner = &*self.inner;
        // One wall-clock time for the whole batch, as the Redis store sends it.
        let active = now_ms();
        inner.renew_each(ids, |entry, now| inner.refresh(entry, now, active))
    }
}
