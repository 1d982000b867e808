//! A private Redis Sentinel topology for tests: a master, two replicas and three sentinels,
//! each a [`RedisServer`] of this test process.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use ws_session::RedisStore;

use crate::redis_server::{RedisServer, Role, query, unique_prefix};

/// The name the sentinels give the master.
pub const MASTER_NAME: &str = "mymaster";

/// How long the topology has to find itself: the sentinels discover the replicas and each
/// other through the master, every second or two.
const DISCOVERY: Duration = Duration::from_secs(20);

/// A master with two replicas, watched by three sentinels (quorum two, down after one second).
pub struct SentinelTopology {
    /// The data servers; the first was the master when the topology started.
    pub servers: Vec<RedisServer>,
    /// The sentinels.
    pub sentinels: Vec<RedisServer>,
}

impl SentinelTopology {
    /// Starts the six servers and waits until both replicas are in sync with the master and
    /// every sentinel knows both replicas and the two other sentinels. `None` (after saying so) when no Redis is installed and `CI` is unset.
    ///
    /// # Panics
    ///
    /// When a server does not start or the topology does not find itself in time.
    pub fn start() -> Option<SentinelTopology> {
        let master = RedisServer::start()?;
        let port = master.port();
        let mut servers = vec![master];
        for _ in 0..2 {
            servers.push(RedisServer::start_as(Role::ReplicaOf(port))?);
        }
        let mut sentinels = Vec::new();
        for _ in 0..3 {
            sentinels.push(RedisServer::start_as(Role::Sentinel {
                name: MASTER_NAME.to_owned(),
                port,
            })?);
        }
        let topology = SentinelTopology { servers, sentinels };
        topology.wait_until_known();
        Some(topology)
    }

    /// The sentinels' addresses, `127.0.0.1:PORT`.
    pub fn sentinel_addresses(&self) -> Vec<String> {
        self.sentinels
            .iter()
            .map(|sentinel| format!("127.0.0.1:{}", sentinel.port()))
            .collect()
    }

    /// A store through the sentinels, with a [`unique_prefix`].
    ///
    /// # Panics
    ///
    /// When it cannot connect.
    pub async fn store(&self, ttl: Duration) -> RedisStore {
        self.store_with_prefix(&unique_prefix(), ttl).await
    }

    /// A store through the sentinels, with keys under `prefix`.
    ///
    /// # Panics
    ///
    /// When it cannot connect.
    pub async fn store_with_prefix(&self, prefix: &str, ttl: Duration) -> RedisStore {
        RedisStore::connect_sentinel(&self.sentinel_addresses(), MASTER_NAME, prefix, ttl)
            .await
            .unwrap_or_else(|err| panic!("cannot connect through Sentinel: {err}"))
    }

    /// The port of the master the first sentinel that answers names now.
    ///
    /// # Panics
    ///
    /// When no sentinel answers.
    pub fn master_port(&self) -> u16 {
        self.sentinels
            .iter()
            .find_map(|sentinel| {
                let reply = query(
                    sentinel.port(),
                    &format!("SENTINEL get-master-addr-by-name {MASTER_NAME}"),
                )
                .ok()?;
                // *2 $9 127.0.0.1 $5 PORT
                reply.lines().nth(4)?.trim().parse().ok()
            })
            .expect("a sentinel names the master")
    }

    /// The data server on `port`.
    ///
    /// # Panics
    ///
    /// When none is.
    pub fn server(&mut self, port: u16) -> &mut RedisServer {
        self.servers
            .iter_mut()
            .find(|server| server.port() == port)
            .expect("a data server on that port")
    }

    /// Waits until the sentinels name a master other than the server on `old`, that server
    /// answers as master, and returns its port.
    ///
    /// # Panics
    ///
    /// When that takes longer than `within`.
    pub fn wait_for_new_master(&self, old: u16, within: Duration) -> u16 {
        let deadline = Instant::now() + within;
        loop {
            let port = self.master_port();
            let promoted =
                port != old && query(port, "ROLE").is_ok_and(|role| role.contains("master"));
            if promoted {
                return port;
            }
            assert!(
                Instant::now() < deadline,
                "no new master within {within:?} (the sentinels name port {port})"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_until_known(&self) {
        let deadline = Instant::now() + DISCOVERY;
        loop {
            // Each replica has finished its first sync with the master: one that had not would
            // be promoted with no data.
            let synced = self.servers[1..].iter().all(|replica| {
                query(replica.port(), "INFO replication")
                    .is_ok_and(|info| info.contains("master_link_status:up"))
            });
            let known = synced
                && self.sentinels.iter().all(|sentinel| {
                    query(sentinel.port(), &format!("SENTINEL MASTER {MASTER_NAME}")).is_ok_and(
                        |reply| {
                            field(&reply, "num-slaves") == Some(2)
                                && field(&reply, "num-other-sentinels") == Some(2)
                        },
                    )
                });
            if known {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the Sentinel topology did not find itself within {DISCOVERY:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Waits until both replicas have every write `store`'s master acknowledged so far (`WAIT 2`,
/// at most five seconds), and returns how many replicas did.
///
/// `WAIT` waits for the replicas to reach the last write of its own connection, so it first
/// writes a key of its own: that write comes after every write acknowledged so far.
///
/// # Panics
///
/// When the master does not answer.
pub async fn wait_for_replicas(store: &RedisStore) -> i64 {
    let mut conn = store.dedicated_connection().await.expect("a connection");
    conn.set_response_timeout(Duration::from_secs(6));
    let _: () = redis::cmd("SET")
        .arg(format!("{}:wait", store.prefix()))
        .arg(1)
        .arg("PX")
        .arg(60_000)
        .query_async(&mut conn)
        .await
        .expect("SET");
    redis::cmd("WAIT")
        .arg(2)
        .arg(5000)
        .query_async(&mut conn)
        .await
        .expect("WAIT")
}

/// The number after the line `name` in a flat RESP reply of names and values.
fn field(reply: &str, name: &str) -> Option<u64> {
    let mut lines = reply.lines();
    lines.find(|line| *line == name)?;
    lines.nth(1)?.trim().parse().ok()
}

/// A topology the tests of one binary share (they use prefixes of their own), started on first
/// use; `None` when Redis is unavailable (see [`RedisServer::start`]).
pub fn shared() -> Option<&'static SentinelTopology> {
    static SHARED: OnceLock<Option<SentinelTopology>> = OnceLock::new();
    SHARED.get_or_init(SentinelTopology::start).as_ref()
}
