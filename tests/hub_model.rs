//! A model-based test of the hub: random connects, joins, leaves, sends of every kind, closes
//! and kicks over three instances, checked against a model of who must receive what. Runs on
//! both stores; on Redis it then checks that every key under the prefix has a TTL and that no
//! key names a session that is gone.

mod support;

#[path = "../examples/chat/app.rs"]
#[allow(dead_code)]
mod app;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::AsyncCommands;
use serde_json::json;
use support::chat::{Client, Instance, serve, texts};
use support::redis_server::{shared_url, unique_prefix};
use ws_session::{MemoryStore, RedisStore};

const HOUR: Duration = Duration::from_secs(3600);
const INSTANCES: usize = 3;
const USERS: [&str; 4] = ["ann", "bob", "cat", "dan"];
const ROOMS: [&str; 3] = ["red", "green", "blue"];
const STEPS: usize = 150;
const SEEDS: [u64; 4] = [1, 2, 3, 4];

/// One open connection as the model sees it.
struct Conn {
    client: Client,
    instance: usize,
    rooms: BTreeSet<&'static str>,
    /// The texts it must receive and has not read yet, in order.
    expected: Vec<String>,
}

/// The model: the open connections, by a key of the test's own.
#[derive(Default)]
struct World {
    conns: BTreeMap<usize, Conn>,
    next: usize,
    /// Ids of sessions that were closed or kicked.
    gone: BTreeSet<String>,
    sent: usize,
}

impl World {
    fn pick(&self, rng: &mut StdRng) -> Option<usize> {
        if self.conns.is_empty() {
            return None;
        }
        let keys: Vec<usize> = self.conns.keys().copied().collect();
        Some(keys[rng.random_range(0..keys.len())])
    }

    fn text(&mut self) -> String {
        self.sent += 1;
        format!("t{}", self.sent)
    }

    /// Reads what every connection is due, checking it against the model. Done before every
    /// change of who is where: a message sent earlier may still be on its way to a node (Redis
    /// pub/sub delivers after `PUBLISH` returns), and a connection that opens or joins there
    /// before it arrives would receive it. Once every target has it, every node that holds one
    /// has handed it out.
    async fn settle(&mut self, seed: u64, step: usize) {
        for (key, conn) in &mut self.conns {
            for text in std::mem::take(&mut conn.expected) {
                let got = conn.client.message().await;
                assert_eq!(
                    got["text"], text,
                    "seed {seed} step {step}: connection {key} ({}) got {got}",
                    conn.client.id
                );
            }
        }
    }

    /// Records that every connection for which `target` holds receives `text`.
    fn deliver(&mut self, text: &str, target: impl Fn(&Conn) -> bool) {
        for conn in self.conns.values_mut() {
            if target(conn) {
                conn.expected.push(text.to_owned());
            }
        }
    }
}

