//! A request that is not a WebSocket upgrade goes through the layer without one allocation:
//! a call through the layer allocates exactly what a call to the inner service alone does.

use std::convert::Infallible;

use axum::body::Body;
use futures_util::FutureExt;
use http::{Request, Response};
use tower::{Layer, Service, service_fn};
use ws_session::{MemoryStore, SessionLayer};

fn inner() -> impl Service<
    Request<Body>,
    Response = Response<Body>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Body>, Infallible>> + Send,
> + Clone
+ Send
+ 'static {
    service_fn(|_request: Request<Body>| async { Ok(Response::new(Body::empty())) })
}

fn requests() -> Vec<Request<Body>> {
    vec![
        Request::get("/").body(Body::empty()).unwrap(),
        Request::post("/api")
            .header("content-type", "application/json")
            .body(Body::from("{}"))
            .unwrap(),
        // Looks like an upgrade, but is not one: only `Upgrade`, no `Connection: upgrade`.
        Request::get("/ws")
            .header("upgrade", "websocket")
            .body(Body::empty())
            .unwrap(),
    ]
}

/// Allocations made by calling `service` with `request` and polling the response to the end.
fn allocations<S>(service: &mut S, request: Request<Body>) -> u64
where
    S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>,
{
    allocation_counter::measure(|| {
        let response = service
            .call(request)
            .now_or_never()
            .expect("the inner service answers at once")
            .unwrap();
        drop(response);
    })
    .count_total
}

#[test]
fn ordinary_requests_cost_the_layer_no_allocation() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let _guard = runtime.enter();
    let mut bare = inner();
    let mut layered = SessionLayer::new(MemoryStore::new()).layer(inner());

    for (bare_request, layered_request) in requests().into_iter().zip(requests()) {
        let uri = bare_request.uri().clone();
        let bare_count = allocations(&mut bare, bare_request);
        let layered_count = allocations(&mut layered, layered_request);
        assert_eq!(
            layered_count,
            bare_count,
            "{uri}: the layer added {} allocations",
            layered_count as i64 - bare_count as i64
        );
    }
}
