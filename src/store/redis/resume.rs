//! Resume for [`RedisStore`]: the claim and the detach scripts' calls and answers.

use ::redis::Value;

use super::RedisStore;
use super::command::Command;
use super::reply::{string, unexpected};
use super::scripts;
use crate::error::{Error, Result};
use crate::session::record::now_ms;
use crate::store::attachment::{Claim, Claimed, Detach, Detached, Refusal, Resumed};
use crate::store::message::Offset;

impl RedisStore {
    pub(super) async fn claim(&self, claim: &Claim<'_>) -> Result<Claimed> {
        let id = claim.id;
        let limits = &self.inner.limits;
        limits.check_session_id(id)?;
        limits.check_user_id(claim.user_id)?;
        let keys = &self.inner.keys;
        let mut command = Command::script(&self.inner.scripts.claim, 2);
        command
            .joined(&keys.session, id)
            .joined(&keys.user_detached, claim.user_id)
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
        Ok(Claimed::Resumed(Resumed::new(
            u64::try_from(epoch).unwrap_or_default(),
            (!node.is_empty()).then_some(node),
            offset(since)?,
            joined,
        )))
    }

    pub(super) async fn detach(&self, id: &str, epoch: u64, detach: &Detach) -> Result<Detached> {
        self.inner.limits.check_session_id(id)?;
        let mut command = self.script_on_session(&self.inner.scripts.detach, id);
        command
            .arg(id)
            .arg(epoch)
            .arg(now_ms())
            .arg(detach.window_ms())
            .arg(detach.max_per_user);
        let items = match self.run(&command).await? {
            Value::Array(items) if items.len() >= 2 => items,
            other => return Err(unexpected("a detach's answer", &other)),
        };
        let mut items = items.into_iter();
        let (Some(Value::Int(status)), Some(Value::Int(expired))) = (items.next(), items.next())
        else {
            return Err(Error::Backend("a detach answered with no status".into()));
        };
        let evicted = items.map(string).collect::<Result<Vec<_>>>()?;
        Ok(Detached::new(
            status == scripts::OK,
            usize::try_from(expired).unwrap_or_default(),
            evicted,
        ))
    }
}

/// An offset the scripts answered with, as text.
pub(super) fn offset(value: Value) -> Result<Offset> {
    let text = string(value)?;
    text.parse()
        .map_err(|_| Error::Backend(format!("not a hub offset: {text:?}").into()))
}
