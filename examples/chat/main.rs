//! A chat server whose every WebSocket client has a session.
//!
//! ```text
//! cargo run --example chat                         # MemoryStore, on 127.0.0.1:3000
//! REDIS_URL=redis://127.0.0.1:6379 cargo run --example chat   # RedisStore, prefix "chat"
//! REDIS_CLUSTER=10.0.0.1:6379,10.0.0.2:6379 cargo run --example chat   # on a Redis Cluster
//! REDIS_SENTINEL=10.0.0.1:26379,10.0.0.2:26379 cargo run --example chat   # through Sentinel
//! ```
//!
//! Environment: `ADDR` (default `127.0.0.1:3000`), `REDIS_URL` (use the Redis server at that
//! URL), `REDIS_CLUSTER` (comma-separated seed nodes of a Redis Cluster, `host:port`), or
//! `REDIS_SENTINEL` (comma-separated sentinels, `host:port`) with `REDIS_SENTINEL_MASTER` (the
//! master's name, default `mymaster`); at most one of them.
//! `SESSION_TTL_SECS` (default 60), `RESUME_SECS` (default 120; 0: no resume),
//! `ALLOWED_ORIGINS` (comma-separated origins whose pages may connect, beside the server's own),
//! and the server settings: `HEADER_TIMEOUT_SECS` (default 30), `IDLE_SECS` (default 60: a
//! client that sends nothing, not even a pong, for that long is closed; pings go out at half of
//! it), `MAX_CONNECTIONS` (default 10,000), `SENDS_PER_SECOND` (default 100 per connection; 0:
//! no limit), `OPENS_PER_SECOND` (sessions opened per second, two seconds of upgrades queued,
//! the rest refused with 503 and `Retry-After`; default 5,000; 0: no limit). Connect with
//! `GET /ws?user=NAME`, and resume with `&resume=TOKEN&offset=OFFSET`; the protocol (sessions,
//! rooms, messages to a room, a user, a session or everyone, kicks, resume) is in examples/chat/README.md.
//! Start it twice on one `REDIS_URL` with two `ADDR`s and the clients of both reach each
//! other; stop one (Ctrl-C or SIGTERM) and its clients resume on the other, or on it once it
//! is back.

mod app;
mod serve;

use std::time::Duration;

use tracing_subscriber::EnvFilter;
use ws_session::store::redis::redacted_url;
use ws_session::{Admission, AnyStore, MemoryStore, OriginCheck, RedisStore, SessionLayer};

/// Where the environment says the sessions live in Redis.
enum RedisAt {
    /// `REDIS_URL`: one server.
    Server(String),
    /// `REDIS_CLUSTER` (comma-separated `host:port`): seed nodes of a cluster.
    Cluster(Vec<String>),
    /// `REDIS_SENTINEL` (comma-separated `host:port`) and `REDIS_SENTINEL_MASTER` (default
    /// `mymaster`).
    Sentinel {
        sentinels: Vec<String>,
        master: String,
    },
}

/// The Redis the environment names, if any: at most one of `REDIS_URL`, `REDIS_CLUSTER` and
/// `REDIS_SENTINEL` may be set.
fn redis_from_env() -> Result<Option<RedisAt>, Box<dyn std::error::Error>> {
    let set = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|value| !value.trim().is_empty())
    };
    let (url, cluster, sentinel) = (
        set("REDIS_URL"),
        set("REDIS_CLUSTER"),
        set("REDIS_SENTINEL"),
    );
    let named = [&url, &cluster, &sentinel]
        .iter()
        .filter(|v| v.is_some())
        .count();
    if named > 1 {
        return Err("set at most one of REDIS_URL, REDIS_CLUSTER and REDIS_SENTINEL".into());
    }
    if let Some(url) = url {
        return Ok(Some(RedisAt::Server(url)));
    }
    if let Some(seeds) = cluster {
        return Ok(Some(RedisAt::Cluster(addresses(&seeds))));
    }
    Ok(sentinel.map(|sentinels| RedisAt::Sentinel {
        sentinels: addresses(&sentinels),
        master: set("REDIS_SENTINEL_MASTER").unwrap_or_else(|| "mymaster".to_owned()),
    }))
}

