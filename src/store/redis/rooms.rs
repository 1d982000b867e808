//! The operations of the Redis store that the hub builds on: sessions attached to a node, and
//! rooms.

use ::redis::Value;

use super::RedisStore;
use super::command::Command;
use super::reply::{string, unexpected};
use super::scripts::{self, StoreScript};
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
        let now = now_ms();
        let keys = &self.inner.keys;
        let mut command = Command::script(&self.inner.scripts.create, 3);
        let token = attach
            .and_then(|attach| attach.token)
            .map(|token| token.to_hex())
            .unwrap_or_default();
        command
            .joined(&keys.session, id)
            .joined(&keys.user_sessions, user_id)
            .arg(&keys.clock)
            .arg(id)
            .arg(user_id)
            .arg(now)
            .arg(attach.map_or("", |attach| attach.node_id))
            .arg(token);
        match self.run(&command).await? {
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

    /// The node of session `id`: one `HMGET` of its owner and its node.
    pub(super) async fn node_of(&self, id: &str) -> Result<Option<String>> {
        self.inner.limits.check_session_id(id)?;
        let mut command = self.on_session("HMGET", id);
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

    /// Runs the join or leave script for session `id` and `room`.
    pub(super) async fn change_room(
        &self,
        script: &StoreScript,
        id: &str,
        room: &str,
    ) -> Result<bool> {
        let limits = &self.inner.limits;
        limits.check_session_id(id)?;
        limits.check_room(room)?;
        // Both scripts name the hub's clock, which a join reads for the room's offset.
        let mut command = Command::script(script, 2);
        command
            .joined(&self.inner.keys.session, id)
            .arg(&self.inner.keys.clock)
            .arg(now_ms())
            .arg(id)
            .arg(room);
        self.run_changed(id, &command).await
    }

    pub(super) async fn rooms_of(&self, id: &str) -> Result<Vec<String>> {
        self.inner.limits.check_session_id(id)?;
        let mut command = self.script_on_session(&self.inner.scripts.rooms, id);
        command.arg(id);
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
        let mut command = Command::script(&self.inner.scripts.members, 1);
        command.joined(&self.inner.keys.room_members, room);
        let items = match self.run(&command).await? {
            Value::Array(items) if items.len() % 2 == 0 => items,
            other => return Err(unexpected("pairs of session id and user id", &other)),
        };
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

    pub(super) async fn remove_user(&self, user_id: &str) -> Result<Vec<String>> {
        self.inner.limits.check_user_id(user_id)?;
        let mut command = Command::script(&self.inner.scripts.remove_user, 1);
        command
            .joined(&self.inner.keys.user_sessions, user_id)
            .arg(user_id);
        match self.run(&command).await? {
            Value::Array(ids) => ids.into_iter().map(string).collect(),
            other => Err(unexpected("a list of session ids", &other)),
        }
    }
}
