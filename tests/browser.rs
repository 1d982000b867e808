//! The demo page in a real browser: headless Chromium driven over WebDriver (chromedriver)
//! with `fantoccini`, against the chat example's process on a private Redis.
//!
//! Two users in two browsers join a room and talk; a third user's message to one of them
//! arrives; the server is restarted (SIGTERM) and both pages resume with the same session and
//! data; a kick shows the kicked state and the page stays down; text the server sends is shown
//! as text, never run as HTML; no uncaught error on either page.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them the
//! test says it was skipped — and fails instead when `CI` is set. `UPDATE_SCREENSHOT=1` writes
//! the screenshot that README shows to `docs/demo.png`.

mod support;

use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};
use support::chat::Client as SocketClient;
use support::process::ChatProcess;
use support::redis_server::RedisServer;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long the page may take to show what a step waits for.
const WAIT: Duration = Duration::from_secs(15);

/// A chromedriver of this test, on a free port. Killed on drop.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .unwrap()
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// A new browser: headless Chromium with a profile of its own.
    async fn browser(&self) -> Client {
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({
                "binary": CHROMIUM,
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1100,900"],
            }),
        );
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        ClientBuilder::new(connector)
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .expect("headless Chromium starts")
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether the browser is here; when it is not, `CI` makes that a failure.
fn browser_installed() -> bool {
    let here = Path::new(CHROMIUM).exists() && Path::new(CHROMEDRIVER).exists();
    if !here {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but {CHROMIUM} or {CHROMEDRIVER} is missing (apt-get install chromium \
             chromium-driver)"
        );
        eprintln!(
            "SKIPPED: no {CHROMIUM} or {CHROMEDRIVER} (apt-get install chromium chromium-driver)"
        );
    }
    here
}

/// The text of element `id`.
async fn text(page: &Client, id: &str) -> String {
    page.find(Locator::Id(id))
        .await
        .unwrap_or_else(|error| panic!("#{id}: {error}"))
        .text()
        .await
        .unwrap()
}

