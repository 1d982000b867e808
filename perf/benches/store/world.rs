//! What the benchmarks run against: both stores, their raw baselines, the tower-sessions peer,
//! and the sessions each measured call needs.

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use redis::aio::MultiplexedConnection;
use serde_json::{Map, Value, json};
use tower_sessions::Expiry;
use tower_sessions::cookie::time;
use tower_sessions_redis_store::fred::prelude::{ClientLike, Config, Pool as FredPool};
use ws_session::{AnyStore, MemoryStore, RedisPool, RedisStore, SessionData, SessionStore};

type TowerStore = tower_sessions_redis_store::RedisStore<FredPool>;

/// The TTL of every store and of every key written beside them.
pub const TTL: Duration = Duration::from_secs(3600);
/// The data key that the single-key operations read, write and delete.
pub const KEY: &str = "preferences";
/// The sessions of one user in the `get_user_sessions` benchmark.
pub const USER_SESSIONS: usize = 4;
/// At most this many calls share one round of prepared sessions, which bounds the memory a
/// sample needs when every call uses up a session of its own.
const ROUND: usize = 8192;

/// The operations of the store contract, in the order of the trait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    CreateSession,
    GetSession,
    SetSessionData,
    GetSessionData,
    UpdateSessionData,
    DeleteSessionData,
    ClearSessionData,
    RemoveSession,
    GetUserSessions,
    Touch,
}

/// What a call needs to find in the store before it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Need {
    /// One session per task, used by every call of the task (reads and overwrites).
    Shared,
    /// An id that is not taken yet, one per call.
    Unused,
    /// A session holding data, one per call, that the call deletes data from or removes.
    Own,
}

impl Op {
    pub const ALL: [Op; 10] = [
        Op::CreateSession,
        Op::GetSession,
        Op::SetSessionData,
        Op::GetSessionData,
        Op::UpdateSessionData,
        Op::DeleteSessionData,
        Op::ClearSessionData,
        Op::RemoveSession,
        Op::GetUserSessions,
        Op::Touch,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Op::CreateSession => "create_session",
            Op::GetSession => "get_session",
            Op::SetSessionData => "set_session_data",
            Op::GetSessionData => "get_session_data",
            Op::UpdateSessionData => "update_session_data",
            Op::DeleteSessionData => "delete_session_data",
            Op::ClearSessionData => "clear_session_data",
            Op::RemoveSession => "remove_session",
            Op::GetUserSessions => "get_user_sessions",
            Op::Touch => "touch",
        }
    }

    /// The same work on a plain `DashMap`.
    pub fn map_baseline(self) -> &'static str {
        match self {
            Op::CreateSession => "map entry + user set insert",
            Op::GetSession => "map get + clone",
            Op::SetSessionData => "map get_mut + insert",
            Op::GetSessionData => "map get + clone value",
            Op::UpdateSessionData => "map get_mut + 3 inserts",
            Op::DeleteSessionData => "map get_mut + remove",
            Op::ClearSessionData => "map get_mut + clear",
            Op::RemoveSession => "map remove + user set remove",
            Op::GetUserSessions => "user set + 4 session clones",
            Op::Touch => "map get_mut + timestamp",
        }
    }

    /// The same work as plain Redis commands.
    pub fn redis_baseline(self) -> &'static str {
        match self {
            Op::CreateSession => "HSET+SADD+2 PEXPIRE pipelined",
            Op::GetSession => "HGETALL",
            Op::SetSessionData => "HSET",
            Op::GetSessionData => "HGET",
            Op::UpdateSessionData => "HSET of 3 fields",
            Op::DeleteSessionData => "HDEL",
            Op::ClearSessionData => "HDEL of 4 fields",
            Op::RemoveSession => "DEL+SREM pipelined",
            Op::GetUserSessions => "SMEMBERS, then 4 HGETALL pipelined",
            Op::Touch => "HSET+PEXPIRE pipelined",
        }
    }

    fn need(self) -> Need {
        match self {
            Op::CreateSession => Need::Unused,
            Op::DeleteSessionData | Op::ClearSessionData | Op::RemoveSession => Need::Own,
            _ => Need::Shared,
        }
    }
}

