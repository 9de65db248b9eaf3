//! Test nodes on port 0, talked to like a browser would. Two ways to run one:
//!
//! - in-process ([`Node::start`], [`Node::start_with`], [`Node::start_on`]): the library's
//!   `node::run` on its own multi-thread runtime in its own thread, stopped gracefully on
//!   drop. No binary to exec and no log line to wait for, so most suites use these.
//! - a real `livetally` process ([`Node::spawn`], [`Node::spawn_with`], [`Node::spawn_on`],
//!   [`Node::spawn_many`]), for tests where the process is the point: signals, crashes,
//!   exit status, the node's log, its pid, or several nodes sharing one store.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use anyhow::Context;
use clap::Parser;
use futures_util::{SinkExt, StreamExt};
use livetally::config::Config;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_util::sync::CancellationToken;

use super::wait::{eventually_blocking, poll};

/// Operator token every test node uses.
pub const TOKEN: &str = "test-operator-token-0123456789";

/// How long a test waits for a condition before failing.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// Which store a test node runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Memory,
    Redis,
    Cluster,
}

/// The Redis processes behind a test node, stopped when the node is dropped.
pub enum Storage {
    Memory,
    Redis(super::redis::RedisServer),
    Cluster(super::redis::RedisCluster),
}

impl Storage {
    /// Starts fresh servers for `backend` (each test gets its own, so tests never share keys).
    pub fn start(backend: Backend) -> Storage {
        match backend {
            Backend::Memory => Storage::Memory,
            Backend::Redis => Storage::Redis(super::redis::RedisServer::start()),
            Backend::Cluster => Storage::Cluster(super::redis::RedisCluster::start(3)),
        }
    }

    /// The node flags that select this store.
    pub fn args(&self) -> Vec<String> {
        match self {
            Storage::Memory => vec![],
            Storage::Redis(r) => vec!["--redis".into(), r.url()],
            Storage::Cluster(c) => vec!["--redis-cluster".into(), c.urls().join(",")],
        }
    }
}

/// Runs each listed `async fn(Backend)` as three tests: on the memory store, on a
/// standalone Redis and on a 3-master Redis Cluster.
#[macro_export]
macro_rules! on_every_store {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test($crate::support::node::Backend::Memory).await; })*
        }
        mod redis {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test($crate::support::node::Backend::Redis).await; })*
        }
        mod cluster {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $test() { super::$test($crate::support::node::Backend::Cluster).await; })*
        }
    };
}

/// How long a dropped in-process node may take to stop (flush, 1001 closes, server stop)
/// before the test goes on without it.
pub const STOP_PATIENCE: Duration = PATIENCE;

/// A running node, in-process or a process (see the module doc).
pub struct Node {
    pub addr: SocketAddr,
    pub http: reqwest::Client,
    /// The store's servers, when the node owns them (dropped after the node is stopped).
    pub storage: Option<Storage>,
    runner: Runner,
}

/// What runs a node.
enum Runner {
    /// `node::run` on its own runtime in `thread`, which reports the result on `done`
    /// after the runtime is gone.
    InProcess {
        shutdown: CancellationToken,
        done: Receiver<anyhow::Result<()>>,
        thread: Option<JoinHandle<()>>,
    },
    /// A `livetally` child process with its stderr lines.
    Process {
        child: Child,
        log: Arc<Mutex<Vec<String>>>,
        /// Kills the node if the test process dies without dropping it: an orphan would
        /// keep publishing presence into a later test's Redis.
        _watchdog: super::redis::Watchdog,
    },
}

/// The command line of a node on `listen` with `extra` flags: the operator token, and
/// `--tick 100ms` and `--flush-interval 20ms` unless `extra` sets them.
fn node_flags<'a>(listen: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["--listen", listen, "--operator-token", TOKEN];
    for (flag, default) in [("--tick", "100ms"), ("--flush-interval", "20ms")] {
        if !extra.contains(&flag) {
            args.extend([flag, default]);
        }
    }
    args.extend_from_slice(extra);
    args
}

