//! Benchmarks of the session stores, each operation beside the same work done raw, then the
//! tower-sessions peer, scale probes on Redis, and a ratio report read back from criterion's
//! estimates.
//!
//! ```text
//! cargo bench --bench store
//! ```
//!
//! The Redis benchmarks start a private `redis-server` on a free port (killed at the end); without
//! one installed they are skipped and the report says so.

#[path = "store/probes.rs"]
mod probes;
use ws_session_testkit::redis_server;
#[path = "store/report.rs"]
mod report;
#[path = "store/rounds.rs"]
mod rounds;
#[path = "store/world.rs"]
mod world;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, BenchmarkId, Criterion, SamplingMode, Throughput};
use tokio::runtime::Runtime;
use ws_session::SessionStore as _;

use probes::CostSplit;
use report::{Bench, Context, Estimates, group_name};
use world::{Backend, Fixture, Op, World};

/// Tasks in the concurrent runs.
const WIDE: usize = 32;
/// Task counts of the peer groups and the interleaved rounds.
const PEER_TASKS: [usize; 3] = [1, WIDE, 256];
/// Calls per task in one iteration of a concurrent run.
const CALLS_PER_TASK: usize = 8;

/// The runtime, the stores, and what the report needs to know about the run.
struct Bencher {
    rt: Runtime,
    world: Arc<World>,
    benches: Vec<Bench>,
    /// Per group: name, wall time, and the 1-minute load average when it started.
    groups: Vec<(String, Duration, String)>,
}

/// Calls per criterion iteration: one call on one task, a batch spread over many tasks.
fn calls_per_iter(tasks: usize) -> usize {
    if tasks == 1 {
        1
    } else {
        tasks * CALLS_PER_TASK
    }
}

/// An open benchmark group, with what the report needs about it.
struct Group<'c> {
    inner: BenchmarkGroup<'c, WallTime>,
    name: String,
    started: Instant,
    load: String,
}

impl<'c> Group<'c> {
    fn open(c: &'c mut Criterion, name: String) -> Self {
        let load = load_average()
            .split_whitespace()
            .next()
            .unwrap_or("?")
            .to_owned();
        Group {
            inner: c.benchmark_group(&name),
            name,
            started: Instant::now(),
            load,
        }
    }

    fn finish(self, bencher: &mut Bencher) {
        self.inner.finish();
        bencher
            .groups
            .push((self.name, self.started.elapsed(), self.load));
    }
}

impl Bencher {
    /// Registers and runs one benchmark: `op` by `backend` on `tasks` tasks.
    fn bench(
        &mut self,
        group: &mut Group<'_>,
        id: (&str, &str),
        backend: Backend,
        op: Op,
        tasks: usize,
    ) {
        let (function, parameter) = id;
        let calls = calls_per_iter(tasks);
        self.benches.push(Bench {
            group: group.name.clone(),
            function: function.to_owned(),
            parameter: parameter.to_owned(),
            ops_per_iter: calls as u64,
        });
        // An operation that reuses one session per task gets it once, outside the clock.
        let shared: Option<Arc<Fixture>> = op_reuses_sessions(op).then(|| {
            Arc::new(
                self.rt
                    .block_on(world::prepare(&self.world, backend, op, tasks, 1)),
            )
        });
        let world = &self.world;
        group.inner.throughput(Throughput::Elements(calls as u64));
        group
            .inner
            .bench_function(BenchmarkId::new(function, parameter), |b| {
                b.to_async(&self.rt).iter_custom(|iters| {
                    let world = Arc::clone(world);
                    let shared = shared.clone();
                    async move {
                        let total = usize::try_from(iters).expect("iterations fit usize") * calls;
                        world::measure(&world, backend, op, tasks, total, shared.as_ref()).await
                    }
                });
            });
    }
}

/// Whether every call of `op` in a task can reuse one prepared session.
fn op_reuses_sessions(op: Op) -> bool {
    !matches!(
        op,
        Op::CreateSession | Op::DeleteSessionData | Op::ClearSessionData | Op::RemoveSession
    )
}

/// Every operation on both stores, each beside its baseline, at 1 and at 32 tasks.
fn operations(bencher: &mut Bencher, c: &mut Criterion) {
    let mut pairs = vec![("memory", Backend::Memory, Backend::Map)];
    if bencher.world.redis.is_some() {
        pairs.push(("redis", Backend::Redis, Backend::RawRedis));
    }
    for (store, ours, raw) in pairs {
        for tasks in [1, WIDE] {
            let mut group = Group::open(c, group_name(store, tasks));
            for op in Op::ALL {
                bencher.bench(&mut group, (op.name(), "ours"), ours, op, tasks);
                bencher.bench(&mut group, (op.name(), "raw"), raw, op, tasks);
            }
            if ours == Backend::Redis && tasks == WIDE {
                // The baseline as bb8 is usually used: the connection held for the round trip.
                for op in [Op::SetSessionData, Op::GetSessionData] {
                    let held = Backend::RawRedisHeld;
                    bencher.bench(&mut group, (op.name(), "raw_held"), held, op, tasks);
                }
                bounds(bencher, &mut group, tasks);
            }
            group.finish(bencher);
        }
    }
}

