//! [`SessionStore`] for [`MemoryStore`].

use std::time::{Duration, Instant};

use dashmap::mapref::entry::Entry as MapEntry;
use serde_json::Value;

use super::MemoryStore;
use super::entry::Entry;
use crate::error::{Error, Result};
use crate::session::{Session, SessionData, now_ms};
use crate::store::SessionStore;

impl SessionStore for MemoryStore {
    fn ttl(&self) -> Duration {
        self.inner.ttl
    }

    async fn create_session(&self, id: &str, user_id: &str) -> Result<Session> {
        let inner = &*self.inner;
        inner.limits.check_session_id(id)?;
        inner.limits.check_user_id(user_id)?;
        let created = now_ms();
        let mut displaced = None;
        let result = {
            // The user's set is held while the session goes in, so that a concurrent prune of
            // the same id either runs before (and the id is added back below) or sees it live.
            let mut ids = match inner.users.get_mut(user_id) {
                Some(ids) => ids,
                None => inner.users.entry(user_id.to_owned()).or_default(),
            };
            let fresh = |now| Entry {
                user_id: user_id.to_owned(),
                data: SessionData::new(),
                created_at: created,
                last_active: created,
                expires_at: inner.expiry(now),
            };
            match inner.sessions.entry(id.to_owned()) {
                MapEntry::Occupied(mut taken) => {
                    let now = Instant::now();
                    if taken.get().is_live(now) {
                        Err(Error::already_exists(id))
                    } else {
                        // An expired session that the sweep has not reclaimed yet.
                        let old = taken.insert(fresh(now));
                        if old.user_id != user_id {
                            displaced = Some(old.user_id);
                        }
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
        if let Some(old_user) = displaced {
            inner.prune(&old_user, id);
        }
        self.start_sweeper();
        Ok(Session::new(id, user_id, created))
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
        let replaced = self.inner.write(id, |entry| {
            if let Some(held) = entry.data.get_mut(key) {
                return Ok(Some(std::mem::replace(held, value)));
            }
            limits.check_key_count(id, entry.data.len() + 1)?;
            entry.data.insert(key.to_owned(), value);
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
        let replaced = inner.write(id, |entry| inner.merge(id, &mut entry.data, data))?;
        // Dropped here, with the session's guard released.
        drop(replaced);
        Ok(())
    }

    async fn delete_session_data(&self, id: &str, key: &str) -> Result<()> {
        let limits = &self.inner.limits;
        limits.check_session_id(id)?;
        limits.check_key(key)?;
        let removed = self.inner.write(id, |entry| Ok(entry.data.remove(key)))?;
        // Dropped here, with the session's guard released.
        drop(removed);
        Ok(())
    }

    async fn clear_session_data(&self, id: &str) -> Result<()> {
        self.inner.limits.check_session_id(id)?;
        let cleared = self
            .inner
            .write(id, |entry| Ok(std::mem::take(&mut entry.data)))?;
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
            // A create of the same id may have slipped in since; `prune` keeps it if so.
            inner.prune(&entry.user_id, id);
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
        for id in ids {
            inner.limits.check_session_id(id)?;
        }
        // One wall-clock time for the whole batch, as the Redis store sends it.
        let active = now_ms();
        let missing = ids
            .iter()
            .filter(|id| match inner.live_mut(id) {
                Some((mut entry, now)) => {
                    inner.refresh(&mut entry, now, active);
                    false
                }
                None => true,
            })
            .cloned()
            .collect();
        Ok(missing)
    }
}
