//! Tests of the stores that reach past [`SessionStore`](crate::SessionStore): what the hub and
//! resume need of them, and the model every store follows.

mod backend_contract;
mod model;

/// A `RedisStore` of this crate on the tests' Redis (a private `redis-server`, or `REDIS_URL`)
/// with a key prefix of its own; `None` when there is no Redis here and `CI` is unset.
#[cfg(feature = "redis")]
pub(super) async fn redis_store(ttl: std::time::Duration) -> Option<crate::RedisStore> {
    use ws_session_testkit::redis_server::{shared_url, unique_prefix};
    let url = shared_url()?;
    let store = crate::RedisStore::connect(&url, unique_prefix(), ttl)
        .await
        .unwrap_or_else(|err| panic!("cannot connect to Redis at {url}: {err}"));
    Some(store)
}
