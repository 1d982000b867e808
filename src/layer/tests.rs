//! `oneshot` tests of the layer: everything but a real upgrade, which needs a real server
//! (see `tests/layer.rs`).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::{Router, body::Body, routing::any};
use axum_core::response::IntoResponse;
use http::{Request, StatusCode, Version};
use tower::ServiceExt;

use crate::{MemoryStore, SessionLayer, SessionStore, UserId, WsSession};

/// Counts the store operations of the layer under test from when it is made: they all go
/// through its `AnyStore`, on this test's thread.
struct CountingStore {
    store: MemoryStore,
    before: usize,
}

impl CountingStore {
    fn new() -> Self {
        CountingStore {
            store: MemoryStore::new(),
            before: crate::store::any::calls::on_this_thread(),
        }
    }
    fn calls(&self) -> usize {
        crate::store::any::calls::on_this_thread() - self.before
    }
}

/// A route that answers with `status` and reports the session id it saw in a header.
fn app(layer: SessionLayer, status: StatusCode) -> Router {
    Router::new()
        .route(
            "/ws",
            any(move |session: Option<WsSession>| async move {
                let id = session.map(|s| s.id().to_owned()).unwrap_or_default();
                (status, [("x-session", id)]).into_response()
            }),
        )
        .layer(layer)
}

/// A route that keeps the handle it extracts (as a socket task would) and answers `status`;
/// the kept handle is taken out of the returned slot.
fn keeping_app(layer: SessionLayer, status: StatusCode) -> (Router, Arc<Mutex<Option<WsSession>>>) {
    let kept = Arc::new(Mutex::new(None::<WsSession>));
    let keep = Arc::clone(&kept);
    let app = Router::new()
        .route(
            "/ws",
            any(move |session: WsSession| async move {
                *keep.lock().unwrap() = Some(session);
                status
            }),
        )
        .layer(layer);
    (app, kept)
}

fn taken(slot: &Mutex<Option<WsSession>>) -> WsSession {
    slot.lock()
        .unwrap()
        .take()
        .expect("the handler got a session")
}

fn upgrade_request(user: Option<&str>) -> Request<Body> {
    let mut request = Request::get("/ws")
        .header("connection", "Upgrade")
        .header("upgrade", "websocket")
        .header("sec-websocket-version", "13")
        .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
        .body(Body::empty())
        .unwrap();
    if let Some(user) = user {
        request.extensions_mut().insert(UserId::new(user));
    }
    request
}

fn session_header(response: &http::Response<Body>) -> String {
    response.headers()["x-session"].to_str().unwrap().to_owned()
}

#[tokio::test]
async fn ordinary_requests_pass_through_without_touching_the_store() {
    let store = CountingStore::new();
    let app = app(SessionLayer::new(store.store.clone()), StatusCode::OK);
    for request in [
        Request::get("/ws").body(Body::empty()).unwrap(),
        Request::post("/ws")
            .header("connection", "upgrade")
            .header("upgrade", "websocket")
            .body(Body::empty())
            .unwrap(),
        Request::get("/ws")
            .header("upgrade", "websocket")
            .body(Body::empty())
            .unwrap(),
    ] {
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            session_header(&response),
            "",
            "no session for a plain request"
        );
    }
    assert_eq!(store.calls(), 0);
}

