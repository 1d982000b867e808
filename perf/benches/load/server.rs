//! The servers under load, each in a child process of the harness.
//!
//! The harness runs its own executable again with [`SERVE_ENV`] set to the server's kind.
//! The child binds `127.0.0.1:0`, prints `LISTENING <addr>` on stdout and serves until its
//! standard input (a pipe held by the harness) closes, so a child never outlives the harness.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use axum::serve::ListenerExt;
use ws_session::{MemoryStore, RedisStore};

use crate::{app, bare};

/// Set in a child process: which server to run (`bare`, `memory` or `redis`).
pub const SERVE_ENV: &str = "WS_LOAD_SERVE";
/// Set in a `redis` child process: the URL of the harness's private Redis server.
pub const REDIS_URL_ENV: &str = "WS_LOAD_REDIS_URL";
/// The session TTL of both stores. Refreshes run every third of it.
const SESSION_TTL: Duration = Duration::from_secs(60);
const READY: &str = "LISTENING ";

/// The three servers, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Bare,
    Memory,
    Redis,
    /// The bare server with each socket's data in Redis, by plain commands: what the Redis
    /// round trips alone cost (see `bare.rs`).
    BareRedis,
}

impl Kind {
    pub const ALL: [Kind; 4] = [Kind::Bare, Kind::Memory, Kind::Redis, Kind::BareRedis];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Bare => "bare",
            Kind::Memory => "memory",
            Kind::Redis => "redis",
            Kind::BareRedis => "bare+redis",
        }
    }

    /// Whether the server keeps its data in Redis.
    pub fn uses_redis(self) -> bool {
        matches!(self, Kind::Redis | Kind::BareRedis)
    }

    fn parse(name: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

/// Runs a server in this (child) process; returns when the harness closes our stdin.
pub fn serve(kind: &str) {
    let kind = Kind::parse(kind).unwrap_or_else(|| panic!("{SERVE_ENV}={kind}: unknown server"));
    crate::raise_fd_limit();
    // The harness closes the pipe when it is done, or dies: then so do we.
    std::thread::spawn(|| {
        let _ = std::io::stdin().read_to_end(&mut Vec::new());
        std::process::exit(0);
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("build the server's runtime");
    runtime.block_on(async move {
        let router = match kind {
            Kind::Bare => bare::router(),
            Kind::Memory => app::router_with(
                app::session_layer(MemoryStore::with_ttl(SESSION_TTL).limits(app::limits())),
                app::Settings::unlimited(),
            ),
            Kind::Redis => {
                let url = redis_url();
                let store = RedisStore::connect(&url, "wsload", SESSION_TTL)
                    .await
                    .unwrap_or_else(|err| panic!("cannot connect to Redis at {url}: {err}"));
                app::router_with(
                    app::session_layer(store.limits(app::limits())),
                    app::Settings::unlimited(),
                )
            }
            Kind::BareRedis => {
                let url = redis_url();
                let redis = redis::Client::open(url.as_str())
                    .expect("a Redis URL")
                    .get_multiplexed_async_connection()
                    .await
                    .unwrap_or_else(|err| panic!("cannot connect to Redis at {url}: {err}"));
                bare::redis_router(redis)
            }
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("the listener's address");
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "{READY}{addr}").expect("write the address");
        stdout.flush().expect("flush stdout");
        drop(stdout);
        // Every server gets the same socket options.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        axum::serve(listener, router).await.expect("serve");
    });
}

fn redis_url() -> String {
    std::env::var(REDIS_URL_ENV).unwrap_or_else(|_| panic!("{REDIS_URL_ENV} is not set"))
}

/// A server child process. Dropping it stops the child and waits for it.
pub struct ServerProcess {
    pub kind: Kind,
    pub addr: SocketAddr,
    child: Child,
    lifeline: Option<ChildStdin>,
}

impl ServerProcess {
    /// Starts a `kind` server and waits until it listens.
    ///
    /// # Panics
    ///
    /// When the child cannot be started or exits before printing its address.
    pub fn start(kind: Kind, redis_url: Option<&str>) -> ServerProcess {
        let exe = std::env::current_exe().expect("the harness's own executable");
        let mut command = Command::new(exe);
        command
            .env(SERVE_ENV, kind.name())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(url) = redis_url {
            command.env(REDIS_URL_ENV, url);
        }
        let mut child = command.spawn().expect("start a server child process");
        let lifeline = child.stdin.take();
        let stdout = child.stdout.take().expect("the child's stdout is piped");
        let mut line = String::new();
        let read = BufReader::new(stdout).read_line(&mut line);
        let addr = line
            .trim()
            .strip_prefix(READY)
            .and_then(|addr| addr.parse().ok());
        match (read, addr) {
            (Ok(_), Some(addr)) => ServerProcess {
                kind,
                addr,
                child,
                lifeline,
            },
            (read, _) => {
                let _ = child.kill();
                let status = child.wait();
                panic!(
                    "the {} server did not start: read {read:?}, line {line:?}, exit {status:?}",
                    kind.name()
                );
            }
        }
    }

    /// The CPU time (user and system) the child has used so far.
    pub fn cpu_time(&self) -> Duration {
        cpu_time(self.child.id()).unwrap_or_default()
    }

    /// The child's resident memory (`VmRSS` in `/proc/<pid>/status`), in bytes.
    ///
    /// # Panics
    ///
    /// When the child is gone or the file has no `VmRSS` line.
    pub fn rss(&self) -> u64 {
        let path = format!("/proc/{}/status", self.child.id());
        let status = std::fs::read_to_string(&path).unwrap_or_else(|err| panic!("{path}: {err}"));
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().strip_suffix("kB"))
            .and_then(|kib| kib.trim().parse::<u64>().ok())
            .map(|kib| kib * 1024)
            .unwrap_or_else(|| panic!("no VmRSS in {path}"))
    }
}

/// The CPU time (user and system) process `pid` has used so far, from `/proc/<pid>/stat`.
pub fn cpu_time(pid: u32) -> Option<Duration> {
    /// The unit of the times in `/proc/<pid>/stat` (`USER_HZ`), 100 on Linux.
    const TICKS_PER_SECOND: u64 = 100;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces; the fields after it are plain numbers:
    // state is field 3, utime field 14, stime field 15.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 1000 / TICKS_PER_SECOND))
}

/// The process id of the Redis server on `127.0.0.1:port`, from `INFO server`.
pub fn redis_process_id(port: u16) -> Option<u32> {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"INFO server\r\n").ok()?;
    let mut reply = Vec::new();
    let mut chunk = [0; 4096];
    // The reply is one bulk string of a few KiB; stop once the field has arrived.
    for _ in 0..16 {
        let read = stream.read(&mut chunk).ok()?;
        if read == 0 {
            break;
        }
        reply.extend_from_slice(&chunk[..read]);
        let text = String::from_utf8_lossy(&reply);
        if let Some(pid) = text
            .lines()
            .find_map(|line| line.strip_prefix("process_id:"))
            .and_then(|pid| pid.trim().parse().ok())
        {
            return Some(pid);
        }
    }
    None
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Closing the pipe makes the child exit; kill it if it takes too long.
        drop(self.lifeline.take());
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
