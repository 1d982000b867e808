//! Private `redis-server` processes for tests, and the Redis URL a test binary shares.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use ws_session::RedisStore;

/// The message a test prints when it cannot run for want of Redis.
pub const SKIPPED: &str = "SKIPPED: no Redis (install redis-server or set REDIS_URL)";

/// How long a fresh server has to answer PING.
const STARTUP: Duration = Duration::from_secs(10);

/// A `redis-server` of this test process, on its own port and in its own directory.
///
/// The server runs under a small `sh` watchdog that reads its standard input, which is a pipe
/// held by this process: when the pipe closes — on [`stop`](Self::stop), on drop, or because
/// the test process exited or was killed — the watchdog kills the server, removes its
/// directory and exits. So no server outlives its test process, even when it sits in a static
/// that is never dropped.
pub struct RedisServer {
    program: &'static str,
    port: u16,
    dir: PathBuf,
    role: Role,
    running: Option<Running>,
}

/// What a [`RedisServer`] is started as.
#[derive(Clone, Debug)]
pub enum Role {
    /// A master of its own.
    Master,
    /// A node with `cluster-enabled yes` that belongs to no cluster yet.
    ClusterNode,
    /// A replica of the master on 127.0.0.1 at this port.
    ReplicaOf(u16),
    /// A sentinel watching the master named `name` on 127.0.0.1 at `port`, with a quorum of
    /// two, deciding it is down after one second without an answer.
    Sentinel {
        /// The name the sentinels give the master.
        name: String,
        /// The port of the master when the sentinel starts.
        port: u16,
    },
}

struct Running {
    watchdog: Child,
    /// Closing this pipe tells the watchdog to kill the server.
    lifeline: ChildStdin,
}

impl RedisServer {
    /// Starts a private redis-server on a free 127.0.0.1 port (`--save "" --appendonly no`,
    /// its own temporary directory) and waits until it answers PING. Killed on drop.
    ///
    /// Returns `None` (after saying so on stderr) when no server binary is installed and `CI`
    /// is unset.
    ///
    /// # Panics
    ///
    /// When no server binary is installed and `CI` is set, or when the server does not start.
    pub fn start() -> Option<RedisServer> {
        RedisServer::start_as(Role::Master)
    }

    /// As [`start`](Self::start), a server in the given role.
    ///
    /// # Panics
    ///
    /// As [`start`](Self::start).
    pub fn start_as(role: Role) -> Option<RedisServer> {
        let Some(program) = server_program() else {
            unavailable("redis-server is not installed");
            return None;
        };
        let dir = std::env::temp_dir().join(format!(
            "ws-session-redis-{}-{}",
            std::process::id(),
            SERVERS.fetch_add(1, Ordering::Relaxed)
        ));
        // The port is free when we look; another process could take it before the server
        // binds, so try a few.
        let mut failures = Vec::new();
        for _ in 0..5 {
            let mut server = RedisServer {
                program,
                port: free_port(),
                dir: dir.clone(),
                role: role.clone(),
                running: None,
            };
            match server.launch() {
                Ok(()) => return Some(server),
                Err(why) => failures.push(why),
            }
        }
        panic!("{program} did not start: {failures:#?}");
    }

    /// The server's URL, `redis://127.0.0.1:PORT/`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A `RedisStore` on this server under a [`unique_prefix`], keeping sessions for `ttl`.
    pub async fn store(&self, ttl: Duration) -> RedisStore {
        RedisStore::connect(&self.url(), unique_prefix(), ttl)
            .await
            .unwrap_or_else(|err| panic!("cannot connect to {}: {err}", self.url()))
    }

    /// Kills the server and waits until it is gone. Does nothing when it is not running.
    pub fn stop(&mut self) {
        if let Some(Running {
            mut watchdog,
            lifeline,
        }) = self.running.take()
        {
            drop(lifeline);
            // The watchdog kills the server, waits for it and exits.
            let _ = watchdog.wait();
        }
    }

    /// Starts the server again on the same port and waits until it answers PING. The data
    /// is gone: the server keeps none on disk.
    ///
    /// # Panics
    ///
    /// When the server does not come back.
    pub fn restart(&mut self) {
        self.stop();
        if let Err(why) = self.launch() {
            panic!("redis-server did not restart on port {}: {why}", self.port);
        }
    }

    /// The process id of the running server, from its `INFO`.
    ///
    /// # Panics
    ///
    /// When it is not running or does not answer.
    pub fn pid(&self) -> u32 {
        let info = query(self.port, "INFO server").expect("the server answers INFO");
        info.lines()
            .find_map(|line| line.strip_prefix("process_id:"))
            .and_then(|pid| pid.trim().parse().ok())
            .expect("INFO server names the process id")
    }

    /// Stops the server with `SIGSTOP`: its connections stay open and nothing answers, as
    /// with a server frozen or cut off. Returns its process id, for [`resume`](Self::resume).
    pub fn pause(&self) -> u32 {
        let pid = self.pid();
        signal(pid, "-STOP");
        pid
    }

    /// Lets a server stopped by [`pause`](Self::pause) go on.
    pub fn resume(&self, pid: u32) {
        signal(pid, "-CONT");
    }

