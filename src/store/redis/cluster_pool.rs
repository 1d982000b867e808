//! The connection of a store on a Redis Cluster, and how it follows the cluster's slots.
//!
//! redis-rs's cluster connection follows a slot that moves when a node answers `MOVED`, and
//! reconnects to a node that drops its connection. A master that stops answering (paused,
//! cut off) answers nothing, and a master that comes back empty at its old address answers
//! `CLUSTERDOWN`: either way the connection would go on sending that master's slots there.
//! So the store renews its connection: when an operation finds it wrong (see `conn.rs`), and
//! when the map of slots to masters changes (a watcher asks a node of the connection every
//! [`WATCH_EVERY`]). redis-rs
//! takes its slot map from the first node that answers `CLUSTER SLOTS`, even one that knows
//! no slot (a node that came back empty), so a new connection starts from the nodes of a map
//! that covers every slot.

use std::sync::{Mutex, PoisonError, RwLock};
use std::time::Duration;

use ::redis::cluster::{ClusterClient, ClusterClientBuilder};
use ::redis::cluster_async::ClusterConnection;
use ::redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use ::redis::{ConnectionAddr, ConnectionInfo, RedisError, Value};

/// How long the cluster client waits for a connection to one node. A node that accepts a
/// connection and then answers nothing (paused, cut off) holds up a new connection to the
/// cluster (which connects to every node) this long.
const NODE_CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// How often a store asks which masters serve the slots.
pub(super) const WATCH_EVERY: Duration = Duration::from_millis(500);

/// The connection of a store on a cluster, and what opens a new one.
pub(super) struct ClusterPool {
    /// How to reach the seed nodes (user, password, protocol).
    seeds: Vec<ConnectionInfo>,
    current: RwLock<ClusterConnection>,
    /// The map the current connection was opened from; `None` when it is not known.
    map: Mutex<Option<SlotMap>>,
    /// How long a new connection waits for a node's answer.
    response_timeout: Duration,
}

/// Which master serves each range of slots, and every node of the map.
#[derive(Clone, Debug, PartialEq, Eq)]
struct SlotMap {
    /// The first slot of each range and its master (`host`, `port`), in order.
    masters: Vec<(i64, String, u16)>,
    /// Every node the map names, masters and replicas.
    nodes: Vec<(String, u16)>,
}

impl ClusterPool {
    /// A pool on `conn`, a connection opened from `seeds` with `response_timeout`.
    pub(super) fn new(
        seeds: Vec<ConnectionInfo>,
        conn: ClusterConnection,
        response_timeout: Duration,
    ) -> Self {
        ClusterPool {
            seeds,
            current: RwLock::new(conn),
            map: Mutex::new(None),
            response_timeout,
        }
    }