/// Who does the work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `MemoryStore`.
    Memory,
    /// The same `MemoryStore` behind an `AnyStore`: the run-time choice of store.
    AnyMemory,
    /// The same `RedisStore` as [`Backend::Redis`] behind an `AnyStore`.
    AnyRedis,
    /// A plain `DashMap`, the memory baseline.
    Map,
    /// `RedisStore` on the pool `RedisStore::connect` builds.
    Redis,
    /// Plain commands through that same pool, used the way the store uses it: a connection is
    /// checked out only to clone its multiplexed handle, so concurrent calls are pipelined.
    RawRedis,
    /// Plain commands through that pool, each holding its checked-out connection for the
    /// round trip (bb8's usual get-and-hold).
    RawRedisHeld,
    /// tower-sessions' `Session::insert` then `Session::save`, on tower-sessions-redis-store.
    TowerSessions,
    /// A lower bound of any script-based write: `EVALSHA` of a script that does nothing, sent
    /// with the key and arguments of the store's write, through the store's pool.
    EmptyScript,
    /// The least a correct one-value write does in one script: refuse a missing session, write
    /// the value and the last-active time, refresh the session's TTL. No key limit, no user
    /// set: strictly less than the store's write.
    MinimalWrite,
}

/// The script of [`Backend::EmptyScript`].
const EMPTY_SCRIPT: &str = "return 1";

/// The script of [`Backend::MinimalWrite`], for the TTL of every store in the benchmarks.
fn minimal_write_script() -> String {
    format!(
        "if not redis.call('HGET', KEYS[1], 'meta:user_id') then return -1 end\n\
         redis.call('HSET', KEYS[1], 'meta:last_active', ARGV[1], ARGV[2], ARGV[3])\n\
         redis.call('PEXPIRE', KEYS[1], '{}')\n\
         return 1",
        ttl_ms()
    )
}

/// The values the operations write.
pub struct Values {
    /// What `set_session_data` writes.
    pub small: Value,
    /// What every prepared session holds.
    pub data: SessionData,
    /// What `update_session_data` merges.
    pub update: SessionData,
}

impl Values {
    fn new() -> Self {
        let small = json!({ "theme": "dark", "font_size": 14, "notifications": true });
        let data = object(json!({
            KEY: small.clone(),
            "counter": 42,
            "name": "alice",
            "tags": ["a", "b", "c"],
        }));
        let update =
            object(json!({ "counter": 43, "name": "bob", "last_seen": 1_700_000_000_000u64 }));
        Values {
            small,
            data,
            update,
        }
    }
}

