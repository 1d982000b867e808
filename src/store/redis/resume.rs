//! Resume for [`RedisStore`]: the claim and the detach scripts' calls and answers.

use ::redis::Value;

use super::META_USER_ID;
use super::RedisStore;
use super::cluster::{KEY_READS, keys_kept_changing};
use super::command::Command;
use super::keys::Slot;
use super::reply::{string, unexpected};
use super::rooms::forgotten;
use super::scripts;
use crate::error::{Error, Result};
use crate::session::record::now_ms;
use crate::store::attachment::{Claim, Claimed, Detach, Detached, Refusal, Resumed};
use crate::store::message::Offset;

impl RedisStore {
    pub(super) async fn claim(&self, claim: &Claim<'_>) -> Result<Claimed> {
        let id = claim.id;
        let slot = self.session_slot(id)?;
        self.inner.limits.check_user_id(claim.user_id)?;
        let keys = &self.inner.keys;
        if !keys.id_fits_user(id, claim.user_id) {
            // No session of that user can have this id.
            return Ok(Claimed::Refused(Refusal::Unknown));
        }
        let cluster = self.on_cluster();
        let mut command = Command::script(&self.inner.scripts.claim, if cluster { 4 } else { 2 });
        command
            .key(&keys.session, slot, id)
            .key(&keys.user_detached, slot, claim.user_id);
        if cluster {
            command.key(&keys.user_sessions, slot, claim.user_id).key(
                &keys.session_rooms,
                slot,
                id,
            );
        }
        command
            .arg(id)
            .arg(claim.token.to_hex())
            .arg(claim.user_id)
            .arg(claim.new_token.to_hex())
            .arg(claim.node_id)
            .arg(now_ms());
        let reply = match self.run(&command).await? {
            Value::Array(items) => items,
            other => return Err(unexpected("a claim's answer", &other)),
        };
        let mut items = reply.into_iter();
        let status = match items.next() {
            Some(Value::Int(status)) => status,
            other => return Err(unexpected("a claim's status", &other.unwrap_or(Value::Nil))),
        };
        let refusal = match status {
            scripts::OK => None,
            scripts::REFUSED_UNKNOWN => Some(Refusal::Unknown),
            scripts::REFUSED_TOKEN => Some(Refusal::Token),
            scripts::REFUSED_USER => Some(Refusal::User),
            other => return Err(unexpected("a claim's status", &Value::Int(other))),
        };
        if let Some(refusal) = refusal {
            return Ok(Claimed::Refused(refusal));
        }
        let (Some(Value::Int(epoch)), Some(node), Some(since), Some(rooms)) =
            (items.next(), items.next(), items.next(), items.next())
        else {
            return Err(Error::Backend("a claim answered with missing parts".into()));
        };
        let node = string(node)?;
        let rooms = match rooms {
            Value::Array(fields) => fields,
            Value::Map(pairs) => pairs.into_iter().flat_map(|(k, v)| [k, v]).collect(),
            other => return Err(unexpected("a session's rooms", &other)),
        };
        let mut pairs = rooms.into_iter();
        let mut joined = Vec::new();
        while let (Some(room), Some(since)) = (pairs.next(), pairs.next()) {
            joined.push((string(room)?, offset(since)?));
        }
        joined.sort_unstable();
        if cluster {
            // What the claim renews in the hub's slot: the session's history and its rooms'
            // sets.
            let rooms: Vec<String> = joined.iter().map(|(room, _)| room.clone()).collect();
            self.keep_in_hub(id, self.inner.ttl, &rooms).await;
        }
        Ok(Claimed::Resumed(Resumed::new(
            u64::try_from(epoch).unwrap_or_default(),
            (!node.is_empty()).then_some(node),
            offset(since)?,
            joined,
        )))
    }

    pub(super) async fn detach(&self, id: &str, epoch: u64, detach: &Detach) -> Result<Detached> {
        let slot = self.session_slot(id)?;
        if self.on_cluster() {
            return self.detach_on_cluster(id, slot, epoch, detach).await;
        }
        let mut command = Command::script(&self.inner.scripts.detach, 1);
        command.key(&self.inner.keys.session, slot, id);
        detach_args(&mut command, id, epoch, detach);
        let items = match self.run(&command).await? {
            Value::Array(items) if items.len() >= 2 => items,
            other => return Err(unexpected("a detach's answer", &other)),
        };
        let (status, expired, mut items) = detach_status(items)?;
        let evicted = items.by_ref().map(string).collect::<Result<Vec<_>>>()?;
        Ok(Detached::new(status == scripts::OK, expired, evicted))
    }

