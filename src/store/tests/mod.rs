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

/// A `RedisStore` of this crate on the tests' Redis Cluster (three masters with a replica
/// each), or on a single-node cluster holding every slot when `guard`; `None` when there is no
/// Redis here and `CI` is unset.
#[cfg(feature = "redis")]
pub(super) async fn cluster_store(
    ttl: std::time::Duration,
    guard: bool,
) -> Option<crate::RedisStore> {
    use ws_session_testkit::cluster;
    use ws_session_testkit::redis_server::{SKIPPED, unique_prefix};
    let topology = if guard {
        cluster::guard()
    } else {
        cluster::shared()
    };
    let Some(topology) = topology else {
        eprintln!("{SKIPPED}");
        return None;
    };
    let store = crate::RedisStore::connect_cluster(&topology.seeds(), unique_prefix(), ttl)
        .await
        .unwrap_or_else(|err| panic!("cannot connect to the cluster: {err}"));
    Some(store)
}