fn object(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        _ => unreachable!("an object literal"),
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn ttl_ms() -> u64 {
    u64::try_from(TTL.as_millis()).unwrap_or(u64::MAX)
}

/// Everything the benchmarks share.
pub struct World {
    pub memory: MemoryStore,
    /// `memory`, behind an `AnyStore`.
    pub any_memory: AnyStore,
    pub map: RawMap,
    pub redis: Option<RedisWorld>,
    pub values: Values,
}

/// A private Redis server and everything that talks to it.
pub struct RedisWorld {
    pub url: String,
    pub port: u16,
    /// `RedisStore::connect`, and the prefix of the raw commands on its pool.
    pub main: RedisSide,
    /// Connections the store's pool holds, and so clients in the peer's fred pool.
    pub connections: u32,
    tower: Arc<TowerStore>,
    fred: FredPool,
    /// SHA1s of [`EMPTY_SCRIPT`] and [`minimal_write_script`], loaded at the start.
    empty_script: String,
    minimal_write: String,
}

/// A store, and the key prefix of the raw commands that run through its pool.
pub struct RedisSide {
    pub store: RedisStore,
    /// `store`, behind an `AnyStore`.
    pub any: AnyStore,
    raw_prefix: String,
}

impl RedisSide {
    pub fn pool(&self) -> &RedisPool {
        self.store.pool().expect("a pool on one server")
    }
}

impl World {
    /// The stores; the Redis ones only when `redis` (URL and port of a server) is given. Call
    /// inside the runtime.
    pub async fn new(redis: Option<(String, u16)>) -> World {
        let values = Values::new();
        let redis = match redis {
            Some((url, port)) => Some(RedisWorld::connect(url, port, &values).await),
            None => None,
        };
        let memory = MemoryStore::with_ttl(TTL).limits(limits());
        World {
            any_memory: memory.clone().into(),
            memory,
            map: RawMap::default(),
            redis,
            values,
        }
    }

    pub fn redis(&self) -> &RedisWorld {
        self.redis
            .as_ref()
            .expect("a Redis benchmark runs only with Redis")
    }

    /// Shuts down the connections that hold background tasks.
    pub async fn close(&self) {
        if let Some(redis) = &self.redis {
            let _ = redis.fred.quit().await;
        }
    }

    /// The Redis side, and the key prefix `backend` writes under.
    fn side(&self, backend: Backend) -> (&RedisSide, &str) {
        let side = &self.redis().main;
        match backend {
            Backend::Redis | Backend::AnyRedis => (side, side.store.prefix()),
            Backend::RawRedis
            | Backend::RawRedisHeld
            | Backend::EmptyScript
            | Backend::MinimalWrite => (side, &side.raw_prefix),
            _ => unreachable!("{backend:?} is not a Redis backend"),
        }
    }
}

impl RedisWorld {
    async fn connect(url: String, port: u16, values: &Values) -> RedisWorld {
        let store = RedisStore::connect(&url, "bench", TTL)
            .await
            .unwrap_or_else(|err| panic!("cannot connect to {url}: {err}"))
            .limits(limits());
        // The peer gets as many connections as the store's pool holds after its first PING.
        let connections = store
            .pool()
            .expect("a pool on one server")
            .state()
            .connections
            .max(1);
        let config = Config::from_url(&url).expect("a valid Redis URL for fred");
        let fred =
            FredPool::new(config, None, None, None, connections as usize).expect("a fred pool");
        // The connection tasks run until `quit`.
        let _connections = fred.init().await.expect("fred connects");
        let tower = Arc::new(tower_sessions_redis_store::RedisStore::new(fred.clone()));
        let mut conn = store.dedicated_connection().await.expect("a connection");
        let load = |script: String| {
            let mut cmd = redis::cmd("SCRIPT");
            cmd.arg("LOAD").arg(script);
            cmd
        };
        let empty_script: String = load(EMPTY_SCRIPT.to_owned())
            .query_async(&mut conn)
            .await
            .expect("loaded");
        let minimal_write: String = load(minimal_write_script())
            .query_async(&mut conn)
            .await
            .expect("loaded");
        drop(conn);

        let redis = RedisWorld {
            url,
            port,
            connections,
            main: RedisSide {
                any: store.clone().into(),
                store,
                raw_prefix: "raw".to_owned(),
            },
            tower,
            fred,
            empty_script,
            minimal_write,
        };
        redis.check_layout(values).await;
        redis
    }

    /// The benchmarks prepare sessions for the store by writing its documented layout with
    /// pipelined commands; make sure the store reads back exactly what it would have written.
    async fn check_layout(&self, values: &Values) {
        let side = &self.main;
        let sessions = [("layout-check".to_owned(), 0)];
        let users = ["layout-user".to_owned()];
        write_layout(side.pool(), side.store.prefix(), &sessions, &users, values).await;
        let session = side
            .store
            .get_session("layout-check")
            .await
            .expect("the store reads a prepared session")
            .expect("the prepared session is live");
        assert_eq!(session.user_id, "layout-user");
        assert_eq!(session.data, values.data);
        let listed = side
            .store
            .get_user_sessions("layout-user")
            .await
            .expect("listed");
        assert_eq!(listed.len(), 1);
        side.store
            .remove_session("layout-check")
            .await
            .expect("removed");
    }
}

/// The memory baseline: sessions and the user index in plain `DashMap`s.
#[derive(Default)]
pub struct RawMap {
    sessions: DashMap<String, RawSession>,
    users: DashMap<String, HashSet<String>>,
}

/// What a session holds; the baseline clones it whole, as the store returns it whole.
#[derive(Clone, Debug)]
struct RawSession {
    user_id: String,
    data: Map<String, Value>,
    #[allow(
        dead_code,
        reason = "held and cloned like the store's session, never read"
    )]
    created_at: u64,
    last_active: u64,
}

