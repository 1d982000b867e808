//! The response future of [`SessionService`](super::SessionService).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum_core::response::Response;
use pin_project::pin_project;

pub(crate) type OpenSession<E> = Pin<Box<dyn Future<Output = Result<Response, E>> + Send>>;

/// The response future of [`SessionService`](super::SessionService): the inner service's own
/// future for ordinary requests, and a boxed one for WebSocket upgrades, whose identification
/// step is user code.
#[pin_project]
pub struct ResponseFuture<F, E> {
    #[pin]
    kind: Kind<F, E>,
}

#[pin_project(project = KindProj)]
enum Kind<F, E> {
    Passthrough(#[pin] F),
    Upgrade(OpenSession<E>),
}

impl<F, E> ResponseFuture<F, E> {
    pub(crate) fn passthrough(future: F) -> Self {
        ResponseFuture {
            kind: Kind::Passthrough(future),
        }
    }

    pub(crate) fn upgrade(future: OpenSession<E>) -> Self {
        ResponseFuture {
            kind: Kind::Upgrade(future),
        }
    }
}

impl<F, E> Future for ResponseFuture<F, E>
where
    F: Future<Output = Result<Response, E>>,
{
    type Output = Result<Response, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        match self.project().kind.project() {
            KindProj::Passthrough(future) => future.poll(cx),
            KindProj::Upgrade(future) => future.as_mut().poll(cx),
        }
    }
}

impl<F, E> fmt::Debug for ResponseFuture<F, E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kind = match self.kind {
            Kind::Passthrough(_) => "passthrough",
            Kind::Upgrade(_) => "upgrade",
        };
        f.debug_struct("ResponseFuture")
            .field("kind", &kind)
            .finish()
    }
}
