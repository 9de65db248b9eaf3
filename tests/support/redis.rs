//! Real `redis-server` processes for integration tests: a standalone server or a
//! 3-master Cluster, each on free ports with its own temp directory.
//!
//! No test ever leaves a server behind: every server gets a watchdog shell that holds the
//! read end of a pipe whose write end only this test process has. When the process exits,
//! however it exits (panic, abort, SIGKILL, or a `static` server that is never dropped),
//! the pipe closes, the watchdog's `read` returns, and it kills the server and removes its
//! directory. `Drop` does the same eagerly.
//!
//! Port 6379 is never used, and nothing is flushed on a server the harness did not start.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::wait::{eventually_blocking, poll_blocking};

/// How long a fresh server may take to answer PING (AOF replay included).
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a gracefully stopped server may take to exit before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a new Cluster may take until every node reports `cluster_state:ok`.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at finding a free port before giving up (ports can be taken between our probe
/// and the server's bind).
const START_ATTEMPTS: usize = 10;
/// How long a restart on the same port may keep failing before the test gives up.
const RESTART_TIMEOUT: Duration = Duration::from_secs(5);

/// How a server persists.
#[derive(Debug, Clone, Default)]
pub struct RedisOptions {
    /// `appendonly yes` + `appendfsync always`: every acknowledged write survives a
    /// restart (even `kill -9`) on the same directory and port.
    pub aof: bool,
    /// Extra `--flag value` arguments (e.g. the Cluster ones).
    pub extra_args: Vec<String>,
}

/// One `redis-server` process owned by the test.
pub struct RedisServer {
    port: u16,
    dir: PathBuf,
    options: RedisOptions,
    child: Option<Child>,
    watchdog: Option<Watchdog>,
}

/// A shell that kills the server (and removes its directory) when our end of its stdin
/// pipe closes, i.e. when this process goes away.
pub struct Watchdog {
    child: Child,
    _stdin: ChildStdin,
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl RedisServer {
    /// A server without persistence (`--save "" --appendonly no`).
    pub fn start() -> RedisServer {
        Self::start_with(RedisOptions::default())
    }

    /// A server with AOF (`appendfsync always`), for restart tests.
    pub fn start_with_aof() -> RedisServer {
        Self::start_with(RedisOptions {
            aof: true,
            ..RedisOptions::default()
        })
    }

    pub fn start_with(options: RedisOptions) -> RedisServer {
        let cluster = options.extra_args.iter().any(|a| a == "--cluster-enabled");
        let mut last_error = String::new();
        for _ in 0..START_ATTEMPTS {
            let port = free_port(cluster);
            let mut server = RedisServer {
                port,
                dir: temp_dir("redis"),
                options: options.clone(),
                child: None,
                watchdog: None,
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => last_error = e,
            }
        }
        panic!("could not start redis-server: {last_error}");
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The server's pid (panics when it is stopped).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("redis-server is not running").id()
    }

    /// SIGSTOP: the server keeps its sockets open but answers nothing (a hung Redis).
    pub fn pause(&self) {
        signal(self.pid(), "STOP");
    }

    /// SIGCONT after [`pause`](Self::pause).
    pub fn resume(&self) {
        signal(self.pid(), "CONT");
    }

    /// Graceful stop (SIGTERM, which also fsyncs the AOF), SIGKILL after 5 s. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            signal(child.id(), "CONT"); // a paused server cannot handle SIGTERM
            signal(child.id(), "TERM");
            let _ = poll_blocking(STOP_TIMEOUT, || matches!(child.try_wait(), Ok(Some(_))));
            let _ = child.kill();
            let _ = child.wait();
        }
        self.watchdog = None;
    }

    /// SIGKILL: a crash. With AOF + `appendfsync always` nothing acknowledged is lost.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.watchdog = None;
    }

    /// Stops the server if it runs and starts it again on the same port and directory.
    pub fn restart(&mut self) {
        self.stop();
        // The port may still be held for a moment by the old process's sockets.
        let port = self.port;
        eventually_blocking(
            RESTART_TIMEOUT,
            format!("redis-server to restart on port {port}"),
            || self.spawn(),
        );
    }

    /// Runs one command on this server (blocking) and returns the reply.
    pub fn query<T: ::redis::FromRedisValue>(&self, args: &[&str]) -> T {
        let client = ::redis::Client::open(self.url()).expect("redis url");
        let mut con = client
            .get_connection_with_timeout(Duration::from_secs(2))
            .expect("connect to test redis");
        let mut cmd = ::redis::cmd(args[0]);
        for a in &args[1..] {
            cmd.arg(*a);
        }
        cmd.query(&mut con).expect("query test redis")
    }

    /// Keys matching `pattern` plus the fields, members or elements inside them (a string
    /// or sketch counts as its key alone): how much this server holds of something, for
    /// tests that check the store stops growing.
    pub fn footprint(&self, pattern: &str) -> u64 {
        let keys: Vec<String> = self.query(&["KEYS", pattern]);
        let mut total = 0;
        for key in &keys {
            let kind: String = self.query(&["TYPE", key]);
            let len = match kind.as_str() {
                "hash" => "HLEN",
                "zset" => "ZCARD",
                "set" => "SCARD",
                "list" => "LLEN",
                _ => {
                    total += 1;
                    continue;
                }
            };
            total += 1 + self.query::<u64>(&[len, key]);
        }
        total
    }

    fn spawn(&mut self) -> Result<(), String> {
        std::fs::create_dir_all(&self.dir).map_err(|e| format!("create {:?}: {e}", self.dir))?;
        let mut cmd = Command::new("redis-server");
        cmd.args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--daemonize", "no"])
            .args(["--save", ""])
            .args(["--dir", &self.dir.to_string_lossy()])
            .args(["--logfile", "redis.log"]);
        if self.options.aof {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        cmd.args(&self.options.extra_args);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn redis-server (run scripts/install-test-deps.sh): {e}"))?;
        let watchdog = Watchdog::guard(child.id(), &self.dir)?;
        // Settles with Err when the server exited, Ok once it answers PING.
        let ready = poll_blocking(READY_TIMEOUT, || match child.try_wait() {
            Ok(Some(status)) => Some(Err(status)),
            _ => ping(self.port).then_some(Ok(())),
        });
        match ready {
            Ok(Ok(())) => {}
            Ok(Err(status)) => {
                let log = std::fs::read_to_string(self.dir.join("redis.log")).unwrap_or_default();
                let tail: String = log.lines().rev().take(5).collect::<Vec<_>>().join(" | ");
                return Err(format!("redis-server on {} exited with {status}: {tail}", self.port));
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("redis-server on {} did not answer PING", self.port));
            }
        }
        self.child = Some(child);
        self.watchdog = Some(watchdog);
        Ok(())
    }
}