impl RawMap {
    fn insert(&self, id: &str, user_id: &str, data: Map<String, Value>) -> bool {
        let now = now_ms();
        match self.sessions.entry(id.to_owned()) {
            Entry::Occupied(_) => return false,
            Entry::Vacant(entry) => {
                entry.insert(RawSession {
                    user_id: user_id.to_owned(),
                    data,
                    created_at: now,
                    last_active: now,
                });
            }
        }
        self.users
            .entry(user_id.to_owned())
            .or_default()
            .insert(id.to_owned());
        true
    }

    fn remove(&self, id: &str) {
        if let Some((_, session)) = self.sessions.remove(id)
            && let Some(mut ids) = self.users.get_mut(&session.user_id)
        {
            ids.remove(id);
        }
    }

    fn exec(&self, values: &Values, op: Op, fx: &Fixture, t: usize, i: usize) {
        let id = fx.id(t, i);
        match op {
            Op::CreateSession => assert!(self.insert(id, &fx.users[t], Map::new())),
            Op::GetSession => {
                black_box(self.sessions.get(id).map(|s| s.clone()).expect("live"));
            }
            Op::SetSessionData => {
                let mut session = self.sessions.get_mut(id).expect("live");
                session.data.insert(KEY.to_owned(), values.small.clone());
            }
            Op::GetSessionData => {
                let session = self.sessions.get(id).expect("live");
                black_box(session.data.get(KEY).cloned().expect("set"));
            }
            Op::UpdateSessionData => {
                let update = values.update.clone();
                let mut session = self.sessions.get_mut(id).expect("live");
                for (key, value) in update {
                    session.data.insert(key, value);
                }
            }
            Op::DeleteSessionData => {
                let mut session = self.sessions.get_mut(id).expect("live");
                assert!(session.data.remove(KEY).is_some());
            }
            Op::ClearSessionData => self.sessions.get_mut(id).expect("live").data.clear(),
            Op::RemoveSession => self.remove(id),
            Op::GetUserSessions => {
                let ids = self.users.get(&fx.users[t]).expect("a user");
                let sessions: Vec<RawSession> = ids
                    .iter()
                    .filter_map(|id| self.sessions.get(id).map(|s| s.clone()))
                    .collect();
                assert_eq!(black_box(sessions).len(), USER_SESSIONS);
            }
            Op::Touch => {
                let now = now_ms();
                self.sessions.get_mut(id).expect("live").last_active = now;
            }
        }
    }
}

/// The sessions one round of calls works on, and the tower-sessions handles of the peer.
pub struct Fixture {
    need: Need,
    /// One id per task for [`Need::Shared`], else one per call, task by task.
    ids: Vec<String>,
    /// One user per task.
    users: Vec<String>,
    per_task: usize,
    tower: Vec<tower_sessions::Session>,
}

impl Fixture {
    fn id(&self, t: usize, i: usize) -> &str {
        match self.need {
            Need::Shared => &self.ids[t],
            Need::Unused | Need::Own => &self.ids[t * self.per_task + i],
        }
    }

    fn ids_of_task(&self, t: usize) -> &[String] {
        std::slice::from_ref(&self.ids[t])
    }
}

static FIXTURES: AtomicU64 = AtomicU64::new(0);

/// Prepares what `per_task` calls of `op` on each of `tasks` tasks need. Untimed.
///
/// For operations that reuse one session per task, `per_task` is ignored: each task gets a
/// user with [`USER_SESSIONS`] sessions holding [`Values::data`], and its calls use the first.
pub async fn prepare(
    world: &World,
    backend: Backend,
    op: Op,
    tasks: usize,
    per_task: usize,
) -> Fixture {
    let tag = FIXTURES.fetch_add(1, Ordering::Relaxed);
    let need = op.need();
    let per_user = if need == Need::Shared {
        USER_SESSIONS
    } else {
        per_task
    };
    let users: Vec<String> = (0..tasks).map(|t| format!("f{tag}-u{t}")).collect();
    let sessions: Vec<(String, usize)> = (0..tasks)
        .flat_map(|t| (0..per_user).map(move |i| (format!("f{tag}-t{t}-{i}"), t)))
        .collect();
    let ids = match need {
        Need::Shared => (0..tasks).map(|t| format!("f{tag}-t{t}-0")).collect(),
        Need::Unused | Need::Own => sessions.iter().map(|(id, _)| id.clone()).collect(),
    };
    let mut fixture = Fixture {
        need,
        ids,
        users,
        per_task,
        tower: Vec::new(),
    };
    if need != Need::Unused {
        write_sessions(world, backend, &sessions, &fixture.users).await;
    }
    if backend == Backend::TowerSessions {
        fixture.tower = tower_sessions(world, tasks).await;
    }
    fixture
}

