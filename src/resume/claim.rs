//! Resume's side of a store: claiming the session a token names, giving a claimed session back
//! to its old token, and where reading what a resumed session missed starts.

use super::{Presented, ResumeToken};
use crate::error::{Error, Result};
use crate::store::AnyStore;
use crate::store::attachment::{Claim, Claimed, Detach, Refusal, Resumed, TokenHash};
use crate::store::backend::Backend;
use crate::store::envelope::Stream;
use crate::store::history::ReadFrom;

/// A claim that got the session: which one and whose, its attachment, and the token that now
/// holds it.
pub(crate) struct Won {
    pub(crate) id: String,
    pub(crate) user_id: String,
    pub(crate) resumed: Resumed,
    pub(crate) token: ResumeToken,
    /// The hash of the token the client presented, to give the session back to.
    pub(crate) presented: TokenHash,
}

/// Claims the session `presented` names for `user_id` on node `node_id`, rotating its token.
/// `Ok(None)` when the claim is refused; the reason is logged (never the token) and counted.
///
/// # Errors
///
/// Store errors: the store could not be asked.
pub(crate) async fn claim(
    store: &AnyStore,
    presented: &Presented,
    user_id: Option<&str>,
    node_id: &str,
) -> Result<Option<Won>> {
    let Some(token) = ResumeToken::parse(&presented.token) else {
        refused(Refusal::Malformed, user_id);
        return Ok(None);
    };
    let id = token.session_id().to_owned();
    let session_user = user_id.map_or_else(|| id.clone(), str::to_owned);
    let new_token = ResumeToken::generate(&id);
    let claim = Claim::new(&id, token.hash(), &session_user, new_token.hash(), node_id);
    match store.claim_session(&claim).await {
        Ok(Claimed::Resumed(resumed)) => Ok(Some(Won {
            id,
            user_id: session_user,
            resumed,
            token: new_token,
            presented: token.hash(),
        })),
        Ok(Claimed::Refused(refusal)) => {
            refused(refusal, user_id);
            Ok(None)
        }
        // An id or user the store would never hold: not a session anyone has.
        Err(Error::InvalidInput(_)) => {
            refused(Refusal::Malformed, user_id);
            Ok(None)
        }
        Err(error) => Err(error),
    }
}

/// Gives a claimed session back to the token its client still holds (`previous`), and detaches
/// it: for a claim whose connection never came up (it could not be attached here, or the
/// upgrade failed), so that the client can try again with the same token. Best effort: on a
/// store error the session stays as the claim left it, and expires.
pub(crate) async fn unclaim(
    store: &AnyStore,
    node_id: &str,
    user_id: &str,
    current: &ResumeToken,
    previous: TokenHash,
    detach: Option<Detach>,
) {
    let id = current.session_id();
    let claim = Claim::new(id, current.hash(), user_id, previous, node_id);
    let epoch = match store.claim_session(&claim).await {
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
    match store.detach_session(id, epoch, &detach).await {
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
pub(crate) fn read_from(
    id: &str,
    user_id: &str,
    resumed: &Resumed,
    presented: &Presented,
) -> Vec<ReadFrom> {
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