    pub(super) fn get(&self) -> ClusterConnection {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Opens a new connection from the nodes of a full slot map, within `timeout`, and puts
    /// it in place of the current one; with `only_if_moved`, only when that map differs from
    /// the current connection's.
    pub(super) async fn renew(&self, timeout: Duration, only_if_moved: bool) {
        let renewed = tokio::time::timeout(timeout, async {
            let map = match self.map_seen_now().await {
                Some(map) => map,
                None => self.full_map().await?,
            };
            let current = self
                .map
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone();
            if only_if_moved && current.is_none_or(|current| current.masters == map.masters) {
                // Unknown (the first look) or unchanged: nothing to do but remember it.
                *self.map.lock().unwrap_or_else(PoisonError::into_inner) = Some(map);
                return Ok(None);
            }
            let nodes = map.nodes.iter().map(|node| self.node(node)).collect();
            let fresh = cluster_client(nodes, self.response_timeout)?
                .get_async_connection()
                .await?;
            Ok::<_, RedisError>(Some((fresh, map)))
        })
        .await;
        match renewed {
            Ok(Ok(Some((fresh, map)))) => {
                *self.current.write().unwrap_or_else(PoisonError::into_inner) = fresh;
                *self.map.lock().unwrap_or_else(PoisonError::into_inner) = Some(map);
                tracing::debug!("renewed the Redis Cluster connection");
            }
            Ok(Ok(None)) => {}
            Ok(Err(error)) => tracing::debug!(%error, "no new Redis Cluster connection"),
            Err(_) => tracing::debug!("a new Redis Cluster connection did not open in time"),
        }
    }

    /// The map a node of the current connection tells (any one of them: `CLUSTER SLOTS`
    /// needs no key), if it covers every slot: a look that opens no connection, which the
    /// watcher takes every time.
    async fn map_seen_now(&self) -> Option<SlotMap> {
        let mut conn = self.get();
        let mut cmd = ::redis::cmd("CLUSTER");
        cmd.arg("SLOTS");
        let routing = RoutingInfo::SingleNode(SingleNodeRoutingInfo::Random);
        match tokio::time::timeout(NODE_CONNECT_TIMEOUT, conn.route_command(cmd, routing)).await {
            Ok(Ok(Value::Array(ranges))) => full_map(&ranges),
            _ => None,
        }
    }

    /// The first slot map that covers every slot, as the nodes of the current map, then the
    /// seeds, tell; each node asked within `NODE_CONNECT_TIMEOUT`.
    async fn full_map(&self) -> Result<SlotMap, RedisError> {
        let known: Vec<ConnectionInfo> = self
            .map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .flat_map(|map| map.nodes.iter().map(|node| self.node(node)))
            .collect();
        for node in known.iter().chain(&self.seeds) {
            let asked = async {
                let mut conn = ::redis::Client::open(node.clone())?
                    .get_multiplexed_async_connection()
                    .await?;
                ::redis::cmd("CLUSTER")
                    .arg("SLOTS")
                    .query_async::<Value>(&mut conn)
                    .await
            };
            if let Ok(Ok(Value::Array(ranges))) =
                tokio::time::timeout(NODE_CONNECT_TIMEOUT, asked).await
                && let Some(map) = full_map(&ranges)
            {
                return Ok(map);
            }
        }
        Err((::redis::ErrorKind::Io, "no node knows a map of every slot").into())
    }

    /// How to reach the node at `host`, `port`: as the first seed, at that address.
    fn node(&self, (host, port): &(String, u16)) -> ConnectionInfo {
        self.seeds[0]
            .clone()
            .set_addr(ConnectionAddr::Tcp(host.clone(), *port))
    }
}

/// A cluster client that starts from `nodes`, as the store configures it.
pub(super) fn cluster_client(
    nodes: Vec<ConnectionInfo>,
    response_timeout: Duration,
) -> Result<ClusterClient, RedisError> {
    ClusterClientBuilder::new(nodes)
        .connection_timeout(NODE_CONNECT_TIMEOUT)
        .response_timeout(response_timeout)
        .build()
}

/// The map a `CLUSTER SLOTS` answer tells, if its ranges cover every slot.
fn full_map(ranges: &[Value]) -> Option<SlotMap> {
    let mut covered = 0;
    let mut masters = Vec::new();
    let mut nodes: Vec<(String, u16)> = Vec::new();
    for range in ranges {
        let Value::Array(parts) = range else {
            return None;
        };
        let (Some(Value::Int(first)), Some(Value::Int(last))) = (parts.first(), parts.get(1))
        else {
            return None;
        };
        covered += last - first + 1;
        for (i, node) in parts[2..].iter().enumerate() {
            let Value::Array(node) = node else { continue };
            let (Some(Value::BulkString(host)), Some(Value::Int(port))) =
                (node.first(), node.get(1))
            else {
                continue;
            };
            let (Ok(host), Ok(port)) = (String::from_utf8(host.clone()), u16::try_from(*port))
            else {
                continue;
            };
            if i == 0 {
                masters.push((*first, host.clone(), port));
            }
            if !nodes.contains(&(host.clone(), port)) {
                nodes.push((host, port));
            }
        }
    }
    masters.sort_unstable();
    (covered == 16384).then_some(SlotMap { masters, nodes })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn range(first: i64, last: i64, nodes: &[u16]) -> Value {
        let mut parts = vec![Value::Int(first), Value::Int(last)];
        for port in nodes {
            parts.push(Value::Array(vec![
                Value::BulkString(b"127.0.0.1".to_vec()),
                Value::Int(i64::from(*port)),
            ]));
        }
        Value::Array(parts)
    }

    #[test]
    fn a_map_counts_only_when_it_covers_every_slot() {
        let map = full_map(&[range(5461, 16383, &[2, 3]), range(0, 5460, &[1, 4])]).unwrap();
        assert_eq!(
            map.masters,
            [
                (0, "127.0.0.1".to_owned(), 1),
                (5461, "127.0.0.1".to_owned(), 2)
            ]
        );
        assert_eq!(map.nodes.len(), 4);
        assert!(full_map(&[range(0, 5460, &[1])]).is_none());
        // A node that came back empty knows no slot.
        assert!(full_map(&[]).is_none());
    }
}
