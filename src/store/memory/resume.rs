//! Resume for [`MemoryStore`]: claiming a session with its token, and detaching one.

use super::MemoryStore;
use crate::error::Result;
use crate::session::record::now_ms;
use crate::store::attachment::{Claim, Claimed, Detach, Detached, Refusal, Resumed};

impl MemoryStore {
    pub(super) fn claim(&self, claim: &Claim<'_>) -> Result<Claimed> {
        let inner = &*self.inner;
        let id = claim.id;
        inner.limits.check_session_id(id)?;
        inner.limits.check_user_id(claim.user_id)?;
        let active = now_ms();
        let Some((mut entry, now)) = inner.live_mut(id) else {
            return Ok(Claimed::Refused(Refusal::Unknown));
        };
        let Some(token) = entry.token else {
            return Ok(Claimed::Refused(Refusal::Unknown));
        };
        if !token.matches(&claim.token) {
            return Ok(Claimed::Refused(Refusal::Token));
        }
        if entry.user_id != claim.user_id {
            return Ok(Claimed::Refused(Refusal::User));
        }
        entry.epoch += 1;
        entry.token = Some(claim.new_token);
        entry.detached_at = None;
        let previous_node = entry
            .node
            .replace(claim.node_id.into())
            .map(|node| node.to_string());
        inner.refresh(&mut entry, now, active);
        let resumed = Resumed::new(
            entry.epoch,
            previous_node,
            entry.since,
            entry
                .rooms
                .iter()
                .map(|(room, since)| (room.clone(), *since))
                .collect(),
        );
        Ok(Claimed::Resumed(resumed))
    }

    pub(super) fn detach(&self, id: &str, epoch: u64, detach: &Detach) -> Result<Detached> {
        let inner = &*self.inner;
        inner.limits.check_session_id(id)?;
        let active = now_ms();
        let user_id = {
            let Some((mut entry, now)) = inner.live_mut(id) else {
                return Ok(Detached::default());
            };
            if entry.epoch != epoch {
                return Ok(Detached::default());
            }
            entry.node = None;
            entry.detached_at = Some(active);
            entry.last_active = active;
            entry.expires_at = now
                .checked_add(detach.window)
                .unwrap_or_else(|| inner.expiry(now));
            entry.user_id.clone()
        };
        // The user's detached sessions, oldest first: those past the cap go.
        let ids: Vec<String> = inner
            .users
            .get(&user_id)
            .map(|ids| ids.iter().cloned().collect())
            .unwrap_or_default();
        let mut detached: Vec<(u64, String)> = ids
            .into_iter()
            .filter_map(|id| {
                inner
                    .read(&id, |entry| {
                        (entry.user_id == user_id)
                            .then_some(entry.detached_at)
                            .flatten()
                    })
                    .flatten()
                    .map(|at| (at, id))
            })
            .collect();
        let mut evicted = Vec::new();
        if detached.len() > detach.max_per_user {
            detached.sort_unstable();
            let over = detached.len() - detach.max_per_user;
            for (_, id) in detached.drain(..over) {
                if let Some((id, entry)) = inner.sessions.remove(&id) {
                    inner.forget(&id, &entry);
                    evicted.push(id);
                }
            }
        }
        Ok(Detached::new(true, 0, evicted))
    }
}
