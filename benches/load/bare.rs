//! The baseline server: the chat example's protocol with no session layer.
//!
//! Same routes, same JSON parsing, same replies and the same per-socket broadcast
//! subscription as `examples/chat/app.rs`; the only difference is where a socket's data
//! lives: in a map owned by the socket's task instead of a session store. The random client
//! id is drawn the same way the layer draws it (128 bits, 32 hex digits).

use std::time::{SystemTime, UNIX_EPOCH};

use axum::{
    Router,
    extract::{
        RawQuery, State,
        ws::{Message, WebSocket, WebSocketUpgrade},
    },
    http::StatusCode,
    response::{IntoResponse, Response},
    routing::get,
};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

/// What a client may ask, one JSON text frame each (the chat example's commands).
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "lowercase")]
enum Command {
    Set { key: String, value: Value },
    Get { key: String },
    Update { data: Map<String, Value> },
    Delete { key: String },
    Clear,
    Session,
    Sessions,
    Say { text: String },
}

/// One socket's state, serialized with the same fields as a session record.
#[derive(Debug, Serialize)]
struct Record {
    id: String,
    user_id: String,
    data: Map<String, Value>,
    created_at: u64,
    last_active: u64,
}

#[derive(Clone)]
struct Chat {
    said: broadcast::Sender<String>,
}

/// The baseline router: `GET /ws?user=NAME`.
pub fn router() -> Router {
    let (said, _) = broadcast::channel(1024);
    Router::new()
        .route("/ws", get(upgrade))
        .with_state(Chat { said })
}

async fn upgrade(
    ws: WebSocketUpgrade,
    RawQuery(query): RawQuery,
    State(chat): State<Chat>,
) -> Response {
    let Some(user) = user_from_query(query.as_deref()) else {
        return (StatusCode::UNAUTHORIZED, "no identity for this WebSocket").into_response();
    };
    let id = format!("{:032x}", rand::random::<u128>());
    let now = now_ms();
    let record = Record {
        id,
        user_id: user,
        data: Map::new(),
        created_at: now,
        last_active: now,
    };
    // The same socket configuration as the chat example's.
    ws.read_buffer_size(crate::app::READ_BUFFER)
        .on_upgrade(move |socket| serve_socket(socket, record, chat))
}

fn user_from_query(query: Option<&str>) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(name, _)| *name == "user")
        .map(|(_, value)| value.to_owned())
        .filter(|value| !value.is_empty())
}

async fn serve_socket(mut socket: WebSocket, mut record: Record, chat: Chat) {
    let welcome = json!({"type": "welcome", "session": record.id, "user": record.user_id});
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
                if let Some(reply) = answer(&text, &mut record, &chat)
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
}

/// The reply to one client frame; `None` for `say`, whose echo arrives through the broadcast.
fn answer(text: &str, record: &mut Record, chat: &Chat) -> Option<Value> {
    let command = match serde_json::from_str::<Command>(text) {
        Ok(command) => command,
        Err(error) => return Some(error_reply(format!("bad request: {error}"))),
    };
    let reply = match command {
        Command::Set { key, value } => {
            record.data.insert(key, value);
            record.last_active = now_ms();
            ok()
        }
        Command::Get { key } => {
            let value = record.data.get(&key).cloned().unwrap_or(Value::Null);
            json!({"type": "value", "key": key, "value": value})
        }
        Command::Update { data } => {
            record.data.extend(data);
            record.last_active = now_ms();
            ok()
        }
        Command::Delete { key } => {
            record.data.remove(&key);
            record.last_active = now_ms();
            ok()
        }
        Command::Clear => {
            record.data.clear();
            record.last_active = now_ms();
            ok()
        }
        Command::Session => json!({"type": "session", "session": &*record}),
        // Without a shared store a socket knows only its own record.
        Command::Sessions => json!({"type": "sessions", "sessions": [&*record]}),
        Command::Say { text } => {
            let message = json!({"type": "message", "from": record.user_id, "text": text});
            let _ = chat.said.send(message.to_string());
            return None;
        }
    };
    Some(reply)
}

fn ok() -> Value {
    json!({"type": "ok"})
}

fn error_reply(message: String) -> Value {
    json!({"type": "error", "message": message})
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

async fn send(socket: &mut WebSocket, value: &Value) -> Result<(), axum::Error> {
    socket.send(Message::Text(value.to_string().into())).await
}
