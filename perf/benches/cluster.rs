//! Redis Cluster beside one Redis server, on this machine, in one run:
//!
//! 1. store operations at 32 tasks, each task on a session of its own: `set_session_data`,
//!    `get_session`, and a create followed by a remove, per second;
//! 2. fan-out: a room of members spread over two instances of the chat example's router, one
//!    publisher; messages delivered per second;
//! 3. resume: a client drops, ten messages are sent to its user, it comes back with its token;
//!    resumes per second, one after the other, each with its ten missed messages read.
//!
//! ```text
//! cargo bench -p ws-session-perf --bench cluster
//! ```
//!
//! One private `redis-server`, and one private cluster of three masters with a replica each
//! (`redis-cli --cluster create`), both running the whole time; the rounds of the two rotate.
//! The report gives each median (and range) and the ratio cluster / one server of the
//! medians. `CLUSTER_ROUNDS` sets the rounds of each (default 3), `CLUSTER_SECS` the seconds
//! of each store round (default 3), `CLUSTER_MEMBERS` the room's members (default 200).

#[path = "shared/rate.rs"]
mod rate;

use std::time::{Duration, Instant};

use rate::{Op, TASKS, median, per_second};
use serde_json::json;
use ws_session::RedisStore;
use ws_session_testkit::app;
use ws_session_testkit::chat_client::{Client, Instance, serve};
use ws_session_testkit::cluster::ClusterTopology;
use ws_session_testkit::redis_server::{RedisServer, unique_prefix};

const HOUR: Duration = Duration::from_secs(3600);
/// Messages a resumed client missed.
const MISSED: usize = 10;
/// Resumes in one round.
const RESUMES: usize = 50;
/// Messages the publisher sends in one fan-out round.
const MESSAGES: usize = 50;

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(default)
}

/// Where a round's stores live.
#[derive(Clone, Copy)]
enum Kind {
    Server,
    Cluster,
}

struct Redis {
    server: RedisServer,
    cluster: ClusterTopology,
}

impl Redis {
    async fn store(&self, kind: Kind, prefix: &str) -> RedisStore {
        let store = match kind {
            Kind::Server => RedisStore::connect(&self.server.url(), prefix, HOUR)
                .await
                .expect("connect"),
            Kind::Cluster => self.cluster.store_with_prefix(prefix, HOUR).await,
        };
        store.limits(app::limits())
    }
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let rounds = env_number("CLUSTER_ROUNDS", 3) as usize;
    let secs = Duration::from_secs(env_number("CLUSTER_SECS", 3));
    let members = env_number("CLUSTER_MEMBERS", 200) as usize;
    let (Some(server), Some(cluster)) = (RedisServer::start(), ClusterTopology::start()) else {
        eprintln!("no redis-server here: nothing measured");
        return;
    };
    let redis = &Redis { server, cluster };

    let ops: [(&str, Op); 3] = [
        ("set_session_data", Op::Write),
        ("get_session", Op::Read),
        ("create_session + remove_session", Op::CreateRemove),
    ];
    println!("| measure | one server | cluster | cluster / one server |");
    println!("|---|---|---|---|");
    for (name, op) in ops {
        let [server, cluster] = rotate(rounds, |kind| async move {
            let store = redis.store(kind, &unique_prefix()).await;
            per_second(&store, op, secs).await
        })
        .await;
        row(
            &format!("{name} per second at {TASKS} tasks"),
            &server,
            &cluster,
        );
    }
    let [server, cluster] = rotate(
        rounds,
        |kind| async move { fan_out(redis, kind, members).await },
    )
    .await;
    row(
        &format!("fan-out: messages delivered per second, {members} members on two instances"),
        &server,
        &cluster,
    );
    let [server, cluster] = rotate(rounds, |kind| async move { resumes(redis, kind).await }).await;
    row(
        &format!("resumes per second, {MISSED} missed messages each"),
        &server,
        &cluster,
    );
}

