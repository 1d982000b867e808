//! `SessionLayer` composed with other tower middleware, over real sockets: an authentication
//! layer in front (the `auth` example's and a wrong order), tower-http's `TraceLayer`,
//! `TimeoutLayer`, `CompressionLayer`, `CorsLayer` and `SetRequestIdLayer` around, in a
//! `ServiceBuilder`, with `Router::layer`, with `route_layer` and in a nested router. In each,
//! the session is created, kept alive while its socket is open (past the request timeout and
//! past the session TTL) and removed when the socket closes.

mod support;

#[path = "../examples/auth.rs"]
#[allow(dead_code)]
mod auth;

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::Request;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, StatusCode};
use serde_json::Value;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};
use tower::ServiceBuilder;
use tower_http::compression::CompressionLayer;
use tower_http::cors::CorsLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use ws_session::{LiveSessions, MemoryStore, SessionLayer, SessionStore, UserId, WsSession};

/// Short enough that a session not kept alive by the layer would expire during a test.
const TTL: Duration = Duration::from_millis(300);
/// The request timeout around the upgrade; the socket must outlive it.
const REQUEST_TIMEOUT: Duration = Duration::from_millis(200);

type Client =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    addr
}

/// A test's authentication: `Authorization: Bearer alice` is user `alice`.
async fn authenticate(mut request: Request, next: Next) -> Response {
    let user = request
        .headers()
        .get("authorization")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .map(str::to_owned);
    match user {
        Some(user) => {
            request.extensions_mut().insert(UserId::new(user));
            next.run(request).await
        }
        None => StatusCode::UNAUTHORIZED.into_response(),
    }
}

/// Greets with the session, the user and the request id, then answers every text frame with
/// how many this session has sent, kept in the session.
async fn handler(ws: WebSocketUpgrade, session: WsSession, headers: HeaderMap) -> Response {
    let request_id = headers
        .get("x-request-id")
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    ws.on_upgrade(move |socket| counting(socket, session, request_id))
}

async fn counting(mut socket: WebSocket, session: WsSession, request_id: String) {
    let hello = serde_json::json!({
        "session": session.id(),
        "user": session.user_id(),
        "request_id": request_id,
    });
    if socket
        .send(Message::Text(hello.to_string().into()))
        .await
        .is_err()
    {
        return;
    }
    while let Some(Ok(Message::Text(_))) = socket.recv().await {
        let count: u64 = session.get("count").await.ok().flatten().unwrap_or(0) + 1;
        let _ = session.set("count", &count).await;
        if socket
            .send(Message::Text(count.to_string().into()))
            .await
            .is_err()
        {
            break;
        }
    }
}

/// Connects to `ws://{addr}{path}` as a browser behind the middleware would: with a bearer
/// token, an origin and `Accept-Encoding: gzip`.
async fn connect(addr: SocketAddr, path: &str, token: Option<&str>) -> Result<Client, u16> {
    let mut request = format!("ws://{addr}{path}").into_client_request().unwrap();
    let headers = request.headers_mut();
    if let Some(token) = token {
        headers.insert("authorization", format!("Bearer {token}").parse().unwrap());
    }
    // A page of the server's own origin: the layer refuses others by default.
    headers.insert("origin", format!("http://{addr}").parse().unwrap());
    headers.insert("accept-encoding", "gzip".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::Error::Http(response)) => Err(response.status().as_u16()),
        Err(error) => panic!("{error}"),
    }
}

async fn text(socket: &mut Client) -> String {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a frame in time")
            .expect("the socket is open")
            .expect("no socket error");
        if let tungstenite::Message::Text(text) = frame {
            return text.as_str().to_owned();
        }
    }
}

/// The lifecycle of one session through `router`: created for alice, kept alive past the
/// request timeout and the TTL, its data readable and writable, removed on close.
async fn lifecycle(
    name: &str,
    router: Router,
    path: &str,
    store: &MemoryStore,
    live: &LiveSessions,
) {
    let addr = serve(router).await;
    assert_eq!(
        connect(addr, path, None).await.err(),
        Some(401),
        "{name}: no token"
    );
    let mut socket = connect(addr, path, Some("alice")).await.unwrap();
    let hello: Value = serde_json::from_str(&text(&mut socket).await).unwrap();
    let id = hello["session"].as_str().unwrap().to_owned();
    assert_eq!(hello["user"], "alice", "{name}");
    assert!(
        !hello["request_id"].as_str().unwrap().is_empty(),
        "{name}: the request id reaches the handler: {hello}"
    );
    let session = store.get_session(&id).await.unwrap().expect("created");
    assert_eq!(session.user_id, "alice");
    // Past the request timeout and past the TTL: the socket and its session are alive.
    tokio::time::sleep(TTL * 3).await;
    socket
        .send(tungstenite::Message::text("one"))
        .await
        .unwrap();
    assert_eq!(text(&mut socket).await, "1", "{name}");
    socket
        .send(tungstenite::Message::text("two"))
        .await
        .unwrap();
    assert_eq!(text(&mut socket).await, "2", "{name}");
    assert!(
        store.get_session(&id).await.unwrap().is_some(),
        "{name}: kept alive"
    );
    assert_eq!(live.len(), 1);
    socket.close(None).await.unwrap();
    while let Some(Ok(_)) = socket.next().await {}
    support::chat::settle(live, 0).await;
    assert!(
        store.get_session(&id).await.unwrap().is_none(),
        "{name}: removed"
    );
}

