//! What the hub and resume need of [`MemoryStore`]: the in-process broker, attached sessions,
//! claims and detaches, and rooms.

use std::sync::{Arc, Weak};
use std::time::Instant;

use super::MemoryStore;
use super::bus::MemoryTransport;
use crate::error::{Error, InvalidInput, Result};
use crate::session::record::Session;
use crate::store::attachment::{Attach, Claim, Claimed, Detach, Detached};
use crate::store::backend::Backend;
use crate::store::keep_alive::Indexes;
use crate::store::memory::bus::Targets;
use crate::store::message::Member;
use crate::store::subscriber::Subscriber;
use crate::store::transport::Transport;

impl Backend for MemoryStore {
    fn transport(&self, subscriber: Weak<dyn Subscriber>, node_id: &Arc<str>) -> Transport {
        Transport::Memory(MemoryTransport::new(
            Arc::clone(&self.inner.bus),
            subscriber,
            node_id,
        ))
    }

    async fn create_attached_session(
        &self,
        id: &str,
        user_id: &str,
        attach: &Attach<'_>,
    ) -> Result<Session> {
        self.create(id, user_id, Some(attach))
    }

    async fn claim_session(&self, claim: &Claim<'_>) -> Result<Claimed> {
        self.claim(claim)
    }

    async fn detach_session(&self, id: &str, epoch: u64, detach: &Detach) -> Result<Detached> {
        self.detach(id, epoch, detach)
    }

    async fn session_node(&self, id: &str) -> Result<Option<String>> {
        self.inner.session_node(id)
    }

    async fn join_room(&self, id: &str, room: &str) -> Result<bool> {
        let inner = &*self.inner;
        let limits = &inner.limits;
        limits.check_session_id(id)?;
        limits.check_room(room)?;
        // The room's set is held while the session takes the room (the lock order), as a
        // user's set is in `create_session`.
        let mut ids = match inner.rooms.get_mut(room) {
            Some(ids) => ids,
            None => inner.rooms.entry(room.to_owned()).or_default(),
        };
        let since = inner.bus.history.now();
        let joined = inner.write(id, |entry| {
            if entry.rooms.contains_key(room) {
                return Ok(false);
            }
            if entry.rooms.len() >= limits.max_rooms {
                return Err(Error::InvalidInput(InvalidInput::TooManyRooms {
                    id: id.to_owned(),
                    max: limits.max_rooms,
                }));
            }
            entry.rooms.insert(room.to_owned(), since);
            Ok(true)
        });
        if joined.is_ok() {
            ids.insert(id.to_owned());
        }
        let empty = ids.is_empty();
        drop(ids);
        if empty {
            // `entry` may have made an empty set for this room.
            inner.rooms.remove_if(room, |_, ids| ids.is_empty());
        }
        joined
    }

    async fn leave_room(&self, id: &str, room: &str) -> Result<bool> {
        let inner = &*self.inner;
        inner.limits.check_session_id(id)?;
        inner.limits.check_room(room)?;
        let left = inner.write(id, |entry| Ok(entry.rooms.remove(room).is_some()))?;
        inner.prune_room(room, id);
        Ok(left)
    }

    async fn session_rooms(&self, id: &str) -> Result<Vec<String>> {
        self.inner.limits.check_session_id(id)?;
        self.inner
            .read(id, |entry| entry.rooms.keys().cloned().collect())
            .ok_or_else(|| Error::not_found(id))
    }

    async fn room_members(&self, room: &str) -> Result<Vec<Member>> {
        let inner = &*self.inner;
        inner.limits.check_room(room)?;
        let mut members = Vec::new();
        let emptied = match inner.rooms.get_mut(room) {
            Some(mut ids) => {
                // Rooms before sessions: the lock order.
                ids.retain(|id| {
                    let user = inner
                        .read(id, |entry| {
                            entry
                                .rooms
                                .contains_key(room)
                                .then(|| entry.user_id.clone())
                        })
                        .flatten();
                    let live = user.is_some();
                    members.extend(user.map(|user_id| Member {
                        session_id: id.clone(),
                        user_id,
                    }));
                    live
                });
                ids.is_empty()
            }
            None => false,
        };
        if emptied {
            inner.rooms.remove_if(room, |_, ids| ids.is_empty());
        }
        Ok(members)
    }

    async fn keep_alive(&self, ids: &[Arc<str>]) -> Result<Vec<String>> {
        let inner = &*self.inner;
        inner.renew_each(ids, |entry, now| entry.expires_at = inner.expiry(now))
    }

    /// The indexes of a memory store live as long as the sessions they index: nothing to do.
    async fn keep_indexes(&self, _indexes: &Indexes) -> Result<()> {
        Ok(())
    }

    async fn remove_user_sessions(&self, user_id: &str) -> Result<Vec<String>> {
        let inner = &*self.inner;
        inner.limits.check_user_id(user_id)?;
        let ids: Vec<String> = match inner.users.get(user_id) {
            Some(ids) => ids.iter().cloned().collect(),
            None => return Ok(Vec::new()),
        };
        let mut removed = Vec::with_capacity(ids.len());
        for id in ids {
            let owned = inner
                .sessions
                .remove_if(&id, |_, entry| entry.user_id == user_id);
            if let Some((id, entry)) = owned {
                inner.forget(&id, &entry);
                if entry.is_live(Instant::now()) {
                    removed.push(id);
                }
            } else {
                inner.prune(user_id, &id);
            }
        }
        Ok(removed)
    }
}