/// `measure` of one server and of the cluster, `rounds` times each, alternating which goes
/// first.
async fn rotate<F, Fut>(rounds: usize, mut measure: F) -> [Vec<f64>; 2]
where
    F: FnMut(Kind) -> Fut,
    Fut: std::future::Future<Output = f64>,
{
    let mut rates = [Vec::new(), Vec::new()];
    for round in 0..rounds {
        let order = if round % 2 == 0 {
            [Kind::Server, Kind::Cluster]
        } else {
            [Kind::Cluster, Kind::Server]
        };
        for kind in order {
            let rate = measure(kind).await;
            rates[kind as usize].push(rate);
        }
    }
    rates
}

fn row(name: &str, server: &[f64], cluster: &[f64]) {
    println!(
        "| {name} | {} | {} | {:.2}x |",
        spread(server),
        spread(cluster),
        median(cluster) / median(server)
    );
}

/// Two instances of the chat example's router on stores of `kind`.
async fn instances(redis: &Redis, kind: Kind, window: Option<Duration>) -> [Instance; 2] {
    let prefix = unique_prefix();
    let mut instances = Vec::new();
    for _ in 0..2 {
        let store = redis.store(kind, &prefix).await;
        let layer = match window {
            Some(window) => app::resumable_layer(store, window),
            None => app::session_layer(store),
        };
        let router = app::router_with(layer.clone(), app::Settings::unlimited());
        instances.push(serve(layer, router).await);
    }
    let [a, b] = <[Instance; 2]>::try_from(instances).ok().expect("two");
    [a, b]
}

/// Messages delivered per second to `members` members of one room, half on each instance.
async fn fan_out(redis: &Redis, kind: Kind, members: usize) -> f64 {
    let [a, b] = instances(redis, kind, None).await;
    let mut readers = Vec::new();
    for i in 0..members {
        let addr = if i % 2 == 0 { a.addr } else { b.addr };
        let mut client = Client::connect(addr, &format!("m{i}")).await;
        client.ok(json!({"op": "join", "room": "r"})).await;
        readers.push(client);
    }
    let mut publisher = Client::connect(a.addr, "publisher").await;
    let start = Instant::now();
    let reading: Vec<_> = readers
        .into_iter()
        .map(|mut reader| {
            tokio::spawn(async move {
                for _ in 0..MESSAGES {
                    reader.message().await;
                }
                Instant::now()
            })
        })
        .collect();
    for n in 0..MESSAGES {
        publisher
            .ok(json!({"op": "to_room", "room": "r", "text": format!("m{n}")}))
            .await;
    }
    let mut last = start;
    for reader in reading {
        last = last.max(reader.await.expect("reader"));
    }
    (members * MESSAGES) as f64 / (last - start).as_secs_f64()
}

/// Resumes per second, one after the other: each client dropped, sent `MISSED` messages, and
/// resumed on the other instance, its missed messages read.
async fn resumes(redis: &Redis, kind: Kind) -> f64 {
    let [a, b] = instances(redis, kind, Some(Duration::from_secs(60))).await;
    let mut sender = Client::connect(a.addr, "sender").await;
    let mut tokens = Vec::new();
    for i in 0..RESUMES {
        let user = format!("r{i}");
        let client = Client::connect(a.addr, &user).await;
        tokens.push((user, client.token()));
        client.close().await;
    }
    for (user, _) in &tokens {
        for n in 0..MISSED {
            sender
                .ok(json!({"op": "to_user", "user": user, "text": format!("missed {n}")}))
                .await;
        }
    }
    let start = Instant::now();
    for (user, token) in &tokens {
        let mut client = Client::resume(b.addr, user, token, None).await;
        assert!(client.recovered(), "{user} resumed");
        for _ in 0..MISSED {
            client.message().await;
        }
    }
    RESUMES as f64 / start.elapsed().as_secs_f64()
}

/// The median and range of `values`.
fn spread(values: &[f64]) -> String {
    let min = values.iter().copied().fold(f64::INFINITY, f64::min);
    let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    format!("{:.0} ({min:.0}–{max:.0})", median(values))
}