/// The addresses of a comma-separated list.
fn addresses(list: &str) -> Vec<String> {
    list.split(',')
        .map(str::trim)
        .filter(|address| !address.is_empty())
        .map(str::to_owned)
        .collect()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // At `trace`, tungstenite logs every frame's payload, and the welcome carries the resume
    // token: frames are logged at `debug` at most, whatever `RUST_LOG` says.
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,ws_session=debug".into())
        .add_directive("tungstenite=debug".parse()?)
        .add_directive("tokio_tungstenite=debug".parse()?);
    tracing_subscriber::fmt().with_env_filter(filter).init();

    let addr = std::env::var("ADDR").unwrap_or_else(|_| "127.0.0.1:3000".into());
    // The crate's metrics (feature `metrics`, on by default), served in the Prometheus text
    // format; installed before the layer is made, which describes them.
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new().install_recorder()?;

    let ttl = seconds("SESSION_TTL_SECS", 60)?;
    let window = seconds("RESUME_SECS", 120)?;
    let server = serve::ServerSettings {
        header_timeout: seconds("HEADER_TIMEOUT_SECS", 30)?,
        max_connections: number("MAX_CONNECTIONS", 10_000)?,
    };
    let sends = number("SENDS_PER_SECOND", 100)?;
    let opens = number("OPENS_PER_SECOND", 5_000)?;
    let settings = app::Settings {
        idle_timeout: seconds("IDLE_SECS", 60)?,
        sends_per_second: u32::try_from(sends).ok().filter(|sends| *sends > 0),
        ..app::Settings::default()
    };
    // Pages of this server may connect, and those of the origins listed.
    let origins: Vec<String> = std::env::var("ALLOWED_ORIGINS")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|origin| !origin.is_empty())
        .map(str::to_owned)
        .collect();

    // One store value, chosen at run time: Redis when `REDIS_URL` (one server), `REDIS_CLUSTER`
    // (a cluster) or `REDIS_SENTINEL` (Redis Sentinel) is set, memory otherwise.
    let store: AnyStore = match redis_from_env()? {
        Some(RedisAt::Server(url)) => {
            tracing::info!(url = %redacted_url(&url), "sessions in Redis, prefix \"chat\"");
            RedisStore::connect(&url, "chat", ttl)
                .await?
                .limits(app::limits())
                .into()
        }
        Some(RedisAt::Cluster(seeds)) => {
            tracing::info!(
                seeds = seeds.len(),
                "sessions in a Redis Cluster, prefix \"chat\""
            );
            RedisStore::connect_cluster(&seeds, "chat", ttl)
                .await?
                .limits(app::limits())
                .into()
        }
        Some(RedisAt::Sentinel { sentinels, master }) => {
            tracing::info!(
                sentinels = sentinels.len(),
                %master,
                "sessions in Redis through Sentinel, prefix \"chat\""
            );
            RedisStore::connect_sentinel(&sentinels, &master, "chat", ttl)
                .await?
                .limits(app::limits())
                .into()
        }
        None => {
            tracing::info!(
                "sessions in memory (set REDIS_URL, REDIS_CLUSTER or REDIS_SENTINEL to share them \
                 through Redis)"
            );
            MemoryStore::with_ttl(ttl).limits(app::limits()).into()
        }
    };
    let layer: SessionLayer = app::resumable_layer(store, window);
    tracing::info!(window = ?window, ?origins, "resume window, origins allowed beside the server's own");
    let mut layer = layer.check_origin(OriginCheck::same_origin_and(origins));
    if let Ok(opens) = u32::try_from(opens)
        && opens > 0
    {
        // A deploy storm opens sessions at this rate, two seconds of upgrades waiting.
        layer = layer.admission(Admission::per_second(opens).queue(2 * opens as usize));
    }
    let sessions = layer.live_sessions();

    let bind = tokio::net::lookup_host(&addr)
        .await?
        .next()
        .ok_or_else(|| format!("ADDR={addr}: no address"))?;
    let listener = serve::listen(bind)?;
    let local = listener.local_addr()?;
    tracing::info!(
        "chat listening: open http://{local}/ in a browser, or connect to ws://{local}/ws?user=NAME"
    );
    // `/metrics` tells anyone who can reach it how many sessions are open, resumed or refused:
    // a demo convenience. In production, serve it on a private port or behind authentication.
    let router = app::router_with(layer, settings).route(
        "/metrics",
        axum::routing::get(move || std::future::ready(metrics.render())),
    );
    // On the signal, the listener closes, then every open socket is closed with 1001, server
    // going away, and its session detached for the resume window (removed without one), all
    // in the store before this returns.
    serve::serve(
        listener,
        router,
        server,
        sessions.clone(),
        shutdown_signal(),
    )
    .await;

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

/// The environment variable `name` as a whole number, or `default`.
fn number(name: &str, default: usize) -> Result<usize, Box<dyn std::error::Error>> {
    match std::env::var(name) {
        Ok(value) => Ok(value.parse().map_err(|error| format!("{name}: {error}"))?),
        Err(_) => Ok(default),
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
