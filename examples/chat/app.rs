//! The chat server's router: a small JSON protocol over WebSocket on top of `ws-session`.
//!
//! Kept apart from `main.rs` so that tests and the load harness run the very same router.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use futures_util::StreamExt;
use futures_util::stream::FuturesOrdered;

use axum::{
    Router,
    extract::ws::{Message, WebSocket, WebSocketUpgrade},
    response::IntoResponse,
    routing::get,
};
use serde::Deserialize;
use serde_json::{Value, json};
use ws_session::hub::Delivery;
use ws_session::resume::Resume;
use ws_session::socket::SessionSocket;
use ws_session::{AnyStore, SessionData, SessionLayer, WsSession};

/// The longest text a client may send in one message.
pub const MAX_TEXT: usize = 64 * 1024;

/// The largest message a client may send, and the largest frame: 1 MiB. A larger one closes the
/// socket with 1009 before it is read whole. The store's limits (a 64 KiB text, a value of
/// at most 64 KiB of JSON) fit well within it.
pub const MAX_MESSAGE: usize = 1024 * 1024;

/// The settings of the chat's sockets.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// A client that sends nothing (not even a pong) for this long is closed; the server pings
    /// at half of it.
    pub idle_timeout: Duration,
    /// The largest message (and frame) a client may send.
    pub max_message: usize,
    /// Most sends (`say`, `to_room`, `to_user`, `to_session`, `kick`) per second per
    /// connection, with bursts of twice as many; `None`: no limit. A send over it gets an error
    /// reply, and nothing is sent.
    pub sends_per_second: Option<u32>,
}

impl Settings {
    /// The defaults without a send rate limit, for load harnesses that flood one connection.
    #[allow(dead_code)]
    pub fn unlimited() -> Self {
        Settings {
            sends_per_second: None,
            ..Settings::default()
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            idle_timeout: Duration::from_secs(60),
            max_message: MAX_MESSAGE,
            sends_per_second: Some(100),
        }
    }
}

/// The socket's read buffer. tungstenite zeroes the free part of it whenever it reads, and a
/// socket loop that also waits on the hub reads after every batch it forwards: its default of
/// 128 KiB would make each batch cost a 128 KiB `memset`. Larger frames still arrive whole.
pub const READ_BUFFER: usize = 4 * 1024;

/// What a client may ask, one JSON text frame each.
#[derive(Debug, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
enum Command {
    Set { key: String, value: Value },
    Get { key: String },
    Update { data: SessionData },
    Delete { key: String },
    Clear,
    Session,
    Sessions,
    Say { text: String },
    Join { room: String },
    Leave { room: String },
    Rooms,
    Members { room: String },
    ToRoom { room: String, text: String },
    ToUser { user: String, text: String },
    ToSession { session: String, text: String },
    Kick { user: String },
}

/// The session layer of the demo. Its identification step reads `?user=NAME`: **a demo only**;
/// a real application verifies a token (a cookie, a bearer header) here. A name that is not
/// UTF-8 once percent-decoded gets `400 Bad Request`.
pub fn session_layer(store: impl Into<AnyStore>) -> SessionLayer {
    SessionLayer::new(store).identify(|parts: &http::request::Parts| {
        let user = user_from_query(parts.uri.query());
        async move {
            user.map_err(|()| {
                (
                    http::StatusCode::BAD_REQUEST,
                    "the user name is not valid UTF-8",
                )
                    .into_response()
            })
        }
    })
}

/// The session layer of the demo with a resume window: a client that reconnects within
/// `window` with `?resume=TOKEN&offset=OFFSET` gets its session back (the layer's default
/// reading of a resume token).
pub fn resumable_layer(store: impl Into<AnyStore>, window: Duration) -> SessionLayer {
    session_layer(store).resume(Resume::within(window))
}

/// The store limits of the demo: hub messages carry a text of up to [`MAX_TEXT`] bytes, as JSON
/// (escaping may make it up to six times longer) with its sender and target.
pub fn limits() -> ws_session::Limits {
    ws_session::Limits::default().max_message_len(6 * MAX_TEXT + 4096)
}

/// The chat router: the demo page at `GET /`, and `GET /ws?user=NAME` (and the HTTP/2 form
/// of a WebSocket, an extended `CONNECT`), with `layer` attached and the default settings.
#[allow(dead_code)] // The binary reads its settings from the environment; tests use this.
pub fn router(layer: SessionLayer) -> Router {
    router_with(layer, Settings::default())
}

/// The chat router with the sockets' `settings`.
pub fn router_with(layer: SessionLayer, settings: Settings) -> Router {
    Router::new()
        .route("/", get(page))
        .route(
            "/ws",
            get(move |ws, session| upgrade(ws, session, settings))
                .connect(move |ws, session| upgrade(ws, session, settings)),
        )
        .layer(layer)
}

/// The demo page: HTML, CSS and JavaScript in one file, in the binary.
const PAGE: &str = include_str!("page/index.html");

/// `GET /` and `GET /?user=NAME`: the demo page (it asks for a name when there is none).
async fn page() -> axum::response::Html<&'static str> {
    axum::response::Html(PAGE)
}

