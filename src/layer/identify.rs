//! The identification step: who is the user behind an upgrade request?

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum_core::response::Response;
use http::request::Parts;

/// The identity an authentication layer puts into the request extensions for
/// [`SessionLayer`](crate::SessionLayer)'s default identification step to read.
///
/// The authentication layer must run **before** the session layer. In a tower
/// `ServiceBuilder` the first layer added runs first; with axum's `Router::layer` the layer
/// added last runs first. When the session layer finds no `UserId`, the upgrade gets `401` and
/// the log says which order to use. (`examples/auth.rs` is a whole server.)
///
/// ```
/// use axum::{Router, extract::Request, middleware::{self, Next}, response::Response, routing::get};
/// use tower::ServiceBuilder;
/// use ws_session::{MemoryStore, SessionLayer, UserId};
///
/// async fn authenticate(mut request: Request, next: Next) -> Response {
///     // A real application checks a token or a cookie here, and answers 401 without one.
///     request.extensions_mut().insert(UserId::new("alice"));
///     next.run(request).await
/// }
///
/// # async fn ws() {}
/// let app: Router = Router::new().route("/ws", get(ws)).layer(
///     ServiceBuilder::new()
///         .layer(middleware::from_fn(authenticate)) // first: puts the UserId in
///         .layer(SessionLayer::new(MemoryStore::new())), // then: reads it
/// );
///
/// let mut request = http::Request::new(());
/// request.extensions_mut().insert(UserId::new("alice"));
/// assert_eq!(request.extensions().get::<UserId>().unwrap().as_str(), "alice");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct UserId(pub String);

impl UserId {
    /// Wraps a user id.
    pub fn new(id: impl Into<String>) -> Self {
        UserId(id.into())
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// What an identification step decides about a request:
///
/// - `Ok(Some(user_id))`: the request belongs to this user;
/// - `Ok(None)`: nobody is identified (401, or an anonymous session when those are allowed);
/// - `Err(response)`: answer with this response instead, and upgrade nothing.
pub type Identification = Result<Option<String>, Response>;

type BoxIdentification = Pin<Box<dyn Future<Output = Identification> + Send>>;

/// A type-erased identification step, shared by every clone of the layer and its services.
pub(crate) type Identifier = Arc<dyn Fn(&Parts) -> BoxIdentification + Send + Sync>;

/// Wraps a user's identification function.
pub(crate) fn identifier<F, Fut>(identify: F) -> Identifier
where
    F: Fn(&Parts) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Identification> + Send + 'static,
{
    Arc::new(move |parts| Box::pin(identify(parts)))
}

/// The default step: the [`UserId`] an earlier layer stored in the request extensions.
pub(crate) fn from_extensions() -> Identifier {
    identifier(|parts: &Parts| {
        let user = parts.extensions.get::<UserId>().map(|user| user.0.clone());
        std::future::ready(Ok(user))
    })
}
