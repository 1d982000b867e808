//! The servers of the scale bench, each a process of its own: the chat example's release
//! binary (on `MemoryStore` or on the harness's Redis), or the bare server (this executable
//! again, with [`SERVE_ENV`] set). And what `/proc` tells about a process.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Set in a child process of this executable: serve the bare server on this address.
pub const SERVE_ENV: &str = "WS_SCALE_BARE_ADDR";

/// The servers, in table order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Bare,
    Memory,
    Redis,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Bare, Kind::Memory, Kind::Redis];

    /// The kind a short name gives (`bare`, `memory`, `redis`).
    pub fn named(name: &str) -> Option<Kind> {
        match name {
            "bare" => Some(Kind::Bare),
            "memory" => Some(Kind::Memory),
            "redis" => Some(Kind::Redis),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Kind::Bare => "bare",
            Kind::Memory => "chat, memory",
            Kind::Redis => "chat, Redis",
        }
    }
}

/// A server process on a fixed address.
pub struct Server {
    child: Child,
}

/// Builds the chat example (release with `--bench`, debug otherwise) and returns its path.
pub fn build_chat(release: bool) -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--quiet", "-p", "ws-session", "--example", "chat"]);
    if release {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build");
    assert!(status.success(), "cargo build --example chat failed");
    let target = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    target
        .join(if release { "release" } else { "debug" })
        .join("examples/chat")
}

impl Server {
    /// Starts `kind` on `addr` and waits until it accepts connections.
    pub fn start(
        kind: Kind,
        addr: SocketAddr,
        chat: &Path,
        redis_url: Option<&str>,
        max: usize,
    ) -> Server {
        let mut command = match kind {
            Kind::Bare => {
                let mut command = Command::new(std::env::current_exe().unwrap());
                command.env(SERVE_ENV, addr.to_string());
                command
            }
            Kind::Memory | Kind::Redis => {
                let mut command = Command::new(chat);
                command
                    .env("ADDR", addr.to_string())
                    .env("SESSION_TTL_SECS", "60")
                    .env("RESUME_SECS", "120")
                    .env("MAX_CONNECTIONS", (max + 1000).to_string())
                    .env(
                        "RUST_LOG",
                        std::env::var("WS_SCALE_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
                    )
                    .env_remove("REDIS_URL");
                if kind == Kind::Redis {
                    command.env(
                        "REDIS_URL",
                        redis_url.expect("a Redis for the Redis server"),
                    );
                }
                command
            }
        };
        // The chat example logs to stdout: shown only when asked for.
        let logs = if std::env::var_os("WS_SCALE_SERVER_LOG").is_some() {
            Stdio::inherit()
        } else {
            Stdio::null()
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(logs)
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start a server");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(addr).is_err() {
            assert!(Instant::now() < deadline, "{} did not start", kind.name());
            std::thread::sleep(Duration::from_millis(20));
        }
        Server { child }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the process to exit; how long that took.
    pub fn terminate(mut self) -> Duration {
        let started = Instant::now();
        let status = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success());
        let deadline = started + Duration::from_secs(60);
        loop {
            if self
                .child
                .try_wait()
                .expect("wait for the server")
                .is_some()
            {
                return started.elapsed();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("the server did not exit within a minute of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Resident memory of process `pid`, in bytes.
pub fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|kib| kib.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmRSS")
        * 1024
}

/// CPU time (user and system) process `pid` has used.
pub fn cpu(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read stat");
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat[stat.rfind(')').unwrap() + 2..].split(' ').collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // The kernel counts in USER_HZ, 100 per second on Linux.
    Duration::from_millis(ticks * 10)
}

/// The kernel's count of connections dropped because a listen queue was full.
pub fn listen_drops() -> u64 {
    let netstat = std::fs::read_to_string("/proc/net/netstat").expect("read netstat");
    let mut lines = netstat.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        if !names.starts_with("TcpExt:") {
            continue;
        }
        let names = names.split_whitespace();
        let values = values.split_whitespace();
        if let Some((_, value)) = names
            .zip(values)
            .find(|(name, _)| *name == "ListenOverflows")
        {
            return value.parse().unwrap_or(0);
        }
    }
    0
}

/// Serves the bare server on `addr` (in a child process), with the same listen queue as the
/// chat example, until killed.
pub fn serve_bare(addr: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("build the server's runtime");
    runtime.block_on(async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(addr.parse().unwrap()).unwrap();
        let listener = socket.listen(4096).unwrap();
        axum::serve(listener, crate::bare::router()).await.unwrap();
    });
}
