//! [`WsSession`] and [`Hub`] as axum extractors, and the rejection of the first.

use std::convert::Infallible;
use std::fmt;

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use axum_core::response::{IntoResponse, Response};
use http::StatusCode;
use http::request::Parts;

use super::ws_session::WsSession;
use crate::hub::{Hub, MissingHub};

impl<S: Send + Sync> FromRequestParts<S> for WsSession {
    type Rejection = MissingSessionLayer;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<WsSession>()
            .cloned()
            .ok_or(MissingSessionLayer)
    }
}

/// `Option<WsSession>` extracts `None` instead of rejecting, for handlers that also serve
/// requests without a session.
impl<S: Send + Sync> OptionalFromRequestParts<S> for WsSession {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(parts.extensions.get::<WsSession>().cloned())
    }
}

/// The rejection of the [`WsSession`] extractor when the request carries no session:
/// a `500 Internal Server Error`, since it is a mistake in the server's setup.
///
/// ```
/// use axum::response::IntoResponse;
/// use ws_session::MissingSessionLayer;
///
/// let response = MissingSessionLayer.into_response();
/// assert_eq!(response.status(), 500);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MissingSessionLayer;

impl MissingSessionLayer {
    const MESSAGE: &'static str = "Missing WebSocket session: the request has no `WsSession`. \
        Perhaps you forgot to add `.layer(SessionLayer::new(store))` to this route, \
        or the request is not a WebSocket upgrade (sessions exist only for upgrades).";

    /// The status the rejection answers with: always 500.
    pub fn status(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    /// The text of the response body.
    pub fn body_text(&self) -> &'static str {
        Self::MESSAGE
    }
}

impl fmt::Display for MissingSessionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::MESSAGE)
    }
}

impl std::error::Error for MissingSessionLayer {}

impl IntoResponse for MissingSessionLayer {
    fn into_response(self) -> Response {
        tracing::error!("{}", Self::MESSAGE);
        (self.status(), Self::MESSAGE).into_response()
    }
}

/// The hub of the request: the one [`HubService`](crate::hub::HubService) put in, or, behind
/// the session layer, the hub of the upgrade's session.
fn hub_in(parts: &Parts) -> Option<Hub> {
    parts
        .extensions
        .get::<Hub>()
        .cloned()
        .or_else(|| parts.extensions.get::<WsSession>().map(WsSession::hub))
}

impl<S: Send + Sync> FromRequestParts<S> for Hub {
    type Rejection = MissingHub;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        hub_in(parts).ok_or(MissingHub)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Hub {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Option<Self>, Self::Rejection> {
        Ok(hub_in(parts))
    }
}
