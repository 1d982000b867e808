//! Opening the session of an upgrade, the one place where it happens: a fresh session, or the
//! session a client presents a resume token for, with the messages it missed first in its
//! inbox.

use std::sync::Arc;

use crate::error::{Error, Result};
use crate::hub::InboxLimits;
use crate::resume::claim::{Won, claim, read_from, unclaim};
use crate::resume::{Presented, Recovery, ResumeToken};
use crate::session::WsSession;
use crate::session::live::Live;
use crate::store::SessionStore;
use crate::store::attachment::Attach;
use crate::store::backend::Backend;
use crate::store::envelope::{Envelope, Topic};
use crate::store::history::ReadBudget;

/// A fresh session for `identified` (an anonymous one, whose user id is its own id, for
/// `None`), in the store and registered with this instance's node.
///
/// # Errors
///
/// Store or broker errors; nothing is left behind.
pub(crate) async fn fresh(
    live: &Arc<Live>,
    limits: InboxLimits,
    identified: Option<String>,
) -> Result<WsSession> {
    let id = live.store.fresh_session_id(identified.as_deref());
    let user_id = identified.unwrap_or_else(|| id.clone());
    let token = ResumeToken::generate(&id);
    // The session goes into the store while its connection subscribes on the node: one wait
    // for both.
    let node = &live.node;
    let attach = Attach::node(node.id()).token(token.hash());
    let (created, registered) = tokio::join!(
        live.store.create_attached_session(&id, &user_id, &attach),
        node.register(&id, &user_id, limits, 1, &[]),
    );
    let connection = match (created, registered) {
        (Ok(_), Ok(connection)) => connection,
        (Err(error), registered) => {
            if let Ok(connection) = registered {
                node.unregister(&id, &connection);
            }
            return Err(error);
        }
        (Ok(_), Err(error)) => {
            let _ = live.store.remove_session(&id).await;
            return Err(error);
        }
    };
    tracing::debug!(session = %id, user = %user_id, "session created");
    crate::telemetry::created();
    Ok(WsSession::open(
        Arc::clone(live),
        id,
        user_id,
        connection,
        token,
    ))
}

/// Gives the new connection the session `presented` names, if the claim succeeds: the same id,
/// data and rooms, a new token, and the missed messages first in its inbox. `Ok(None)` when the
/// claim is refused (the caller opens a fresh session); the reason is logged, the token never.
///
/// `identified` is the user identified on the new request; `None` for an anonymous one, whose
/// session must then be anonymous (its user id is its own id).
///
/// # Errors
///
/// Store or broker errors: the store could not be asked, or the claimed session could not be
/// attached here.
pub(crate) async fn resumed(
    live: &Arc<Live>,
    limits: InboxLimits,
    presented: &Presented,
    identified: Option<&str>,
) -> Result<Option<WsSession>> {
    let node = &live.node;
    let Some(Won {
        id,
        user_id,
        resumed,
        token,
        presented: presented_hash,
    }) = claim(&live.store, presented, identified, node.id()).await?
    else {
        return Ok(None);
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
            unclaim(
                &live.store,
                node.id(),
                &user_id,
                &token,
                presented_hash,
                live.detach(),
            )
            .await;
            return Err(error);
        }
    };
    crate::telemetry::resumed();
    live.detached_gauge.resumed(&id);
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
    let recovery = match node
        .transport()
        .replay(&id, &from, node.policy(), budget)
        .await
    {
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
        Arc::clone(live),
        id,
        user_id,
        connection,
        token,
        presented_hash,
        recovery,
    )))
}

/// The response to an upgrade whose session could not be opened.
pub(crate) fn failed(error: &Error) -> axum_core::response::Response {
    use axum_core::response::IntoResponse;
    use http::StatusCode;
    let status = match error {
        Error::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
        Error::InvalidInput(crate::InvalidInput::TooManySessions { .. }) => {
            crate::telemetry::refused_upgrade("user_sessions");
            StatusCode::TOO_MANY_REQUESTS
        }
        Error::InvalidInput(_) => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    tracing::warn!(error = %error.chain(), %status, "WebSocket upgrade refused: session not created");
    let body = match status {
        StatusCode::SERVICE_UNAVAILABLE => "session store unavailable, try again later",
        StatusCode::BAD_REQUEST => "the identity does not fit the session store's limits",
        StatusCode::TOO_MANY_REQUESTS => "this user has as many sessions as it may have",
        _ => "session could not be created",
    };
    (status, body).into_response()
}
