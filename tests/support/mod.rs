//! What the integration tests share: a Redis server to talk to, and stores on it.
#![allow(dead_code)]

pub mod chat;
pub mod h2_socket;
pub mod process;
pub mod redis_server;

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
