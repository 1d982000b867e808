//! A chat server whose every WebSocket client has a session.
//!
//! ```text
//! cargo run --example chat                         # MemoryStore, on 127.0.0.1:3000
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example chat   # RedisStore, prefix "chat"
//! ```
//!
//! Environment: `ADDR` (default `127.0.0.1:3000`), `REDIS_URL` (use Redis when set),
//! `SESSION_TTL_SECS` (default 60), `RESUME_SECS` (default 120; 0: no resume). Connect with
//! `GET /ws?user=NAME`, and resume with `&resume=TOKEN&offset=OFFSET`; the protocol (sessions,
//! rooms, messages to a room, a user, a session or everyone, kicks, resume) is in README.md.
//! Start it twice on one `REDIS_URL` with two `ADDR`s and the clients of both reach each
//! other; stop one (Ctrl-C or SIGTERM) and its clients resume on the other, or on it once it
//! is back.

mod app;

use std::time::Duration;

use axum::serve::ListenerExt;
use tracing_subscriber::EnvFilter;
use ws_session::{MemoryStore, RedisStore, SessionLayer};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| "info,ws_session=debug".into()),
        )
        .init();

    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    // The crate's metrics (feature `metrics`, on by default), served in the Prometheus text
    // format; installed before the layer is made, which describes them.
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;

    let ttl = seconds("SESSION_TTL_SECS", 60)?;
    let window = seconds("RESUME_SECS", 120)?;

    let layer: SessionLayer = match std::env::var("REDIS_URL") {
        Ok(url) => {
            tracing::info!(%url, "sessions in Redis, prefix \"chat\"");
            app::resumable_layer(
                RedisStore::connect(&url, "chat", ttl)
                    .await?
                    .limits(app::limits()),
                window,
            )
        }
        Err(_) => {
            tracing::info!("sessions in memory (set REDIS_URL to share them through Redis)");
            app::resumable_layer(MemoryStore::with_ttl(ttl).limits(app::limits()), window)
        }
    };
    tracing::info!(window = ?window, "resume window");
    let sessions = layer.live_sessions();

    let listener = tokio::net::TcpListener::bind(&addr).await?;
    let local = listener.local_addr()?;
    tracing::info!(
        "chat listening: open http://{local}/ in a browser, or connect to ws://{local}/ws?user=NAME"
    );
    // Small frames (replies, chat messages) go out at once rather than waiting on Nagle.
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let closing = sessions.clone();
    let router = app::router(layer).route(
        "/metrics",
        axum::routing::get(move || std::future::ready(metrics.render())),
    );
    axum::serve(listener, router)
        .with_graceful_shutdown(async move {
            shutdown_signal().await;
            // Every open socket is closed with 1001, server going away, and its session
            // detached for the resume window (removed without one), all in the store before
            // this returns.
            let asked = closing.shutdown().await;
            tracing::info!(sockets = asked, "shutting down");
        })
        .await?;

    // The socket tasks end once their close frame is out; give them a few seconds.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !sessions.is_empty() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sessions.wait_for_removals().await;
    tracing::info!(open = sessions.len(), "chat stopped");
    Ok(())
}

/// The environment variable `name` as a number of seconds, or `default`.
fn seconds(name: &str, default: u64) -> Result<Duration, Box<dyn std::error::Error>> {
    match std::env::var(name) {
        Ok(secs) => Ok(Duration::from_secs(
            secs.parse().map_err(|error| format!("{name}: {error}"))?,
        )),
        Err(_) => Ok(Duration::from_secs(default)),
    }
}

/// Ctrl-C (SIGINT) or SIGTERM, whichever comes first.
async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; Ctrl-C still stops the server");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = terminate => {}
    }
}
