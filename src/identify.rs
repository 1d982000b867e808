//! The identification step: who is the user behind an upgrade request?

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use axum_core::response::Response;
use http::request::Parts;

/// The identity an authentication layer puts into the request extensions for
/// [`SessionLayer`](crate::SessionLayer)'s default identification step to read.
///
/// ```
/// use ws_session::UserId;
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