/// Waits until element `id`'s text contains `wanted`; returns that text.
async fn wait_text(page: &Client, id: &str, wanted: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let now = text(page, id).await;
        if now.contains(wanted) {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "#{id} never showed {wanted:?}; it shows {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Types `value` into input `id`, replacing what it held.
async fn fill(page: &Client, id: &str, value: &str) {
    let input = page.find(Locator::Id(id)).await.unwrap();
    input.clear().await.unwrap();
    input.send_keys(value).await.unwrap();
}

async fn click(page: &Client, id: &str) {
    page.find(Locator::Id(id))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
}

async fn script(page: &Client, code: &str) -> Value {
    page.execute(code, Vec::new()).await.unwrap()
}

async fn open(page: &Client, addr: SocketAddr, user: &str) -> String {
    page.goto(&format!("http://{addr}/?user={user}"))
        .await
        .unwrap();
    wait_text(page, "status", "Connected").await;
    text(page, "session-id").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_page_works_in_a_real_browser() {
    if !browser_installed() {
        return;
    }
    let Some(redis) = RedisServer::start() else {
        eprintln!("{}", support::redis_server::SKIPPED);
        return;
    };
    let url = redis.url();
    let env = [
        ("REDIS_URL", url.as_str()),
        ("RESUME_SECS", "120"),
        ("SESSION_TTL_SECS", "60"),
    ];
    let mut server = ChatProcess::start(&env);
    let addr = server.addr;
    let driver = Driver::start();
    let alice = driver.browser().await;
    let bob = driver.browser().await;

    // Without a name, the page asks for one.
    alice.goto(&format!("http://{addr}/")).await.unwrap();
    assert!(
        alice
            .find(Locator::Id("login-name"))
            .await
            .unwrap()
            .is_displayed()
            .await
            .unwrap()
    );
    let alice_id = open(&alice, addr, "alice").await;
    let bob_id = open(&bob, addr, "bob").await;
    assert_eq!(alice_id.len(), 32, "{alice_id}");
    assert_ne!(alice_id, bob_id);

    // Both in a room; bob's message reaches alice, with who sent it and to what.
    for page in [&alice, &bob] {
        fill(page, "room", "lobby").await;
        click(page, "join-btn").await;
        wait_text(page, "rooms", "lobby").await;
    }
    fill(&bob, "text", "hello from bob").await;
    fill(&bob, "to-room", "lobby").await;
    click(&bob, "send-room-btn").await;
    let messages = wait_text(&alice, "messages", "hello from bob").await;
    assert!(messages.contains("bob → room lobby"), "{messages}");
    fill(&alice, "room", "lobby").await;
    click(&alice, "members-btn").await;
    wait_text(&alice, "members", &bob_id).await;

    // A third user, on a plain socket, to alice.
    let mut carol = SocketClient::connect(addr, "carol").await;
    carol
        .ok(json!({"op": "to_user", "user": "alice", "text": "hi alice, carol here"}))
        .await;
    let messages = wait_text(&alice, "messages", "hi alice, carol here").await;
    assert!(messages.contains("carol → user alice"), "{messages}");

    // Session data, set from the page.
    fill(&alice, "key", "color").await;
    fill(&alice, "value", "\"blue\"").await;
    click(&alice, "set-btn").await;
    wait_text(&alice, "data", "\"blue\"").await;
    wait_text(&alice, "sessions", &alice_id).await;

    if std::env::var_os("UPDATE_SCREENSHOT").is_some() {
        let png = alice.screenshot().await.unwrap();
        std::fs::create_dir_all("docs").unwrap();
        std::fs::write("docs/demo.png", png).unwrap();
    }

    // A restart: SIGTERM, then a new process on the same address and Redis.
    drop(carol);
    server.signal("TERM");
    assert!(server.wait(Duration::from_secs(10)).success());
    for page in [&alice, &bob] {
        wait_text(page, "messages", "going away").await;
    }
    let server = ChatProcess::start_on(addr, &env);
    let recovered = wait_text(&alice, "recovery", "Session recovered").await;
    assert!(recovered.contains("replayed"), "{recovered}");
    assert_eq!(text(&alice, "session-id").await, alice_id);
    wait_text(&alice, "data", "\"blue\"").await;
    wait_text(&alice, "rooms", "lobby").await;
    wait_text(&bob, "recovery", "Session recovered").await;
    assert_eq!(text(&bob, "session-id").await, bob_id);
    wait_text(&bob, "status", "Connected").await;
    // Live again across both pages.
    fill(&bob, "text", "after the restart").await;
    click(&bob, "send-room-btn").await;
    wait_text(&alice, "messages", "after the restart").await;

    // What the server sends is shown as text, never run.
    let evil = "<img src=x onerror=\"window.__pwned=1\">";
    fill(&alice, "text", evil).await;
    click(&alice, "say-btn").await;
    wait_text(&alice, "messages", evil).await;
    wait_text(&bob, "messages", evil).await;
    fill(&alice, "room", evil).await;
    click(&alice, "join-btn").await;
    wait_text(&alice, "rooms", evil).await;
    for page in [&alice, &bob] {
        let pwned = script(page, "return window.__pwned === undefined && document.querySelectorAll('main img').length === 0;").await;
        assert_eq!(pwned, json!(true), "the message ran as HTML");
    }

    // A kick: the page says so and stays down.
    let mut admin = SocketClient::connect(server.addr, "admin").await;
    admin.ok(json!({"op": "kick", "user": "bob"})).await;
    wait_text(&bob, "status", "Kicked").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        text(&bob, "status").await.contains("Kicked"),
        "it reconnected"
    );
    assert_eq!(
        script(&bob, "return sessionStorage.length;").await,
        json!(0),
        "a kicked page forgets its token"
    );

    for page in [&alice, &bob] {
        let errors = script(page, "return window.demoErrors;").await;
        assert_eq!(errors, json!([]), "uncaught errors on the page");
    }
    alice.close().await.unwrap();
    bob.close().await.unwrap();
}

/// A page served from another origin opens a socket to the chat server: the upgrade is refused
/// (403) and the page sees the socket fail; the demo page on the server's own origin connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_of_another_origin_cannot_open_a_socket() {
    if !browser_installed() {
        return;
    }
    let server = ChatProcess::start(&[]);
    let chat = server.addr;
    // The other site: one page whose script tries the chat server's socket.
    let page = format!(
        "<!doctype html><title>elsewhere</title><p id=result>pending</p><script>\
         const socket = new WebSocket('ws://{chat}/ws?user=visitor');\
         socket.onopen = () => {{ document.getElementById('result').textContent = 'opened'; }};\
         socket.onclose = (event) => {{ if (document.getElementById('result').textContent === \
           'pending') document.getElementById('result').textContent = 'refused ' + event.code; }};\
         </script>"
    );
    let other = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let elsewhere = other.local_addr().unwrap();
    let site = axum::Router::new().route(
        "/",
        axum::routing::get(move || std::future::ready(axum::response::Html(page.clone()))),
    );
    tokio::spawn(async move { axum::serve(other, site).await.unwrap() });

    let driver = Driver::start();
    let browser = driver.browser().await;
    browser.goto(&format!("http://{elsewhere}/")).await.unwrap();
    let result = wait_text(&browser, "result", "refused").await;
    assert_eq!(
        result, "refused 1006",
        "the handshake failed before any socket opened"
    );
    // Nobody was given a session for the visitor.
    let mut watcher = SocketClient::connect(chat, "visitor").await;
    let sessions = watcher.ask(json!({"op": "sessions"})).await;
    assert_eq!(
        sessions["sessions"].as_array().map(Vec::len),
        Some(1),
        "{sessions}"
    );

    // The demo page, on the chat server's own origin, connects.
    let id = open(&browser, chat, "ann").await;
    assert_eq!(id.len(), 32, "{id}");
    browser.close().await.unwrap();
}
