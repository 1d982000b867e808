//! The HTTP server of the chat example, with the settings a WebSocket server facing the
//! internet needs and `axum::serve` does not expose: a deadline for reading a request's head,
//! and a cap on open connections.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::Semaphore;
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

/// Serves `router` on `listener` until `shutdown` resolves, then waits up to 5 seconds for the
/// HTTP connections still open to finish. `sockets` counts the WebSockets, which leave the
/// HTTP server once upgraded, against the cap.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    settings: ServerSettings,
    sockets: LiveSessions,
    shutdown: impl Future<Output = ()>,
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
    let http = Arc::new(Semaphore::new(settings.max_connections));
    let graceful = GracefulShutdown::new();
    tokio::pin!(shutdown);
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
            () = &mut shutdown => break,
        };
        let in_use = sockets.len() + (settings.max_connections - http.available_permits());
        let permit = match Arc::clone(&http).try_acquire_owned() {
            Ok(permit) if in_use < settings.max_connections => permit,
            _ => {
                tracing::debug!(
                    limit = settings.max_connections,
                    "connection refused: at the cap"
                );
                continue;
            }
        };
        // Small frames (replies, chat messages) go out at once rather than waiting on Nagle.
        let _ = tcp.set_nodelay(true);
        let connection = builder
            .serve_connection_with_upgrades(
                TokioIo::new(tcp),
                TowerToHyperService::new(router.clone()),
            )
            .into_owned();
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(Duration::from_secs(5), graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!("HTTP connections still open after 5 s; stopping anyway");
    }
}