/// Creates `sessions` (id, index of its user), each holding [`Values::data`].
async fn write_sessions(
    world: &World,
    backend: Backend,
    sessions: &[(String, usize)],
    users: &[String],
) {
    let values = &world.values;
    match backend {
        Backend::Memory | Backend::AnyMemory => {
            for (id, user) in sessions {
                world
                    .memory
                    .create_session(id, &users[*user])
                    .await
                    .expect("created");
                world
                    .memory
                    .update_session_data(id, values.data.clone())
                    .await
                    .expect("filled");
            }
        }
        Backend::Map => {
            for (id, user) in sessions {
                assert!(world.map.insert(id, &users[*user], values.data.clone()));
            }
        }
        Backend::Redis
        | Backend::AnyRedis
        | Backend::RawRedis
        | Backend::RawRedisHeld
        | Backend::EmptyScript
        | Backend::MinimalWrite => {
            let (side, prefix) = world.side(backend);
            write_layout(side.pool(), prefix, sessions, users, values).await;
        }
        Backend::TowerSessions => {}
    }
}

/// Writes sessions in the store's documented Redis layout, many per round trip.
async fn write_layout(
    pool: &RedisPool,
    prefix: &str,
    sessions: &[(String, usize)],
    users: &[String],
    values: &Values,
) {
    let now = now_ms();
    let fields: Vec<(String, String)> = values
        .data
        .iter()
        .map(|(k, v)| (format!("data:{k}"), v.to_string()))
        .collect();
    let mut conn = pool.get().await.expect("a pooled connection");
    for chunk in sessions.chunks(512) {
        let mut pipe = redis::pipe();
        for (id, user) in chunk {
            let key = format!("{prefix}:session:{id}");
            let user_key = format!("{prefix}:user_sessions:{}", users[*user]);
            let hset = pipe.cmd("HSET").arg(&key);
            hset.arg("meta:user_id").arg(&users[*user]);
            hset.arg("meta:created_at").arg(now);
            hset.arg("meta:last_active").arg(now);
            for (field, text) in &fields {
                hset.arg(field).arg(text);
            }
            hset.ignore();
            pipe.cmd("PEXPIRE").arg(&key).arg(ttl_ms()).ignore();
            pipe.cmd("SADD").arg(&user_key).arg(id).ignore();
            pipe.cmd("PEXPIRE").arg(&user_key).arg(ttl_ms()).ignore();
        }
        pipe.query_async::<()>(&mut *conn)
            .await
            .expect("sessions written");
    }
}

/// One tower-sessions session per task, saved with the same data as the store's sessions.
async fn tower_sessions(world: &World, tasks: usize) -> Vec<tower_sessions::Session> {
    let redis = world.redis();
    let mut sessions = Vec::with_capacity(tasks);
    for _ in 0..tasks {
        let expiry = Expiry::OnInactivity(time::Duration::seconds(TTL.as_secs() as i64));
        let session = tower_sessions::Session::new(None, redis.tower.clone(), Some(expiry));
        for (key, value) in &world.values.data {
            session.insert(key, value).await.expect("inserted");
        }
        session.save().await.expect("created in Redis");
        sessions.push(session);
    }
    sessions
}