    /// The arguments of `redis-server` for this server's role.
    fn arguments(&self) -> Result<Vec<String>, String> {
        let mut args = Vec::new();
        if let Role::Sentinel { name, port } = &self.role {
            let config = self.dir.join("sentinel.conf");
            let text = format!(
                "sentinel monitor {name} 127.0.0.1 {port} 2\n\
                 sentinel down-after-milliseconds {name} 1000\n\
                 sentinel failover-timeout {name} 3000\n\
                 sentinel parallel-syncs {name} 2\n"
            );
            std::fs::write(&config, text)
                .map_err(|err| format!("cannot write {}: {err}", config.display()))?;
            args.push(config.display().to_string());
            args.push("--sentinel".to_owned());
        } else {
            args.extend(["--save", "", "--appendonly", "no"].map(str::to_owned));
        }
        if let Role::ClusterNode = &self.role {
            let config = self.dir.join("nodes.conf");
            args.extend(["--cluster-enabled".to_owned(), "yes".to_owned()]);
            // A master unanswered for two seconds is failed over: quick enough for the
            // failover tests, slow enough for a busy machine.
            args.extend(["--cluster-node-timeout".to_owned(), "2000".to_owned()]);
            args.extend([
                "--cluster-config-file".to_owned(),
                config.display().to_string(),
            ]);
        }
        if let Role::ReplicaOf(port) = &self.role {
            args.extend([
                "--replicaof".to_owned(),
                "127.0.0.1".to_owned(),
                port.to_string(),
            ]);
        }
        args.extend(["--port".to_owned(), self.port.to_string()]);
        args.extend(["--bind", "127.0.0.1"].map(str::to_owned));
        Ok(args)
    }

    fn launch(&mut self) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir)
            .map_err(|err| format!("cannot create {}: {err}", self.dir.display()))?;
        let log = self.dir.join("redis.log");
        let args = self.arguments()?;
        let mut watchdog = Command::new("sh")
            .arg("-c")
            // `$0` is the server binary, `$@` its arguments. A background reader of the pipe
            // kills the server when our end closes; the shell itself waits for the server, so
            // it exits when the server does, for whatever reason.
            .arg(concat!(
                r#""$0" "$@" & server=$!; exec 3<&0; "#,
                r#"( read _ <&3; kill -9 "$server" 2>/dev/null ) & "#,
                r#"wait "$server"; rm -rf "$WS_REDIS_DIR""#,
            ))
            .env("WS_REDIS_DIR", &self.dir)
            .arg(self.program)
            .args(&args)
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|err| format!("cannot run sh: {err}"))?;
        let lifeline = watchdog
            .stdin
            .take()
            .expect("the watchdog's stdin is piped");
        self.running = Some(Running { watchdog, lifeline });

        let deadline = Instant::now() + STARTUP;
        while Instant::now() < deadline {
            if answers_ping(self.port) {
                return Ok(());
            }
            if let Some(Running { watchdog, .. }) = &mut self.running
                && let Ok(Some(status)) = watchdog.try_wait()
            {
                self.running = None;
                return Err(format!("the watchdog exited with {status}"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let log = std::fs::read_to_string(&log).unwrap_or_default();
        self.stop();
        Err(format!(
            "no PONG on port {} within {STARTUP:?}; log:\n{log}",
            self.port
        ))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

static SERVERS: AtomicU64 = AtomicU64::new(0);

/// The Redis URL the ordinary tests of this binary share: `REDIS_URL` when set, otherwise
/// one private server started once per test binary (kept in a static; it dies with the
/// process).
///
/// Returns `None` (loudly) when neither is possible and `CI` is unset.
///
/// # Panics
///
/// When neither is possible and `CI` is set.
pub fn shared_url() -> Option<String> {
    static SHARED: OnceLock<Option<String>> = OnceLock::new();
    static SERVER: OnceLock<RedisServer> = OnceLock::new();
    SHARED
        .get_or_init(|| {
            if let Ok(url) = std::env::var("REDIS_URL")
                && !url.is_empty()
            {
                return Some(url);
            }
            let server = RedisServer::start()?;
            let url = server.url();
            let _ = SERVER.set(server);
            Some(url)
        })
        .clone()
}

/// A key prefix no other call returns, in this process or any other, so tests never see each
/// other's keys, even on a shared `REDIS_URL` server.
pub fn unique_prefix() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "wst:{}:{}:{:08x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        rand::random::<u32>()
    )
}

/// A `RedisStore` on [`shared_url`] with a [`unique_prefix`] and the given TTL; `None` when
/// Redis is unavailable (see [`shared_url`]).
///
/// # Panics
///
/// When a Redis URL is known but the store cannot connect to it.
pub async fn redis_store(ttl: Duration) -> Option<RedisStore> {
    let url = shared_url()?;
    let store = RedisStore::connect(&url, unique_prefix(), ttl)
        .await
        .unwrap_or_else(|err| panic!("cannot connect to Redis at {url}: {err}"));
    Some(store)
}

/// Says loudly that Redis is missing; panics instead under CI, where tests must not skip.
fn unavailable(why: &str) {
    if std::env::var_os("CI").is_some() {
        panic!("{why}, and CI is set: Redis tests must not be skipped in CI");
    }
    eprintln!("{SKIPPED} ({why})");
}

/// `redis-server`, or `valkey-server` when only that is installed.
fn server_program() -> Option<&'static str> {
    ["redis-server", "valkey-server"]
        .into_iter()
        .find(|program| {
            Command::new(program)
                .arg("--version")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|status| status.success())
        })
}

fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("bind a free port")
        .port()
}

/// Sends one inline command to the server on `port` and returns its whole reply as text
/// (enough for `INFO` and short answers). The reply ends where the server closes the
/// connection after `QUIT`, or (a sentinel knows no `QUIT`) where nothing more comes for a
/// moment.
pub fn query(port: u16, command: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    stream.set_write_timeout(Some(Duration::from_millis(500)))?;
    stream.write_all(format!("{command}\r\nQUIT\r\n").as_bytes())?;
    let deadline = Instant::now() + Duration::from_secs(1);
    let mut reply = Vec::new();
    let mut chunk = [0; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(read) => reply.extend_from_slice(&chunk[..read]),
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                if !reply.is_empty() || Instant::now() > deadline {
                    break;
                }
            }
            Err(err) => return Err(err),
        }
    }
    Ok(String::from_utf8_lossy(&reply).into_owned())
}

fn signal(pid: u32, which: &str) {
    let status = Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill {which} {pid} failed");
}

fn answers_ping(port: u16) -> bool {
    let ping = || -> std::io::Result<bool> {
        let timeout = Some(Duration::from_millis(200));
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
        stream.set_read_timeout(timeout)?;
        stream.set_write_timeout(timeout)?;
        stream.write_all(b"PING\r\n")?;
        let mut reply = [0; 7];
        stream.read_exact(&mut reply)?;
        Ok(&reply == b"+PONG\r\n")
    };
    ping().unwrap_or(false)
}

/// Every key under `store`'s prefix, read with `SCAN` on `conn`.
pub async fn keys_under(
    conn: &mut redis::aio::MultiplexedConnection,
    store: &RedisStore,
) -> Vec<String> {
    use redis::AsyncCommands;
    let mut iter: redis::AsyncIter<String> = conn
        .scan_match(format!("{}:*", store.prefix()))
        .await
        .unwrap();
    let mut keys = Vec::new();
    while let Some(key) = iter.next_item().await {
        keys.push(key.unwrap());
    }
    keys
}

/// Field `field` of `INFO section`, as text.
pub async fn info_field(
    conn: &mut redis::aio::MultiplexedConnection,
    section: &str,
    field: &str,
) -> String {
    let info: String = redis::cmd("INFO")
        .arg(section)
        .query_async(conn)
        .await
        .unwrap();
    let prefix = format!("{field}:");
    info.lines()
        .find_map(|line| line.strip_prefix(prefix.as_str()))
        .map(|value| value.trim().to_owned())
        .unwrap_or_else(|| panic!("INFO {section} reports no {field}"))
}

/// How many times each command ran (`calls` of `INFO commandstats`, by lowercase name),
/// counting the commands that scripts call.
pub async fn command_calls(
    conn: &mut redis::aio::MultiplexedConnection,
) -> std::collections::HashMap<String, u64> {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .filter_map(|line| {
            let (name, stats) = line.strip_prefix("cmdstat_")?.split_once(':')?;
            let calls = stats
                .strip_prefix("calls=")?
                .split(',')
                .next()?
                .parse()
                .ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// `CONFIG SET name value` on `conn`.
pub async fn config_set(conn: &mut redis::aio::MultiplexedConnection, name: &str, value: &str) {
    redis::cmd("CONFIG")
        .arg("SET")
        .arg(name)
        .arg(value)
        .exec_async(conn)
        .await
        .unwrap();
}

/// `CLIENT PAUSE ms ALL` on `conn`: the server keeps its connections open but runs no command
/// for `ms` milliseconds.
pub async fn pause_clients(conn: &mut redis::aio::MultiplexedConnection, ms: u64) {
    redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(ms)
        .arg("ALL")
        .exec_async(conn)
        .await
        .unwrap();
}

/// A connection of its own to `store`'s server, for looking behind the store's back.
pub async fn raw_connection(store: &RedisStore) -> redis::aio::MultiplexedConnection {
    store
        .dedicated_connection()
        .await
        .expect("a raw connection")
}

/// How many ms `key` has left (`PTTL`).
pub async fn pttl(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PTTL").arg(key).query_async(conn).await.unwrap()
}

/// When `key` expires, in ms since the Unix epoch. Unlike two `PTTL` readings taken one after
/// the other, two of these compare exactly.
pub async fn expire_time(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("PEXPIRETIME")
        .arg(key)
        .query_async(conn)
        .await
        .unwrap()
}

/// Redis's clock, in ms.
pub async fn redis_ms(conn: &mut redis::aio::MultiplexedConnection) -> i64 {
    let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(conn).await.unwrap();
    secs * 1000 + micros / 1000
}
