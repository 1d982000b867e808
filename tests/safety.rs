//! The chat example faced as an attacker would face it, on both stores: foreign origins, floods
//! to targets nobody is in, oversized and binary frames, half-sent requests, silent peers, too
//! many sessions or resumes, and logs that must not hold a secret. Each bound is asserted with
//! a wide margin; the figures themselves are the benches' business.

use ws_session_testkit::app;
mod support;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use support::chat::{Client, FRAME_WAIT};
use support::process::ChatProcess;
use support::redis_server::{RedisServer, config_set, info_field};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};

/// A private Redis server, or `None` after saying why (a failure under `CI`).
fn redis() -> Option<RedisServer> {
    let server = RedisServer::start();
    if server.is_none() {
        eprintln!("{}", support::redis_server::SKIPPED);
    }
    server
}

/// The chat example on MemoryStore, and on a private Redis when there is one, with `env`.
fn both_stores(env: &[(&str, &str)]) -> Vec<(ChatProcess, Option<RedisServer>)> {
    let mut chats = vec![(ChatProcess::start(env), None)];
    if let Some(server) = redis() {
        let url = server.url();
        let mut env = env.to_vec();
        env.push(("REDIS_URL", &url));
        chats.push((ChatProcess::start(&env), Some(server)));
    }
    chats
}

/// An upgrade to `path` with an `Origin` header when given: the status it got (101 when the
/// socket opened).
async fn upgrade_status(addr: SocketAddr, path: &str, origin: Option<&str>) -> u16 {
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    if let Some(origin) = origin {
        request
            .headers_mut()
            .insert("origin", origin.parse().unwrap());
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((mut socket, response)) => {
            let _ = socket.close(None).await;
            response.status().as_u16()
        }
        Err(tungstenite::Error::Http(response)) => response.status().as_u16(),
        Err(error) => panic!("{error}"),
    }
}