/// Removes what a round of calls left behind. Untimed.
async fn clean_up(world: &World, backend: Backend, fixture: &Fixture) {
    match backend {
        Backend::Memory | Backend::AnyMemory => {
            for id in &fixture.ids {
                world.memory.remove_session(id).await.expect("removed");
            }
        }
        Backend::Map => {
            for id in &fixture.ids {
                world.map.remove(id);
            }
            for user in &fixture.users {
                world.map.users.remove(user);
            }
        }
        Backend::Redis
        | Backend::AnyRedis
        | Backend::RawRedis
        | Backend::RawRedisHeld
        | Backend::EmptyScript
        | Backend::MinimalWrite => {
            let (side, prefix) = world.side(backend);
            let mut conn = side.pool().get().await.expect("a pooled connection");
            for chunk in fixture.ids.chunks(512) {
                let mut del = redis::cmd("DEL");
                for id in chunk {
                    del.arg(format!("{prefix}:session:{id}"));
                }
                del.query_async::<()>(&mut *conn).await.expect("deleted");
            }
            let mut del = redis::cmd("DEL");
            for user in &fixture.users {
                del.arg(format!("{prefix}:user_sessions:{user}"));
            }
            del.query_async::<()>(&mut *conn).await.expect("deleted");
        }
        Backend::TowerSessions => {}
    }
}

/// Runs `total` calls of `op` spread evenly over `tasks` tokio tasks and returns the time the
/// calls took, preparing sessions and cleaning up between rounds outside the clock.
///
/// `shared` is the fixture of an operation that reuses one session per task; it is prepared
/// once per benchmark. `total` must be a multiple of `tasks`.
pub async fn measure(
    world: &Arc<World>,
    backend: Backend,
    op: Op,
    tasks: usize,
    total: usize,
    shared: Option<&Arc<Fixture>>,
) -> Duration {
    run_calls(world, backend, op, tasks, total, shared, false)
        .await
        .elapsed
}

/// What [`measure_latencies`] found.
pub struct Measured {
    /// The time all the calls took.
    pub elapsed: Duration,
    /// The time of each call, from its start to its answer, in no particular order.
    pub latencies: Vec<Duration>,
}

/// [`measure`], also timing every call on its own.
pub async fn measure_latencies(
    world: &Arc<World>,
    backend: Backend,
    op: Op,
    tasks: usize,
    total: usize,
    shared: Option<&Arc<Fixture>>,
) -> Measured {
    run_calls(world, backend, op, tasks, total, shared, true).await
}

async fn run_calls(
    world: &Arc<World>,
    backend: Backend,
    op: Op,
    tasks: usize,
    total: usize,
    shared: Option<&Arc<Fixture>>,
    timed: bool,
) -> Measured {
    assert_eq!(total % tasks, 0, "the calls spread evenly over the tasks");
    let mut elapsed = Duration::ZERO;
    let mut latencies = Vec::with_capacity(if timed { total } else { 0 });
    let mut remaining = total;
    while remaining > 0 {
        let calls = match shared {
            Some(_) => remaining,
            None => remaining.min(ROUND),
        };
        let per_task = calls / tasks;
        let fixture = match shared {
            Some(fixture) => Arc::clone(fixture),
            None => Arc::new(prepare(world, backend, op, tasks, per_task).await),
        };
        let start = Instant::now();
        let handles: Vec<_> = (0..tasks)
            .map(|t| {
                let world = Arc::clone(world);
                let fixture = Arc::clone(&fixture);
                tokio::spawn(async move {
                    let mut times = Vec::with_capacity(if timed { per_task } else { 0 });
                    for i in 0..per_task {
                        if timed {
                            let begun = Instant::now();
                            exec(&world, backend, op, &fixture, t, i).await;
                            times.push(begun.elapsed());
                        } else {
                            exec(&world, backend, op, &fixture, t, i).await;
                        }
                    }
                    times
                })
            })
            .collect();
        for handle in handles {
            latencies.extend(handle.await.expect("a benchmark task panicked"));
        }
        elapsed += start.elapsed();
        if shared.is_none() {
            clean_up(world, backend, &fixture).await;
        }
        remaining -= calls;
    }
    Measured { elapsed, latencies }
}

