//! The layer's side of resume: claiming the session a client presents a token for, attaching
//! it to the new connection, and putting the messages it missed in front of its inbox.

use std::sync::Arc;

use super::{
    Claim, Claimed, Detach, Presented, Recovery, Refusal, ResumeToken, Resumed, TokenHash,
};
use crate::error::{Error, Result};
use crate::handle::WsSession;
use crate::hub::InboxLimits;
use crate::hub::envelope::{Envelope, Stream, Topic};
use crate::hub::history::{ReadBudget, ReadFrom};
use crate::registry::Registry;

/// Gives the new connection the session `presented` names, if the claim succeeds: the same id,
/// data and rooms, a new token, and the missed messages first in its inbox. `Ok(None)` when the
/// claim is refused (the caller gives a fresh session); the reason is logged, the token never.
///
/// `identified` is the user identified on the new request; `None` for an anonymous one, whose
/// session must then be anonymous (its user id is its own id).
///
/// # Errors
///
/// Store or broker errors: the store could not be asked, or the claimed session could not be
/// attached here.
pub(crate) async fn reattach(
    registry: &Arc<Registry>,
    limits: InboxLimits,
    presented: &Presented,
    identified: Option<&str>,
) -> Result<Option<WsSession>> {
    let Some(token) = ResumeToken::parse(&presented.token) else {
        refused(Refusal::Malformed, identified);
        return Ok(None);
    };
    let id = token.session_id().to_owned();
    let user_id = identified.map_or_else(|| id.clone(), str::to_owned);
    let new_token = ResumeToken::generate(&id);
    let node = &registry.node;
    let claim = Claim::new(&token, &user_id, new_token.hash(), node.id());
    let resumed = match registry.store.claim_session(&claim).await {
        Ok(Claimed::Resumed(resumed)) => resumed,
        Ok(Claimed::Refused(refusal)) => {
            refused(refusal, identified);
            return Ok(None);
        }
        // An id or user the store would never hold: not a session anyone has.
        Err(Error::InvalidInput(_)) => {
            refused(Refusal::Malformed, identified);
            return Ok(None);
        }
        Err(error) => return Err(error),
    };
    let rooms: Vec<String> = resumed.rooms.iter().map(|(room, _)| room.clone()).collect();
    let connection = match node
        .register(&id, &user_id, limits, resumed.epoch, &rooms)
        .await
    {
        Ok(connection) => connection,
        Err(error) => {
            tracing::warn!(session = %id, error = %error.chain(), "resumed session could not be attached here");
            // The client never gets the new token: the session goes back to the one it holds.
            give_back(
                registry,
                &user_id,
                &new_token,
                token.hash(),
                registry.detach(),
            )
            .await;
            return Err(error);
        }
    };
    crate::telemetry::resumed();
    registry.detached_here.resumed(&id);
    if resumed.previous_node.is_some() {
        crate::telemetry::takeover();
    }
    if let Some(previous) = resumed.previous_node.as_deref()
        && previous != &**node.id()
    {
        // The older connection's node closes it with 4002; the answer is not waited for (a
        // crashed node is not listening).
        drop(node.publish(
            &Topic::Node(previous.into()),
            &Envelope::take_over(id.clone(), resumed.epoch),
        ));
        tracing::info!(session = %id, node = %previous, "session taken over from another node");
    }
    let from = read_from(&id, &user_id, &resumed, presented);
    // Nothing is read beyond what the inbox can take.
    let budget = ReadBudget {
        messages: limits.messages,
        bytes: limits.bytes,
    };
    let recovery = match node.transport().replay(&from, node.policy(), budget).await {
        Ok(replayed) => {
            let (missed, fitted) = connection.inbox.replay(replayed.missed);
            Recovery {
                missed,
                complete: replayed.complete && fitted,
            }
        }
        Err(error) => {
            tracing::warn!(session = %id, error = %error.chain(), "missed messages could not be read");
            Recovery {
                missed: 0,
                complete: false,
            }
        }
    };
    tracing::info!(
        session = %id,
        user = %user_id,
        epoch = resumed.epoch,
        missed = recovery.missed,
        complete = recovery.complete,
        "session resumed"
    );
    Ok(Some(WsSession::resumed(
        Arc::clone(registry),
        id,
        user_id,
        connection,
        new_token,
        token.hash(),
        recovery,
    )))
}

/// Gives a claimed session back to the token its client still holds (`previous`), and detaches
/// it: for a claim whose connection never came up (it could not be attached here, or the
/// upgrade failed), so that the client can try again with the same token. Best effort: on a
/// store error the session stays as the claim left it, and expires.
pub(crate) async fn give_back(
    registry: &Registry,
    user_id: &str,
    current: &ResumeToken,
    previous: TokenHash,
    detach: Option<Detach>,
) {
    let id = current.session_id();
    let claim = Claim::new(current, user_id, previous, registry.node.id());
    let epoch = match registry.store.claim_session(&claim).await {
        Ok(Claimed::Resumed(resumed)) => resumed.epoch,
        Ok(Claimed::Refused(refusal)) => {
            tracing::debug!(session = %id, reason = refusal.as_str(), "claimed session not given back");
            return;
        }
        Err(error) => {
            tracing::warn!(session = %id, error = %error.chain(), "claimed session not given back; it will expire");
            return;
        }
    };
    let Some(detach) = detach else {
        return;
    };
    match registry.store.detach_session(id, epoch, &detach).await {
        Ok(_) => {
            tracing::debug!(session = %id, "claimed session given back to its token, detached")
        }
        Err(error) => {
            tracing::warn!(session = %id, error = %error.chain(), "claimed session not detached; it will expire")
        }
    }
}

/// Where to read each history the session belongs to: after the client's offset, and never
/// before the session was created or joined the room.
fn read_from(id: &str, user_id: &str, resumed: &Resumed, presented: &Presented) -> Vec<ReadFrom> {
    let seen = presented.offset.unwrap_or_default();
    let after = |since| seen.max(since);
    let mut from = vec![
        ReadFrom {
            stream: Stream::All,
            after: after(resumed.since),
        },
        ReadFrom {
            stream: Stream::User(user_id.to_owned()),
            after: after(resumed.since),
        },
        ReadFrom {
            stream: Stream::Session(id.to_owned()),
            after: after(resumed.since),
        },
    ];
    from.extend(resumed.rooms.iter().map(|(room, since)| ReadFrom {
        stream: Stream::Room(room.clone()),
        after: after(*since),
    }));
    from
}

fn refused(refusal: Refusal, identified: Option<&str>) {
    crate::telemetry::refused(refusal.as_str());
    tracing::info!(
        reason = refusal.as_str(),
        user = identified.unwrap_or("(anonymous)"),
        "resume refused; the connection gets a fresh session"
    );
}