async fn run(instances: &[Instance], seed: u64) -> BTreeSet<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut world = World::default();
    for step in 0..STEPS {
        let roll = rng.random_range(0..100);
        let Some(key) = world.pick(&mut rng).filter(|_| roll >= 8) else {
            // Connect (also whenever nobody is connected).
            world.settle(seed, step).await;
            let instance = rng.random_range(0..INSTANCES);
            let user = USERS[rng.random_range(0..USERS.len())];
            let client = Client::connect(instances[instance].addr, user).await;
            world.conns.insert(
                world.next,
                Conn {
                    client,
                    instance,
                    rooms: BTreeSet::new(),
                    expected: Vec::new(),
                },
            );
            world.next += 1;
            continue;
        };
        let room = ROOMS[rng.random_range(0..ROOMS.len())];
        let user = USERS[rng.random_range(0..USERS.len())];
        match roll {
            8..=31 => {
                world.settle(seed, step).await;
                let conn = world.conns.get_mut(&key).unwrap();
                conn.client.ok(json!({"op": "join", "room": room})).await;
                conn.rooms.insert(room);
            }
            32..=43 => {
                world.settle(seed, step).await;
                let conn = world.conns.get_mut(&key).unwrap();
                conn.client.ok(json!({"op": "leave", "room": room})).await;
                conn.rooms.remove(room);
            }
            44..=62 => {
                let text = world.text();
                let conn = world.conns.get_mut(&key).unwrap();
                conn.client
                    .ok(json!({"op": "to_room", "room": room, "text": text}))
                    .await;
                world.deliver(&text, |conn| conn.rooms.contains(room));
            }
            63..=72 => {
                let text = world.text();
                let conn = world.conns.get_mut(&key).unwrap();
                conn.client
                    .ok(json!({"op": "to_user", "user": user, "text": text}))
                    .await;
                world.deliver(&text, |conn| conn.client.user == user);
            }
            73..=80 => {
                let target = world.pick(&mut rng).unwrap();
                let target_id = world.conns[&target].client.id.clone();
                let text = world.text();
                let conn = world.conns.get_mut(&key).unwrap();
                conn.client
                    .ok(json!({"op": "to_session", "session": target_id, "text": text}))
                    .await;
                world.deliver(&text, |conn| conn.client.id == target_id);
            }
            81..=86 => {
                let text = world.text();
                let conn = world.conns.get_mut(&key).unwrap();
                conn.client.send(json!({"op": "say", "text": text})).await;
                world.deliver(&text, |_| true);
                // `say` has no reply: the sender hearing it shows that it went out. Whatever
                // the sender was due before it comes first.
                let conn = world.conns.get_mut(&key).unwrap();
                let before = conn.client.messages_until(&text).await;
                let due = std::mem::take(&mut conn.expected);
                assert_eq!(
                    texts(&before),
                    due[..due.len() - 1],
                    "seed {seed} step {step}: the sender of {text}"
                );
            }
            87..=93 => {
                // The connection goes away.
                let conn = world.conns.remove(&key).unwrap();
                world.gone.insert(conn.client.id.clone());
                drop(conn);
            }
            94..=96 => {
                // Kick a user that has connections.
                let conn = world.conns.get_mut(&key).unwrap();
                let victim = conn.client.user.clone();
                let kicker = world.pick(&mut rng).unwrap();
                world
                    .conns
                    .get_mut(&kicker)
                    .unwrap()
                    .client
                    .ok(json!({"op": "kick", "user": victim}))
                    .await;
                let kicked: Vec<usize> = world
                    .conns
                    .iter()
                    .filter(|(_, conn)| conn.client.user == victim)
                    .map(|(key, _)| *key)
                    .collect();
                for key in kicked {
                    let mut conn = world.conns.remove(&key).unwrap();
                    // What it received before the kick is not checked: the close may jump it.
                    assert_eq!(
                        conn.client.close_code().await,
                        Some(4000),
                        "seed {seed} step {step}: kicked {}",
                        conn.client.id
                    );
                    world.gone.insert(conn.client.id.clone());
                }
            }
            _ => {
                // Everyone in a room says something to it.
                let text = world.text();
                let conn = world.conns.get_mut(&key).unwrap();
                let Some(room) = conn.rooms.first().copied() else {
                    continue;
                };
                conn.client
                    .ok(json!({"op": "to_room", "room": room, "text": text}))
                    .await;
                world.deliver(&text, |conn| conn.rooms.contains(room));
            }
        }
    }

    // Everyone reads up to a last message for all.
    if let Some(key) = world.pick(&mut rng) {
        let conn = world.conns.get_mut(&key).unwrap();
        conn.client.send(json!({"op": "say", "text": "end"})).await;
    }
    for (key, conn) in &mut world.conns {
        let got = conn.client.messages_until("end").await;
        assert_eq!(
            texts(&got),
            conn.expected,
            "seed {seed}: connection {key} ({} of {} on instance {})",
            conn.client.id,
            conn.client.user,
            conn.instance
        );
    }
    // Members across instances, from the store.
    for room in ROOMS {
        let expected: BTreeSet<String> = world
            .conns
            .values()
            .filter(|conn| conn.rooms.contains(room))
            .map(|conn| conn.client.id.clone())
            .collect();
        let mut listed = BTreeSet::new();
        for _ in 0..300 {
            listed = instances[0]
                .hub
                .members(room)
                .await
                .unwrap()
                .into_iter()
                .map(|member| member.session_id)
                .collect();
            if listed == expected {
                break;
            }
            // Closed connections leave their rooms when their server notices.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(listed, expected, "seed {seed}: members of {room}");
    }
    world.gone
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_workloads_on_memory_match_the_model() {
    for seed in SEEDS {
        let store = MemoryStore::with_ttl(HOUR).limits(app::limits());
        let mut instances = Vec::new();
        for _ in 0..INSTANCES {
            let layer = app::session_layer(store.clone());
            instances.push(serve(layer.clone(), app::router(layer)).await);
        }
        run(&instances, seed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_workloads_on_redis_match_the_model_and_leave_only_live_keys() {
    let Some(url) = shared_url() else {
        return;
    };
    for seed in SEEDS {
        let prefix = unique_prefix();
        let mut instances = Vec::new();
        let mut stores = Vec::new();
        for _ in 0..INSTANCES {
            let store = RedisStore::connect(&url, prefix.as_str(), HOUR)
                .await
                .unwrap()
                .limits(app::limits());
            stores.push(store.clone());
            let layer = app::session_layer(store);
            instances.push(serve(layer.clone(), app::router(layer)).await);
        }
        let gone = run(&instances, seed).await;
        check_keys(&stores[0], &gone, seed).await;
    }
}

/// Every key under the prefix has a TTL, and none names a session in `gone`.
async fn check_keys(store: &RedisStore, gone: &BTreeSet<String>, seed: u64) {
    let mut conn = store.pool().dedicated_connection().await.unwrap();
    for attempt in 0.. {
        let keys = support::redis_server::keys_under(&mut conn, store).await;
        let mut stale = Vec::new();
        for key in &keys {
            let ttl: i64 = redis::cmd("PTTL")
                .arg(key)
                .query_async(&mut conn)
                .await
                .unwrap();
            if ttl == -2 {
                // Removed since the scan listed it (a closed connection's session, say).
                continue;
            }
            assert!(ttl > 0, "seed {seed}: {key} has PTTL {ttl}");
            if gone.iter().any(|id| key.ends_with(id.as_str())) {
                stale.push(key.clone());
            }
            if key.contains(":room_members:") || key.contains(":user_sessions:") {
                let ids: Vec<String> = conn.smembers(key).await.unwrap();
                stale.extend(
                    ids.into_iter()
                        .filter(|id| gone.contains(id))
                        .map(|id| format!("{key} holds {id}")),
                );
            }
        }
        if stale.is_empty() {
            return;
        }
        // Removals of closed connections run in the background; give them a moment.
        assert!(
            attempt < 300,
            "seed {seed}: keys name gone sessions: {stale:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