impl Watchdog {
    /// Kills `pid` when this process goes away (nodes started by the harness).
    pub fn kill_on_exit(pid: u32) -> Result<Watchdog, String> {
        Self::spawn(r#"read _unused; kill -9 "$1" 2>/dev/null"#, &[pid.to_string()])
    }

    /// Kills `pid` and removes `dir` when this process goes away (redis servers).
    fn guard(pid: u32, dir: &Path) -> Result<Watchdog, String> {
        let dir = dir.to_string_lossy().into_owned();
        Self::spawn(
            r#"read _unused; kill -9 "$1" 2>/dev/null; sleep 0.2; rm -rf "$2""#,
            &[pid.to_string(), dir],
        )
    }

    fn spawn(script: &str, args: &[String]) -> Result<Watchdog, String> {
        // `read` returns only at EOF: when every write end is closed, i.e. when this
        // process has exited (pipes are created close-on-exec, so no other child holds one).
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(script)
            .arg("livetally-watchdog")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawn watchdog: {e}"))?;
        let stdin = child.stdin.take().ok_or("watchdog stdin")?;
        Ok(Watchdog { child, _stdin: stdin })
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.watchdog = None; // killed first, so it cannot race the cleanup below
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A Redis Cluster of N masters (no replicas) on free ports.
pub struct RedisCluster {
    nodes: Vec<RedisServer>,
}

impl RedisCluster {
    pub fn start(masters: usize) -> RedisCluster {
        let nodes: Vec<RedisServer> = (0..masters)
            .map(|_| {
                RedisServer::start_with(RedisOptions {
                    aof: false,
                    // Relative paths resolve inside the node's `--dir`.
                    extra_args: vec![
                        "--cluster-enabled".into(),
                        "yes".into(),
                        "--cluster-config-file".into(),
                        "nodes.conf".into(),
                        "--cluster-node-timeout".into(),
                        "5000".into(),
                    ],
                })
            })
            .collect();
        let cluster = RedisCluster { nodes };
        cluster.create();
        cluster
    }

    fn create(&self) {
        let mut cmd = Command::new("redis-cli");
        cmd.arg("--cluster").arg("create");
        for n in &self.nodes {
            cmd.arg(format!("127.0.0.1:{}", n.port));
        }
        let out = cmd
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdin(Stdio::null())
            .output()
            .expect("run redis-cli --cluster create (run scripts/install-test-deps.sh)");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        for n in &self.nodes {
            let left = deadline.saturating_duration_since(Instant::now());
            eventually_blocking(left, format!("cluster_state:ok on {}", n.port), || {
                let info: String = n.query(&["CLUSTER", "INFO"]);
                if info.contains("cluster_state:ok") {
                    Ok(())
                } else {
                    Err(info)
                }
            });
        }
    }

    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisServer::url).collect()
    }

    pub fn nodes(&self) -> &[RedisServer] {
        &self.nodes
    }

    pub fn nodes_mut(&mut self) -> &mut [RedisServer] {
        &mut self.nodes
    }
}

/// True when the server on `port` answers PING.
fn ping(port: u16) -> bool {
    let Ok(client) = ::redis::Client::open(format!("redis://127.0.0.1:{port}/")) else {
        return false;
    };
    let Ok(mut con) = client.get_connection_with_timeout(Duration::from_millis(500)) else {
        return false;
    };
    matches!(::redis::cmd("PING").query::<String>(&mut con), Ok(s) if s == "PONG")
}

/// A port nobody listens on (never 6379). With `cluster`, the bus port (+10000) is free
/// too.
fn free_port(cluster: bool) -> u16 {
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local addr").port();
        if port == 6379 {
            continue;
        }
        if cluster {
            let Some(bus) = port.checked_add(10_000) else {
                continue;
            };
            if bus == 6379 || TcpListener::bind(("127.0.0.1", bus)).is_err() {
                continue;
            }
        }
        return port;
    }
}

/// A fresh, unique directory under the system temp dir.
fn temp_dir(what: &str) -> PathBuf {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "livetally-{what}-{}-{}-{nanos}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn signal(pid: u32, sig: &str) {
    let status = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
    if let Err(e) = status {
        eprintln!("kill -{sig} {pid}: {e}");
    }
}