    /// A detach on a cluster: the owner and the owner's detached sessions read first, then
    /// the script with their keys declared; then, in the hub's slot, the session's history
    /// and rooms' sets kept for the window, and the traces of the sessions evicted deleted.
    async fn detach_on_cluster(
        &self,
        id: &str,
        slot: Slot,
        epoch: u64,
        detach: &Detach,
    ) -> Result<Detached> {
        let keys = &self.inner.keys;
        for _ in 0..KEY_READS {
            let mut owner = Command::new("HGET");
            owner.key(&keys.session, slot, id).arg(META_USER_ID);
            let user = match self.run(&owner).await? {
                Value::Nil => return Ok(Detached::new(false, 0, Vec::new())),
                user => string(user)?,
            };
            let mut listed = Command::new("ZRANGE");
            listed.key(&keys.user_detached, slot, &user).arg(0).arg(-1);
            let others: Vec<String> = match self.run(&listed).await? {
                Value::Array(ids) => ids.into_iter().map(string).collect::<Result<_>>()?,
                other => return Err(unexpected("a user's detached sessions", &other)),
            };
            let mut command = Command::script(&self.inner.scripts.detach, 4 + 2 * others.len());
            command
                .key(&keys.session, slot, id)
                .key(&keys.user_sessions, slot, &user)
                .key(&keys.user_detached, slot, &user)
                .key(&keys.session_rooms, slot, id);
            for other in &others {
                command
                    .key(&keys.session, slot, other)
                    .key(&keys.session_rooms, slot, other);
            }
            detach_args(&mut command, id, epoch, detach);
            command.arg(&user);
            let items = match self.run(&command).await? {
                Value::Array(items) if items.len() >= 2 => items,
                other => return Err(unexpected("a detach's answer", &other)),
            };
            let (status, expired, items) = detach_status(items)?;
            if status == scripts::NEED_KEYS {
                continue;
            }
            if status != scripts::OK {
                return Ok(Detached::new(false, expired, Vec::new()));
            }
            let mut items = items;
            let (Some(Value::Array(removed)), Some(Value::Array(own)), Some(Value::Array(rooms))) =
                (items.next(), items.next(), items.next())
            else {
                return Err(Error::Backend(
                    "a detach answered with missing parts".into(),
                ));
            };
            let own = own.into_iter().map(string).collect::<Result<Vec<_>>>()?;
            self.keep_in_hub(id, detach.window, &own).await;
            let forgotten = forgotten(vec![Value::Array(removed), Value::Array(rooms)])?;
            self.forget_in_hub(&forgotten).await;
            let evicted = forgotten.into_iter().map(|(id, _)| id).collect();
            return Ok(Detached::new(true, expired, evicted));
        }
        Err(keys_kept_changing(id))
    }
}

/// The detach script's arguments after its keys.
fn detach_args(command: &mut Command<'_>, id: &str, epoch: u64, detach: &Detach) {
    command
        .arg(id)
        .arg(epoch)
        .arg(now_ms())
        .arg(detach.window_ms())
        .arg(detach.max_per_user);
}

/// A detach's status and count of expired sessions, and the rest of its answer.
fn detach_status(items: Vec<Value>) -> Result<(i64, usize, std::vec::IntoIter<Value>)> {
    let mut items = items.into_iter();
    let (Some(Value::Int(status)), Some(Value::Int(expired))) = (items.next(), items.next()) else {
        return Err(Error::Backend("a detach answered with no status".into()));
    };
    Ok((status, usize::try_from(expired).unwrap_or_default(), items))
}

/// An offset the scripts answered with, as text.
pub(super) fn offset(value: Value) -> Result<Offset> {
    let text = string(value)?;
    text.parse()
        .map_err(|_| Error::Backend(format!("not a hub offset: {text:?}").into()))
}
