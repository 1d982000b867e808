//! The HTTP server of the chat example, with the settings a WebSocket server facing the
//! internet needs and `axum::serve` does not expose: a deadline for reading a request's head,
//! and a cap on open connections.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use ws_session::LiveSessions;

/// What the server allows its clients.
#[derive(Debug, Clone, Copy)]
pub struct ServerSettings {
    /// How long a client may take to send a request's head (the upgrade request): a
    /// connection that has not sent it by then is closed.
    pub header_timeout: Duration,
    /// Most connections open at once, WebSockets included; one past it is closed at once.
    pub max_connections: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        ServerSettings {
            header_timeout: Duration::from_secs(30),
            max_connections: 10_000,
        }
    }
}

/// How many connections the kernel queues for `accept` (the standard library's `bind` asks
/// for 128). When a deploy restarts an instance, all of its clients reconnect within a second
/// or two; past the queue, the kernel drops their handshakes and each retries only a second
/// later (and again after two, four...), so a short queue turns a storm into seconds of
/// waiting. Linux caps it at `net.core.somaxconn` (4,096 by default since 5.4).
pub const BACKLOG: u32 = 4096;

/// A listener on `addr` with a queue of [`BACKLOG`] connections.
pub fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    // A restarted instance binds the address its predecessor's connections still name.
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(BACKLOG)
}

/// Serves `router` on `listener` until `stop` resolves. Then it closes the listener, so that
/// clients reconnecting meanwhile are refused by the kernel (at no cost to this process) and a
/// new process can take the address; closes every WebSocket with 1001, its session detached
/// in the store for the resume window; and waits up to 5 seconds for the HTTP connections
/// still open to finish.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ServerSettings,
    sessions: LiveSessions,
    stop: impl Future<Output = ()>,
) {
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(settings.header_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .enable_connect_protocol();
    let open = Arc::new(Semaphore::new(settings.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(stop);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(error) => {
                    // Out of file descriptors, say: wait a little rather than spin.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let Ok(permit) = Arc::clone(&open).try_acquire_owned() else {
            tracing::debug!(
                limit = settings.max_connections,
                "connection refused: at the cap"
            );
            continue;
        };
        // Small frames (replies, chat messages) go out at once rather than waiting on Nagle.
        let _ = tcp.set_nodelay(true);
        let connection = builder
            .serve_connection_with_upgrades(
                TokioIo::new(Counted {
                    tcp,
                    _permit: permit,
                }),
                TowerToHyperService::new(router.clone()),
            )
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
        });
    }
    drop(listener);
    let asked = sessions.shutdown().await;
    tracing::info!(sockets = asked, "shutting down");
    if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("HTTP connections still open after 5 s; stopping anyway");
    }
}

/// A connection and its place under the cap, which it holds for as long as it is open: an
/// upgraded connection keeps its stream, so a WebSocket counts until it closes, once.
struct Counted {
    tcp: TcpStream,
    /// Given back when the connection is dropped.
    _permit: OwnedSemaphorePermit,
}

impl AsyncRead for Counted {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.tcp).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.tcp).poll_shutdown(cx)
    }
}
