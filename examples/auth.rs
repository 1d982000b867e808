//! An authentication layer in front of `SessionLayer`.
//!
//! ```text
//! cargo run --example auth                      # on 127.0.0.1:3001, sessions in memory
//! REDIS_URL=redis://127.0.0.1/ cargo run --example auth   # sessions in Redis
//! ```
//!
//! A bearer token is checked by ordinary axum middleware (`middleware::from_fn`), which puts the
//! user's [`UserId`] into the request; `SessionLayer`'s default identification step reads it.
//! The token comes from the `Authorization: Bearer TOKEN` header, or, for browsers (whose
//! WebSocket API sets no headers), from `?access_token=TOKEN`. Without a valid token the
//! middleware answers `401` and no session is made.
//!
//! The demo's tokens: `alice-secret` (user `alice`) and `bob-secret` (user `bob`). Connect
//! with, for instance, `websocat -H 'Authorization: Bearer alice-secret' ws://127.0.0.1:3001/ws`:
//! the server greets with the session and the user, then answers every text frame with the
//! number of frames this session has sent so far, kept in the session. `GET /sessions` (with the
//! same token) lists the user's sessions on every instance: a plain HTTP route that holds the
//! hub. The store is chosen at run time as an [`AnyStore`], without the app being generic over
//! it.

use axum::extract::Request;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Json, Router};
use http::{StatusCode, header};
use tower::ServiceBuilder;
use ws_session::hub::Hub;
use ws_session::socket::SessionSocket;
use ws_session::{AnyStore, MemoryStore, SessionLayer, UserId, WsSession};

/// The demo's token table. A real application looks the token up in its identity provider
/// (or verifies a signed one) here.
const TOKENS: [(&str, &str); 2] = [("alice-secret", "alice"), ("bob-secret", "bob")];

/// The user a token belongs to.
fn user_of(token: &str) -> Option<&'static str> {
    TOKENS
        .iter()
        .find(|(known, _)| *known == token)
        .map(|(_, user)| *user)
}

/// The token a request presents: the bearer header, or the `access_token` query parameter.
fn token_of(request: &Request) -> Option<String> {
    let bearer = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::to_owned);
    bearer.or_else(|| {
        form_urlencoded::parse(request.uri().query()?.as_bytes())
            .find(|(name, _)| name == "access_token")
            .map(|(_, value)| value.into_owned())
    })
}

/// The authentication middleware: a request with a valid token goes on with its [`UserId`];
/// any other gets `401`.
async fn authenticate(mut request: Request, next: Next) -> Response {
    match token_of(&request).as_deref().and_then(user_of) {
        Some(user) => {
            request.extensions_mut().insert(UserId::new(user));
            next.run(request).await
        }
        None => (StatusCode::UNAUTHORIZED, "a valid bearer token is needed").into_response(),
    }
}

/// The router: authentication first, then the session layer, around `GET /ws` and
/// `GET /sessions`.
pub fn router(store: impl Into<AnyStore>) -> Router {
    let sessions_layer = SessionLayer::new(store);
    Router::new()
        .route("/ws", get(upgrade))
        .route("/sessions", get(sessions))
        .layer(
            ServiceBuilder::new()
                .layer(middleware::from_fn(authenticate))
                .layer(sessions_layer.hub())
                .layer(sessions_layer),
        )
}

/// The ids of the caller's sessions, on every instance sharing the store.
async fn sessions(
    hub: Hub,
    Extension(user): Extension<UserId>,
) -> Result<Json<Vec<String>>, StatusCode> {
    let sessions = hub
        .user_sessions(&user.0)
        .await
        .map_err(|_| StatusCode::SERVICE_UNAVAILABLE)?;
    Ok(Json(
        sessions.into_iter().map(|session| session.id).collect(),
    ))
}

async fn upgrade(ws: WebSocketUpgrade, session: WsSession) -> impl IntoResponse {
    ws.on_upgrade(move |socket| serve(socket, session))
}

async fn serve(socket: WebSocket, session: WsSession) {
    let mut socket = SessionSocket::new(socket, session.clone());
    let hello = serde_json::json!({"session": session.id(), "user": session.user_id()});
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    while let Some(frame) = socket.recv().await {
        if let Message::Text(_) = frame {
            let frames: u64 = session.get("frames").await.ok().flatten().unwrap_or(0) + 1;
            if session.set("frames", &frames).await.is_err()
                || socket
                    .send(Message::Text(frames.to_string().into()))
                    .await
                    .is_err()
            {
                break;
            }
        }
    }
}

#[tokio::main]
#[allow(dead_code)]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt().init();
    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3001".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    tracing::info!("auth example on ws://{}/ws", listener.local_addr()?);
    axum::serve(listener, router(store().await?)).await?;
    Ok(())
}

/// Redis when `REDIS_URL` is set, else memory: one value, whichever it is.
#[allow(dead_code)]
async fn store() -> ws_session::Result<AnyStore> {
    let ttl = std::time::Duration::from_secs(3600);
    #[cfg(feature = "redis")]
    if let Ok(url) = std::env::var("REDIS_URL") {
        return Ok(ws_session::RedisStore::connect(&url, "auth", ttl)
            .await?
            .into());
    }
    Ok(MemoryStore::with_ttl(ttl).into())
}