/// The `user` parameter of the query, URL-decoded (`?user=a%20b` is `a b`); `Err` when the
/// decoded bytes are not UTF-8 (two such names must never become the same user).
fn user_from_query(query: Option<&str>) -> Result<Option<String>, ()> {
    let Some(query) = query else {
        return Ok(None);
    };
    for pair in query.split('&') {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        if name != "user" {
            continue;
        }
        let value = value.replace('+', " ");
        let decoded = percent_encoding::percent_decode_str(&value)
            .decode_utf8()
            .map_err(|_| ())?;
        return Ok(Some(decoded.into_owned()).filter(|user| !user.is_empty()));
    }
    Ok(None)
}

async fn upgrade(
    ws: WebSocketUpgrade,
    session: WsSession,
    settings: Settings,
) -> impl IntoResponse {
    ws.read_buffer_size(READ_BUFFER)
        .max_message_size(settings.max_message)
        .max_frame_size(settings.max_message)
        .on_upgrade(move |socket| serve_socket(socket, session, settings))
}

/// Most sends of one connection waiting for the hub at once.
const MAX_IN_FLIGHT: usize = 64;

async fn serve_socket(socket: WebSocket, session: WsSession, settings: Settings) {
    // The socket loop of the crate: it writes what the hub sends (each message with its
    // offset), pings a silent client and closes it after `idle_timeout`, and closes on the
    // hub's order, a slow client or an oversized message.
    let mut socket = SessionSocket::new(socket, session)
        .deliver_with(with_offset)
        .idle_timeout(Some(settings.idle_timeout));
    // Declared after `socket`, so dropped before it: the session is released before the socket
    // closes, and a client that reconnects at once finds its old connection gone.
    let session = socket.session().clone();
    if socket.send(welcome(&session)).await.is_err() {
        return;
    }
    // Replies that wait for a publish, in the order of the frames that asked for them.
    let mut pending: FuturesOrdered<Later> = FuturesOrdered::new();
    let sends = settings.sends_per_second.and_then(send_limiter);
    loop {
        // With replies waiting, the next frame and the next reply race; without, only a frame
        // can come (awaited directly: a select around `recv` costs the fan-out about a tenth).
        let frame = if pending.is_empty() {
            socket.recv().await
        } else {
            tokio::select! {
                frame = socket.recv() => frame,
                Some(reply) = pending.next() => {
                    if let Some(reply) = reply
                        && socket.send(frame_of(&reply)).await.is_err()
                    {
                        break;
                    }
                    continue;
                }
            }
        };
        let reply = match frame {
            // Boxed: the largest of the loop's steps, held only while a frame is answered
            // rather than in every connection's task for as long as it is open.
            Some(Message::Text(text)) => {
                match Box::pin(answer(&text, &session, sends.as_ref())).await {
                    // A send goes on in the background: the next frame is read meanwhile.
                    Answer::Later(reply) => {
                        pending.push_back(reply);
                        // A client that sends faster than the hub takes its messages waits here,
                        // so what it costs stays bounded.
                        if pending.len() >= MAX_IN_FLIGHT
                            && let Some(Some(reply)) = pending.next().await
                            && socket.send(frame_of(&reply)).await.is_err()
                        {
                            break;
                        }
                        continue;
                    }
                    Answer::Now(reply) => reply,
                }
            }
            Some(_binary) => Some(error_reply(
                "binary frames are not understood: send JSON text".into(),
            )),
            None => break,
        };
        // Replies go out in the order of the frames: the earlier ones first.
        let mut replies: Vec<Value> = Vec::new();
        while let Some(earlier) = pending.next().await {
            replies.extend(earlier);
        }
        replies.extend(reply);
        if socket.send_all(replies.iter().map(frame_of)).await.is_err() {
            break;
        }
    }
    // `session` is dropped when this task ends: the session is removed from the store.
}

/// The first frame: who the client is, its resume token, and what a resume brought back.
fn welcome(session: &WsSession) -> Message {
    let mut welcome = json!({
        "type": "welcome",
        "session": session.id(),
        "user": session.user_id(),
        "resume": session.resume_token().expose(),
        "recovered": session.recovered(),
    });
    if let Some(recovery) = session.recovery() {
        // The missed messages wait first in the inbox: they follow the welcome.
        welcome["missed"] = json!(recovery.missed);
        welcome["complete"] = json!(recovery.complete);
    }
    Message::Text(welcome.to_string().into())
}

/// The rate limiter of one connection's sends: `per_second`, with bursts of twice as many.
fn send_limiter(per_second: u32) -> Option<governor::DefaultDirectRateLimiter> {
    // One clock for every connection: a new one calibrates itself, which costs more than the
    // rest of a connection's setup.
    static CLOCK: std::sync::OnceLock<governor::clock::DefaultClock> = std::sync::OnceLock::new();
    let rate = std::num::NonZeroU32::new(per_second)?;
    let burst = rate.saturating_mul(std::num::NonZeroU32::new(2)?);
    Some(governor::RateLimiter::direct_with_clock(
        governor::Quota::per_second(rate).allow_burst(burst),
        CLOCK.get_or_init(Default::default).clone(),
    ))
}

