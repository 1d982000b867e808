//! The chat example as a process of its own, for tests that stop it the way an operator or a
//! crash does (SIGTERM, SIGKILL) and start it again.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A running `chat` example. Killed on drop.
pub struct ChatProcess {
    child: Child,
    pub addr: SocketAddr,
}

/// The chat example's binary, which `cargo test` builds beside the test binaries.
fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/debug/deps/<test> -> target/debug/examples/chat
    let examples = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the target directory")
        .join("examples");
    let chat = examples.join(format!("chat{}", std::env::consts::EXE_SUFFIX));
    assert!(
        chat.exists(),
        "{} is missing: `cargo test` builds the examples; run `cargo build --examples`",
        chat.display()
    );
    chat
}

impl ChatProcess {
    /// Starts the chat example on a free port with `env` set, and waits until it listens.
    pub fn start(env: &[(&str, &str)]) -> ChatProcess {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        ChatProcess::start_on(SocketAddr::from(([127, 0, 0, 1], port)), env)
    }

    /// Starts the chat example on `addr` (again, after a stop) with `env` set, and waits until
    /// it listens.
    pub fn start_on(addr: SocketAddr, env: &[(&str, &str)]) -> ChatProcess {
        ChatProcess::spawn(addr, env, Stdio::null())
    }

    /// Starts the chat example on a free port with `env`, its log (at the `RUST_LOG` that `env`
    /// sets, `warn` otherwise) written to `log`.
    pub fn start_logged(env: &[(&str, &str)], log: &std::path::Path) -> ChatProcess {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let file = std::fs::File::create(log).expect("the log file can be made");
        ChatProcess::spawn(SocketAddr::from(([127, 0, 0, 1], port)), env, file.into())
    }

    fn spawn(addr: SocketAddr, env: &[(&str, &str)], log: Stdio) -> ChatProcess {
        let mut command = Command::new(binary());
        command
            .env("ADDR", addr.to_string())
            .env("RUST_LOG", "warn")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(Stdio::inherit());
        for (name, value) in env {
            command.env(name, value);
        }
        let mut child = command.spawn().expect("the chat example starts");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(addr).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("the chat example exited before listening: {status}");
            }
            assert!(
                Instant::now() < deadline,
                "the chat example never listened on {addr}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        ChatProcess { child, addr }
    }

    /// Sends `signal` (`TERM`, `KILL`, `INT`) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the process to exit, at most `within`; its exit status.
    pub fn wait(&mut self, within: Duration) -> ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self
                .child
                .try_wait()
                .expect("the process can be waited for")
            {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the chat example did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for ChatProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs the chat example with `env` until it exits by itself (it should fail at start), and
/// returns its exit status and what it wrote to stderr.
///
/// # Panics
///
/// When it cannot be started.
pub fn run_to_exit(env: &[(&str, &str)]) -> (ExitStatus, String) {
    let mut command = Command::new(binary());
    command
        .env("ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    for (name, value) in env {
        command.env(name, value);
    }
    let child = command.spawn().expect("the chat example starts");
    let output = child.wait_with_output().expect("the chat example exits");
    (
        output.status,
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}