fn store_and_layer() -> (MemoryStore, SessionLayer) {
    let store = MemoryStore::with_ttl(TTL);
    let layer = SessionLayer::new(store.clone());
    (store, layer)
}

fn timeout() -> TimeoutLayer {
    TimeoutLayer::with_status_code(StatusCode::REQUEST_TIMEOUT, REQUEST_TIMEOUT)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_service_builder_stack() {
    let (store, layer) = store_and_layer();
    let live = layer.live_sessions();
    let router = Router::new().route("/ws", get(handler)).layer(
        ServiceBuilder::new()
            .layer(TraceLayer::new_for_http())
            .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
            .layer(PropagateRequestIdLayer::x_request_id())
            .layer(CorsLayer::permissive())
            .layer(CompressionLayer::new())
            .layer(timeout())
            .layer(middleware::from_fn(authenticate))
            .layer(layer),
    );
    lifecycle("ServiceBuilder", router, "/ws", &store, &live).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_router_layer_one_by_one() {
    let (store, layer) = store_and_layer();
    let live = layer.live_sessions();
    // The layer added last runs first.
    let router = Router::new()
        .route("/ws", get(handler))
        .layer(layer)
        .layer(middleware::from_fn(authenticate))
        .layer(timeout())
        .layer(CompressionLayer::new())
        .layer(CorsLayer::permissive())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .layer(TraceLayer::new_for_http());
    lifecycle("Router::layer", router, "/ws", &store, &live).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_route_layer() {
    let (store, layer) = store_and_layer();
    let live = layer.live_sessions();
    let router = Router::new()
        .route("/ws", get(handler))
        .route_layer(layer)
        .route_layer(middleware::from_fn(authenticate))
        .layer(
            ServiceBuilder::new()
                .layer(TraceLayer::new_for_http())
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(CompressionLayer::new())
                .layer(timeout()),
        );
    lifecycle("route_layer", router, "/ws", &store, &live).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_nested_router() {
    let (store, layer) = store_and_layer();
    let live = layer.live_sessions();
    let api = Router::new().route("/ws", get(handler)).layer(layer);
    let router = Router::new()
        .nest("/api", api)
        .layer(middleware::from_fn(authenticate))
        .layer(
            ServiceBuilder::new()
                .layer(TraceLayer::new_for_http())
                .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
                .layer(CorsLayer::permissive())
                .layer(timeout()),
        );
    lifecycle("nested", router, "/api/ws", &store, &live).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_auth_example_lets_in_exactly_its_users() {
    let store = MemoryStore::new();
    let addr = serve(auth::router(store.clone())).await;
    let mut alice = connect(addr, "/ws", Some("alice-secret")).await.unwrap();
    let hello: Value = serde_json::from_str(&text(&mut alice).await).unwrap();
    assert_eq!(hello["user"], "alice");
    alice.send(tungstenite::Message::text("hi")).await.unwrap();
    assert_eq!(text(&mut alice).await, "1");
    // A browser's way: the token in the query.
    let mut bob = connect(addr, "/ws?access_token=bob-secret", None)
        .await
        .unwrap();
    let hello: Value = serde_json::from_str(&text(&mut bob).await).unwrap();
    assert_eq!(hello["user"], "bob");
    for token in [None, Some("mallory"), Some("alice")] {
        assert_eq!(
            connect(addr, "/ws", token).await.err(),
            Some(401),
            "{token:?}"
        );
    }
    assert_eq!(store.len(), 2, "refused requests made no session");
}

/// Log lines written while the current thread's subscriber is set.
#[derive(Clone, Default)]
struct Logs(Arc<Mutex<Vec<u8>>>);

impl Write for Logs {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// One thread for the server and the client, so that the thread's log subscriber sees both.
#[tokio::test(flavor = "current_thread")]
async fn the_session_layer_before_the_auth_layer_is_a_loud_401() {
    let logs = Logs::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let store = MemoryStore::new();
    // Wrong: with `Router::layer` the last layer runs first, so the session layer looks for
    // the user before the authentication has put it in.
    let router = Router::new()
        .route("/ws", get(handler))
        .layer(middleware::from_fn(authenticate))
        .layer(SessionLayer::new(store.clone()));
    let addr = serve(router).await;
    assert_eq!(connect(addr, "/ws", Some("alice")).await.err(), Some(401));
    assert!(
        store.is_empty(),
        "no anonymous session behind the client's back"
    );
    let logged = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logged.contains("WARN"), "{logged}");
    assert!(
        logged.contains("the request has no `UserId`")
            && logged.contains("ServiceBuilder::new().layer(auth).layer(session_layer)"),
        "{logged}"
    );
}
