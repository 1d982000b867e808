//! A model-based test of the hub: random connects, joins, leaves, sends of every kind, closes
//! and kicks over three instances, checked against a model of who must receive what. Runs on
//! both stores; on Redis it then checks that every key under the prefix has a TTL and that no
//! key names a session that is gone. With a resume window, a close detaches the session, and
//! resumes on any instance must give it back with exactly the messages it missed.

mod support;

use ws_session_testkit::app;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use redis::AsyncCommands;
use serde_json::json;
use support::chat::{Client, Instance, serve, texts};
use support::redis_server::{shared_url, unique_prefix};
use ws_session::resume::Resume;
use ws_session::{AnyStore, MemoryStore, RedisStore, SessionLayer};

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

/// A session whose connection closed within a resume window.
struct Away {
    user: String,
    id: String,
    token: String,
    offset: Option<String>,
    rooms: BTreeSet<&'static str>,
    /// The texts sent to it since, in order.
    missed: Vec<String>,
}

/// The model: the open connections, by a key of the test's own, and the detached sessions.
#[derive(Default)]
struct World {
    conns: BTreeMap<usize, Conn>,
    next: usize,
    /// Ids of sessions that were closed (without a resume window) or kicked.
    gone: BTreeSet<String>,
    /// Sessions that wait for a resume.
    away: Vec<Away>,
    sent: usize,
    /// Resumes, and the missed messages they replayed.
    resumed: usize,
    replayed: usize,
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

    /// Records that every connection for which `target` (user, session id, rooms) holds
    /// receives `text`, and that every detached session for which it holds missed it.
    fn deliver(&mut self, text: &str, target: impl Fn(&str, &str, &BTreeSet<&str>) -> bool) {
        for conn in self.conns.values_mut() {
            if target(&conn.client.user, &conn.client.id, &conn.rooms) {
                conn.expected.push(text.to_owned());
            }
        }
        for away in &mut self.away {
            if target(&away.user, &away.id, &away.rooms) {
                away.missed.push(text.to_owned());
            }
        }
    }
}

