//! The chat server's router: a small JSON protocol over WebSocket on top of `ws-session`.
//!
//! Kept apart from `main.rs` so that tests and the load harness run the very same router.

use axum::{
    Router,
    extract::{
        State,
        ws::{Message, WebSocket, WebSocketUpgrade},
    },
    response::IntoResponse,
    routing::get,
};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::broadcast;
use ws_session::{SessionData, SessionLayer, SessionStore, WsSession};

/// What a client may ask, one JSON text frame each.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Command {
    Set { key: String, value: Value },
    Get { key: String },
    Update { data: SessionData },
    Delete { key: String },
    Clear,
    Session,
    Sessions,
    Say { text: String },
}

/// Messages said on this server instance, fanned out to every socket.
#[derive(Clone)]
struct Chat {
    said: broadcast::Sender<String>,
}

/// The session layer of the demo. Its identification step reads `?user=NAME`: **a demo only**;
/// a real application verifies a token (a cookie, a bearer header) here.
pub fn session_layer(store: impl SessionStore) -> SessionLayer {
    SessionLayer::new(store).identify(|parts: &http::request::Parts| {
        let user = user_from_query(parts.uri.query());
        async move { Ok(user) }
    })
}

/// The chat router: `GET /ws?user=NAME`, with `layer` attached.
pub fn router(layer: SessionLayer) -> Router {
    let (said, _) = broadcast::channel(1024);
    Router::new()
        .route("/ws", get(upgrade))
        .with_state(Chat { said })
        .layer(layer)
}

fn user_from_query(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "user")
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

async fn upgrade(
    ws: WebSocketUpgrade,
    session: WsSession,
    State(chat): State<Chat>,
) -> impl IntoResponse {
    ws.on_upgrade(move |socket| serve_socket(socket, session, chat))
}

async fn serve_socket(mut socket: WebSocket, session: WsSession, chat: Chat) {
    let welcome = json!({"type": "welcome", "session": session.id(), "user": session.user_id()});
    if send(&mut socket, &welcome).await.is_err() {
        return;
    }
    let mut heard = chat.said.subscribe();
    loop {
        tokio::select! {
            incoming = socket.recv() => {
                let text = match incoming {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                    Some(Ok(_)) => continue,
                };
                if let Some(reply) = answer(&text, &session, &chat).await
                    && send(&mut socket, &reply).await.is_err()
                {
                    break;
                }
            }
            said = heard.recv() => match said {
                Ok(message) => {
                    if socket.send(Message::Text(message.into())).await.is_err() {
                        break;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(_)) => continue,
                Err(broadcast::error::RecvError::Closed) => break,
            },
        }
    }
    // `session` is dropped when this task ends: the session is removed from the store.
}

/// The reply to one client frame; `None` for `say`, whose echo arrives through the broadcast.
async fn answer(text: &str, session: &WsSession, chat: &Chat) -> Option<Value> {
    let command = match serde_json::from_str::<Command>(text) {
        Ok(command) => command,
        Err(error) => return Some(error_reply(format!("bad request: {error}"))),
    };
    let result = match command {
        Command::Set { key, value } => session.set_value(&key, value).await.map(|()| ok()),
        Command::Get { key } => session
            .get_value(&key)
            .await
            .map(|value| json!({"type": "value", "key": key, "value": value})),
        Command::Update { data } => session.update(data).await.map(|()| ok()),
        Command::Delete { key } => session.delete(&key).await.map(|()| ok()),
        Command::Clear => session.clear().await.map(|()| ok()),
        Command::Session => session
            .session()
            .await
            .map(|record| json!({"type": "session", "session": record})),
        Command::Sessions => session
            .user_sessions()
            .await
            .map(|records| json!({"type": "sessions", "sessions": records})),
        Command::Say { text } => {
            let message = json!({"type": "message", "from": session.user_id(), "text": text});
            // Nobody listening is not an error: the sender hears its own message.
            let _ = chat.said.send(message.to_string());
            return None;
        }
    };
    Some(result.unwrap_or_else(|error| error_reply(error.to_string())))
}

fn ok() -> Value {
    json!({"type": "ok"})
}

fn error_reply(message: String) -> Value {
    json!({"type": "error", "message": message})
}

async fn send(socket: &mut WebSocket, value: &Value) -> Result<(), axum::Error> {
    socket.send(Message::Text(value.to_string().into())).await
}