/// A reply that comes once a publish is taken (`None`: no reply, for a `say` that went out).
type Later = Pin<Box<dyn Future<Output = Option<Value>> + Send>>;

/// What a frame gets.
enum Answer {
    /// This reply (or none).
    Now(Option<Value>),
    /// A reply once the message it sent is taken by the hub; the message is queued already.
    Later(Later),
}

/// The reply to a send, once the hub has taken it: `ok` (`silent`: nothing), or the error.
fn reply_to_send(
    sent: impl Future<Output = ws_session::Result<()>> + Send + 'static,
    silent: bool,
) -> Answer {
    Answer::Later(Box::pin(async move {
        match sent.await {
            Ok(()) if silent => None,
            Ok(()) => Some(ok()),
            Err(error) => Some(error_reply(error.to_string())),
        }
    }))
}

/// What one client frame gets. Sends to a room, a user or everyone are queued at once, in
/// the order of the frames, and answered when the hub has taken them; everything else is
/// answered here.
async fn answer(
    text: &str,
    session: &WsSession,
    sends: Option<&governor::DefaultDirectRateLimiter>,
) -> Answer {
    let command = match serde_json::from_str::<Command>(text) {
        Ok(command) => command,
        Err(error) => return Answer::Now(Some(error_reply(format!("bad request: {error}")))),
    };
    let is_send = matches!(
        command,
        Command::Say { .. }
            | Command::ToRoom { .. }
            | Command::ToUser { .. }
            | Command::ToSession { .. }
            | Command::Kick { .. }
    );
    if is_send && sends.is_some_and(|limiter| limiter.check().is_err()) {
        return Answer::Now(Some(error_reply(
            "too many sends: slow down, nothing was sent".into(),
        )));
    }
    let hub = session.hub();
    let from = session.user_id();
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
        Command::Say { text } => match checked(&text) {
            Err(reply) => Ok(reply),
            Ok(()) => {
                let message = json!({"type": "message", "from": from, "text": text});
                return reply_to_send(hub.broadcast(message.to_string()), true);
            }
        },
        Command::Join { room } => session.join(&room).await.map(|_| ok()),
        Command::Leave { room } => session.leave(&room).await.map(|_| ok()),
        Command::Rooms => Ok(json!({"type": "rooms", "rooms": session.rooms()})),
        Command::Members { room } => hub.members(&room).await.map(|members| {
            let members: Vec<Value> = members
                .into_iter()
                .map(|member| json!({"session": member.session_id, "user": member.user_id}))
                .collect();
            json!({"type": "members", "room": room, "members": members})
        }),
        Command::ToRoom { room, text } => match checked(&text) {
            Err(reply) => Ok(reply),
            Ok(()) => {
                let message = json!({"type": "message", "from": from, "room": room, "text": text});
                return reply_to_send(hub.send_to_room(&room, message.to_string()), false);
            }
        },
        Command::ToUser { user, text } => match checked(&text) {
            Err(reply) => Ok(reply),
            Ok(()) => {
                let message = json!({"type": "message", "from": from, "to": user, "text": text});
                return reply_to_send(hub.send_to_user(&user, message.to_string()), false);
            }
        },
        Command::ToSession { session: id, text } => match checked(&text) {
            Err(reply) => Ok(reply),
            Ok(()) => {
                let message = json!({"type": "message", "from": from, "session": id, "text": text});
                hub.send_to_session(&id, message.to_string())
                    .await
                    .map(|()| ok())
            }
        },
        // A demo: any client may kick anyone. A real application checks rights here.
        Command::Kick { user } => hub.kick(&user).await.map(|_| ok()),
    };
    Answer::Now(Some(
        result.unwrap_or_else(|error| error_reply(error.to_string())),
    ))
}

/// An error reply for a text over [`MAX_TEXT`].
fn checked(text: &str) -> Result<(), Value> {
    if text.len() > MAX_TEXT {
        return Err(error_reply(format!(
            "text is {} bytes, over the limit of {MAX_TEXT}",
            text.len()
        )));
    }
    Ok(())
}

/// The hub message as the client sees it: the JSON object that was sent, with the delivery's
/// `offset` added as its last field. Bytes sent by other code through the hub go out as they
/// are.
fn with_offset(delivery: &Delivery) -> Message {
    let Some(text) = delivery.text() else {
        return Message::from(delivery);
    };
    let body = text.strip_suffix('}').unwrap_or(text);
    let mut frame = String::with_capacity(body.len() + 32);
    frame.push_str(body);
    if !body.trim_end().ends_with('{') {
        frame.push(',');
    }
    // Writing to a String cannot fail.
    let _ = write!(frame, "\"offset\":\"{}\"}}", delivery.offset());
    Message::Text(frame.into())
}

fn ok() -> Value {
    json!({"type": "ok"})
}

fn error_reply(message: String) -> Value {
    json!({"type": "error", "message": message})
}

/// A reply as a text frame.
fn frame_of(reply: &Value) -> Message {
    Message::Text(reply.to_string().into())
}
