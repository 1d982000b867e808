//! The operations of the Redis store that the hub builds on: sessions attached to a node, and
//! rooms.

use ::redis::Value;
use futures_util::future::join_all;

use super::RedisStore;
use super::cluster::{KEY_READS, by_slot, keys_kept_changing};
use super::command::Command;
use super::keys::Slot;
use super::reply::{string, unexpected};
use super::scripts;
use super::{META_NODE, META_USER_ID};
use crate::error::{Error, Result};
use crate::session::record::{Session, now_ms};
use crate::store::attachment::Attach;
use crate::store::message::Member;

impl RedisStore {
    /// Creates session `id` of `user_id`, attached as `attach` says if it is.
    pub(super) async fn create(
        &self,
        id: &str,
        user_id: &str,
        attach: Option<&Attach<'_>>,
    ) -> Result<Session> {
        let limits = &self.inner.limits;
        limits.check_session_id(id)?;
        limits.check_user_id(user_id)?;
        let slot = self.session_slot(id)?;
        let keys = &self.inner.keys;
        if !keys.id_fits_user(id, user_id) {
            // The id of another user's live session is taken, whatever its layout.
            let mut exists = Command::new("EXISTS");
            exists.key(&keys.session, slot, id);
            if self.run(&exists).await? == Value::Int(1) {
                return Err(Error::already_exists(id));
            }
            return Err(Error::InvalidInput(crate::InvalidInput::IdWithoutSlot {
                id: id.to_owned(),
            }));
        }
        let now = now_ms();
        let token = attach
            .and_then(|attach| attach.token)
            .map(|token| token.to_hex())
            .unwrap_or_default();
        let node = attach.map_or("", |attach| attach.node_id);
        let reply = if self.on_cluster() {
            let nonce = format!("{:016x}", rand::random::<u64>());
            self.create_on_cluster(id, user_id, slot, now, node, &token, &nonce)
                .await?
        } else {
            let mut command = Command::script(&self.inner.scripts.create, 3);
            command
                .key(&keys.session, slot, id)
                .key(&keys.user_sessions, slot, user_id)
                .arg(&keys.clock)
                .arg(id)
                .arg(user_id)
                .arg(now)
                .arg(node)
                .arg(&token);
            self.run(&command).await?
        };
        match reply {
            Value::Int(scripts::TOO_MANY_SESSIONS) => {
                Err(Error::InvalidInput(crate::InvalidInput::TooManySessions {
                    user_id: user_id.to_owned(),
                    max: limits.max_user_sessions,
                }))
            }
            reply => self.status(id, reply).map(drop),
        }?;
        Ok(Session::new(id, user_id, now))
    }

