//! The baseline servers: the chat example's protocol with no session layer.
//!
//! Same routes, same JSON parsing, same replies and the same per-socket broadcast
//! subscription as `examples/chat/app.rs`; the only difference is where a socket's data
//! lives. In [`router`] it is a map owned by the socket's task. In [`redis_router`] it is a
//! Redis hash per socket, written and read by one plain command per operation (`HSET`,
//! `HGET`, ...) on one multiplexed connection, with no script, no check and no TTL renewal:
//! what a Redis round trip costs a server, whatever session layer it has. The random client
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
use redis::AsyncCommands;
use redis::aio::MultiplexedConnection;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::broadcast;

/// The key of a socket's hash in [`redis_router`]'s Redis.
const KEY_PREFIX: &str = "wsload:bare:";
/// The TTL of a socket's hash, set once when the socket opens (never renewed).
const TTL_SECS: i64 = 60;

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
    /// Where the sockets' data lives: `None`, in each socket's task.
    redis: Option<MultiplexedConnection>,
}

/// The baseline router: `GET /ws?user=NAME`.
pub fn router() -> Router {
    chat_router(None)
}

/// The baseline router with each socket's data in a Redis hash, by plain commands.
pub fn redis_router(redis: MultiplexedConnection) -> Router {
    chat_router(Some(redis))
}

fn chat_router(redis: Option<MultiplexedConnection>) -> Router {
    let (said, _) = broadcast::channel(1024);
    Router::new()
        .route("/ws", get(upgrade))
        .with_state(Chat { said, redis })
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

/// Where a socket's data lives.
enum Home {
    /// In its record, owned by the socket's task.
    Local,
    /// In a Redis hash.
    Redis(RedisHash),
}

async fn serve_socket(mut socket: WebSocket, mut record: Record, chat: Chat) {
    let mut home = match chat.redis.clone() {
        None => Home::Local,
        Some(redis) => {
            let key = format!("{KEY_PREFIX}{}", record.id);
            let mut hash = RedisHash { redis, key };
            if hash.open(&record).await.is_err() {
                return;
            }
            Home::Redis(hash)
        }
    };
    serve_frames(&mut socket, &mut record, &chat, &mut home).await;
    if let Home::Redis(mut hash) = home {
        // A socket whose hash cannot be deleted leaves it to its TTL.
        let _: redis::RedisResult<()> = hash.redis.del(&hash.key).await;
    }
}

/// Answers the socket's frames and forwards the broadcast until the socket is done.
async fn serve_frames(socket: &mut WebSocket, record: &mut Record, chat: &Chat, home: &mut Home) {
    let welcome = json!({"type": "welcome", "session": record.id, "user": record.user_id});
    if send(socket, &welcome).await.is_err() {
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
                let reply = match serde_json::from_str::<Command>(&text) {
                    Err(error) => Some(error_reply(format!("bad request: {error}"))),
                    Ok(Command::Say { text }) => {
                        // No reply: the echo arrives through the broadcast.
                        let message =
                            json!({"type": "message", "from": record.user_id, "text": text});
                        let _ = chat.said.send(message.to_string());
                        None
                    }
                    Ok(command) => Some(match home {
                        Home::Local => answer(command, record),
                        Home::Redis(hash) => hash
                            .answer(command, record)
                            .await
                            .unwrap_or_else(|error| error_reply(format!("redis: {error}"))),
                    }),
                };
                if let Some(reply) = reply
                    && send(socket, &reply).await.is_err()
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

/// The reply to `command` (any but `say`, which [`serve_frames`] sends) for a socket whose
/// data lives in its record.
fn answer(command: Command, record: &mut Record) -> Value {
    match command {
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
        Command::Say { .. } => unreachable!("serve_frames sends `say` itself"),
    }
}

/// One socket's hash in Redis: `meta:*` fields as in a session hash, each key at `data:{key}`
/// as JSON text.
struct RedisHash {
    redis: MultiplexedConnection,
    key: String,
}

impl RedisHash {
    /// Writes the record's fields and the TTL, in one round trip.
    async fn open(&mut self, record: &Record) -> redis::RedisResult<()> {
        let mut pipe = redis::pipe();
        write_meta(&mut pipe, &self.key, record, record.last_active);
        pipe.query_async(&mut self.redis).await
    }

    /// The reply to `command` (any but `say`), as [`answer`] gives it, with one round trip.
    async fn answer(&mut self, command: Command, record: &Record) -> redis::RedisResult<Value> {
        let (key, redis) = (&self.key, &mut self.redis);
        let reply = match command {
            Command::Set { key: field, value } => {
                let () = redis
                    .hset_multiple(
                        key,
                        &[
                            (format!("data:{field}"), value.to_string()),
                            ("meta:last_active".to_owned(), now_ms().to_string()),
                        ],
                    )
                    .await?;
                ok()
            }
            Command::Get { key: field } => {
                let text: Option<String> = redis.hget(key, format!("data:{field}")).await?;
                let value = text
                    .and_then(|text| serde_json::from_str(&text).ok())
                    .unwrap_or(Value::Null);
                json!({"type": "value", "key": field, "value": value})
            }
            Command::Update { data } => {
                let mut fields: Vec<(String, String)> = data
                    .into_iter()
                    .map(|(field, value)| (format!("data:{field}"), value.to_string()))
                    .collect();
                fields.push(("meta:last_active".to_owned(), now_ms().to_string()));
                let () = redis.hset_multiple(key, &fields).await?;
                ok()
            }
            Command::Delete { key: field } => {
                let () = redis::pipe()
                    .hdel(key, format!("data:{field}"))
                    .ignore()
                    .hset(key, "meta:last_active", now_ms())
                    .ignore()
                    .query_async(redis)
                    .await?;
                ok()
            }
            Command::Clear => {
                // The hash again with its metadata alone, in one transaction.
                let mut pipe = redis::pipe();
                pipe.atomic().del(key).ignore();
                write_meta(&mut pipe, key, record, now_ms());
                let () = pipe.query_async(redis).await?;
                ok()
            }
            Command::Session | Command::Sessions => {
                let fields: std::collections::HashMap<String, String> = redis.hgetall(key).await?;
                let data = fields
                    .iter()
                    .filter_map(|(field, text)| {
                        let name = field.strip_prefix("data:")?;
                        Some((name.to_owned(), serde_json::from_str(text).ok()?))
                    })
                    .collect();
                let last_active = fields
                    .get("meta:last_active")
                    .and_then(|at| at.parse().ok())
                    .unwrap_or(record.last_active);
                let stored = Record {
                    id: record.id.clone(),
                    user_id: record.user_id.clone(),
                    data,
                    created_at: record.created_at,
                    last_active,
                };
                if matches!(command, Command::Session) {
                    json!({"type": "session", "session": stored})
                } else {
                    json!({"type": "sessions", "sessions": [stored]})
                }
            }
            Command::Say { .. } => unreachable!("serve_frames sends `say` itself"),
        };
        Ok(reply)
    }
}

/// Adds to `pipe` the writes of a socket hash's metadata and its TTL.
fn write_meta(pipe: &mut redis::Pipeline, key: &str, record: &Record, last_active: u64) {
    pipe.hset_multiple(
        key,
        &[
            ("meta:user_id", record.user_id.clone()),
            ("meta:created_at", record.created_at.to_string()),
            ("meta:last_active", last_active.to_string()),
        ],
    )
    .ignore()
    .expire(key, TTL_SECS)
    .ignore();
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