/// What most tests are not about, turned off unless `extra` sets it: a viewer counts as
/// unique as soon as its socket opens (`--unique-after 0s`, as in v1) and connects are not
/// budgeted. `(flag, env var, value)`: a spawned process gets the env var, which an older
/// build (the upgrade tests) ignores and a flag in `extra` overrides.
const NOT_ABOUT_SCRIPTS: [(&str, &str, &str); 2] = [
    ("--unique-after", "LIVETALLY_UNIQUE_AFTER", "0s"),
    ("--max-connects-per-client", "LIVETALLY_MAX_CONNECTS_PER_CLIENT", "0"),
];

/// Parses a node's flags (and `LIVETALLY_*` variables) into its `Config` as the binary
/// does.
#[derive(Parser)]
#[command(name = "livetally")]
struct TestCli {
    #[command(flatten)]
    config: Config,
}

/// Binds a node's listener the way the binary does (deep backlog, `--reuse-port`). The one
/// place that names the library's bind. Needs a tokio runtime context.
fn bind(config: &Config) -> std::io::Result<std::net::TcpListener> {
    livetally::util::listen::bind(config.listen, config.reuse_port)
}

/// An in-process node's thread: a multi-thread runtime of its own, the listener (its
/// address sent on `bound`), then `node::run` until `shutdown`. Returns once the runtime
/// is gone.
fn serve(config: Config, shutdown: CancellationToken, bound: Sender<SocketAddr>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let listener = runtime
        .block_on(async { bind(&config) })
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let _ = bound.send(listener.local_addr()?);
    runtime.block_on(livetally::node::run(listener, config, shutdown))
}

/// Waits until the node at `addr` answers `GET /healthz` with 200, what the process's
/// "listening" line promises: the listener is bound before the server runs, so the request
/// waits in its backlog meanwhile; a node that fails to start closes it.
fn await_serving(addr: SocketAddr) -> std::io::Result<()> {
    let mut tcp = std::net::TcpStream::connect_timeout(&addr, PATIENCE)?;
    tcp.set_read_timeout(Some(PATIENCE))?;
    tcp.write_all(format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes())?;
    let mut response = Vec::new();
    tcp.read_to_end(&mut response)?;
    let status = String::from_utf8_lossy(&response)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned();
    if status.starts_with("HTTP/1.1 200 ") {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("/healthz answered {status:?}")))
    }
}

impl Node {
    /// Starts an in-process node on fresh servers of `backend`.
    ///
    /// In-process suites: `tests/api.rs`, `tests/bad_input.rs`, `tests/sockets.rs` (one
    /// node per test, talked to over HTTP and WebSockets only, dropped when the test
    /// ends), the Redis test of `tests/load_tool.rs` (the load tool is the process there)
    /// and the promtool test of `tests/deploy.rs` (one node's `/metrics`).
    pub fn start_with(backend: Backend, extra: &[&str]) -> Node {
        Self::with_storage(backend, extra, Self::start)
    }

    /// Starts an in-process node on 127.0.0.1:0 with fast ticks and flushes plus `extra`
    /// flags (see [`Node::start_with`] for who uses these).
    pub fn start(extra: &[&str]) -> Node {
        Self::start_on("127.0.0.1:0", extra)
    }