    /// The create script's answer on a cluster: the hub's offset read first (its clock lives
    /// in the hub's slot), then the script with the user's sessions declared when the user
    /// may be at the cap, and `nonce` (this create's own) that tells a call the client sent
    /// again from a session taken.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn create_on_cluster(
        &self,
        id: &str,
        user_id: &str,
        slot: Slot,
        now: u64,
        node: &str,
        token: &str,
        nonce: &str,
    ) -> Result<Value> {
        let keys = &self.inner.keys;
        let mut clock = Command::script(&self.inner.scripts.clock, 1);
        clock.arg(&keys.clock);
        let since = string(self.run(&clock).await?)?;
        let mut others: Vec<String> = Vec::new();
        for _ in 0..KEY_READS {
            let mut command = Command::script(&self.inner.scripts.create, 3 + others.len());
            command
                .key(&keys.session, slot, id)
                .key(&keys.user_sessions, slot, user_id)
                .key(&keys.session_rooms, slot, id);
            for other in &others {
                command.key(&keys.session, slot, other);
            }
            command
                .arg(id)
                .arg(user_id)
                .arg(now)
                .arg(node)
                .arg(token)
                .arg(&since)
                .arg(nonce);
            match self.run(&command).await? {
                Value::Int(scripts::NEED_KEYS) => {
                    others = self.members(keys, slot, user_id).await?;
                }
                reply => return Ok(reply),
            }
        }
        Err(keys_kept_changing(user_id))
    }

    /// The node of session `id`: one `HMGET` of its owner and its node.
    pub(super) async fn node_of(&self, id: &str) -> Result<Option<String>> {
        let slot = self.session_slot(id)?;
        let mut command = self.on_session("HMGET", id, slot);
        command.arg(META_USER_ID).arg(META_NODE);
        let mut items = match self.run(&command).await? {
            Value::Array(items) if items.len() == 2 => items.into_iter(),
            other => return Err(unexpected("two HMGET values", &other)),
        };
        match (items.next(), items.next()) {
            (Some(Value::Nil), _) => Err(Error::not_found(id)),
            (_, Some(Value::Nil) | None) => Ok(None),
            (_, Some(node)) => string(node).map(Some),
        }
    }

    /// Puts session `id` into `room`.
    pub(super) async fn join(&self, id: &str, room: &str) -> Result<bool> {
        let slot = self.session_slot(id)?;
        self.inner.limits.check_room(room)?;
        let keys = &self.inner.keys;
        if !self.on_cluster() {
            let mut command = Command::script(&self.inner.scripts.join, 2);
            command
                .key(&keys.session, slot, id)
                .arg(&keys.clock)
                .arg(now_ms())
                .arg(id)
                .arg(room);
            return self.run_changed(id, &command).await;
        }
        // The room's set takes the session first, and answers the offset the session joins at.
        let mut index = Command::script(&self.inner.scripts.room_index, 2);
        index
            .key(&keys.room_members, Slot::NONE, room)
            .arg(&keys.clock)
            .arg("j")
            .arg(id);
        let since = string(self.run(&index).await?)?;
        let mut command = Command::script(&self.inner.scripts.join, 2);
        command
            .key(&keys.session, slot, id)
            .key(&keys.session_rooms, slot, id)
            .arg(now_ms())
            .arg(id)
            .arg(room)
            .arg(&since);
        let answer = self.run(&command).await?;
        let joined = self.renewing_status(id, answer).await;
        if let Err(error) = &joined
            && !error.is_unavailable()
        {
            // Refused: the session is in no more rooms than it was, so the set must not name it.
            self.leave_index(room, &[id.to_owned()]).await?;
        }
        joined
    }

    /// Takes session `id` out of `room`.
    pub(super) async fn leave(&self, id: &str, room: &str) -> Result<bool> {
        let slot = self.session_slot(id)?;
        self.inner.limits.check_room(room)?;
        let keys = &self.inner.keys;
        let mut command = Command::script(&self.inner.scripts.leave, 2);
        command.key(&keys.session, slot, id);
        if self.on_cluster() {
            command.key(&keys.session_rooms, slot, id);
        } else {
            command.arg(&keys.clock);
        }
        command.arg(now_ms()).arg(id).arg(room);
        if !self.on_cluster() {
            return self.run_changed(id, &command).await;
        }
        let answer = self.run(&command).await?;
        let left = self.renewing_status(id, answer).await?;
        if left {
            self.leave_index(room, &[id.to_owned()]).await?;
        }
        Ok(left)
    }

    /// On a cluster, the status of a join or a leave, `{status, user, look}` (or a status
    /// alone when the session is not there), after keeping the user's set alive when `look`
    /// says so.
    async fn renewing_status(&self, id: &str, answer: Value) -> Result<bool> {
        let Value::Array(items) = answer else {
            return self.status(id, answer);
        };
        let mut items = items.into_iter();
        let (Some(status), Some(user), Some(look)) = (items.next(), items.next(), items.next())
        else {
            return Err(Error::Backend(
                "a room change answered with missing parts".into(),
            ));
        };
        let changed = self.status(id, status)?;
        if look == Value::Int(1) {
            self.keep_renewed(&[(id.to_owned(), string(user)?)]).await;
        }
        Ok(changed)
    }

    /// On a cluster, takes sessions `ids` out of the set of `room`.
    async fn leave_index(&self, room: &str, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let mut command = Command::script(&self.inner.scripts.room_index, 1);
        command
            .key(&self.inner.keys.room_members, Slot::NONE, room)
            .arg("l");
        for id in ids {
            command.arg(id);
        }
        self.run(&command).await.map(drop)
    }

    pub(super) async fn rooms_of(&self, id: &str) -> Result<Vec<String>> {
        let slot = self.session_slot(id)?;
        let keys = &self.inner.keys;
        let mut command = Command::script(&self.inner.scripts.rooms, 2);
        command
            .key(&keys.session, slot, id)
            .key(&keys.session_rooms, slot, id);
        match self.run(&command).await? {
            Value::Int(super::scripts::NOT_FOUND) => Err(Error::not_found(id)),
            Value::Array(rooms) | Value::Set(rooms) => {
                let mut rooms = rooms.into_iter().map(string).collect::<Result<Vec<_>>>()?;
                rooms.sort_unstable();
                Ok(rooms)
            }
            other => Err(unexpected("a list of rooms", &other)),
        }
    }

    pub(super) async fn members_of(&self, room: &str) -> Result<Vec<Member>> {
        self.inner.limits.check_room(room)?;
        if self.on_cluster() {
            return self.members_on_cluster(room).await;
        }
        let mut command = Command::script(&self.inner.scripts.members, 1);
        command.key(&self.inner.keys.room_members, Slot::NONE, room);
        let items = match self.run(&command).await? {
            Value::Array(items) if items.len() % 2 == 0 => items,
            other => return Err(unexpected("pairs of session id and user id", &other)),
        };
        pairs(items)
    }

    /// On a cluster: the room's set, then each slot's sessions checked against their own
    /// records, all slots at once; the sessions found gone leave the set.
    async fn members_on_cluster(&self, room: &str) -> Result<Vec<Member>> {
        let keys = &self.inner.keys;
        let mut command = Command::new("SMEMBERS");
        command.key(&keys.room_members, Slot::NONE, room);
        let ids: Vec<String> = match self.run(&command).await? {
            Value::Array(ids) | Value::Set(ids) => {
                ids.into_iter().map(string).collect::<Result<_>>()?
            }
            other => return Err(unexpected("a set of session ids", &other)),
        };
        let mut gone = Vec::new();
        let mut placed = Vec::new();
        let mut slots = Vec::new();
        for id in &ids {
            match keys.session_slot(id) {
                Ok(slot) => {
                    placed.push(id.as_str());
                    slots.push(slot);
                }
                Err(_) => gone.push(id.clone()),
            }
        }
        let checks = by_slot(&placed, &slots).into_iter().map(|(slot, ids)| {
            let mut command = Command::script(&self.inner.scripts.verify_members, 2 * ids.len());
            for id in &ids {
                command
                    .key(&keys.session, slot, id)
                    .key(&keys.session_rooms, slot, id);
            }
            command.arg(room);
            for id in &ids {
                command.arg(*id);
            }
            async move { self.run(&command).await }
        });
        let mut members = Vec::new();
        for answer in join_all(checks).await {
            let Value::Array(parts) = answer? else {
                return Err(Error::Backend("a check of members answered oddly".into()));
            };
            let mut parts = parts.into_iter();
            let (Some(Value::Array(found)), Some(Value::Array(lost))) =
                (parts.next(), parts.next())
            else {
                return Err(Error::Backend("a check of members answered oddly".into()));
            };
            members.extend(pairs(found)?);
            for id in lost {
                gone.push(string(id)?);
            }
        }
        self.leave_index(room, &gone).await?;
        Ok(members)
    }

    pub(super) async fn remove_user(&self, user_id: &str) -> Result<Vec<String>> {
        self.inner.limits.check_user_id(user_id)?;
        let keys = &self.inner.keys;
        let slot = keys.user_slot(user_id);
        let mut ids: Vec<String> = Vec::new();
        for _ in 0..KEY_READS {
            let cluster = self.on_cluster();
            let declared = if cluster { 2 + 2 * ids.len() } else { 1 };
            let mut command = Command::script(&self.inner.scripts.remove_user, declared);
            command.key(&keys.user_sessions, slot, user_id);
            if cluster {
                command.key(&keys.user_detached, slot, user_id);
                for id in &ids {
                    command
                        .key(&keys.session, slot, id)
                        .key(&keys.session_rooms, slot, id);
                }
            }
            command.arg(user_id);
            match self.run(&command).await? {
                Value::Int(scripts::NEED_KEYS) => {
                    ids = self.members(keys, slot, user_id).await?;
                }
                Value::Array(removed) if !cluster => {
                    return removed.into_iter().map(string).collect();
                }
                Value::Array(parts) => {
                    let forgotten = forgotten(parts)?;
                    self.forget_in_hub(&forgotten).await;
                    return Ok(forgotten.into_iter().map(|(id, _)| id).collect());
                }
                other => return Err(unexpected("a list of session ids", &other)),
            }
        }
        Err(keys_kept_changing(user_id))
    }
}

/// Session ids and user ids, flat, as members.
fn pairs(items: Vec<Value>) -> Result<Vec<Member>> {
    let mut members = Vec::with_capacity(items.len() / 2);
    let mut items = items.into_iter();
    while let (Some(id), Some(user)) = (items.next(), items.next()) {
        members.push(Member {
            session_id: string(id)?,
            user_id: string(user)?,
        });
    }
    Ok(members)
}

/// A cluster script's `{{id, ...}, {{room, ...}, ...}}`: removed sessions, each with its rooms.
pub(super) fn forgotten(parts: Vec<Value>) -> Result<Vec<(String, Vec<String>)>> {
    let mut parts = parts.into_iter();
    let (Some(Value::Array(ids)), Some(Value::Array(rooms))) = (parts.next(), parts.next()) else {
        return Err(Error::Backend(
            "removed sessions answered with missing parts".into(),
        ));
    };
    ids.into_iter()
        .zip(rooms)
        .map(|(id, rooms)| {
            let rooms = match rooms {
                Value::Array(rooms) => rooms.into_iter().map(string).collect::<Result<_>>()?,
                other => return Err(unexpected("a session's rooms", &other)),
            };
            Ok((string(id)?, rooms))
        })
        .collect()
}
