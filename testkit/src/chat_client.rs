//! Chat servers on real sockets, and clients that speak the chat protocol, for the tests that
//! run several instances.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite};
use ws_session::hub::Hub;
use ws_session::{LiveSessions, SessionLayer};

/// How long a test waits for one frame.
pub const FRAME_WAIT: Duration = Duration::from_secs(10);

/// One server instance: the chat router on a free loopback port.
pub struct Instance {
    pub addr: SocketAddr,
    pub hub: Hub,
    pub sessions: LiveSessions,
}

impl Instance {
    /// Waits until this instance holds `open` connections and everything their drops started
    /// (removals, detaches) has reached the store.
    pub async fn settle(&self, open: usize) {
        settle(&self.sessions, open).await;
    }
}

/// Waits until `sessions` counts `open` connections and everything their drops started
/// (removals, detaches) has reached the store.
pub async fn settle(sessions: &LiveSessions, open: usize) {
    let deadline = tokio::time::Instant::now() + FRAME_WAIT;
    while sessions.len() != open {
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} connections open, not {open}",
            sessions.len()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    sessions.wait_for_removals().await;
}

/// Serves the chat router built from `layer` on a free loopback port.
pub async fn serve(layer: SessionLayer, router: axum::Router) -> Instance {
    let hub = layer.hub();
    let sessions = layer.live_sessions();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    Instance {
        addr,
        hub,
        sessions,
    }
}

type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A chat client: replies and hub messages are told apart, and messages that arrive while a
/// reply is awaited are kept for later.
pub struct Client {
    socket: Socket,
    pub id: String,
    pub user: String,
    /// The welcome the server sent.
    pub welcome: Value,
    /// The offset of the last hub message read from the socket.
    pub last_offset: Option<String>,
    messages: VecDeque<Value>,
}

impl Client {
    /// Connects as `user` and reads the welcome.
    pub async fn connect(addr: SocketAddr, user: &str) -> Client {
        Client::connect_with(addr, user, "").await
    }

    /// Connects as `user`, with `extra` appended to the query (`&resume=...`), and reads the
    /// welcome.
    pub async fn connect_with(addr: SocketAddr, user: &str, extra: &str) -> Client {
        let url = format!("ws://{addr}/ws?user={user}{extra}");
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let welcome = read_json(&mut socket)
            .await
            .expect("the socket closed before the welcome");
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        Client {
            socket,
            id: welcome["session"].as_str().unwrap().to_owned(),
            user: user.to_owned(),
            welcome,
            last_offset: None,
            messages: VecDeque::new(),
        }
    }

    /// Connects as `user`, presenting `token` and, if there is one, `offset`.
    pub async fn resume(addr: SocketAddr, user: &str, token: &str, offset: Option<&str>) -> Client {
        let offset = offset
            .map(|offset| format!("&offset={offset}"))
            .unwrap_or_default();
        Client::connect_with(addr, user, &format!("&resume={token}{offset}")).await
    }

    /// The resume token of the welcome.
    pub fn token(&self) -> String {
        self.welcome["resume"].as_str().unwrap().to_owned()
    }

    /// Whether the welcome says the session was recovered.
    pub fn recovered(&self) -> bool {
        self.welcome["recovered"] == true
    }

    /// Closes the socket from this side and waits until the server has seen it.
    pub async fn close(mut self) {
        let _ = self.socket.close(None).await;
        while let Ok(Some(Ok(_))) = tokio::time::timeout(FRAME_WAIT, self.socket.next()).await {}
    }

    /// Sends one frame without waiting for anything.
    pub async fn send(&mut self, request: Value) {
        self.socket
            .send(tungstenite::Message::text(request.to_string()))
            .await
            .unwrap();
    }

    /// Sends `request` and returns its reply.
    pub async fn ask(&mut self, request: Value) -> Value {
        self.send(request).await;
        self.ask_nothing().await
    }

    /// The next reply to a frame sent earlier, keeping the hub messages that come first.
    pub async fn ask_nothing(&mut self) -> Value {
        loop {
            let frame = self
                .read()
                .await
                .expect("the socket closed before the reply");
            if frame["type"] == "message" {
                self.messages.push_back(frame);
            } else {
                return frame;
            }
        }
    }

    /// Sends `request` and asserts that its reply is `{"type":"ok"}`.
    pub async fn ok(&mut self, request: Value) {
        let reply = self.ask(request.clone()).await;
        assert_eq!(reply, json!({"type": "ok"}), "{request} -> {reply}");
    }

    /// The next hub message.
    pub async fn message(&mut self) -> Value {
        if let Some(message) = self.messages.pop_front() {
            return message;
        }
        let frame = self
            .read()
            .await
            .expect("the socket closed before a message");
        assert_eq!(
            frame["type"], "message",
            "a reply nobody asked for: {frame}"
        );
        frame
    }

    /// The next frame, noting the offset of a hub message.
    async fn read(&mut self) -> Option<Value> {
        let frame = read_json(&mut self.socket).await?;
        if let Some(offset) = frame["offset"].as_str() {
            self.last_offset = Some(offset.to_owned());
        }
        Some(frame)
    }

    /// Every hub message before the first whose text is `marker`.
    pub async fn messages_until(&mut self, marker: &str) -> Vec<Value> {
        let mut before = Vec::new();
        loop {
            let message = self.message().await;
            if message["text"] == marker {
                return before;
            }
            before.push(message);
        }
    }

    /// Reads until the server closes the socket; returns the close frame.
    pub async fn closed(&mut self) -> Option<CloseFrame> {
        loop {
            let next = tokio::time::timeout(FRAME_WAIT, self.socket.next())
                .await
                .expect("the socket stayed open");
            match next {
                Some(Ok(tungstenite::Message::Close(frame))) => return frame,
                Some(Ok(_)) => {}
                Some(Err(_)) | None => return None,
            }
        }
    }

    /// The close code the server closed the socket with, reading and dropping everything
    /// before it.
    pub async fn close_code(&mut self) -> Option<u16> {
        self.closed().await.map(|frame| u16::from(frame.code))
    }

    /// The next binary frame, skipping text frames.
    pub async fn binary(&mut self) -> Vec<u8> {
        loop {
            let next = tokio::time::timeout(FRAME_WAIT, self.socket.next())
                .await
                .expect("no frame within the wait");
            match next {
                Some(Ok(tungstenite::Message::Binary(bytes))) => return bytes.to_vec(),
                Some(Ok(_)) => {}
                other => panic!("no binary frame: {other:?}"),
            }
        }
    }

    /// The underlying socket, for tests that stop reading it.
    pub fn socket(&mut self) -> &mut Socket {
        &mut self.socket
    }
}

async fn read_json(socket: &mut Socket) -> Option<Value> {
    loop {
        let next = tokio::time::timeout(FRAME_WAIT, socket.next())
            .await
            .expect("no frame within the wait");
        match next? {
            Ok(tungstenite::Message::Text(text)) => {
                return Some(serde_json::from_str(&text).unwrap());
            }
            Ok(tungstenite::Message::Close(frame)) => {
                panic!("closed by the server: {frame:?}")
            }
            Ok(_) => {}
            Err(error) => panic!("socket error: {error}"),
        }
    }
}

/// The texts of `messages`, in order.
pub fn texts(messages: &[Value]) -> Vec<String> {
    messages
        .iter()
        .map(|message| message["text"].as_str().unwrap().to_owned())
        .collect()
}
