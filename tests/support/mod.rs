//! What the integration tests share, from `ws-session-testkit`: a Redis server to talk to and
//! stores on it, chat clients, the chat example as a process; and the macros of this directory.
#![allow(dead_code)]

#[allow(unused_imports)]
pub use ws_session_testkit::chat_client as chat;
#[allow(unused_imports)]
pub use ws_session_testkit::{cluster, h2_socket, process, redis_server, sentinel};

/// Unwraps an `Option` from [`redis_server`], or prints the skip message and returns from the
/// calling test when it is `None` (no Redis here).
///
/// ```ignore
/// let store = require_redis!(support::redis_server::redis_store(Duration::from_secs(60)).await);
/// ```
#[macro_export]
macro_rules! require_redis {
    ($option:expr) => {
        match $option {
            Some(value) => value,
            None => {
                eprintln!("{}", $crate::support::redis_server::SKIPPED);
                return;
            }
        }
    };
}

/// Where the instances of a test keep their sessions.
#[derive(Clone, Copy, Debug)]
pub enum Kind {
    /// One `MemoryStore` shared by the layers of the test's process.
    Memory,
    /// `RedisStore`s on one Redis.
    Redis,
    /// `RedisStore`s through Redis Sentinel, on a master with two replicas.
    Sentinel,
    /// `RedisStore`s on a Redis Cluster of three masters with a replica each.
    Cluster,
}

/// A new `RedisStore` of `kind` (a store on the shared Redis, through the shared Sentinel
/// topology, or on the shared cluster) under `prefix`; `None`, after saying so, when Redis is missing.
///
/// # Panics
///
/// For `Kind::Memory`, and when the store cannot connect.
pub async fn redis_store_of(
    kind: Kind,
    prefix: &str,
    ttl: std::time::Duration,
) -> Option<ws_session::RedisStore> {
    let store = match kind {
        Kind::Memory => panic!("a memory kind has no Redis store"),
        Kind::Redis => match redis_server::shared_url() {
            Some(url) => Some(
                ws_session::RedisStore::connect(&url, prefix, ttl)
                    .await
                    .unwrap_or_else(|err| panic!("cannot connect to {url}: {err}")),
            ),
            None => None,
        },
        Kind::Sentinel => match sentinel::shared() {
            Some(topology) => Some(topology.store_with_prefix(prefix, ttl).await),
            None => None,
        },
        Kind::Cluster => match cluster::shared() {
            Some(topology) => Some(topology.store_with_prefix(prefix, ttl).await),
            None => None,
        },
    };
    if store.is_none() {
        eprintln!("{}", redis_server::SKIPPED);
    }
    store
}

/// One test per kind of store for the async fn `$name(kind: Kind)` of the calling file:
/// `$name::memory`, `$name::redis`, `$name::sentinel` and `$name::cluster`.
#[macro_export]
macro_rules! each_store {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$name($crate::support::Kind::Memory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$name($crate::support::Kind::Redis).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sentinel() {
                super::$name($crate::support::Kind::Sentinel).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn cluster() {
                super::$name($crate::support::Kind::Cluster).await;
            }
        }
    };
}
