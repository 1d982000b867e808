//! `SessionLayer` as a plain tower layer, with no axum router: around a `tower::service_fn`,
//! served by hyper directly, which upgrades the connection itself.

mod support;

use std::convert::Infallible;
use std::net::SocketAddr;

use axum_core::body::Body;
use futures_util::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode, header};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::{self, client::IntoClientRequest};
use tower::ServiceBuilder;
use ws_session::{MemoryStore, SessionLayer, SessionStore, WsSession};

/// The inner service: takes the session the layer put into the request, answers 101 itself,
/// and serves the upgraded connection: a greeting with the session, then every text frame is
/// stored in the session and echoed back.
async fn upgrade(mut request: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let session = request
        .extensions()
        .get::<WsSession>()
        .cloned()
        .expect("the layer put a session in");
    let Some(key) = request.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return Ok(Response::builder()
            .status(StatusCode::BAD_REQUEST)
            .body(Body::empty())
            .unwrap());
    };
    let upgrading = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrading.await else {
            return;
        };
        let mut socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        let hello = format!("{} {}", session.id(), session.user_id());
        if socket
            .send(tungstenite::Message::text(hello))
            .await
            .is_err()
        {
            return;
        }
        while let Some(Ok(tungstenite::Message::Text(text))) = socket.next().await {
            let _ = session.set("last", &text.as_str()).await;
            let stored: Option<String> = session.get("last").await.ok().flatten();
            let reply = stored.unwrap_or_default();
            if socket
                .send(tungstenite::Message::text(reply))
                .await
                .is_err()
            {
                break;
            }
        }
        // `session` drops with this task: the session is removed.
    });
    Ok(Response::builder()
        .status(StatusCode::SWITCHING_PROTOCOLS)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(
            header::SEC_WEBSOCKET_ACCEPT,
            derive_accept_key(key.as_bytes()),
        )
        .body(Body::empty())
        .unwrap())
}

/// Serves `layer` around [`upgrade`] with hyper's server, one task per connection.
async fn serve(layer: SessionLayer) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = ServiceBuilder::new().layer(layer).service_fn(upgrade);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let service = TowerToHyperService::new(service.clone());
            tokio::spawn(async move {
                let _ = auto::Builder::new(TokioExecutor::new())
                    .serve_connection_with_upgrades(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_layer_wraps_a_plain_tower_service_served_by_hyper() {
    let store = MemoryStore::new();
    let layer = SessionLayer::new(store.clone()).identify(|parts: &http::request::Parts| {
        let user = parts
            .headers
            .get("x-user")
            .and_then(|value| value.to_str().ok())
            .map(str::to_owned);
        async move { Ok(user) }
    });
    let live = layer.live_sessions();
    let addr = serve(layer).await;

    // Nobody identified: 401 from the layer, before the inner service.
    let refused = tokio_tungstenite::connect_async(format!("ws://{addr}/")).await;
    match refused {
        Err(tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        }
        other => panic!("expected a 401, got {other:?}"),
    }

    let mut request = format!("ws://{addr}/").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("x-user", "alice".parse().unwrap());
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let hello = match socket.next().await {
        Some(Ok(tungstenite::Message::Text(text))) => text.as_str().to_owned(),
        other => panic!("no greeting: {other:?}"),
    };
    let (id, user) = hello.split_once(' ').unwrap();
    assert_eq!(user, "alice");
    let session = store.get_session(id).await.unwrap().expect("created");
    assert_eq!(session.user_id, "alice");
    socket
        .send(tungstenite::Message::text("hello"))
        .await
        .unwrap();
    match socket.next().await {
        Some(Ok(tungstenite::Message::Text(text))) => assert_eq!(text.as_str(), "hello"),
        other => panic!("no echo: {other:?}"),
    }
    assert_eq!(
        store.get_session_data(id, "last").await.unwrap(),
        Some("hello".into())
    );
    assert_eq!(live.len(), 1);

    socket.close(None).await.unwrap();
    while let Some(Ok(_)) = socket.next().await {}
    support::chat::settle(&live, 0).await;
    assert!(store.get_session(id).await.unwrap().is_none(), "removed");
}
