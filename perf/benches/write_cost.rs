//! What one write costs Redis, counted in instructions: a private `redis-server` runs under
//! `valgrind --tool=callgrind`, and for each phase (one operation at a task count) the counts
//! are zeroed, the writes run, and the counts are dumped and divided by the writes.
//!
//! ```text
//! cargo bench --bench write_cost
//! ```
//!
//! Instruction counts do not drift with the machine's load the way times do. The counts are
//! the whole server's: reading requests, running the script, writing replies, and its idle
//! loop while it waits (small: the phases keep it busy). Needs `valgrind` and `redis-server`;
//! without them the bench says so and does nothing. With `KEEP_DUMPS` set, the callgrind
//! dumps are kept for `callgrind_annotate`; `WRITE_COST_OPS=set,touch` runs only the
//! operations whose names start with one of these.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use ws_session::{RedisStore, SessionData, SessionStore};

/// Writes per phase.
const WRITES: usize = 2_000;
/// Task counts of the phases.
const TASKS: [usize; 2] = [1, 32];

#[derive(Clone, Copy, Debug)]
enum Op {
    Set,
    Update,
    Delete,
    Clear,
    Touch,
}

impl Op {
    const ALL: [Op; 5] = [Op::Set, Op::Update, Op::Delete, Op::Clear, Op::Touch];

    fn name(self) -> &'static str {
        match self {
            Op::Set => "set_session_data",
            Op::Update => "update_session_data (3 keys)",
            Op::Delete => "delete_session_data",
            Op::Clear => "clear_session_data",
            Op::Touch => "touch (1 session)",
        }
    }
}

fn main() {
    if !installed("valgrind") || !installed("redis-server") {
        eprintln!("write_cost: needs valgrind and redis-server; skipped");
        return;
    }
    let dir = std::env::temp_dir().join(format!("ws-session-callgrind-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("a temporary directory");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut server = start_server(&dir, port);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let url = format!("redis://127.0.0.1:{port}/");
    let store = rt.block_on(connect(&url));
    let pid = rt.block_on(server_pid(&store));

    println!(
        "Redis instructions per write (valgrind --tool=callgrind on redis-server, {WRITES} writes per phase)"
    );
    println!("{:<32} {:>6} {:>16}", "operation", "tasks", "instructions");
    let mut dump = 0;
    // `WRITE_COST_OPS=set,touch` runs only the operations whose names start with these.
    let only = std::env::var("WRITE_COST_OPS").unwrap_or_default();
    let chosen =
        |op: Op| only.is_empty() || only.split(',').any(|prefix| op.name().starts_with(prefix));
    for op in Op::ALL.into_iter().filter(|&op| chosen(op)) {
        for tasks in TASKS {
            let sessions = rt.block_on(prepare(&store, tasks));
            // A warm-up outside the count: scripts loaded, connection busy.
            rt.block_on(run(&store, op, &sessions, tasks * 20));
            callgrind_control(&["--zero", &pid]);
            rt.block_on(run(&store, op, &sessions, WRITES));
            dump += 1;
            callgrind_control(&[&format!("--dump=phase{dump}"), &pid]);
            let total = read_dump(&dir, dump);
            println!(
                "{:<32} {:>6} {:>16.0}",
                op.name(),
                tasks,
                total as f64 / WRITES as f64
            );
        }
    }
    let _ = server.kill();
    let _ = server.wait();
    if std::env::var_os("KEEP_DUMPS").is_some() {
        println!("dumps kept in {} (cg.out.N: phase N)", dir.display());
    } else {
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn start_server(dir: &Path, port: u16) -> Child {
    Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg(format!(
            "--callgrind-out-file={}",
            dir.join("cg.out").display()
        ))
        .arg("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .arg("--dir")
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("valgrind starts")
}

async fn connect(url: &str) -> RedisStore {
    let started = Instant::now();
    loop {
        match RedisStore::connect(url, "cost", Duration::from_secs(3600)).await {
            Ok(store) => return store.timeout(Duration::from_secs(30)),
            Err(err) if started.elapsed() < Duration::from_secs(60) => {
                let _ = err;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => panic!("redis-server under valgrind does not answer: {err}"),
        }
    }
}

async fn server_pid(store: &RedisStore) -> String {
    let mut conn = store.dedicated_connection().await.expect("a connection");
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|line| line.strip_prefix("process_id:"))
        .expect("process_id in INFO")
        .trim()
        .to_owned()
}

/// One session per task, each holding four keys.
async fn prepare(store: &RedisStore, tasks: usize) -> Arc<Vec<String>> {
    let mut ids = Vec::with_capacity(tasks);
    for t in 0..tasks {
        let id = format!("s{}-{t}", rand_suffix());
        store
            .create_session(&id, &format!("u{t}"))
            .await
            .expect("created");
        ids.push(id);
    }
    Arc::new(ids)
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// `writes` calls of `op`, spread over one task per session.
async fn run(store: &RedisStore, op: Op, sessions: &Arc<Vec<String>>, writes: usize) {
    let tasks = sessions.len();
    let handles: Vec<_> = (0..tasks)
        .map(|t| {
            let store = store.clone();
            let sessions = Arc::clone(sessions);
            tokio::spawn(async move {
                let id = &sessions[t];
                for i in 0..writes / tasks {
                    write(&store, op, id, i).await;
                }
            })
        })
        .collect();
    for handle in handles {
        handle.await.expect("a writer panicked");
    }
}

async fn write(store: &RedisStore, op: Op, id: &str, i: usize) {
    match op {
        Op::Set => store
            .set_session_data(id, "preferences", json!({"theme": "dark", "font_size": i}))
            .await
            .expect("set"),
        Op::Update => {
            let mut data = SessionData::new();
            data.insert("counter".into(), json!(i));
            data.insert("name".into(), json!("bob"));
            data.insert("last_seen".into(), json!(1_700_000_000_000u64));
            store.update_session_data(id, data).await.expect("updated");
        }
        Op::Delete => store
            .delete_session_data(id, "preferences")
            .await
            .expect("deleted"),
        Op::Clear => store.clear_session_data(id).await.expect("cleared"),
        Op::Touch => {
            let missing = store.touch(&[id.to_owned()]).await.expect("touched");
            assert!(missing.is_empty());
        }
    }
}

fn callgrind_control(args: &[&str]) {
    let status = Command::new("callgrind_control")
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("callgrind_control runs");
    assert!(status.success(), "callgrind_control {args:?} failed");
}

/// The instruction total of the `n`-th dump.
fn read_dump(dir: &Path, n: usize) -> u64 {
    let path: PathBuf = dir.join(format!("cg.out.{n}"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", path.display()));
    text.lines()
        .find_map(|line| {
            line.strip_prefix("summary:")
                .or_else(|| line.strip_prefix("totals:"))
        })
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no total in {}", path.display()))
}
