//! Failovers under load, on a real Redis Sentinel topology (a master, two replicas, three
//! sentinels) and on a real Redis Cluster (three masters with a replica each, where the master
//! of the hub's slot fails): the master is killed with `SIGKILL`, or frozen with `SIGSTOP`,
//! while writers, creators and a publisher run. Every operation is answered or fails within its timeout,
//! upgrades get `503` during the outage, the service comes back without a restart, no
//! acknowledged write that reached the replicas is lost, no create is applied twice, no
//! message is delivered twice, and every channel of the hub delivers again afterwards. The old
//! master, back as a master for a moment, takes no write. Also: the chat example through
//! Sentinel and on a cluster, a master short of replicas (`NOREPLICAS`), and no sentinel at
//! all.

mod support;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;
use support::chat::{Client, Instance, serve};
use support::cluster::ClusterTopology;
use support::redis_server::RedisServer;
use support::redis_server::unique_prefix;
use support::sentinel::{SentinelTopology, wait_for_replicas};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use ws_session::resume::Resume;
use ws_session::{Error, RedisStore, SessionStore};
use ws_session_testkit::app;

const HOUR: Duration = Duration::from_secs(3600);

/// The tests of this file take turns: each runs a topology of its own, whose failovers hang on
/// timeouts of a second or two, which two topologies failing over at once on two cores could
/// stretch into failovers nobody caused.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
/// The operation timeout of every store of these tests.
const TIMEOUT: Duration = Duration::from_millis(500);
/// What a loaded two-core machine may add to an operation's timeout before it answers.
const SLACK: Duration = Duration::from_millis(700);
/// How long the sentinels may take to promote a replica.
const PROMOTION: Duration = Duration::from_secs(30);
/// How long the store may take to work again once a replica is promoted.
const RECOVERY: Duration = Duration::from_secs(10);
/// Sessions written all the time, one writer each.
const WRITERS: usize = 6;

