//! Starts real `livetally` processes on port 0 and talks to them like a browser would.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{self, Message};

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

/// A running node process.
pub struct Node {
    child: Child,
    pub addr: SocketAddr,
    pub log: Arc<Mutex<Vec<String>>>,
    pub http: reqwest::Client,
    /// The store's servers, when the node owns them (dropped after the node is killed).
    pub storage: Option<Storage>,
    /// Kills the node if the test process dies without dropping it: an orphan would keep
    /// publishing presence into a later test's Redis.
    _watchdog: super::redis::Watchdog,
}

impl Node {
    /// Starts one node per argument list, concurrently (each start waits for the node's
    /// "listening" line).
    pub fn start_many(args: &[Vec<String>]) -> Vec<Node> {
        std::thread::scope(|s| {
            let handles: Vec<_> = args
                .iter()
                .map(|a| s.spawn(move || Node::start(&a.iter().map(String::as_str).collect::<Vec<_>>())))
                .collect();
            handles.into_iter().map(|h| h.join().expect("node start")).collect()
        })
    }

    /// Starts a node on fresh servers of `backend`.
    pub fn start_with(backend: Backend, extra: &[&str]) -> Node {
        let storage = Storage::start(backend);
        let args = storage.args();
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend_from_slice(extra);
        let mut node = Self::start(&all);
        node.storage = Some(storage);
        node
    }

    /// Starts a node with fast ticks and flushes plus `extra` flags.
    pub fn start(extra: &[&str]) -> Node {
        Self::start_on("127.0.0.1:0", extra)
    }

    /// Starts a node on `listen` (a fixed port for restarts). `--tick 100ms` and
    /// `--flush-interval 20ms` unless `extra` sets them.
    pub fn start_on(listen: &str, extra: &[&str]) -> Node {
        Self::start_bin(env!("CARGO_BIN_EXE_livetally"), listen, extra)
    }

    /// [`start_on`](Self::start_on) with another build of the binary (an older release, for
    /// upgrade tests).
    pub fn start_bin(bin: &str, listen: &str, extra: &[&str]) -> Node {
        let mut args = vec!["serve", "--listen", listen, "--operator-token", TOKEN];
        for (flag, default) in [("--tick", "100ms"), ("--flush-interval", "20ms")] {
            if !extra.contains(&flag) {
                args.extend([flag, default]);
            }
        }
        args.extend_from_slice(extra);
        let mut cmd = Command::new(bin);
        let mut child = cmd
            .args(&args)
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
            log,
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            storage: None,
            _watchdog: super::redis::Watchdog::kill_on_exit(child.id()).expect("node watchdog"),
            child,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([&format!("-{sig}"), &self.child.id().to_string()])
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit.
    pub fn wait(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(Instant::now() < deadline, "node did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
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

    /// Public stats of a campaign.
    pub async fn stats(&self, id: &str) -> Value {
        let (status, s) = self
            .call("GET", &format!("/api/v1/campaigns/{id}/stats"), None, None)
            .await;
        assert_eq!(status, 200, "stats: {s}");
        s
    }

    /// Polls the stats until `pred` holds; returns them, or fails with the last seen.
    pub async fn await_stats(&self, id: &str, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let s = self.stats(id).await;
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; last stats: {s}\nnode log:\n{}",
                self.log_text()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
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

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