#[tokio::test]
async fn an_upgrade_without_identity_is_refused_before_the_store() {
    let store = CountingStore::new();
    let app = app(
        SessionLayer::new(store.store.clone()),
        StatusCode::SWITCHING_PROTOCOLS,
    );
    let response = app.oneshot(upgrade_request(None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(store.calls(), 0);
}

#[tokio::test]
async fn a_successful_upgrade_keeps_the_session_while_a_handle_lives() {
    let store = MemoryStore::new();
    let layer = SessionLayer::new(store.clone());
    let sessions = layer.live_sessions();
    let (app, kept) = keeping_app(layer, StatusCode::SWITCHING_PROTOCOLS);

    let response = app.oneshot(upgrade_request(Some("alice"))).await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    let handle = taken(&kept);
    assert_eq!(handle.user_id(), "alice");
    assert_eq!(handle.id().len(), 32);
    assert!(store.get_session(handle.id()).await.unwrap().is_some());
    assert_eq!(sessions.len(), 1);

    let id = handle.id().to_owned();
    drop(handle);
    sessions.wait_for_removals().await;
    assert!(store.get_session(&id).await.unwrap().is_none());
    assert_eq!(sessions.len(), 0);
}

#[tokio::test]
async fn a_response_that_is_not_an_upgrade_removes_the_session_at_once() {
    let store = MemoryStore::new();
    let layer = SessionLayer::new(store.clone());
    let sessions = layer.live_sessions();
    let response = app(layer, StatusCode::BAD_REQUEST)
        .oneshot(upgrade_request(Some("alice")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let id = session_header(&response);
    assert_eq!(id.len(), 32, "the handler saw a session");
    sessions.wait_for_removals().await;
    assert!(store.get_session(&id).await.unwrap().is_none());
    assert!(store.get_user_sessions("alice").await.unwrap().is_empty());
}

#[cfg(feature = "http2")]
#[tokio::test]
async fn http2_extended_connect_gets_a_session() {
    let store = MemoryStore::new();
    let (app, kept) = keeping_app(SessionLayer::new(store.clone()), StatusCode::OK);
    let mut request = Request::connect("/ws")
        .version(Version::HTTP_2)
        .extension(hyper::ext::Protocol::from_static("websocket"))
        .header("sec-websocket-version", "13")
        .body(Body::empty())
        .unwrap();
    request.extensions_mut().insert(UserId::new("bob"));

    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let handle = taken(&kept);
    let record = store.get_session(handle.id()).await.unwrap();
    assert_eq!(record.map(|s| s.user_id), Some("bob".to_owned()));
}

#[tokio::test]
async fn the_extractor_without_the_layer_names_the_missing_layer() {
    let app = Router::new().route("/ws", any(|_session: WsSession| async { "unreachable" }));
    let response = app.oneshot(upgrade_request(Some("alice"))).await.unwrap();
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let body = axum::body::to_bytes(response.into_body(), 4096)
        .await
        .unwrap();
    let body = String::from_utf8(body.to_vec()).unwrap();
    assert!(body.contains("SessionLayer"), "{body}");
}

#[tokio::test]
async fn a_custom_identification_step_can_answer_for_itself() {
    let store = CountingStore::new();
    let layer = SessionLayer::new(store.store.clone()).identify(|parts: &http::request::Parts| {
        let token = parts.headers.get("authorization").cloned();
        async move {
            match token {
                Some(token) if token == "Bearer good" => Ok(Some("carol".to_owned())),
                Some(_) => Err(StatusCode::FORBIDDEN.into_response()),
                None => Ok(None),
            }
        }
    });
    let app = app(layer, StatusCode::BAD_REQUEST);

    let mut forbidden = upgrade_request(None);
    forbidden
        .headers_mut()
        .insert("authorization", "Bearer bad".parse().unwrap());
    let response = app.clone().oneshot(forbidden).await.unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert_eq!(store.calls(), 0);

    let mut good = upgrade_request(None);
    good.headers_mut()
        .insert("authorization", "Bearer good".parse().unwrap());
    let response = app.oneshot(good).await.unwrap();
    assert_eq!(session_header(&response).len(), 32);
    assert_eq!(store.calls(), 1, "one create; the removal runs afterwards");
}

#[tokio::test]
async fn anonymous_sessions_are_their_own_users_when_allowed() {
    let store = MemoryStore::new();
    let layer = SessionLayer::new(store.clone()).allow_anonymous(true);
    let (app, kept) = keeping_app(layer, StatusCode::SWITCHING_PROTOCOLS);
    let response = app.oneshot(upgrade_request(None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    let handle = taken(&kept);
    assert_eq!(handle.user_id(), handle.id());
    assert!(store.get_session(handle.id()).await.unwrap().is_some());
}

#[tokio::test]
async fn an_inner_service_error_removes_the_session() {
    let store = MemoryStore::new();
    let layer = SessionLayer::new(store.clone());
    let sessions = layer.live_sessions();
    let seen = Arc::new(Mutex::new(None::<String>));
    let record = Arc::clone(&seen);
    let failing = tower::service_fn(move |request: Request<Body>| {
        let session = request.extensions().get::<WsSession>().cloned();
        *record.lock().unwrap() = session.map(|s| s.id().to_owned());
        async { Err::<http::Response<Body>, &str>("the handler failed") }
    });

    let result = tower::Layer::layer(&layer, failing)
        .oneshot(upgrade_request(Some("alice")))
        .await;
    assert_eq!(result.unwrap_err(), "the handler failed");
    let id = seen
        .lock()
        .unwrap()
        .clone()
        .expect("the inner service saw a session");
    sessions.wait_for_removals().await;
    assert!(store.get_session(&id).await.unwrap().is_none());
    assert!(sessions.is_empty());
}

/// The upgrade request of `user` presenting `token`.
fn resume_request(user: &str, token: &str) -> Request<Body> {
    let mut request = upgrade_request(Some(user));
    *request.uri_mut() = format!("/ws?resume={token}").parse().unwrap();
    request
}

#[tokio::test]
async fn a_resume_whose_upgrade_fails_gives_the_session_back_to_the_presented_token() {
    use crate::resume::Resume;
    let store = MemoryStore::new();
    let layer = SessionLayer::new(store.clone()).resume(Resume::within(Duration::from_secs(60)));
    let sessions = layer.live_sessions();
    let (upgrading, upgraded) = keeping_app(layer.clone(), StatusCode::SWITCHING_PROTOCOLS);
    let response = upgrading
        .clone()
        .oneshot(upgrade_request(Some("alice")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    let first = taken(&upgraded);
    let (id, token) = (
        first.id().to_owned(),
        first.resume_token().expose().to_owned(),
    );
    drop(first);
    sessions.wait_for_removals().await;
    assert!(
        store.get_session(&id).await.unwrap().is_some(),
        "detached, kept"
    );

    // The claim succeeds, then the handler refuses the upgrade.
    let (refusing, kept) = keeping_app(layer.clone(), StatusCode::BAD_REQUEST);
    let response = refusing
        .oneshot(resume_request("alice", &token))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    let refused = taken(&kept);
    assert!(refused.recovered());
    drop(refused);
    sessions.wait_for_removals().await;

    // The token the client still holds works, for the same session.
    let response = upgrading
        .oneshot(resume_request("alice", &token))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    let again = taken(&upgraded);
    assert!(again.recovered());
    assert_eq!(again.id(), id);
}

#[tokio::test]
async fn builder_methods_leave_earlier_clones_as_they_were() {
    use crate::resume::Resume;
    let layer = SessionLayer::new(MemoryStore::new());
    let before = layer.clone();
    let resumable = layer
        .resume(Resume::within(Duration::from_secs(60)))
        .allow_anonymous(true);
    assert!(
        before.live.detach().is_none(),
        "the earlier clone has no window"
    );
    assert!(!before.config.allow_anonymous);
    assert!(before.live.node.policy().keep == 0, "nor keeps history");
    assert!(resumable.live.detach().is_some());
    assert!(resumable.config.allow_anonymous);
    assert!(resumable.live.node.policy().keep > 0);
    assert!(resumable.config.resumable && !before.config.resumable);
}
