//! [`SessionService`]: the service [`SessionLayer`](super::SessionLayer) wraps around a route.

use std::sync::Arc;
use std::task::{Context, Poll};

use axum_core::response::{IntoResponse, Response};
use http::{Request, StatusCode};
use tower_service::Service;

use super::Config;
use super::future::ResponseFuture;
use super::open;
use super::upgrade::{UpgradeKind, websocket_upgrade};
use crate::resume::ResumeToken;
use crate::session::live::Live;

/// The middleware service built by [`SessionLayer`](super::SessionLayer).
#[derive(Clone)]
pub struct SessionService<S> {
    inner: S,
    live: Arc<Live>,
    config: Arc<Config>,
}

impl<S> SessionService<S> {
    pub(crate) fn new(inner: S, live: Arc<Live>, config: Arc<Config>) -> Self {
        SessionService {
            inner,
            live,
            config,
        }
    }
}

impl<S, ReqBody> Service<Request<ReqBody>> for SessionService<S>
where
    S: Service<Request<ReqBody>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    ReqBody: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = ResponseFuture<S::Future, S::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<ReqBody>) -> Self::Future {
        let Some(kind) = websocket_upgrade(&request) else {
            return ResponseFuture::passthrough(self.inner.call(request));
        };
        // The ready service goes into the future; a fresh clone waits for the next request.
        let clone = self.inner.clone();
        let inner = std::mem::replace(&mut self.inner, clone);
        ResponseFuture::upgrade(Box::pin(open_session(
            inner,
            Arc::clone(&self.live),
            Arc::clone(&self.config),
            kind,
            request,
        )))
    }
}

/// Identifies the user, claims or creates the session, and runs the inner service with the
/// handle.
async fn open_session<S, ReqBody>(
    mut inner: S,
    live: Arc<Live>,
    config: Arc<Config>,
    kind: UpgradeKind,
    request: Request<ReqBody>,
) -> Result<Response, S::Error>
where
    S: Service<Request<ReqBody>, Response = Response>,
{
    let (mut parts, body) = request.into_parts();
    if !config.origin.allows(&parts) {
        // The origin is the page's, not a secret; the query may hold one, so only the path.
        tracing::info!(
            path = parts.uri.path(),
            origin = ?parts.headers.get(http::header::ORIGIN),
            "WebSocket upgrade refused with 403: origin not allowed"
        );
        crate::telemetry::refused_upgrade("origin");
        return Ok((StatusCode::FORBIDDEN, "origin not allowed").into_response());
    }
    let identified = match (config.identify)(&parts).await {
        Ok(Some(user_id)) => Some(user_id),
        Ok(None) if config.allow_anonymous => None,
        Ok(None) => {
            if config.identifies_from_extensions {
                // An authentication layer in front would have put a `UserId` here, or refused
                // the request itself: most likely it runs after this layer, or not at all.
                tracing::warn!(
                    path = parts.uri.path(),
                    "WebSocket upgrade rejected with 401: the request has no `UserId`. The \
                     authentication layer must run before SessionLayer: with tower, \
                     `ServiceBuilder::new().layer(auth).layer(session_layer)`; with axum's \
                     `Router::layer`, add `.layer(session_layer)` first and `.layer(auth)` \
                     after it (the layer added last runs first). Or identify the user with \
                     `SessionLayer::identify`, or allow anonymous sessions."
                );
            } else {
                tracing::info!(
                    path = parts.uri.path(),
                    "WebSocket upgrade rejected: nobody identified"
                );
            }
            return Ok((StatusCode::UNAUTHORIZED, "no identity for this WebSocket").into_response());
        }
        Err(response) => {
            tracing::info!(
                path = parts.uri.path(),
                status = %response.status(),
                "WebSocket upgrade rejected by the identification step"
            );
            return Ok(response);
        }
    };
    let presented = config
        .resumable
        .then(|| (config.read_resume)(&parts))
        .flatten();
    if let (Some(presented), Some(attempts)) = (&presented, &config.resume_attempts)
        && let Some(token) = ResumeToken::parse(&presented.token)
        && !attempts.allow(token.session_id())
    {
        tracing::info!(
            session = %token.session_id(),
            "resume refused with 429: too many attempts for this session"
        );
        crate::telemetry::refused_upgrade("rate");
        let mut response = (
            StatusCode::TOO_MANY_REQUESTS,
            "too many resume attempts, try again later",
        )
            .into_response();
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("6"),
        );
        return Ok(response);
    }
    if let Some(admitter) = &config.admission
        && let Err(busy) = admitter.admit().await
    {
        tracing::info!("upgrade refused with 503: too many sessions opening at once");
        crate::telemetry::refused_upgrade("busy");
        let mut response = (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many clients connecting at once, try again later",
        )
            .into_response();
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, busy.retry_after);
        return Ok(response);
    }
    let Some(opening) = live.begin_open() else {
        tracing::debug!("upgrade refused with 503: this instance is shutting down");
        crate::telemetry::refused_upgrade("shutdown");
        let mut response =
            (StatusCode::SERVICE_UNAVAILABLE, "shutting down, try again").into_response();
        response.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("1"),
        );
        return Ok(response);
    };
    let resumed = match presented {
        Some(presented) => {
            match open::resumed(
                &live,
                config.inbox_limits,
                &presented,
                identified.as_deref(),
            )
            .await
            {
                Ok(resumed) => resumed,
                Err(error) => return Ok(open::failed(&error)),
            }
        }
        None => None,
    };
    let session = match resumed {
        Some(session) => session,
        None => match open::fresh(&live, config.inbox_limits, identified).await {
            Ok(session) => session,
            Err(error) => return Ok(open::failed(&error)),
        },
    };
    drop(opening);
    live.start_refresher(config.refresh_interval, config.refresh_batch);
    parts.extensions.insert(session.clone());

    let result = inner.call(Request::from_parts(parts, body)).await;
    match &result {
        Ok(response) if kind.succeeded(response) => {}
        Ok(response) => {
            tracing::debug!(
                session = %session.id(),
                status = %response.status(),
                "upgrade not completed; ending its session"
            );
            session.end();
        }
        Err(_) => {
            tracing::debug!(session = %session.id(), "inner service failed; ending its session");
            session.end();
        }
    }
    result
}