/// One call of `op` by `backend`, the `i`-th of task `t`.
async fn exec(world: &World, backend: Backend, op: Op, fx: &Fixture, t: usize, i: usize) {
    match backend {
        Backend::Memory => store_op(&world.memory, &world.values, op, fx, t, i).await,
        Backend::Map => world.map.exec(&world.values, op, fx, t, i),
        Backend::Redis => store_op(&world.redis().main.store, &world.values, op, fx, t, i).await,
        Backend::AnyMemory => store_op(&world.any_memory, &world.values, op, fx, t, i).await,
        Backend::AnyRedis => store_op(&world.redis().main.any, &world.values, op, fx, t, i).await,
        Backend::RawRedis => {
            let side = &world.redis().main;
            let mut conn = {
                let pooled = side.pool().get().await.expect("a pooled connection");
                (*pooled).clone()
            };
            raw_redis(&mut conn, &side.raw_prefix, &world.values, op, fx, t, i).await;
        }
        Backend::RawRedisHeld => {
            let side = &world.redis().main;
            let mut pooled = side.pool().get().await.expect("a pooled connection");
            raw_redis(&mut pooled, &side.raw_prefix, &world.values, op, fx, t, i).await;
        }
        Backend::EmptyScript | Backend::MinimalWrite => {
            assert_eq!(op, Op::SetSessionData, "the bounds only write one value");
            let redis = world.redis();
            let sha = if backend == Backend::EmptyScript {
                &redis.empty_script
            } else {
                &redis.minimal_write
            };
            let mut conn = {
                let pooled = redis.main.pool().get().await.expect("a pooled connection");
                (*pooled).clone()
            };
            let key = format!("{}:session:{}", redis.main.raw_prefix, fx.id(t, i));
            let text = serde_json::to_string(&world.values.small).expect("JSON");
            let status: i64 = redis::cmd("EVALSHA")
                .arg(sha)
                .arg(1)
                .arg(key)
                .arg(now_ms())
                .arg("data:preferences")
                .arg(text)
                .query_async(&mut conn)
                .await
                .expect("ran");
            assert_eq!(status, 1, "the session exists");
        }
        Backend::TowerSessions => {
            assert_eq!(op, Op::SetSessionData, "the peer only persists one value");
            let session = &fx.tower[t];
            session
                .insert(KEY, &world.values.small)
                .await
                .expect("inserted");
            session.save().await.expect("saved");
        }
    }
}

async fn store_op<S: SessionStore>(
    store: &S,
    values: &Values,
    op: Op,
    fx: &Fixture,
    t: usize,
    i: usize,
) {
    let id = fx.id(t, i);
    match op {
        Op::CreateSession => {
            black_box(
                store
                    .create_session(id, &fx.users[t])
                    .await
                    .expect("created"),
            );
        }
        Op::GetSession => {
            black_box(store.get_session(id).await.expect("read").expect("live"));
        }
        Op::SetSessionData => store
            .set_session_data(id, KEY, values.small.clone())
            .await
            .expect("set"),
        Op::GetSessionData => {
            black_box(
                store
                    .get_session_data(id, KEY)
                    .await
                    .expect("read")
                    .expect("set"),
            );
        }
        Op::UpdateSessionData => store
            .update_session_data(id, values.update.clone())
            .await
            .expect("updated"),
        Op::DeleteSessionData => store.delete_session_data(id, KEY).await.expect("deleted"),
        Op::ClearSessionData => store.clear_session_data(id).await.expect("cleared"),
        Op::RemoveSession => store.remove_session(id).await.expect("removed"),
        Op::GetUserSessions => {
            let sessions = store.get_user_sessions(&fx.users[t]).await.expect("listed");
            assert_eq!(black_box(sessions).len(), USER_SESSIONS);
        }
        Op::Touch => {
            let missing = store.touch(fx.ids_of_task(t)).await.expect("touched");
            assert!(missing.is_empty());
        }
    }
}

/// The JSON values of a hash's `data:` fields, as the caller of a store would want them.
fn decode_fields(fields: HashMap<String, String>) -> Map<String, Value> {
    fields
        .into_iter()
        .filter_map(|(field, text)| {
            let key = field.strip_prefix("data:")?;
            Some((key.to_owned(), serde_json::from_str(&text).expect("JSON")))
        })
        .collect()
}