/// The run-time choice of store: each store beside itself behind an `AnyStore`, one task,
/// the operations a handler calls most.
fn run_time_choice(bencher: &mut Bencher, c: &mut Criterion) {
    let mut pairs = vec![("memory", Backend::Memory, Backend::AnyMemory)];
    if bencher.world.redis.is_some() {
        pairs.push(("redis", Backend::Redis, Backend::AnyRedis));
    }
    let mut group = Group::open(c, "any_store".to_owned());
    for (store, concrete, any) in pairs {
        for op in [Op::GetSessionData, Op::SetSessionData, Op::GetSession] {
            let name = format!("{store}_{}", op.name());
            bencher.bench(&mut group, (&name, "concrete"), concrete, op, 1);
            bencher.bench(&mut group, (&name, "any_store"), any, op, 1);
        }
    }
    group.finish(bencher);
}

/// The two lower bounds of any script-based write, as `set_session_data` benchmarks.
fn bounds(bencher: &mut Bencher, group: &mut Group<'_>, tasks: usize) {
    let op = Op::SetSessionData;
    let empty = ("set_session_data", "empty_script");
    bencher.bench(group, empty, Backend::EmptyScript, op, tasks);
    let minimal = ("set_session_data", "minimal_write");
    bencher.bench(group, minimal, Backend::MinimalWrite, op, tasks);
}

/// Persisting one value: the store beside tower-sessions, at 1, 32 and 256 tasks.
fn peer(bencher: &mut Bencher, c: &mut Criterion) {
    for tasks in PEER_TASKS {
        let mut group = Group::open(c, group_name("peer", tasks));
        let op = Op::SetSessionData;
        bencher.bench(
            &mut group,
            ("set_session_data", "ours"),
            Backend::Redis,
            op,
            tasks,
        );
        bencher.bench(
            &mut group,
            ("insert_save", "tower_sessions"),
            Backend::TowerSessions,
            op,
            tasks,
        );
        bounds(bencher, &mut group, tasks);
        group.finish(bencher);
    }
}

/// Refreshing 10,000 live sessions and listing a user's 1,000 sessions; then what one listing
/// sends to Redis, and where the time of a tick and of a listing goes.
fn scale(bencher: &mut Bencher, c: &mut Criterion) -> (probes::RoundTrips, Vec<CostSplit>) {
    let world = Arc::clone(&bencher.world);
    let redis = world.redis();
    let store = redis.main.store.clone();
    let scale = bencher.rt.block_on(probes::prepare(&store, &world.values));

    let mut group = Group::open(c, "redis_scale".to_owned());
    group
        .inner
        .sample_size(10)
        .sampling_mode(SamplingMode::Flat)
        .measurement_time(Duration::from_secs(3));
    let mut register = |function: &str, parameter: &str| {
        bencher.benches.push(Bench {
            group: "redis_scale".to_owned(),
            function: function.to_owned(),
            parameter: parameter.to_owned(),
            ops_per_iter: 1,
        });
        BenchmarkId::new(function, parameter)
    };
    let rt = &bencher.rt;
    let live = &scale.live;
    let user = &scale.big_user;
    group
        .inner
        .bench_function(register("touch_10000", "batches_of_1000"), |b| {
            b.to_async(rt).iter(|| probes::refresh_tick(&store, live));
        });
    group
        .inner
        .bench_function(register("touch_10000", "one_call"), |b| {
            b.to_async(rt).iter(|| async {
                let missing = store.touch(live).await.expect("touched");
                assert!(missing.is_empty());
            });
        });
    group
        .inner
        .bench_function(register("get_user_sessions_1000", "one_call"), |b| {
            b.to_async(rt).iter(|| async {
                let sessions = store.get_user_sessions(user).await.expect("listed");
                assert_eq!(sessions.len(), probes::LISTED);
            });
        });
    group.finish(bencher);

    bencher.rt.block_on(async {
        let trips = probes::count_round_trips(redis, &store, user).await;
        const TICKS: usize = 3;
        let tick = probes::cost_split(
            redis,
            "touch: refresh ticks of 10,000 (per session)",
            TICKS * probes::TOUCHED,
            async {
                let start = Instant::now();
                for _ in 0..TICKS {
                    probes::refresh_tick(&store, live).await;
                }
                start.elapsed()
            },
        )
        .await;
        const LISTINGS: usize = 20;
        let listing = probes::cost_split(
            redis,
            "get_user_sessions of 1,000 sessions (per call)",
            LISTINGS,
            async {
                let start = Instant::now();
                for _ in 0..LISTINGS {
                    store.get_user_sessions(user).await.expect("listed");
                }
                start.elapsed()
            },
        )
        .await;
        (trips, vec![tick, listing])
    })
}