async fn run(instances: &[Instance], seed: u64, resumable: bool) -> BTreeSet<String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut world = World::default();
    for step in 0..STEPS {
        if resumable && !world.away.is_empty() && rng.random_range(0..100) < 12 {
            // A detached session comes back, on any instance, with what it missed first.
            world.settle(seed, step).await;
            let away = world.away.remove(rng.random_range(0..world.away.len()));
            let instance = rng.random_range(0..INSTANCES);
            let mut client = Client::resume(
                instances[instance].addr,
                &away.user,
                &away.token,
                away.offset.as_deref(),
            )
            .await;
            assert!(
                client.recovered(),
                "seed {seed} step {step}: {}",
                client.welcome
            );
            assert_eq!(client.id, away.id);
            assert_eq!(
                client.welcome["missed"],
                away.missed.len(),
                "seed {seed} step {step}"
            );
            assert_eq!(client.welcome["complete"], true);
            let mut missed = Vec::new();
            for _ in 0..away.missed.len() {
                missed.push(client.message().await);
            }
            assert_eq!(
                texts(&missed),
                away.missed,
                "seed {seed} step {step}: {}",
                away.id
            );
            world.resumed += 1;
            world.replayed += missed.len();
            world.conns.insert(
                world.next,
                Conn {
                    client,
                    instance,
                    rooms: away.rooms,
                    expected: Vec::new(),
                },
            );
            world.next += 1;
            continue;
        }
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
                world.deliver(&text, |_, _, rooms| rooms.contains(room));
            }
            63..=72 => {
                let text = world.text();
                let conn = world.conns.get_mut(&key).unwrap();
                conn.client
                    .ok(json!({"op": "to_user", "user": user, "text": text}))
                    .await;
                world.deliver(&text, |to, _, _| to == user);
            }
            73..=80 => {
                let target = world.pick(&mut rng).unwrap();
                let target_id = world.conns[&target].client.id.clone();
                let text = world.text();
                let conn = world.conns.get_mut(&key).unwrap();
                conn.client
                    .ok(json!({"op": "to_session", "session": target_id, "text": text}))
                    .await;
                world.deliver(&text, |_, id, _| id == target_id);
            }
            81..=86 => {
                let text = world.text();
                let conn = world.conns.get_mut(&key).unwrap();
                conn.client.send(json!({"op": "say", "text": text})).await;
                world.deliver(&text, |_, _, _| true);
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
                // The connection goes away: its session is removed, or detached and kept.
                world.settle(seed, step).await;
                let conn = world.conns.remove(&key).unwrap();
                if resumable {
                    world.away.push(Away {
                        user: conn.client.user.clone(),
                        id: conn.client.id.clone(),
                        token: conn.client.token(),
                        offset: conn.client.last_offset.clone(),
                        rooms: conn.rooms,
                        missed: Vec::new(),
                    });
                    // Sends that follow must find it detached, not still attached here.
                    conn.client.close().await;
                    let open = world
                        .conns
                        .values()
                        .filter(|other| other.instance == conn.instance)
                        .count();
                    instances[conn.instance].settle(open).await;
                } else {
                    world.gone.insert(conn.client.id.clone());
                }
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
                // Its detached sessions are removed too.
                for away in std::mem::take(&mut world.away) {
                    if away.user == victim {
                        world.gone.insert(away.id);
                    } else {
                        world.away.push(away);
                    }
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
                world.deliver(&text, |_, _, rooms| rooms.contains(room));
            }
        }
    }

    if resumable {
        assert!(
            world.resumed > 0 && world.replayed > 0,
            "seed {seed}: {} resumes replayed {} messages",
            world.resumed,
            world.replayed
        );
        eprintln!(
            "seed {seed}: {} resumes replayed {} messages",
            world.resumed, world.replayed
        );
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
        // Detached sessions stay in their rooms.
        let expected: BTreeSet<String> = world
            .conns
            .values()
            .filter(|conn| conn.rooms.contains(room))
            .map(|conn| conn.client.id.clone())
            .chain(
                world
                    .away
                    .iter()
                    .filter(|away| away.rooms.contains(room))
                    .map(|away| away.id.clone()),
            )
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

/// Three instances on `store`, resumable or not.
async fn instances(store: impl Into<AnyStore>, resumable: bool) -> Vec<Instance> {
    let store: AnyStore = store.into();
    let mut instances = Vec::new();
    for _ in 0..INSTANCES {
        let layer = layer(store.clone(), resumable);
        instances.push(serve(layer.clone(), app::router(layer)).await);
    }
    instances
}

fn layer(store: AnyStore, resumable: bool) -> SessionLayer {
    let layer = app::session_layer(store);
    if resumable {
        layer.resume(Resume::within(HOUR))
    } else {
        layer
    }
}

async fn on_memory(resumable: bool) {
    for seed in SEEDS {
        let store = MemoryStore::with_ttl(HOUR).limits(app::limits());
        run(&instances(store, resumable).await, seed, resumable).await;
    }
}

async fn on_redis(resumable: bool) {
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
            let layer = layer(store.into(), resumable);
            instances.push(serve(layer.clone(), app::router(layer)).await);
        }
        let gone = run(&instances, seed, resumable).await;
        check_keys(&stores[0], &gone, seed).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_workloads_on_memory_match_the_model() {
    on_memory(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_workloads_on_redis_match_the_model_and_leave_only_live_keys() {
    on_redis(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_workloads_with_resumes_on_memory_match_the_model() {
    on_memory(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_workloads_with_resumes_on_redis_match_the_model_and_leave_only_live_keys() {
    on_redis(true).await;
}

/// Every key under the prefix has a TTL, and none names a session in `gone`.
async fn check_keys(store: &RedisStore, gone: &BTreeSet<String>, seed: u64) {
    let mut conn = store.dedicated_connection().await.unwrap();
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
