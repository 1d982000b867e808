//! Private Redis Cluster topologies for tests, each node a [`RedisServer`] of this test
//! process: three masters with a replica each, and a single node holding every slot (the
//! guard: on it, a script that touches keys of two slots fails, as it would on any cluster).

use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ws_session::RedisStore;

use crate::redis_server::{RedisServer, Role, query, unique_prefix};

/// How long a new cluster has to agree on its slots and sync its replicas.
const FORMING: Duration = Duration::from_secs(30);

/// Nodes of one Redis Cluster.
pub struct ClusterTopology {
    /// The nodes; with replicas, the first half were the masters when the cluster formed.
    pub nodes: Vec<RedisServer>,
}

impl ClusterTopology {
    /// Three masters and three replicas (`redis-cli --cluster create --cluster-replicas 1`),
    /// node timeout two seconds, once every node reports `cluster_state:ok` and every replica
    /// is in sync. `None` (after saying so) when no Redis is installed and `CI` is unset.
    ///
    /// # Panics
    ///
    /// When a node does not start or the cluster does not form in time.
    pub fn start() -> Option<ClusterTopology> {
        let mut nodes = Vec::new();
        for _ in 0..6 {
            nodes.push(RedisServer::start_as(Role::ClusterNode)?);
        }
        let addresses: Vec<String> = nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect();
        let output = Command::new("redis-cli")
            .args(["--cluster", "create"])
            .args(&addresses)
            .args(["--cluster-replicas", "1", "--cluster-yes"])
            .output()
            .expect("run redis-cli --cluster create");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let topology = ClusterTopology { nodes };
        topology.wait_until_formed(3);
        Some(topology)
    }

    /// One node that holds all 16384 slots: a cluster as strict about slots as any, in one
    /// process. `None` as for [`start`](Self::start).
    ///
    /// # Panics
    ///
    /// When the node does not start or take its slots.
    pub fn single_node() -> Option<ClusterTopology> {
        let node = RedisServer::start_as(Role::ClusterNode)?;
        let reply = query(node.port(), "CLUSTER ADDSLOTSRANGE 0 16383").expect("ADDSLOTSRANGE");
        assert!(reply.starts_with("+OK"), "ADDSLOTSRANGE: {reply}");
        let topology = ClusterTopology { nodes: vec![node] };
        topology.wait_until_formed(1);
        Some(topology)
    }