#[derive(Clone, Copy, Debug)]
enum Outage {
    /// `SIGKILL`; the old master is started again (empty) once a replica is promoted.
    Kill,
    /// `SIGSTOP`; the old master goes on (still thinking it is master) once a replica is
    /// promoted.
    Pause,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_master_is_replaced_without_losing_what_reached_the_replicas() {
    let _turn = ONE_AT_A_TIME.lock().await;
    failover(Topology::sentinel(), Outage::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_master_is_replaced_and_takes_no_write_when_it_wakes() {
    let _turn = ONE_AT_A_TIME.lock().await;
    failover(Topology::sentinel(), Outage::Pause).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_cluster_master_is_replaced_without_losing_what_reached_its_replica() {
    let _turn = ONE_AT_A_TIME.lock().await;
    failover(Topology::cluster(), Outage::Kill).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_cluster_master_is_replaced_and_takes_no_write_when_it_wakes() {
    let _turn = ONE_AT_A_TIME.lock().await;
    failover(Topology::cluster(), Outage::Pause).await;
}

/// Where the test's Redis runs, and what fails in it.
enum Topology {
    /// A master with two replicas behind three sentinels; the master fails.
    Sentinel(SentinelTopology),
    /// Three masters with a replica each; the master of the hub's slot fails (it also holds
    /// about a third of the sessions).
    Cluster(ClusterTopology),
}

impl Topology {
    fn sentinel() -> Option<Topology> {
        SentinelTopology::start().map(Topology::Sentinel)
    }

    fn cluster() -> Option<Topology> {
        ClusterTopology::start().map(Topology::Cluster)
    }

    async fn store(&self, prefix: &str) -> RedisStore {
        let store = match self {
            Topology::Sentinel(topology) => topology.store_with_prefix(prefix, HOUR).await,
            Topology::Cluster(topology) => topology.store_with_prefix(prefix, HOUR).await,
        };
        store.limits(app::limits()).timeout(TIMEOUT)
    }

    /// The port of the master the test fails: through Sentinel the master; on a cluster the
    /// master of the hub's slot of the stores under `prefix`.
    fn victim(&self, prefix: &str) -> u16 {
        match self {
            Topology::Sentinel(topology) => topology.master_port(),
            Topology::Cluster(topology) => topology.master_of(&hub_key(prefix)),
        }
    }

    fn server(&mut self, port: u16) -> &mut RedisServer {
        match self {
            Topology::Sentinel(topology) => topology.server(port),
            Topology::Cluster(topology) => topology.node(port),
        }
    }

    fn wait_for_new_master(&self, prefix: &str, old: u16) -> u16 {
        tokio::task::block_in_place(|| match self {
            Topology::Sentinel(topology) => topology.wait_for_new_master(old, PROMOTION),
            Topology::Cluster(topology) => {
                topology.wait_for_new_master(&hub_key(prefix), old, PROMOTION)
            }
        })
    }

    /// Waits until every replica of the master on `port` has every write the master
    /// acknowledged so far, and requires that they all did.
    async fn wait_for_replicas(&self, store: &RedisStore, port: u16) {
        match self {
            Topology::Sentinel(_) => {
                let replicas = wait_for_replicas(store).await;
                assert_eq!(replicas, 2, "both replicas acknowledged the writes so far");
            }
            Topology::Cluster(topology) => {
                let replicas = support::cluster::wait_for_replica(topology, port).await;
                assert_eq!(replicas, 1, "the replica acknowledged the writes so far");
            }
        }
    }

    /// Whether the old master on `port` has stopped being a master that takes writes: a
    /// replica now, or (on a cluster, restarted empty) a node that serves no slot.
    fn demoted(&self, port: u16) -> bool {
        let role = support::redis_server::query(port, "ROLE").unwrap_or_default();
        if role.contains("slave") {
            return true;
        }
        match self {
            Topology::Sentinel(_) => false,
            Topology::Cluster(_) => support::redis_server::query(port, "CLUSTER INFO")
                .is_ok_and(|info| info.contains("cluster_slots_assigned:0")),
        }
    }
}

/// The clock of the hub of the stores under `prefix` on a cluster: a key of the hub's slot.
fn hub_key(prefix: &str) -> String {
    format!("{prefix}:hub:{{{prefix}}}:clock")
}

/// One operation of the load: when it started, how long it took, and whether it succeeded.
#[derive(Debug, Clone, Copy)]
struct Outcome {
    at: Instant,
    took: Duration,
    ok: bool,
}

/// A writer's record: the value of each attempt, and of each acknowledged one.
#[derive(Default)]
struct Written {
    outcomes: Vec<Outcome>,
    last_attempted: i64,
    last_acked: i64,
    /// The last value acknowledged before the snapshot that `WAIT` then made durable.
    acked_at_snapshot: i64,
}

async fn failover(topology: Option<Topology>, outage: Outage) {
    let Some(mut topology) = topology else {
        return;
    };
    let prefix = unique_prefix();
    let store = topology.store(&prefix).await;
    let a = instance(&topology, &prefix).await;
    let b = instance(&topology, &prefix).await;

    // Hub: a reader on b in the room "feed" and in probe rooms; a publisher on a.
    let mut reader = Client::connect(b.addr, "reader").await;
    for room in ["feed", "p0", "p1", "p2"] {
        reader.ok(json!({"op": "join", "room": room})).await;
    }
    let mut resumer = Client::connect(a.addr, "resumer").await;
    resumer
        .ok(json!({"op": "set", "key": "kept", "value": "before"}))
        .await;

    let running = Arc::new(AtomicBool::new(true));
    let writers: Vec<_> = (0..WRITERS)
        .map(|i| {
            let user = format!("w{i}");
            spawn_writer(store.clone(), user, Arc::clone(&running))
        })
        .collect();
    let creator = spawn_creator(store.clone(), Arc::clone(&running));
    let publisher = spawn_publisher(
        Client::connect(a.addr, "publisher").await,
        Arc::clone(&running),
    );
    let reader_id = reader.id.clone();
    let received = Received::default();
    let collector = spawn_collector(reader, received.clone());

    tokio::time::sleep(Duration::from_secs(1)).await;

    // Snapshot what is acknowledged, then make it durable on the replicas.
    let old = topology.victim(&prefix);
    let snapshot: Vec<i64> = writers.iter().map(|w| w.last_acked()).collect();
    topology.wait_for_replicas(&store, old).await;
    for (writer, acked) in writers.iter().zip(&snapshot) {
        writer.state.lock().unwrap().acked_at_snapshot = *acked;
    }

    let outage_start = Instant::now();
    let paused = match outage {
        Outage::Kill => {
            topology.server(old).stop();
            None
        }
        Outage::Pause => Some(topology.server(old).pause()),
    };

    // During the outage an upgrade is refused with 503 and creates nothing.
    let status = upgrade_status(a.addr, "during").await;
    assert_eq!(status, Some(503), "an upgrade during the outage");

    let new = topology.wait_for_new_master(&prefix, old);
    let promoted = Instant::now();
    println!(
        "{outage:?}: the sentinels promoted port {new} {:?} after the outage began",
        promoted - outage_start
    );

    // The store works again without a restart.
    let recovered = eventually_writes(&store, RECOVERY).await;
    println!(
        "{outage:?}: first write after the promotion {:?} later ({:?} after the outage began)",
        recovered - promoted,
        recovered - outage_start
    );

    // The old master comes back: restarted empty, or woken still thinking it is master.
    match (outage, paused) {
        (Outage::Kill, _) => topology.server(old).restart(),
        (Outage::Pause, Some(pid)) => topology.server(old).resume(pid),
        (Outage::Pause, None) => unreachable!(),
    }
    // Load goes on while the old master is back, until the sentinels have demoted it.
    tokio::time::sleep(Duration::from_secs(2)).await;

    // Every channel delivers again: probe each from the other instance, while the publisher
    // goes on.
    let mut prober = Client::connect(a.addr, "prober").await;
    for room in ["p0", "p1", "p2"] {
        let text = format!("probe {room}");
        prober
            .ok(json!({"op": "to_room", "room": room, "text": text}))
            .await;
        received.wait_for(&text).await;
    }
    prober
        .ok(json!({"op": "to_user", "user": "reader", "text": "probe user"}))
        .await;
    received.wait_for("probe user").await;
    prober.send(json!({"op": "say", "text": "probe all"})).await;
    received.wait_for("probe all").await;
    prober
        .ok(json!({"op": "to_session", "session": reader_id, "text": "probe node"}))
        .await;
    received.wait_for("probe node").await;
    let delivering = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.store(false, Ordering::Relaxed);
    let published = publisher.await.unwrap();
    // The last publish is answered once the reader has had the time to get it.
    let last = published
        .last()
        .map(|(text, _)| text.clone())
        .unwrap_or_default();
    received.wait_for(&last).await;
    collector.abort();

    // No message twice, and every one acknowledged once the probes came through arrived.
    let feed: Vec<String> = received
        .texts()
        .into_iter()
        .filter(|t| t.starts_with('m'))
        .collect();
    let mut seen = BTreeSet::new();
    for text in &feed {
        assert!(seen.insert(text.clone()), "{text} was delivered twice");
    }
    for (text, at) in &published {
        if *at > delivering {
            assert!(
                seen.contains(text),
                "{text}, acknowledged after the probes, never came"
            );
        }
    }
    let missed = published
        .iter()
        .filter(|(text, _)| !seen.contains(text))
        .count();
    println!(
        "{outage:?}: {} messages acknowledged, {missed} of them published while the reader's node had no subscription",
        published.len()
    );

    // Resume works on the new master, with the data kept from before the outage.
    let token = resumer.token();
    resumer.close().await;
    // The prober is all that is left on a (the publisher's client went with its task).
    a.settle(1).await;
    let mut resumed = Client::resume(b.addr, "resumer", &token, None).await;
    assert!(
        resumed.recovered(),
        "the session from before the outage resumes"
    );
    let kept = resumed.ask(json!({"op": "get", "key": "kept"})).await;
    assert_eq!(kept["value"], "before", "{kept}");

    // Writers: bounded answers, nothing durable lost, nothing applied from the future.
    let creates = creator.await.unwrap();
    for writer in writers {
        let id = writer.id.clone();
        let written = writer.finish().await;
        assert_bounded(&id, &written.outcomes);
        let value = store
            .get_session_data(&id, "n")
            .await
            .expect("the store reads after the failover")
            .and_then(|value| value.as_i64())
            .expect("the writer's value is there");
        assert!(
            value >= written.acked_at_snapshot && value >= written.last_acked,
            "{id}: {value} lost an acknowledged write (durable {}, last acknowledged {})",
            written.acked_at_snapshot,
            written.last_acked
        );
        assert!(
            value <= written.last_attempted,
            "{id}: {value} was never written"
        );
    }
    assert_bounded("creator", &creates.outcomes);
    assert!(
        creates.outcomes.iter().any(|o| o.ok && o.at > recovered),
        "sessions are created again after the recovery"
    );
    for (id, _) in creates.acked.iter().filter(|(_, at)| *at > recovered) {
        assert!(
            store.get_session(id).await.unwrap().is_some(),
            "{id}, created after the recovery, is gone"
        );
    }

    // The old master is demoted in the end.
    let deadline = Instant::now() + PROMOTION;
    while !tokio::task::block_in_place(|| topology.demoted(old)) {
        assert!(
            Instant::now() < deadline,
            "the old master on {old} was not demoted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    drop(b);
}

async fn sentinel_store(topology: &SentinelTopology, prefix: &str) -> RedisStore {
    topology
        .store_with_prefix(prefix, HOUR)
        .await
        .limits(app::limits())
        .timeout(TIMEOUT)
}

async fn instance(topology: &Topology, prefix: &str) -> Instance {
    let store = topology.store(prefix).await;
    let layer = app::session_layer(store).resume(Resume::within(Duration::from_secs(60)));
    let router = app::router_with(layer.clone(), app::Settings::unlimited());
    serve(layer, router).await
}

/// Writes `n` = 1, 2, 3... to session `id` until told to stop.
struct Writer {
    id: String,
    state: Arc<std::sync::Mutex<Written>>,
    task: JoinHandle<()>,
}

impl Writer {
    fn last_acked(&self) -> i64 {
        self.state.lock().unwrap().last_acked
    }

    async fn finish(self) -> Written {
        self.task.await.unwrap();
        std::mem::take(&mut *self.state.lock().unwrap())
    }
}

/// A writer of a session of `user`.
fn spawn_writer(store: RedisStore, user: String, running: Arc<AtomicBool>) -> Writer {
    let state = Arc::new(std::sync::Mutex::new(Written::default()));
    let id = store.new_session_id(&user);
    let task = {
        let state = Arc::clone(&state);
        let id = id.clone();
        tokio::spawn(async move {
            store.create_session(&id, &user).await.expect("create");
            let mut next = 0;
            while running.load(Ordering::Relaxed) {
                next += 1;
                state.lock().unwrap().last_attempted = next;
                let at = Instant::now();
                let result = store.set_session_data(&id, "n", json!(next)).await;
                let outcome = Outcome {
                    at,
                    took: at.elapsed(),
                    ok: result.is_ok(),
                };
                if let Err(err) = &result {
                    assert!(err.is_unavailable(), "{id}: {err}");
                }
                {
                    let mut state = state.lock().unwrap();
                    state.outcomes.push(outcome);
                    if result.is_ok() {
                        state.last_acked = next;
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    Writer { id, state, task }
}

struct Creates {
    outcomes: Vec<Outcome>,
    /// The ids created, with when each create was sent.
    acked: Vec<(String, Instant)>,
}

/// Creates sessions of new ids until told to stop; a create is never told that its id exists.
fn spawn_creator(store: RedisStore, running: Arc<AtomicBool>) -> JoinHandle<Creates> {
    tokio::spawn(async move {
        let mut creates = Creates {
            outcomes: Vec::new(),
            acked: Vec::new(),
        };
        for n in 0.. {
            if !running.load(Ordering::Relaxed) {
                break;
            }
            let user = format!("c{n}");
            let id = store.new_session_id(&user);
            let at = Instant::now();
            let result = store.create_session(&id, &user).await;
            creates.outcomes.push(Outcome {
                at,
                took: at.elapsed(),
                ok: result.is_ok(),
            });
            match result {
                Ok(_) => creates.acked.push((id, at)),
                Err(Error::AlreadyExists { id }) => panic!("the create of {id} was applied twice"),
                Err(err) => assert!(err.is_unavailable(), "{err}"),
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        creates
    })
}

/// Sends `m1`, `m2`... to the room "feed" until told to stop; returns each acknowledged text
/// with when it was sent.
fn spawn_publisher(
    mut client: Client,
    running: Arc<AtomicBool>,
) -> JoinHandle<Vec<(String, Instant)>> {
    tokio::spawn(async move {
        let mut acked = Vec::new();
        let mut n = 0;
        while running.load(Ordering::Relaxed) {
            n += 1;
            let text = format!("m{n}");
            let at = Instant::now();
            let reply = tokio::time::timeout(
                TIMEOUT * 2 + SLACK,
                client.ask(json!({"op": "to_room", "room": "feed", "text": text})),
            )
            .await
            .expect("the publish was answered within its timeout");
            if reply["type"] == "ok" {
                acked.push((text, at));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        acked
    })
}

/// The texts a reader has received, in order.
#[derive(Clone, Default)]
struct Received(Arc<std::sync::Mutex<Vec<String>>>);

impl Received {
    fn texts(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    /// Waits until a message with `text` has arrived.
    async fn wait_for(&self, text: &str) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while !self.0.lock().unwrap().iter().any(|got| got == text) {
            assert!(Instant::now() < deadline, "{text} did not arrive");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Reads every message of `client` into `received`, until aborted.
fn spawn_collector(mut client: Client, received: Received) -> JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let message = client.message().await;
            if let Some(text) = message["text"].as_str() {
                received.0.lock().unwrap().push(text.to_owned());
            }
        }
    })
}

/// The HTTP status an upgrade gets, or `None` when it succeeds.
async fn upgrade_status(addr: std::net::SocketAddr, user: &str) -> Option<u16> {
    let url = format!("ws://{addr}/ws?user={user}");
    match tokio_tungstenite::connect_async(url).await {
        Ok(_) => None,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Some(response.status().as_u16())
        }
        Err(err) => panic!("the upgrade failed otherwise: {err}"),
    }
}

/// Waits until a write succeeds, and returns when.
async fn eventually_writes(store: &RedisStore, within: Duration) -> Instant {
    let deadline = Instant::now() + within;
    let probe = store.new_session_id("probe");
    loop {
        let result = match store.create_session(&probe, "probe").await {
            Ok(_) | Err(Error::AlreadyExists { .. }) => Ok(()),
            Err(err) => Err(err),
        };
        if result.is_ok() {
            return Instant::now();
        }
        assert!(
            Instant::now() < deadline,
            "the store did not write within {within:?} of the promotion: {result:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every operation answered within its timeout, give or take the machine's slack.
#[track_caller]
fn assert_bounded(who: &str, outcomes: &[Outcome]) {
    let slowest = outcomes.iter().map(|o| o.took).max().unwrap_or_default();
    assert!(
        slowest <= TIMEOUT + SLACK,
        "{who}: an operation took {slowest:?}, past its timeout of {TIMEOUT:?}"
    );
    assert!(outcomes.iter().any(|o| o.ok), "{who}: nothing succeeded");
    assert!(
        outcomes.iter().any(|o| !o.ok),
        "{who}: nothing failed, so the outage was not seen"
    );
}

/// The chat example, given `REDIS_CLUSTER`, keeps its sessions on the cluster, in the cluster
/// layout (a session's hash tagged with its user's slot), and its clients reach each other
/// through the hub's shard channels.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_example_runs_on_a_cluster() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(topology) = ClusterTopology::start() else {
        return;
    };
    let seeds = topology.seeds().join(",");
    let server = support::process::ChatProcess::start(&[("REDIS_CLUSTER", seeds.as_str())]);
    let mut alice = Client::connect(server.addr, "alice").await;
    alice
        .ok(json!({"op": "set", "key": "k", "value": "v"}))
        .await;
    let mut bob = Client::connect(server.addr, "bob").await;
    bob.ok(json!({"op": "to_user", "user": "alice", "text": "hi"}))
        .await;
    assert_eq!(alice.message().await["text"], "hi");
    let tag = &alice.id[..4];
    let key = format!("chat:session:{{{tag}}}:{}", alice.id);
    let master = topology.master_of(&key);
    let stored = tokio::task::block_in_place(|| {
        support::redis_server::query(master, &format!("HGET {key} data:k"))
    })
    .unwrap();
    assert!(stored.contains("\"v\""), "{key} on {master}: {stored}");
}

/// The chat example, given `REDIS_SENTINEL`, keeps its sessions in the master the sentinels
/// name, and goes on through a failover without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chat_example_follows_the_sentinels_through_a_failover() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(mut topology) = SentinelTopology::start() else {
        return;
    };
    let sentinels = topology.sentinel_addresses().join(",");
    let env = [
        ("REDIS_SENTINEL", sentinels.as_str()),
        ("REDIS_SENTINEL_MASTER", support::sentinel::MASTER_NAME),
    ];
    let server = support::process::ChatProcess::start(&env);
    let mut client = Client::connect(server.addr, "alice").await;
    client
        .ok(json!({"op": "set", "key": "k", "value": "v"}))
        .await;
    let old = topology.master_port();
    let key = format!("chat:session:{}", client.id);
    let stored = tokio::task::block_in_place(|| {
        support::redis_server::query(old, &format!("HEXISTS {key} data:k"))
    })
    .unwrap();
    assert!(stored.starts_with(":1"), "{key} is on the master: {stored}");
    let replicas: Vec<u16> = topology
        .servers
        .iter()
        .map(|server| server.port())
        .filter(|port| *port != old)
        .collect();
    let deadline = Instant::now() + Duration::from_secs(5);
    for port in replicas {
        while !tokio::task::block_in_place(|| {
            support::redis_server::query(port, &format!("HEXISTS {key} data:k"))
        })
        .is_ok_and(|reply| reply.starts_with(":1"))
        {
            assert!(
                Instant::now() < deadline,
                "the replica on {port} never got {key}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    topology.server(old).stop();
    let topology_ref = &topology;
    tokio::task::block_in_place(|| topology_ref.wait_for_new_master(old, PROMOTION));
    // The open connection reads its session from the new master, and new clients connect.
    let deadline = Instant::now() + RECOVERY;
    loop {
        let reply = client.ask(json!({"op": "get", "key": "k"})).await;
        if reply["value"] == "v" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no read after the failover: {reply}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut bob = Client::connect(server.addr, "bob").await;
    bob.ok(json!({"op": "set", "key": "k", "value": "w"})).await;

    // One Redis at a time.
    let (status, stderr) =
        support::process::run_to_exit(&[("REDIS_URL", "redis://127.0.0.1:1/"), env[0]]);
    assert!(!status.success(), "two Redis settings are refused");
    assert!(stderr.contains("at most one of REDIS_URL"), "{stderr}");
}

/// A master that cannot reach enough replicas (`min-replicas-to-write`) refuses writes with
/// `NOREPLICAS`: the store reports `Unavailable` (not a backend error), creates nothing, and
/// writes again as soon as the master takes writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_master_short_of_replicas_makes_writes_unavailable_until_it_is_not() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(topology) = SentinelTopology::start() else {
        return;
    };
    let store = sentinel_store(&topology, &unique_prefix()).await;
    store.create_session("s", "alice").await.unwrap();
    let master = topology.master_port();
    let config = |value: &str| {
        let reply = support::redis_server::query(
            master,
            &format!("CONFIG SET min-replicas-to-write {value}"),
        )
        .unwrap();
        assert!(reply.starts_with("+OK"), "{reply}");
    };
    // Three replicas needed, two there.
    tokio::task::block_in_place(|| config("3"));
    let started = Instant::now();
    let error = store
        .set_session_data("s", "k", json!(1))
        .await
        .unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
    assert!(
        error.chain().to_string().contains("NOREPLICAS"),
        "{}",
        error.chain()
    );
    assert!(started.elapsed() <= TIMEOUT + SLACK);
    let error = store.create_session("t", "alice").await.unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");

    tokio::task::block_in_place(|| config("0"));
    store.set_session_data("s", "k", json!(2)).await.unwrap();
    assert_eq!(
        store.get_session_data("s", "k").await.unwrap(),
        Some(json!(2))
    );
    assert!(
        store.get_session("t").await.unwrap().is_none(),
        "the refused create made nothing"
    );
}

/// With no sentinel reachable, connecting fails with `Unavailable` within the default
/// timeout rather than hanging.
#[tokio::test]
async fn no_sentinel_reachable_is_unavailable_in_time() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = free.local_addr().unwrap().to_string();
    drop(free);
    let started = Instant::now();
    let error = RedisStore::connect_sentinel(&[address], "mymaster", "app", HOUR)
        .await
        .unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2) + SLACK,
        "{:?}",
        started.elapsed()
    );
    let error = RedisStore::connect_sentinel::<&str>(&[], "mymaster", "app", HOUR)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Backend(_)), "{error:?}");
}

/// A sentinel that missed a failover (it was down, and comes back with its old configuration)
/// names the old master, which, restarted empty, calls itself master until the sentinels
/// demote it. A store connecting then, with
/// that sentinel first in its list, follows the master most sentinels name.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sentinel_that_missed_a_failover_is_outvoted() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let Some(mut topology) = SentinelTopology::start() else {
        return;
    };
    topology.sentinels[0].stop();
    let old = topology.master_port();
    topology.server(old).stop();
    let new = {
        let topology = &topology;
        tokio::task::block_in_place(|| topology.wait_for_new_master(old, PROMOTION))
    };
    topology.server(old).restart();
    topology.sentinels[0].restart();
    let stale_port = topology.sentinels[0].port();
    let named = tokio::task::block_in_place(|| {
        support::redis_server::query(
            stale_port,
            &format!(
                "SENTINEL get-master-addr-by-name {}",
                support::sentinel::MASTER_NAME
            ),
        )
        .unwrap()
    });
    assert!(
        named.contains(&old.to_string()),
        "the restarted sentinel names the old master {old} (new {new}): {named:?}"
    );

    let store = sentinel_store(&topology, &unique_prefix()).await;
    store.create_session("s", "alice").await.unwrap();
    let key = format!("{}:session:s", store.prefix());
    let on = |port: u16| {
        tokio::task::block_in_place(|| {
            support::redis_server::query(port, &format!("EXISTS {key}")).unwrap()
        })
    };
    assert!(
        on(new).starts_with(":1"),
        "the session is on the new master"
    );
    assert!(
        on(old).starts_with(":0"),
        "the session is not on the old master"
    );
}