/// The ids of `user`'s sessions, asked through a session of `user` itself (so one more).
async fn sessions_of(addr: SocketAddr, user: &str) -> usize {
    let mut client = Client::connect(addr, user).await;
    let reply = client.ask(json!({"op": "sessions"})).await;
    reply["sessions"].as_array().map_or(0, Vec::len) - 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_origins_are_refused_and_create_nothing() {
    for (chat, _redis) in both_stores(&[("ALLOWED_ORIGINS", "https://admin.example")]) {
        let addr = chat.addr;
        let own = format!("http://{addr}");
        let path = "/ws?user=visitor";
        assert_eq!(
            upgrade_status(addr, path, Some("https://evil.example")).await,
            403
        );
        assert_eq!(upgrade_status(addr, path, Some("null")).await, 403);
        assert_eq!(
            upgrade_status(addr, path, Some("http://127.0.0.1:1")).await,
            403
        );
        assert_eq!(
            sessions_of(addr, "visitor").await,
            0,
            "a refusal created a session"
        );
        assert_eq!(upgrade_status(addr, path, Some(&own)).await, 101);
        assert_eq!(
            upgrade_status(addr, path, Some("https://admin.example")).await,
            101
        );
        // Not a browser: no Origin, no ambient credentials to steal.
        assert_eq!(upgrade_status(addr, path, None).await, 101);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_gets_at_most_64_sessions_and_then_429() {
    // Without a resume window a closed session is removed at once (a detached one would count
    // until its window ends).
    for (chat, _redis) in both_stores(&[("RESUME_SECS", "0")]) {
        let mut open = Vec::new();
        for _ in 0..64 {
            open.push(Client::connect(chat.addr, "many").await);
        }
        assert_eq!(upgrade_status(chat.addr, "/ws?user=many", None).await, 429);
        // The refusal took nothing away and added nothing.
        let reply = open[0].ask(json!({"op": "sessions"})).await;
        assert_eq!(reply["sessions"].as_array().unwrap().len(), 64);
        // Another user is not held back; a closed session frees its place.
        assert_eq!(upgrade_status(chat.addr, "/ws?user=other", None).await, 101);
        open.pop().unwrap().close().await;
        let deadline = Instant::now() + FRAME_WAIT;
        while upgrade_status(chat.addr, "/ws?user=many", None).await != 101 {
            assert!(Instant::now() < deadline, "the freed place never came back");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// 64 KiB of text, the largest the chat takes.
fn big_text(tag: usize) -> String {
    let mut text = format!("{tag}:");
    text.push_str(&"x".repeat(64 * 1024 - text.len()));
    text
}

/// The value of gauge `name` on the chat example's `/metrics` (0 before it is set).
async fn metric(addr: SocketAddr, name: &str) -> u64 {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET /metrics HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut page = String::new();
    tcp.read_to_string(&mut page).await.unwrap();
    page.lines()
        .find_map(|line| line.strip_prefix(name)?.trim().parse::<f64>().ok())
        .map_or(0, |value| value as u64)
}

/// 400 messages of 64 KiB to 400 rooms nobody is in and 100 to users who have no session keep
/// nothing; 300 to one room with a member keep at most the 1 MiB a target may hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_to_targets_without_sessions_keeps_nothing() {
    for (chat, redis) in both_stores(&[("SENDS_PER_SECOND", "0")]) {
        let mut member = Client::connect(chat.addr, "member").await;
        member.ok(json!({"op": "join", "room": "kept"})).await;
        let mut flooder = Client::connect(chat.addr, "flooder").await;
        let mut conn = match &redis {
            Some(server) => Some(
                redis::Client::open(server.url())
                    .unwrap()
                    .get_multiplexed_async_connection()
                    .await
                    .unwrap(),
            ),
            None => None,
        };
        // What is kept: Redis's memory, or the hub's gauge of kept bytes in the server.
        let used = async |conn: &mut Option<redis::aio::MultiplexedConnection>| match conn {
            Some(conn) => {
                let bytes: u64 = info_field(conn, "memory", "used_memory")
                    .await
                    .parse()
                    .unwrap();
                bytes / 1024
            }
            None => metric(chat.addr, "ws_session_hub_history_bytes").await / 1024,
        };
        // A first round of sends warms up what every send uses (buffers, connections).
        flooder
            .ok(json!({"op": "to_room", "room": "warm-up", "text": big_text(0)}))
            .await;
        let before = used(&mut conn).await;
        for n in 0..400 {
            let room = format!("empty-{n}");
            flooder
                .ok(json!({"op": "to_room", "room": room, "text": big_text(n)}))
                .await;
        }
        for n in 0..100 {
            let user = format!("nobody-{n}");
            flooder
                .ok(json!({"op": "to_user", "user": user, "text": big_text(n)}))
                .await;
        }
        for n in 0..300 {
            flooder
                .ok(json!({"op": "to_room", "room": "kept", "text": big_text(n)}))
                .await;
            member.message().await;
        }
        let after = used(&mut conn).await;
        let grown = after.saturating_sub(before);
        eprintln!(
            "flood: {} grew by {grown} KiB",
            if redis.is_some() {
                "Redis used_memory"
            } else {
                "the kept history"
            }
        );
        // 800 messages of 64 KiB are 50 MiB; what may stay is one room's 1 MiB, and in Redis
        // some noise.
        assert!(
            grown < 8 * 1024,
            "{} grew by {grown} KiB over the flood",
            if redis.is_some() {
                "Redis"
            } else {
                "the server"
            }
        );
        if let Some(conn) = &mut conn {
            let kept: u64 = redis::cmd("GET")
                .arg("chat:hub:kept_total")
                .query_async::<Option<u64>>(conn)
                .await
                .unwrap()
                .unwrap_or(0);
            assert!(kept <= 1024 * 1024, "{kept} bytes kept");
            let empty: i64 = redis::cmd("EXISTS")
                .arg("chat:history:room:empty-7")
                .query_async(conn)
                .await
                .unwrap();
            assert_eq!(empty, 0, "a room without members has a history");
        }
    }
}

/// A session in 8 rooms whose histories hold 4 MiB each resumes: it reads no more than its
/// inbox holds (4 MiB), is told the replay is incomplete, and Redis keeps answering others
/// while it reads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_reads_no_more_than_its_inbox_takes() {
    let Some(server) = redis() else {
        return;
    };
    let store = server.store(Duration::from_secs(60)).await;
    let store = store.limits(ws_session::Limits::default().max_message_len(128 * 1024));
    let layer = app::session_layer(store).resume(
        ws_session::resume::Resume::within(Duration::from_secs(120))
            .keep_bytes(4 * 1024 * 1024)
            .keep_total_bytes(256 * 1024 * 1024),
    );
    let instance = support::chat::serve(
        layer.clone(),
        app::router_with(layer, app::Settings::unlimited()),
    )
    .await;
    let addr = instance.addr;
    let mut away = Client::connect(addr, "away").await;
    for room in 0..8 {
        away.ok(json!({"op": "join", "room": format!("full-{room}")}))
            .await;
    }
    let token = away.token();
    away.close().await;
    instance.settle(0).await;
    let mut sender = Client::connect(addr, "sender").await;
    for room in 0..8 {
        for n in 0..64 {
            sender
                .ok(json!({"op": "to_room", "room": format!("full-{room}"), "text": big_text(n)}))
                .await;
        }
    }
    // Another client pings Redis all along the resume.
    let mut conn = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let pinging = tokio::spawn(async move {
        let mut worst = Duration::ZERO;
        let until = Instant::now() + Duration::from_secs(2);
        while Instant::now() < until {
            let start = Instant::now();
            let _: String = redis::cmd("PING").query_async(&mut conn).await.unwrap();
            worst = worst.max(start.elapsed());
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        worst
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let back = Client::resume(addr, "away", &token, None).await;
    let worst = pinging.await.unwrap();
    eprintln!(
        "resume of 8 full rooms: {} ; slowest PING meanwhile {worst:?}",
        back.welcome
    );
    assert!(back.recovered(), "{}", back.welcome);
    assert_eq!(back.welcome["complete"], false, "{}", back.welcome);
    let missed = back.welcome["missed"].as_u64().unwrap();
    // Each message is a little over 64 KiB: the 4 MiB inbox takes 62 or 63 of the 512.
    assert!(
        (50..=64).contains(&missed),
        "{missed} missed messages replayed"
    );
    assert!(
        worst < Duration::from_millis(500),
        "Redis answered a PING in {worst:?} during the resume"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_and_binary_frames_and_bad_names_are_answered() {
    for (chat, _redis) in both_stores(&[]) {
        let addr = chat.addr;
        // A name whose bytes are not UTF-8: refused, never decoded lossily.
        assert_eq!(upgrade_status(addr, "/ws?user=%ff%fe", None).await, 400);
        assert_eq!(upgrade_status(addr, "/ws?user=%c0%af", None).await, 400);

        let url = format!("ws://{addr}/ws?user=framer");
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let _welcome = read_text(&mut socket).await;
        socket
            .send(tungstenite::Message::binary(vec![1, 2, 3]))
            .await
            .unwrap();
        let reply: Value = serde_json::from_str(&read_text(&mut socket).await).unwrap();
        assert_eq!(reply["type"], "error", "{reply}");
        drop(socket);
        // Over 1 MiB: closed with 1009, before the server buffers it whole.
        let received = send_oversized(addr, 1024 * 1024 + 1).await;
        let close_1009 = [0x88, 0x11, 0x03, 0xf1];
        assert!(
            received.windows(4).any(|bytes| bytes == close_1009),
            "no close frame with 1009 in the {} bytes the server sent: {:?}",
            received.len(),
            String::from_utf8_lossy(&received)
        );
    }
}

/// Opens a socket by hand, announces a text frame of `len` bytes and sends as much of it as
/// the server takes; returns every byte the server sent after its welcome.
async fn send_oversized(addr: SocketAddr, len: usize) -> Vec<u8> {
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "GET /ws?user=huge HTTP/1.1\r\nHost: {addr}\r\nConnection: Upgrade\r\n\
         Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        tcp.read_exact(&mut byte).await.unwrap();
        head.push(byte[0]);
    }
    assert!(
        head.starts_with(b"HTTP/1.1 101"),
        "{}",
        String::from_utf8_lossy(&head)
    );
    // A masked text frame with a 64-bit length, then its payload (masked with a zero key).
    let mut frame = vec![0x81, 0xff];
    frame.extend_from_slice(&(len as u64).to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    let (mut reader, mut writer) = tcp.into_split();
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(&frame).await;
        let chunk = vec![b'y'; 64 * 1024];
        let mut sent = 0;
        while sent < len {
            if writer
                .write_all(&chunk[..chunk.len().min(len - sent)])
                .await
                .is_err()
            {
                break;
            }
            sent += chunk.len();
        }
    });
    let mut received = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let _ = tokio::time::timeout(FRAME_WAIT, async {
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await;
    writing.abort();
    received
}

/// The next text frame of `socket`.
async fn read_text<S>(socket: &mut S) -> String
where
    S: futures_util::Stream<Item = Result<tungstenite::Message, tungstenite::Error>> + Unpin,
{
    loop {
        let frame = tokio::time::timeout(FRAME_WAIT, socket.next())
            .await
            .expect("a frame in time")
            .expect("the socket is open")
            .expect("no socket error");
        if let tungstenite::Message::Text(text) = frame {
            return text.as_str().to_owned();
        }
    }
}

/// The code of the close frame `socket` gets, reading past everything else; `None` when it
/// ends without one.
async fn close_code<S>(socket: &mut S) -> Option<u16>
where
    S: futures_util::Stream<Item = Result<tungstenite::Message, tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(FRAME_WAIT, socket.next()).await {
            Ok(Some(Ok(tungstenite::Message::Close(frame)))) => {
                return frame.map(|frame| u16::from(frame.code));
            }
            Ok(Some(Ok(_))) => {}
            Ok(Some(Err(_)) | None) => return None,
            Err(_) => panic!("the socket stayed open"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn half_sent_requests_and_silent_peers_are_closed() {
    let chat = ChatProcess::start(&[("HEADER_TIMEOUT_SECS", "1"), ("IDLE_SECS", "2")]);
    // Half an upgrade request, then nothing.
    let mut half = tokio::net::TcpStream::connect(chat.addr).await.unwrap();
    half.write_all(b"GET /ws?user=slow HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buffer = [0u8; 256];
    let started = Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match half.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "a half-sent request was still open after 10 s"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));

    // A peer that never answers a ping (it never reads) is closed after the idle timeout.
    let url = format!("ws://{}/ws?user=silent", chat.addr);
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The server sent 1001 and dropped the connection: the client sees the close frame, or an
    // error when its late pong found the connection gone.
    let code = close_code(&mut socket).await;
    assert!(matches!(code, Some(1001) | None), "{code:?}");
    // A peer that reads (and so answers pings) stays.
    let mut live = Client::connect(chat.addr, "live").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let watcher = tokio::spawn(async move {
        let reply = live.ask(json!({"op": "rooms"})).await;
        (live, reply)
    });
    let (mut live, reply) = watcher.await.unwrap();
    assert_eq!(reply["type"], "rooms");
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(live.ask(json!({"op": "rooms"})).await["type"], "rooms");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_and_resumes_are_rate_limited() {
    for (chat, _redis) in both_stores(&[("SENDS_PER_SECOND", "5")]) {
        let mut client = Client::connect(chat.addr, "chatty").await;
        let mut refused = 0;
        for n in 0..20 {
            let reply = client
                .ask(json!({"op": "to_user", "user": "chatty-friend", "text": n.to_string()}))
                .await;
            if reply["type"] == "error" {
                assert!(
                    reply["message"]
                        .as_str()
                        .unwrap()
                        .contains("too many sends"),
                    "{reply}"
                );
                refused += 1;
            }
        }
        // A burst of 10 goes through, and one more per 200 ms.
        assert!((5..=10).contains(&refused), "{refused} of 20 refused");

        // Resume attempts: 30 a minute per session, then 429 with Retry-After.
        let token = client.token();
        let id = client.id.clone();
        let forged = format!("{id}.{}", "0".repeat(32));
        let path = format!("/ws?user=chatty&resume={forged}");
        let mut statuses = Vec::new();
        for _ in 0..31 {
            statuses.push(upgrade_status(chat.addr, &path, None).await);
        }
        assert!(
            statuses[..30].iter().all(|status| *status == 101),
            "{statuses:?}"
        );
        assert_eq!(statuses[30], 429);
        // The real token is refused too now: the bound is the session's, not the token's.
        let path = format!("/ws?user=chatty&resume={token}");
        assert_eq!(upgrade_status(chat.addr, &path, None).await, 429);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_whose_session_vanished_is_closed_with_1012() {
    let Some(server) = redis() else {
        return;
    };
    let store = server.store(Duration::from_secs(60)).await;
    let layer = app::session_layer(store.clone());
    let instance = support::chat::serve(layer.clone(), app::router(layer)).await;
    let mut client = Client::connect(instance.addr, "lost").await;
    // Redis restarted without its data, as far as the store can tell.
    let mut conn = support::redis_server::raw_connection(&store).await;
    let _: () = redis::cmd("FLUSHALL").query_async(&mut conn).await.unwrap();
    instance.sessions.refresh_now().await;
    assert_eq!(client.close_code().await, Some(1012));

    let memory = ws_session::MemoryStore::new();
    let layer = app::session_layer(memory.clone());
    let instance = support::chat::serve(layer.clone(), app::router(layer)).await;
    let mut client = Client::connect(instance.addr, "lost").await;
    ws_session::SessionStore::remove_session(&memory, &client.id)
        .await
        .unwrap();
    instance.sessions.refresh_now().await;
    assert_eq!(client.close_code().await, Some(1012));
}

/// Every line the chat example logs at `trace` through a resume cycle and refused upgrades,
/// on a Redis with a password: neither a resume token nor the password is in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log() {
    let Some(server) = redis() else {
        return;
    };
    const PASSWORD: &str = "s3cret-pa55word";
    let mut admin = redis::Client::open(server.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    config_set(&mut admin, "requirepass", PASSWORD).await;
    let url = server
        .url()
        .replace("redis://", &format!("redis://:{PASSWORD}@"));
    let log = log_path("no_secret");
    let mut chat = ChatProcess::start_logged(&[("REDIS_URL", &url), ("RUST_LOG", "trace")], &log);
    let addr = chat.addr;
    let mut tokens = Vec::new();
    let first = Client::connect(addr, "alice").await;
    tokens.push(first.token());
    first.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let back = Client::resume(addr, "alice", &tokens[0], None).await;
    assert!(back.recovered());
    tokens.push(back.token());
    // Refused: nobody identified, another user, a token used already.
    let no_user = format!("/ws?resume={}", tokens[1]);
    assert_eq!(upgrade_status(addr, &no_user, None).await, 401);
    let other = Client::resume(addr, "mallory", &tokens[1], None).await;
    assert!(!other.recovered());
    tokens.push(other.token());
    let reused = Client::resume(addr, "alice", &tokens[0], None).await;
    assert!(!reused.recovered());
    tokens.push(reused.token());
    drop((back, other, reused));
    chat.signal("TERM");
    assert!(chat.wait(Duration::from_secs(10)).success());

    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("session resumed") && logged.contains("DEBUG ws_session"),
        "the log was not captured: {} bytes",
        logged.len()
    );
    assert!(
        !logged.contains(PASSWORD),
        "the Redis password is in the log"
    );
    for token in &tokens {
        let secret = token.rsplit_once('.').unwrap().1;
        assert!(!logged.contains(secret), "a resume token is in the log");
    }
    let _ = std::fs::remove_file(&log);
}

/// A file for a process's log, in the target directory.
fn log_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    exe.parent()
        .unwrap()
        .join(format!("{name}-{}.log", std::process::id()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_past_the_cap_are_closed_at_once() {
    let chat = ChatProcess::start(&[("MAX_CONNECTIONS", "3")]);
    let mut open = Vec::new();
    for n in 0..3 {
        open.push(Client::connect(chat.addr, &format!("user{n}")).await);
    }
    // The fourth is accepted by the kernel and closed by the server before a byte is read.
    let mut fourth = tokio::net::TcpStream::connect(chat.addr).await.unwrap();
    let _ = fourth.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let mut buffer = [0u8; 64];
    let read = tokio::time::timeout(FRAME_WAIT, fourth.read(&mut buffer))
        .await
        .expect("the fourth connection stayed open");
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "the fourth connection was served"
    );
    // One goes, and a place is free again.
    open.pop().unwrap().close().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let again = Client::connect(chat.addr, "again").await;
    assert!(!again.id.is_empty());
}

/// With an admission rate, a burst of upgrades opens at once, the next ones wait their turn in
/// a short queue, and those past the queue get 503 with `Retry-After`, creating nothing; on
/// both stores.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_past_the_admission_queue_get_503_and_create_nothing() {
    let server = redis();
    let mut stores: Vec<ws_session::AnyStore> = vec![ws_session::MemoryStore::new().into()];
    if let Some(server) = &server {
        stores.push(server.store(Duration::from_secs(60)).await.into());
    }
    for store in stores {
        let layer = app::session_layer(store.clone())
            .admission(ws_session::Admission::per_second(2).queue(1));
        let instance = support::chat::serve(layer.clone(), app::router(layer)).await;
        let url = format!("ws://{}/ws?user=crowd", instance.addr);
        // The burst: two at once.
        let first = Client::connect(instance.addr, "crowd").await;
        let second = Client::connect(instance.addr, "crowd").await;
        // Two more at the same moment: one waits for its turn, the other is refused.
        let (a, b) = tokio::join!(
            tokio_tungstenite::connect_async(url.as_str()),
            tokio_tungstenite::connect_async(url.as_str())
        );
        let (admitted, refused) = match (a, b) {
            (Ok(admitted), Err(refused)) | (Err(refused), Ok(admitted)) => (admitted, refused),
            (a, b) => panic!("one admitted and one refused expected: {a:?} {b:?}"),
        };
        let tungstenite::Error::Http(response) = refused else {
            panic!("refused without a response: {refused}");
        };
        assert_eq!(response.status(), 503, "{store:?}");
        assert_eq!(response.headers()["retry-after"], "1");
        instance.settle(3).await;
        let listed = ws_session::SessionStore::get_user_sessions(&store, "crowd")
            .await
            .unwrap();
        assert_eq!(listed.len(), 3, "{store:?}: the refusal created a session");
        drop((first, second, admitted));
    }
}