    /// The nodes' addresses, `127.0.0.1:PORT`: the seeds a store connects with.
    pub fn seeds(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|node| format!("127.0.0.1:{}", node.port()))
            .collect()
    }

    /// A store on the cluster, with a [`unique_prefix`].
    ///
    /// # Panics
    ///
    /// When it cannot connect.
    pub async fn store(&self, ttl: Duration) -> RedisStore {
        self.store_with_prefix(&unique_prefix(), ttl).await
    }

    /// A store on the cluster, with keys under `prefix`.
    ///
    /// # Panics
    ///
    /// When it cannot connect.
    pub async fn store_with_prefix(&self, prefix: &str, ttl: Duration) -> RedisStore {
        RedisStore::connect_cluster(&self.seeds(), prefix, ttl)
            .await
            .unwrap_or_else(|err| panic!("cannot connect to the cluster: {err}"))
    }

    /// The ports of the nodes that call themselves master now.
    pub fn master_ports(&self) -> Vec<u16> {
        self.nodes
            .iter()
            .map(RedisServer::port)
            .filter(|port| is_master(*port))
            .collect()
    }

    /// The port of the master that serves `key`'s slot now, as the first node that answers
    /// `CLUSTER NODES` tells.
    ///
    /// # Panics
    ///
    /// When no node answers, or none names a master for the slot.
    pub fn master_of(&self, key: &str) -> u16 {
        self.serving(key).expect("a master serves the slot")
    }

    /// The port of the master that serves `key`'s slot now and is not known to have failed,
    /// as the first node that answers `CLUSTER NODES` tells; `None` when there is none.
    fn serving(&self, key: &str) -> Option<u16> {
        let slot: u16 = self.nodes.iter().find_map(|node| {
            let reply = query(node.port(), &format!("CLUSTER KEYSLOT {key}")).ok()?;
            reply.trim_start_matches(':').lines().next()?.parse().ok()
        })?;
        self.nodes.iter().find_map(|node| {
            let nodes = query(node.port(), "CLUSTER NODES").ok()?;
            nodes.lines().find_map(|line| {
                let fields: Vec<&str> = line.split(' ').collect();
                let flags = fields.get(2)?;
                let serves = flags.contains("master")
                    && !flags.contains("fail")
                    && fields.get(8..)?.iter().any(|range| covers(range, slot));
                let port = fields.get(1)?.split(['@', ':']).nth(1)?.parse().ok()?;
                serves.then_some(port)
            })
        })
    }

    /// The node on `port`.
    ///
    /// # Panics
    ///
    /// When none is.
    pub fn node(&mut self, port: u16) -> &mut RedisServer {
        self.nodes
            .iter_mut()
            .find(|node| node.port() == port)
            .expect("a node on that port")
    }

    /// Waits until a node other than `old` serves `key`'s slot as master, and returns its
    /// port.
    ///
    /// # Panics
    ///
    /// When that takes longer than `within`.
    pub fn wait_for_new_master(&self, key: &str, old: u16, within: Duration) -> u16 {
        let deadline = Instant::now() + within;
        loop {
            let serving = self.serving(key);
            if let Some(port) = serving
                && port != old
                && is_master(port)
            {
                return port;
            }
            assert!(
                Instant::now() < deadline,
                "no new master for {key} within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_until_formed(&self, masters: usize) {
        let deadline = Instant::now() + FORMING;
        loop {
            let ok = self.nodes.iter().all(|node| {
                query(node.port(), "CLUSTER INFO").is_ok_and(|info| {
                    info.contains("cluster_state:ok")
                        && info.contains(&format!("cluster_size:{masters}\r"))
                        && info.contains(&format!("cluster_known_nodes:{}\r", self.nodes.len()))
                })
            });
            let synced = ok
                && self.nodes.iter().all(|node| {
                    query(node.port(), "INFO replication").is_ok_and(|info| {
                        info.contains("role:master") || info.contains("master_link_status:up")
                    })
                });
            if synced {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster did not form within {FORMING:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Whether `range` of a `CLUSTER NODES` line (`5461-10922`, or one slot) holds `slot`.
fn covers(range: &str, slot: u16) -> bool {
    if range.starts_with('[') {
        return false;
    }
    let mut bounds = range.trim().split('-').map(str::parse::<u16>);
    match (bounds.next(), bounds.next()) {
        (Some(Ok(first)), Some(Ok(last))) => (first..=last).contains(&slot),
        (Some(Ok(only)), None) => only == slot,
        _ => false,
    }
}

fn is_master(port: u16) -> bool {
    query(port, "ROLE").is_ok_and(|role| role.contains("master"))
}

/// A three-master cluster the tests of one binary share (they use prefixes of their own),
/// started on first use; `None` when Redis is unavailable.
pub fn shared() -> Option<&'static ClusterTopology> {
    static SHARED: OnceLock<Option<ClusterTopology>> = OnceLock::new();
    SHARED.get_or_init(ClusterTopology::start).as_ref()
}

/// The single-node guard cluster the tests of one binary share; `None` when Redis is
/// unavailable.
pub fn guard() -> Option<&'static ClusterTopology> {
    static GUARD: OnceLock<Option<ClusterTopology>> = OnceLock::new();
    GUARD.get_or_init(ClusterTopology::single_node).as_ref()
}

/// Every key under `store`'s prefix on the shared cluster, read with `SCAN` on each master.
///
/// # Panics
///
/// When the shared cluster is not running or a node does not answer.
pub async fn keys_under(store: &RedisStore) -> Vec<String> {
    let topology = shared().expect("the shared cluster runs");
    let mut keys = Vec::new();
    for port in topology.master_ports() {
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("a URL");
        let mut conn = client
            .get_multiplexed_async_connection()
            .await
            .expect("a connection to a master");
        keys.extend(crate::redis_server::keys_under(&mut conn, store).await);
    }
    keys
}

/// A connection to the shared cluster, which sends each command to the node of its key.
///
/// # Panics
///
/// When the shared cluster is not running or does not answer.
pub async fn connection() -> redis::cluster_async::ClusterConnection {
    let topology = shared().expect("the shared cluster runs");
    let seeds: Vec<String> = topology
        .seeds()
        .iter()
        .map(|seed| format!("redis://{seed}/"))
        .collect();
    redis::cluster::ClusterClient::new(seeds)
        .expect("seed URLs")
        .get_async_connection()
        .await
        .expect("a cluster connection")
}

/// Waits until the replica of the master on `port` has every write that master acknowledged
/// so far (`WAIT 1`, at most five seconds), and returns how many replicas did.
///
/// `WAIT` waits for the replicas to reach the last write of its own connection, so it first
/// writes a key of that master's own: that write comes after every write acknowledged so far.
///
/// # Panics
///
/// When the master does not answer.
pub async fn wait_for_replica(topology: &ClusterTopology, port: u16) -> i64 {
    let key = tokio::task::block_in_place(|| {
        (0..)
            .map(|n| format!("ws-session-wait:{n}"))
            .find(|key| topology.master_of(key) == port)
            .expect("some key lives on every master")
    });
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).expect("a URL");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("a connection to the master");
    conn.set_response_timeout(Duration::from_secs(6));
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg(1)
        .arg("PX")
        .arg(10_000)
        .query_async(&mut conn)
        .await
        .expect("SET on the master");
    redis::cmd("WAIT")
        .arg(1)
        .arg(5000)
        .query_async(&mut conn)
        .await
        .expect("WAIT on the master")
}