/// Where the time of a call goes at 32 tasks: this process, the Redis server, and the
/// commands Redis runs for it.
fn cost_splits(bencher: &Bencher) -> Vec<CostSplit> {
    let world = &bencher.world;
    let redis = world.redis();
    let cases = [
        (
            Backend::Redis,
            Op::SetSessionData,
            "RedisStore::set_session_data",
        ),
        (Backend::RawRedis, Op::SetSessionData, "raw HSET"),
        (
            Backend::EmptyScript,
            Op::SetSessionData,
            "bound: EVALSHA of an empty script",
        ),
        (
            Backend::MinimalWrite,
            Op::SetSessionData,
            "bound: minimal write script",
        ),
        (
            Backend::TowerSessions,
            Op::SetSessionData,
            "tower-sessions insert+save",
        ),
        (
            Backend::Redis,
            Op::GetSessionData,
            "RedisStore::get_session_data",
        ),
        (Backend::RawRedis, Op::GetSessionData, "raw HGET"),
    ];
    let calls = WIDE * CALLS_PER_TASK * 100;
    bencher.rt.block_on(async {
        let mut splits = Vec::new();
        for (backend, op, label) in cases {
            let fixture = Arc::new(world::prepare(world, backend, op, WIDE, 1).await);
            world::measure(world, backend, op, WIDE, calls / 10, Some(&fixture)).await;
            let label = format!("{label} @{WIDE}");
            let work = world::measure(world, backend, op, WIDE, calls, Some(&fixture));
            splits.push(probes::cost_split(redis, &label, calls, work).await);
        }
        splits
    })
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// Cores, load, versions, and how long each group took, for the report.
fn machine_notes(
    bencher: &Bencher,
    load_at_start: &str,
    redis_version: Option<String>,
) -> Vec<String> {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut notes = vec![
        format!(
            "machine: {cores} cores; load average (1, 5, 15 min) at start {load_at_start}, at report {}",
            load_average()
        ),
        format!("runtime: tokio multi-thread, {cores} workers"),
    ];
    if let Some(redis) = &bencher.world.redis {
        let open = redis
            .main
            .store
            .pool()
            .expect("a pool on one server")
            .state()
            .connections;
        notes.push(format!(
            "pools: RedisStore::connect's bb8 pool for ours and the raw commands ({open} connection(s) \
             open at the end); fred pool of {} client(s) for tower-sessions",
            redis.connections
        ));
    }
    if let Some(version) = redis_version {
        notes.push(format!(
            "redis: private {version} on 127.0.0.1 (no persistence), on the same cores"
        ));
    }
    let groups: Vec<String> = bencher
        .groups
        .iter()
        .map(|(name, took, load)| format!("{name} {:.0} s (load {load})", took.as_secs_f64()))
        .collect();
    notes.push(format!(
        "groups, wall time and 1-min load at their start: {}",
        groups.join(", ")
    ));
    notes
}

fn redis_version() -> Option<String> {
    let output = std::process::Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    Some(
        text.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" "),
    )
}

fn main() {
    let started = SystemTime::now();
    let load_at_start = load_average();
    let server = redis_server::RedisServer::start();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let redis = server.as_ref().map(|s| (s.url(), s.port()));
    if redis.is_none() {
        eprintln!("no redis-server: the Redis benchmarks are skipped");
    }
    let world = Arc::new(rt.block_on(World::new(redis)));
    let mut bencher = Bencher {
        rt,
        world,
        benches: Vec::new(),
        groups: Vec::new(),
    };

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(20)
        .nresamples(10_000)
        .without_plots()
        .configure_from_args();

    operations(&mut bencher, &mut c);
    run_time_choice(&mut bencher, &mut c);
    let mut round_trips = None;
    let mut splits = Vec::new();
    let mut interleaved = Vec::new();
    if bencher.world.redis.is_some() {
        peer(&mut bencher, &mut c);
        splits = cost_splits(&bencher);
        let world = Arc::clone(&bencher.world);
        interleaved = bencher.rt.block_on(async {
            vec![
                rounds::run(&world, 1, 2_000).await,
                rounds::run(&world, WIDE, WIDE * 400).await,
                rounds::run(&world, 256, 256 * 50).await,
            ]
        });
        let (trips, scale_splits) = scale(&mut bencher, &mut c);
        round_trips = Some(trips);
        splits.extend(scale_splits);
    }
    c.final_summary();

    let context = Context {
        redis: bencher.world.redis.is_some(),
        machine: machine_notes(
            &bencher,
            &load_at_start,
            server.as_ref().and_then(|_| redis_version()),
        ),
        round_trips,
        splits,
        interleaved,
    };
    let estimates = Estimates::new(started, std::mem::take(&mut bencher.benches));
    println!("{}", report::render(&estimates, &context));

    bencher.rt.block_on(bencher.world.close());
    drop(bencher);
    drop(server);
}
