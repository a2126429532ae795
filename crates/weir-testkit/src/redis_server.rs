//! [`RedisServer`]: a throwaway `redis-server` on a free loopback port, for tests of weir's
//! Redis-backed sharing (shared limits, shared row groups).
//!
//! Each server gets its own temporary directory and no persistence (`--save ""`,
//! `--appendonly no`), so a restart comes back empty: that is the harsh case the fault tests need.
//! The process is killed when the value is dropped, so a failing test leaves nothing running.
//!
//! `redis-server` is a Debian package (`apt-get install -y redis-server`); `.ci/run` installs it
//! when it is missing. [`RedisServer::start_or_skip`] lets a developer without it run the rest of
//! the suite: it returns `None` (and says so on stderr) unless the `CI` environment variable is
//! set, where a missing server is an error so CI cannot silently skip the Redis tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

/// How long a freshly spawned server may take to answer `PING` before start fails.
const READY_DEADLINE: Duration = Duration::from_secs(10);

/// A running `redis-server` bound to 127.0.0.1 on its own port; killed on drop.
#[derive(Debug)]
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    binary: PathBuf,
    child: Option<Child>,
}

/// Why a [`RedisServer`] could not start.
#[derive(Debug)]
pub enum RedisServerError {
    /// No `redis-server` binary on `PATH` (or at `WEIR_REDIS_SERVER`).
    NotInstalled,
    /// Spawning, the temporary directory or the port probe failed.
    Io(std::io::Error),
    /// The process started but did not answer `PING` within the deadline.
    NotReady {
        /// The port it was started on.
        port: u16,
    },
}

impl std::fmt::Display for RedisServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotInstalled => write!(
                f,
                "redis-server is not installed (apt-get install -y redis-server), \
                 or set WEIR_REDIS_SERVER to its path"
            ),
            Self::Io(err) => write!(f, "redis-server: {err}"),
            Self::NotReady { port } => {
                write!(f, "redis-server on 127.0.0.1:{port} did not answer PING")
            }
        }
    }
}

impl std::error::Error for RedisServerError {}

impl From<std::io::Error> for RedisServerError {
    fn from(err: std::io::Error) -> Self {
        Self::Io(err)
    }
}

impl RedisServer {
    /// Starts a server on a free loopback port and waits until it answers `PING`.
    pub fn start() -> Result<Self, RedisServerError> {
        let binary = find_binary().ok_or(RedisServerError::NotInstalled)?;
        // A free port can be taken by a parallel test between the probe and redis-server's
        // bind; a few fresh ports make that race harmless.
        let mut last = None;
        for _ in 0..3 {
            let port = free_port()?;
            let dir =
                std::env::temp_dir().join(format!("weir-redis-{}-{port}", std::process::id()));
            std::fs::create_dir_all(&dir)?;
            let mut server = Self {
                port,
                dir,
                binary: binary.clone(),
                child: None,
            };
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or(RedisServerError::NotInstalled))
    }

    /// [`RedisServer::start`], but `None` when `redis-server` is missing outside CI, so a
    /// developer without it still runs the rest of the suite. Panics on any other failure, and
    /// on a missing server when `CI` is set.
    pub fn start_or_skip(test: &str) -> Option<Self> {
        match Self::start() {
            Ok(server) => Some(server),
            Err(RedisServerError::NotInstalled) if std::env::var_os("CI").is_none() => {
                eprintln!("skipping {test}: {}", RedisServerError::NotInstalled);
                None
            }
            Err(err) => panic!("{test}: {err}"),
        }
    }

    /// The port it listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `redis://127.0.0.1:PORT`, the form `--coordinator` and the Redis crates take.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Its working directory (empty: persistence is off).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Kills the server (SIGKILL) and waits for it; clients see the connection drop.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port, empty (nothing was persisted), and waits for `PING`.
    pub fn restart(&mut self) -> Result<(), RedisServerError> {
        self.stop();
        self.spawn()
    }

    /// Whether it answers `PING` now.
    pub fn is_ready(&self) -> bool {
        ping(self.addr())
    }

    fn spawn(&mut self) -> Result<(), RedisServerError> {
        let child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--protected-mode", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.child = Some(child);
        let started = Instant::now();
        // Readiness polling of an external process: there is no event to wait on. The deadline
        // bounds a broken install, not the test's behaviour.
        while started.elapsed() < READY_DEADLINE {
            if ping(self.addr()) {
                return Ok(());
            }
            sleep(Duration::from_millis(20));
        }
        self.stop();
        Err(RedisServerError::NotReady { port: self.port })
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn find_binary() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("WEIR_REDIS_SERVER") {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("redis-server"))
        .find(|candidate| candidate.is_file())
}

/// A port the OS just handed out; released at once so redis-server can bind it.
fn free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    Ok(listener.local_addr()?.port())
}

fn ping(addr: SocketAddr) -> bool {
    let Ok(mut conn) = TcpStream::connect_timeout(&addr, Duration::from_millis(200)) else {
        return false;
    };
    let _ = conn.set_read_timeout(Some(Duration::from_millis(500)));
    if conn.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut reply = [0u8; 7];
    matches!(conn.read(&mut reply), Ok(n) if reply[..n].starts_with(b"+PONG"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn starts_answers_and_restarts_empty() {
        let Some(mut server) = RedisServer::start_or_skip("starts_answers_and_restarts_empty")
        else {
            return;
        };
        assert!(server.is_ready());
        assert!(server.url().starts_with("redis://127.0.0.1:"));
        server.stop();
        assert!(!server.is_ready());
        server.restart().expect("restart");
        assert!(server.is_ready());
    }
}