    /// Starts an in-process node on `listen`: `node::run` on its own multi-thread runtime
    /// in its own thread, so a test runtime that blocks or ends does not stall it. Drop
    /// stops it gracefully (sockets still open get 1001) and waits up to
    /// [`STOP_PATIENCE`].
    ///
    /// Runs inside the test process: it has no pid, no signals, no exit status and no
    /// captured log, and two of them share the default node id (hostname-pid), so
    /// several nodes on one store need `--node-id` each or, better, [`Node::spawn_many`].
    pub fn start_on(listen: &str, extra: &[&str]) -> Node {
        let mut argv: Vec<&str> = std::iter::once("livetally").chain(node_flags(listen, extra)).collect();
        for (flag, _, value) in NOT_ABOUT_SCRIPTS {
            if !extra.contains(&flag) {
                argv.extend([flag, value]);
            }
        }
        let config = TestCli::try_parse_from(&argv)
            .unwrap_or_else(|e| panic!("bad node flags {argv:?}: {e}"))
            .config;
        let shutdown = CancellationToken::new();
        let stop = shutdown.clone();
        let (bound_tx, bound) = std::sync::mpsc::channel();
        let (done_tx, done) = std::sync::mpsc::channel();
        let thread = std::thread::Builder::new()
            .name(format!("node {listen}"))
            .spawn(move || {
                let _ = done_tx.send(serve(config, stop, bound_tx));
            })
            .expect("spawn node thread");
        // A TLS node is not probed in clear: its listener is bound, so the test's first
        // request waits in the backlog until it serves (see `support::tls`).
        let tls = argv.contains(&"--tls-cert");
        let started = bound
            .recv_timeout(PATIENCE)
            .map_err(|e| e.to_string())
            .and_then(|addr| match tls {
                true => Ok(addr),
                false => await_serving(addr).map(|()| addr).map_err(|e| e.to_string()),
            });
        let addr = started.unwrap_or_else(|e| {
            shutdown.cancel();
            let ended = match done.recv_timeout(PATIENCE) {
                Ok(Err(run)) => format!("{run:#}"),
                other => format!("{other:?}"),
            };
            panic!("node did not start ({e}): {ended}");
        });
        Node {
            addr,
            http: Self::client(false),
            storage: None,
            runner: Runner::InProcess {
                shutdown,
                done,
                thread: Some(thread),
            },
        }
    }

    /// Spawns one node process per argument list, concurrently.
    ///
    /// Process suites with several nodes: `tests/multinode.rs` and `tests/faults.rs` (nodes
    /// sharing a store are told apart by their process, and get killed, stopped with
    /// SIGSTOP/SIGTERM and waited for).
    pub fn spawn_many(args: &[Vec<String>]) -> Vec<Node> {
        std::thread::scope(|s| {
            let handles: Vec<_> = args
                .iter()
                .map(|a| s.spawn(move || Node::spawn(&a.iter().map(String::as_str).collect::<Vec<_>>())))
                .collect();
            handles.into_iter().map(|h| h.join().expect("node start")).collect()
        })
    }

    /// Node processes named `ids` on one standalone `redis`, each with `extra` flags
    /// (started at once, as [`Node::spawn_many`]).
    pub fn spawn_on_redis(redis: &super::redis::RedisServer, ids: &[&str], extra: &[&str]) -> Vec<Node> {
        let args: Vec<Vec<String>> = ids
            .iter()
            .map(|id| {
                let mut a: Vec<String> = vec!["--redis".into(), redis.url(), "--node-id".into(), (*id).into()];
                a.extend(extra.iter().map(|s| s.to_string()));
                a
            })
            .collect();
        Node::spawn_many(&args)
    }

    /// Spawns a node process on fresh servers of `backend`.
    ///
    /// Used by `tests/shutdown.rs`: SIGTERM, the exit status and the "stopped" log line
    /// are what it checks.
    pub fn spawn_with(backend: Backend, extra: &[&str]) -> Node {
        Self::with_storage(backend, extra, Self::spawn)
    }

    /// Spawns a node process on 127.0.0.1:0 with fast ticks and flushes plus `extra`
    /// flags.
    ///
    /// Used where the process is the point: signals, SIGKILL, exit status, the node's log
    /// or pid (`tests/faults.rs`, `tests/multinode.rs`, the nginx and drain tests of
    /// `tests/deploy.rs`, the node usage in the report of `tests/load_tool.rs`), and
    /// several nodes on one store (the Prometheus test of `tests/deploy.rs`).
    pub fn spawn(extra: &[&str]) -> Node {
        Self::spawn_on("127.0.0.1:0", extra)
    }