/// The same work as plain commands on `conn`, under the keys of `prefix`.
async fn raw_redis(
    conn: &mut MultiplexedConnection,
    prefix: &str,
    values: &Values,
    op: Op,
    fx: &Fixture,
    t: usize,
    i: usize,
) {
    let id = fx.id(t, i);
    let key = format!("{prefix}:session:{id}");
    match op {
        Op::CreateSession => {
            let now = now_ms();
            let user = &fx.users[t];
            let user_key = format!("{prefix}:user_sessions:{user}");
            redis::pipe()
                .cmd("HSET")
                .arg(&key)
                .arg("meta:user_id")
                .arg(user)
                .arg("meta:created_at")
                .arg(now)
                .arg("meta:last_active")
                .arg(now)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(ttl_ms())
                .ignore()
                .cmd("SADD")
                .arg(&user_key)
                .arg(id)
                .ignore()
                .cmd("PEXPIRE")
                .arg(&user_key)
                .arg(ttl_ms())
                .ignore()
                .query_async::<()>(conn)
                .await
                .expect("created");
        }
        Op::GetSession => {
            let fields: HashMap<String, String> = redis::cmd("HGETALL")
                .arg(&key)
                .query_async(conn)
                .await
                .expect("read");
            assert!(!fields.is_empty());
            black_box(decode_fields(fields));
        }
        Op::SetSessionData => {
            let text = serde_json::to_string(&values.small).expect("JSON");
            redis::cmd("HSET")
                .arg(&key)
                .arg("data:preferences")
                .arg(text)
                .query_async::<()>(conn)
                .await
                .expect("set");
        }
        Op::GetSessionData => {
            let text: Option<String> = redis::cmd("HGET")
                .arg(&key)
                .arg("data:preferences")
                .query_async(conn)
                .await
                .expect("read");
            let value: Value = serde_json::from_str(&text.expect("set")).expect("JSON");
            black_box(value);
        }
        Op::UpdateSessionData => {
            let mut hset = redis::cmd("HSET");
            hset.arg(&key);
            for (k, v) in &values.update {
                hset.arg(format!("data:{k}"))
                    .arg(serde_json::to_string(v).expect("JSON"));
            }
            hset.query_async::<()>(conn).await.expect("updated");
        }
        Op::DeleteSessionData => {
            let deleted: u64 = redis::cmd("HDEL")
                .arg(&key)
                .arg("data:preferences")
                .query_async(conn)
                .await
                .expect("deleted");
            assert_eq!(deleted, 1);
        }
        Op::ClearSessionData => {
            let deleted: u64 = redis::cmd("HDEL")
                .arg(&key)
                .arg("data:preferences")
                .arg("data:counter")
                .arg("data:name")
                .arg("data:tags")
                .query_async(conn)
                .await
                .expect("cleared");
            assert_eq!(deleted, 4);
        }
        Op::RemoveSession => {
            let user_key = format!("{prefix}:user_sessions:{}", fx.users[t]);
            redis::pipe()
                .cmd("DEL")
                .arg(&key)
                .ignore()
                .cmd("SREM")
                .arg(&user_key)
                .arg(id)
                .ignore()
                .query_async::<()>(conn)
                .await
                .expect("removed");
        }
        Op::GetUserSessions => {
            let user_key = format!("{prefix}:user_sessions:{}", fx.users[t]);
            let ids: Vec<String> = redis::cmd("SMEMBERS")
                .arg(&user_key)
                .query_async(conn)
                .await
                .expect("listed");
            let mut pipe = redis::pipe();
            for id in &ids {
                pipe.cmd("HGETALL").arg(format!("{prefix}:session:{id}"));
            }
            let hashes: Vec<HashMap<String, String>> = pipe.query_async(conn).await.expect("read");
            let sessions: Vec<_> = hashes.into_iter().map(decode_fields).collect();
            assert_eq!(black_box(sessions).len(), USER_SESSIONS);
        }
        Op::Touch => {
            redis::pipe()
                .cmd("HSET")
                .arg(&key)
                .arg("meta:last_active")
                .arg(now_ms())
                .ignore()
                .cmd("PEXPIRE")
                .arg(&key)
                .arg(ttl_ms())
                .ignore()
                .query_async::<()>(conn)
                .await
                .expect("touched");
        }
    }
}

/// The stores' limits: the defaults, but each bench task creates many sessions of one user,
/// past the default cap of 64 sessions per user.
fn limits() -> ws_session::Limits {
    ws_session::Limits::default().max_user_sessions(1 << 30)
}