    /// Spawns a node process on `listen` (a fixed port for restarts) and waits for its
    /// "listening" line.
    pub fn spawn_on(listen: &str, extra: &[&str]) -> Node {
        Self::spawn_bin(env!("CARGO_BIN_EXE_livetally"), listen, extra)
    }

    /// [`spawn_on`](Self::spawn_on) with another build of the binary (an older release, for
    /// upgrade tests).
    pub fn spawn_bin(bin: &str, listen: &str, extra: &[&str]) -> Node {
        let mut cmd = Command::new(bin);
        let mut child = cmd
            .arg("serve")
            .args(node_flags(listen, extra))
            .envs(NOT_ABOUT_SCRIPTS.map(|(_, var, value)| (var, value)))
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn livetally");
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(i) = line.find("listening addr=") {
                    let rest = &line[i + "listening addr=".len()..];
                    let addr = rest.split_whitespace().next().unwrap_or("").to_owned();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                }
                sink.lock().unwrap().push(line);
            }
        });
        let addr = match rx.recv_timeout(PATIENCE) {
            Ok(a) => a.parse().expect("listening address"),
            Err(_) => {
                let _ = child.kill();
                panic!("node did not start: {:?}", log.lock().unwrap());
            }
        };
        Node {
            addr,
            http: Self::client(true),
            storage: None,
            runner: Runner::Process {
                _watchdog: super::redis::Watchdog::kill_on_exit(child.id()).expect("node watchdog"),
                child,
                log,
            },
        }
    }

    /// Starts fresh servers of `backend` and a node on them with `start`.
    fn with_storage(backend: Backend, extra: &[&str], start: fn(&[&str]) -> Node) -> Node {
        let storage = Storage::start(backend);
        let args = storage.args();
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend_from_slice(extra);
        let mut node = start(&all);
        node.storage = Some(storage);
        node
    }

    /// The node's HTTP client. `keep_alive: false` sends `connection: close`, so the node
    /// closes each connection as it answers: a graceful stop waits for open connections
    /// (actix's 2 s shutdown timeout, checked once a second), while a killed process does
    /// not. Leaving the close to the client raced with the stop now and then.
    fn client(keep_alive: bool) -> reqwest::Client {
        let mut builder = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none());
        if !keep_alive {
            let close = [(
                reqwest::header::CONNECTION,
                reqwest::header::HeaderValue::from_static("close"),
            )];
            builder = builder.default_headers(close.into_iter().collect());
        }
        builder.build().unwrap()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// The node's process, for nodes started with `Node::spawn*`.
    fn child(&mut self) -> &mut Child {
        match &mut self.runner {
            Runner::Process { child, .. } => child,
            Runner::InProcess { .. } => panic!("an in-process node has no process: start it with Node::spawn*"),
        }
    }

    /// The node's pid: a process node's own, None for an in-process node.
    pub fn process_id(&self) -> Option<u32> {
        match &self.runner {
            Runner::Process { child, .. } => Some(child.id()),
            Runner::InProcess { .. } => None,
        }
    }

    /// The pid of a process node (panics for an in-process one).
    pub fn pid(&self) -> u32 {
        self.process_id()
            .expect("an in-process node has no process: start it with Node::spawn*")
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.pid().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self) -> ExitStatus {
        let child = self.child();
        eventually_blocking(PATIENCE, "the node to exit", || child.try_wait().unwrap())
    }

    /// Operator API call; returns (status, body as JSON or Null).
    pub async fn op(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call(method, path, body, Some(TOKEN)).await
    }

    /// Any API call with an optional bearer token.
    pub async fn call(&self, method: &str, path: &str, body: Option<Value>, token: Option<&str>) -> (u16, Value) {
        let mut req = self.http.request(method.parse().unwrap(), self.url(path));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("http request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// Creates a campaign with default kinds; panics unless 201.
    pub async fn campaign(&self, id: &str) -> Value {
        self.campaign_with(json!({"id": id, "title": format!("Campaign {id}")}))
            .await
    }

    pub async fn campaign_with(&self, body: Value) -> Value {
        let (status, c) = self.op("POST", "/api/v1/campaigns", Some(body)).await;
        assert_eq!(status, 201, "create campaign: {c}");
        c
    }

    /// Waits until this node knows campaign `id`: one created on another node is known to
    /// every node within a tick (the node's campaign index).
    pub async fn await_known(&self, id: &str) {
        let path = format!("/api/v1/campaigns/{id}");
        super::wait::eventually(format!("campaign {id} known on {}", self.addr), || async {
            self.call("GET", &path, None, None).await.0 == 200
        })
        .await;
    }

    /// Public stats of a campaign as of a tick after this call began (a node answers from
    /// its last tick's read, so what the caller did before shows), or an ended campaign's
    /// final ones.
    pub async fn stats(&self, id: &str) -> Value {
        let path = format!("/api/v1/campaigns/{id}");
        let start = livetally::util::now_ms();
        let fresh = poll(PATIENCE, || async {
            let (status, c) = self.call("GET", &path, None, None).await;
            assert_eq!(status, 200, "campaign: {c}");
            let s = c["stats"].clone();
            if s["at"].as_i64() >= Some(start) || c["state"] == "ended" {
                Ok(s)
            } else {
                Err(s)
            }
        })
        .await;
        fresh.unwrap_or_else(|last| panic!("no stats of a tick after the call: {}", last.unwrap_or_default()))
    }

    /// Polls the stats until `pred` holds; returns them, or fails with the last seen.
    /// A campaign created on another node is known here within a tick: waits for that first.
    pub async fn await_stats(&self, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        self.await_known(id).await;
        let stats = poll(PATIENCE, || async {
            let s = self.stats(id).await;
            if pred(&s) {
                Ok(s)
            } else {
                Err(s)
            }
        })
        .await;
        stats.unwrap_or_else(|last| {
            panic!(
                "timed out waiting for {what}; last stats: {}\nnode log:\n{}",
                last.unwrap_or_default(),
                self.log_text()
            )
        })
    }

    /// Opens a viewer socket with the given query string.
    pub async fn viewer(&self, campaign: &str, query: &str) -> Ws {
        Ws::connect(&self.ws_url(&format!("/ws/v1/campaigns/{campaign}?{query}")))
            .await
            .unwrap_or_else(|status| panic!("viewer socket refused with {status}"))
    }

    /// Opens a socket expecting the upgrade to be refused; returns the HTTP status.
    pub async fn refused(&self, path_and_query: &str) -> u16 {
        match Ws::connect(&self.ws_url(path_and_query)).await {
            Ok(_) => panic!("socket {path_and_query} was accepted"),
            Err(status) => status,
        }
    }

    /// The node's log (stderr lines) for a process node; an in-process node's tracing
    /// output is not captured, so it gets a note saying so.
    pub fn log_text(&self) -> String {
        match &self.runner {
            Runner::Process { log, .. } => log.lock().unwrap().join("\n"),
            Runner::InProcess { .. } => {
                "(in-process node: its log is not captured; start it with Node::spawn* to see it)".to_owned()
            }
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        match &mut self.runner {
            Runner::Process { child, .. } => {
                let _ = child.kill();
                let _ = child.wait();
            }
            Runner::InProcess { shutdown, done, thread } => {
                shutdown.cancel();
                // Never panics here: the node may be dropped while a failed test unwinds.
                match done.recv_timeout(STOP_PATIENCE) {
                    Ok(result) => {
                        if let Some(t) = thread.take() {
                            let _ = t.join();
                        }
                        if let Err(e) = result {
                            eprintln!("in-process node {} failed: {e:#}", self.addr);
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => {
                        eprintln!(
                            "in-process node {} did not stop within {STOP_PATIENCE:?}; left running",
                            self.addr
                        );
                    }
                    Err(RecvTimeoutError::Disconnected) => {
                        if let Some(Err(panic)) = thread.take().map(JoinHandle::join) {
                            let what = panic
                                .downcast_ref::<&str>()
                                .map(|s| s.to_string())
                                .or_else(|| panic.downcast_ref::<String>().cloned())
                                .unwrap_or_default();
                            eprintln!("in-process node {} panicked: {what}", self.addr);
                        }
                    }
                }
            }
        }
    }
}

/// A WebSocket client.
pub struct Ws {
    pub stream: tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
}

/// What a socket ended with.
#[derive(Debug, PartialEq, Eq)]
pub enum End {
    Close(u16),
    NoCloseFrame,
}

impl Ws {
    /// Connects; on refusal returns the HTTP status.
    pub async fn connect(url: &str) -> Result<Ws, u16> {
        Self::connect_with(url, &[]).await
    }

    /// Connects with extra request headers.
    pub async fn connect_with(url: &str, headers: &[(&str, &str)]) -> Result<Ws, u16> {
        use tungstenite::client::IntoClientRequest;
        let mut req = url.into_client_request().unwrap();
        for (k, v) in headers {
            req.headers_mut().insert(
                tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
                v.parse().unwrap(),
            );
        }
        let connect = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(req));
        match connect
            .await
            .unwrap_or_else(|_| panic!("websocket connect to {url} timed out"))
        {
            Ok((stream, _)) => Ok(Ws { stream }),
            Err(tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
            Err(e) => panic!("websocket connect to {url} failed: {e}"),
        }
    }

    pub async fn send(&mut self, v: Value) {
        self.stream.send(Message::text(v.to_string())).await.expect("send");
    }

    pub async fn send_text(&mut self, s: &str) {
        self.stream.send(Message::text(s.to_owned())).await.expect("send");
    }

    /// The next JSON message (control frames skipped); panics on close or timeout.
    pub async fn next(&mut self) -> Value {
        self.next_before(tokio::time::Instant::now() + PATIENCE).await
    }

    /// [`next`](Self::next) with one deadline for the whole wait: the server pings every
    /// 10 s and pushes stats every tick, so a per-read timeout would restart on every
    /// frame and might never fire.
    async fn next_before(&mut self, deadline: tokio::time::Instant) -> Value {
        loop {
            let msg = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("timed out waiting for a message")
                .expect("socket ended")
                .expect("socket error");
            match msg {
                Message::Text(t) => return serde_json::from_str(&t).expect("server sent JSON"),
                Message::Close(c) => panic!("socket closed: {c:?}"),
                _ => continue,
            }
        }
    }

    /// The next message of `ty` (other types skipped).
    pub async fn next_of(&mut self, ty: &str) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let v = self.next_before(deadline).await;
            if v["type"] == ty {
                return v;
            }
        }
    }

    /// Reads until a message satisfies `pred`.
    pub async fn until(&mut self, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let v = self.next_before(deadline).await;
            if pred(&v) {
                return v;
            }
        }
    }

    /// Reads until the server closes; returns the close code.
    pub async fn closed(&mut self) -> End {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let msg = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("timed out waiting for close");
            match msg {
                Some(Ok(Message::Close(Some(frame)))) => return End::Close(u16::from(frame.code)),
                Some(Ok(Message::Close(None))) => return End::Close(u16::from(CloseCode::Status)),
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return End::NoCloseFrame,
            }
        }
    }

    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
        // Read until the server's close reply, so the server has seen ours.
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, self.stream.next()).await {
            if m.is_close() {
                break;
            }
        }
    }
}

/// Sketch counts (`unique_viewers`, `interactors`) are exact on the embedded store below a
/// few thousand ids and within the contract's 1% everywhere.
pub fn assert_sketch(value: &Value, expected: u64) {
    let v = value.as_u64().unwrap_or_else(|| panic!("not a count: {value}"));
    let tolerance = (expected / 100).max(1);
    assert!(
        v.abs_diff(expected) <= tolerance,
        "sketch count {v} is not within 1% of {expected}"
    );
}
