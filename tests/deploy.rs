//! The deployment kit run for real: a Prometheus on loopback scraping two nodes through the
//! shipped config and rules, `promtool check metrics` on a live `/metrics`, nginx with the
//! shipped config in front of two nodes, and the `--drain-period` shutdown behind the
//! Kubernetes preStop drain.
//!
//! Prometheus and nginx come from Debian's packages, which `scripts/deploy-check.sh`
//! installs. A test whose tool is absent skips with a loud message, unless
//! `LIVETALLY_REQUIRE_DEPLOY_TOOLS=1` (set by `deploy-check.sh --live`) makes that a failure.

mod support;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use support::load;
use support::node::{End, Node, Ws, PATIENCE};
use support::redis::RedisServer;
use support::tls::TestCa;
use support::wait::{eventually, poll, poll_blocking};

/// Path of a file of the repository.
fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo(path)).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// The tool's path, or None after a loud skip message (a failure when tools are required).
fn require(tool: &str, test: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/local/sbin")])
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file());
    if found.is_none() {
        let msg = format!("`{tool}` is not installed: run `bash scripts/deploy-check.sh` to install it");
        if std::env::var("LIVETALLY_REQUIRE_DEPLOY_TOOLS").as_deref() == Ok("1") {
            panic!("{test}: {msg}");
        }
        // Straight to the process's stderr: libtest captures `eprintln!` of passing tests.
        let bar = "!".repeat(100);
        let _ = writeln!(std::io::stderr(), "\n{bar}\nSKIPPED {test}: {msg}\n{bar}\n");
    }
    found
}

/// A port that was free a moment ago (the tool binds it itself; a start retries on a clash).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A fresh scratch directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("livetally-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Replaces `from` by `to` in the shipped file's text, failing loudly when `from` is gone:
/// the substitutions are the contract between the shipped files and these tests.
fn substitute(text: &str, file: &str, pairs: &[(&str, String)]) -> String {
    let mut out = text.to_owned();
    for (from, to) in pairs {
        assert!(
            out.contains(from),
            "{file} no longer contains {from:?}; update tests/deploy.rs"
        );
        out = out.replace(from, to);
    }
    out
}

/// A child process (Prometheus or nginx) that dies with the test: `death_signal` reaches it
/// if the test process goes away, and Drop stops it with SIGTERM (nginx's master then stops
/// its workers) and waits.
struct Tool {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
    _dir: TempDir,
}

impl Tool {
    fn spawn(program: &Path, args: &[String], dir: TempDir) -> Tool {
        let mut cmd = Command::new(program);
        // SAFETY: pre_exec runs between fork and exec and only calls prctl.
        unsafe {
            std::os::unix::process::CommandExt::pre_exec(&mut cmd, || {
                rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM))
                    .map_err(std::io::Error::from)
            });
        }
        let mut child = cmd
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", program.display()));
        let stderr = child.stderr.take().expect("stderr");
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                sink.lock().unwrap().push(line);
            }
        });
        Tool { child, log, _dir: dir }
    }

    fn exited(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(Some(_)))
    }

    fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Tool {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        if poll_blocking(Duration::from_secs(5), || self.exited()).is_ok() {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `url` until it answers 200, the process exits, or the patience runs out.
async fn await_http_ok(tool: &mut Tool, url: &str) -> bool {
    let http = reqwest::Client::new();
    let ready = poll(PATIENCE, || {
        let exited = tool.exited();
        let http = &http;
        async move {
            if exited {
                return Some(false);
            }
            let ok = http.get(url).send().await.is_ok_and(|r| r.status().is_success());
            ok.then_some(true)
        }
    })
    .await;
    ready.unwrap_or_else(|_| panic!("{url} did not become ready:\n{}", tool.log_text()))
}

// ---------------------------------------------------------------------------------------
// Prometheus

/// A real Prometheus on a free loopback port, scraping `targets` every second with the
/// shipped `deploy/prometheus/prometheus.yml` and `alerts.yml`.
struct Prometheus {
    tool: Tool,
    addr: SocketAddr,
    http: reqwest::Client,
}

impl Prometheus {
    async fn start(binary: &Path, targets: &[SocketAddr]) -> Prometheus {
        for _ in 0..5 {
            let dir = TempDir::new("prometheus");
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let list = targets.iter().map(|t| format!("'{t}'")).collect::<Vec<_>>().join(", ");
            let config = substitute(
                &read("deploy/prometheus/prometheus.yml"),
                "deploy/prometheus/prometheus.yml",
                &[
                    ("['livetally-1:8080', 'livetally-2:8080']", format!("[{list}]")),
                    ("scrape_interval: 15s", "scrape_interval: 1s".into()),
                    ("scrape_timeout: 10s", "scrape_timeout: 1s".into()),
                    ("evaluation_interval: 15s", "evaluation_interval: 1s".into()),
                    ("localhost:9090", addr.to_string()),
                ],
            );
            std::fs::write(dir.0.join("prometheus.yml"), config).unwrap();
            std::fs::copy(repo("deploy/prometheus/alerts.yml"), dir.0.join("alerts.yml")).unwrap();
            let args = vec![
                format!("--config.file={}", dir.0.join("prometheus.yml").display()),
                format!("--storage.tsdb.path={}", dir.0.join("data").display()),
                format!("--web.listen-address={addr}"),
                "--log.level=warn".to_owned(),
            ];
            let mut tool = Tool::spawn(binary, &args, dir);
            if await_http_ok(&mut tool, &format!("http://{addr}/-/ready")).await {
                return Prometheus {
                    tool,
                    addr,
                    http: reqwest::Client::new(),
                };
            }
            eprintln!("prometheus exited (port clash?), retrying:\n{}", tool.log_text());
        }
        panic!("prometheus did not start");
    }

    /// `GET /api/v1/<path>` with a query string; the `data` of a successful answer.
    async fn api(&self, path: &str, query: &[(&str, &str)]) -> Value {
        let resp = self
            .http
            .get(format!("http://{}/api/v1/{path}", self.addr))
            .query(query)
            .send()
            .await
            .expect("prometheus api");
        let body: Value = resp.json().await.expect("prometheus json");
        assert_eq!(body["status"], "success", "{path} {query:?}: {body}");
        body["data"].clone()
    }

    /// An instant query's samples as (labels, value).
    async fn query(&self, promql: &str) -> Vec<(Value, f64)> {
        let data = self.api("query", &[("query", promql)]).await;
        data["result"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| {
                let v = s["value"][1].as_str().unwrap().parse::<f64>().unwrap();
                (s["metric"].clone(), v)
            })
            .collect()
    }

    /// Polls a single-valued query until it returns `want`; returns the last answer.
    async fn await_value(&self, promql: &str, want: f64) -> Vec<(Value, f64)> {
        let answer = poll(PATIENCE, || async {
            let got = self.query(promql).await;
            if got.len() == 1 && got[0].1 == want {
                Ok(got)
            } else {
                Err(format!("{got:?}"))
            }
        })
        .await;
        answer.unwrap_or_else(|last| {
            panic!(
                "{promql} never returned {want}; last: {}\nprometheus log:\n{}",
                last.unwrap_or_default(),
                self.tool.log_text()
            )
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_sums_viewers_over_two_nodes_exactly() {
    let Some(binary) = require("prometheus", "prometheus_sums_viewers_over_two_nodes_exactly") else {
        return;
    };
    let redis = RedisServer::start();
    let a = Node::spawn(&["--redis", &redis.url()]);
    let b = Node::spawn(&["--redis", &redis.url()]);
    a.campaign("launch").await;
    a.campaign("side-show").await;
    b.await_known("launch").await;
    b.await_known("side-show").await;
    let mut sockets = Vec::new();
    for (node, campaign, n) in [(&a, "launch", 3), (&b, "launch", 4), (&b, "side-show", 2)] {
        for _ in 0..n {
            let mut ws = node.viewer(campaign, "").await;
            assert_eq!(ws.next().await["type"], "welcome");
            sockets.push(ws);
        }
    }
    let prom = Prometheus::start(&binary, &[a.addr, b.addr]).await;

    prom.await_value("count(up{job=\"livetally\"} == 1)", 2.0).await;
    prom.await_value("sum(livetally_campaign_viewers{campaign=\"launch\"})", 7.0)
        .await;
    prom.await_value("sum(livetally_campaign_viewers{campaign=\"side-show\"})", 2.0)
        .await;
    // The dashboard's panel: viewers by campaign, summed over nodes.
    let by_campaign = prom.query("sum by (campaign) (livetally_campaign_viewers)").await;
    let mut seen: Vec<(String, f64)> = by_campaign
        .iter()
        .map(|(m, v)| (m["campaign"].as_str().unwrap().to_owned(), *v))
        .collect();
    seen.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(seen, vec![("launch".to_owned(), 7.0), ("side-show".to_owned(), 2.0)]);

    // The shipped alert rules are loaded and evaluate without errors.
    let rules = prom.api("rules", &[]).await;
    let loaded: BTreeSet<String> = rules["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap().clone())
        .map(|r| {
            assert_ne!(r["health"], "err", "rule failed to evaluate: {r}");
            r["name"].as_str().unwrap().to_owned()
        })
        .collect();
    let shipped: BTreeSet<String> = read("deploy/prometheus/alerts.yml")
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: ").map(str::to_owned))
        .collect();
    assert!(!shipped.is_empty());
    assert_eq!(loaded, shipped);
    // Nothing is wrong with this cluster, so nothing may be pending or firing.
    let alerts = prom.api("alerts", &[]).await;
    assert_eq!(alerts["alerts"], json!([]), "unexpected alerts");
    drop(sockets);
}

// ---------------------------------------------------------------------------------------
// promtool and the metric names the kit relies on

/// Metric names (histograms with their `_bucket`/`_sum`/`_count`) in an exposition.
fn exported_names(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (Some(name), Some(kind)) = (parts.next(), parts.next()) else {
                continue;
            };
            names.insert(name.to_owned());
            if kind == "histogram" || kind == "summary" {
                for suffix in ["_bucket", "_sum", "_count"] {
                    names.insert(format!("{name}{suffix}"));
                }
            }
        }
    }
    names
}

/// Every `livetally_*` identifier in a text.
fn named_metrics(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let ident = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_';
    let mut out = BTreeSet::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("livetally_") {
        let start = from + i;
        let mut end = start + "livetally_".len();
        while end < bytes.len() && ident(bytes[end]) {
            end += 1;
        }
        if start == 0 || !ident(bytes[start - 1]) {
            out.insert(text[start..end].to_owned());
        }
        from = end;
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_accepts_live_metrics_and_the_kit_names_only_real_ones() {
    let Some(promtool) = require(
        "promtool",
        "promtool_accepts_live_metrics_and_the_kit_names_only_real_ones",
    ) else {
        return;
    };
    // Exercise every labelled family so it has at least one series: a viewer that likes
    // (interactions, flush, presence, broadcast), one that leaves (closed), a refused
    // socket (rejected), API calls (http). One node's `/metrics`: in-process is enough.
    let node = Node::start(&[]);
    node.campaign("metrics").await;
    let mut ws = node.viewer("metrics", "session=metrics-session-1").await;
    ws.next().await;
    ws.send(json!({"type":"interact","kind":"like","seq":1})).await;
    assert_eq!(ws.next_of("ack").await["seq"], 1);
    let mut leaver = node.viewer("metrics", "").await;
    leaver.next().await;
    leaver.close().await;
    assert_eq!(node.refused("/ws/v1/campaigns/no-such-campaign").await, 404);
    node.await_stats("metrics", "one like broadcast", |s| s["interactions"]["like"] == 1)
        .await;
    let (status, _) = node.call("GET", "/readyz", None, None).await;
    assert_eq!(status, 200);
    // A tick has published a frame, so the broadcast lag histogram has a sample.
    eventually("a broadcast lag sample", || async {
        load::metric(&node, "livetally_broadcast_lag_seconds_count").await > 0.0
    })
    .await;
    let exposition = node.http.get(node.url("/metrics")).send().await.unwrap();
    let exposition = exposition.text().await.unwrap();

    let mut check = Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn promtool");
    check.stdin.take().unwrap().write_all(exposition.as_bytes()).unwrap();
    let out = check.wait_with_output().unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics found problems:\n{}{}\n--- exposition ---\n{exposition}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let exported = exported_names(&exposition);
    for (file, names) in [
        "deploy/prometheus/alerts.yml",
        "deploy/grafana/dashboards/livetally.json",
        "deploy/k8s/hpa.yaml",
        "deploy/k8s/prometheus-adapter-values.yaml",
        "docs/operations.md",
    ]
    .map(|f| (f, named_metrics(&read(f))))
    {
        let unknown: Vec<_> = names.iter().filter(|n| !exported.contains(*n)).collect();
        assert!(unknown.is_empty(), "{file} names metrics no node exports: {unknown:?}");
    }
    // ... and the operations guide documents every metric a node exports.
    let documented = named_metrics(&read("docs/operations.md"));
    let undocumented: Vec<_> = exported
        .iter()
        .filter(|n| n.starts_with("livetally_"))
        .filter(|n| !n.ends_with("_bucket") && !n.ends_with("_sum") && !n.ends_with("_count"))
        .filter(|n| !documented.contains(*n))
        .collect();
    assert!(
        undocumented.is_empty(),
        "docs/operations.md does not document {undocumented:?}"
    );
}

// ---------------------------------------------------------------------------------------
// nginx

/// A real nginx running the shipped `deploy/nginx.conf` in front of `upstreams`, as a
/// non-daemon child with its own prefix, pid and temp paths, serving a certificate of a
/// test CA on its TLS port.
struct Nginx {
    _tool: Tool,
    /// Plain HTTP: redirects to https.
    addr: SocketAddr,
    /// https:// and wss://.
    tls_addr: SocketAddr,
    ca: TestCa,
    /// The access log (the shipped config writes it to stdout).
    access_log: PathBuf,
}

impl Nginx {
    async fn start(binary: &Path, upstreams: [SocketAddr; 2]) -> Nginx {
        for _ in 0..5 {
            let dir = TempDir::new("nginx");
            let ca = TestCa::new("nginx");
            let leaf = ca.leaf("nginx", 1);
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            let tls_addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
            std::fs::copy(&leaf.cert, ca.dir.join("fullchain.pem")).unwrap();
            std::fs::copy(&leaf.key, ca.dir.join("privkey.pem")).unwrap();
            let prefix = format!("{}/", dir.0.display());
            let access_log = dir.0.join("access.log");
            let config = substitute(
                &read("deploy/nginx.conf"),
                "deploy/nginx.conf",
                &[
                    ("livetally-1:8080", upstreams[0].to_string()),
                    ("livetally-2:8080", upstreams[1].to_string()),
                    ("listen 8080", format!("listen {addr}")),
                    ("listen 8443", format!("listen {tls_addr}")),
                    // After /tmp/: the test's certificate lives under /tmp too.
                    ("/tmp/", prefix),
                    ("/etc/nginx/tls/", format!("{}/", ca.dir.display())),
                    ("access_log /dev/stdout", format!("access_log {}", access_log.display())),
                ],
            );
            let conf = dir.0.join("nginx.conf");
            std::fs::write(&conf, config).unwrap();
            let base = [
                "-e".to_owned(),
                "stderr".to_owned(),
                "-p".to_owned(),
                dir.0.display().to_string(),
                "-c".to_owned(),
                conf.display().to_string(),
            ];
            let test = Command::new(binary).arg("-t").args(&base).output().expect("nginx -t");
            assert!(
                test.status.success(),
                "nginx -t rejected the shipped config:\n{}",
                String::from_utf8_lossy(&test.stderr)
            );
            let mut args = base.to_vec();
            args.extend(["-g".to_owned(), "daemon off;".to_owned()]);
            let mut tool = Tool::spawn(binary, &args, dir);
            if await_http_ok(&mut tool, &format!("http://{addr}/nginx-healthz")).await {
                return Nginx {
                    _tool: tool,
                    addr,
                    tls_addr,
                    ca,
                    access_log,
                };
            }
            eprintln!("nginx exited (port clash?), retrying:\n{}", tool.log_text());
        }
        panic!("nginx did not start");
    }

    /// A viewer socket through nginx's TLS port (wss://).
    async fn viewer(&self, campaign: &str, session: &str) -> Ws {
        let port = self.tls_addr.port();
        let url = format!("wss://localhost:{port}/ws/v1/campaigns/{campaign}?session={session}");
        let mut ws = self
            .ca
            .wss(&url)
            .await
            .unwrap_or_else(|status| panic!("socket through nginx refused with {status}"));
        assert_eq!(ws.next().await["type"], "welcome");
        ws
    }

    /// The access log's lines that hold `needle`, once there are `n` (nginx writes a
    /// request's line when it is done).
    async fn logged(&self, needle: &str, n: usize) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let text = std::fs::read_to_string(&self.access_log).unwrap_or_default();
            let lines: Vec<String> = text.lines().filter(|l| l.contains(needle)).map(str::to_owned).collect();
            if lines.len() >= n {
                return lines;
            }
            assert!(
                Instant::now() < deadline,
                "not {n} access log lines with {needle}:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// The operator token in an operator socket's URL (how `/ops` opened it up to v1.1, and how
/// scripts still may) and join tokens never reach nginx's access log; the public reads have
/// a zone: one address past its burst gets the nodes' 429 `rate_limited`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_logs_no_token_and_limits_public_reads() {
    let Some(binary) = require("nginx", "nginx_logs_no_token_and_limits_public_reads") else {
        return;
    };
    // One node (memory store) behind both upstream names.
    let node = Node::spawn(&[]);
    node.campaign("gala").await;
    let lb = Nginx::start(&binary, [node.addr, node.addr]).await;
    let https = lb.ca.https();
    let base = format!("https://localhost:{}", lb.tls_addr.port());
    for (i, query) in [
        "role=operator&token=SECRET-OPERATOR",
        "token=SECRET-JOIN&session=session-0001",
        "Token=SECRET-ONE&x=1&token=SECRET-TWO",
    ]
    .iter()
    .enumerate()
    {
        https
            .get(format!("{base}/ws/v1/campaigns/gala?{query}&mark={i}"))
            .send()
            .await
            .unwrap();
    }
    let lines = lb.logged("/ws/v1/campaigns/gala", 3).await;
    assert_eq!(lines.len(), 3, "{lines:?}");
    for line in &lines {
        assert!(!line.contains("SECRET"), "a token value in the access log: {line}");
    }
    assert!(lines[0].contains("\"GET /ws/v1/campaigns/gala?role=operator&token=REDACTED&mark=0 HTTP/"));
    assert!(lines[1].contains("?token=REDACTED&session=session-0001&mark=1 HTTP/"));
    assert!(lines[2].contains("\"GET /ws/v1/campaigns/gala?QUERY-WITHHELD HTTP/"));

    // 1,000 reads of a campaign's stats from one address, far faster than 50 a second:
    // the burst of 500 passes, the rest past the refill are refused in the nodes' shape.
    let started = Instant::now();
    let answers: Vec<(u16, String)> = futures_util::stream::iter(0..1000)
        .map(|_| {
            let (https, url) = (&https, format!("{base}/api/v1/campaigns/gala/stats"));
            async move {
                let r = https.get(url).send().await.unwrap();
                (r.status().as_u16(), r.text().await.unwrap())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    let elapsed = started.elapsed().as_secs_f64();
    let served = answers.iter().filter(|(s, _)| *s == 200).count();
    let refused: Vec<_> = answers.iter().filter(|(s, _)| *s != 200).collect();
    assert!(served >= 500, "the burst is 500: {served} served");
    assert!(
        (served as f64) <= 501.0 + 50.0 * elapsed + 1.0,
        "{served} served in {elapsed:.2}s"
    );
    assert!(!refused.is_empty(), "{served} served in {elapsed:.2}s, none refused");
    for (status, body) in refused {
        assert_eq!(*status, 429);
        assert!(body.contains("\"code\":\"rate_limited\""), "{body}");
    }
}

/// `livetally_connections{role="viewer"}` of a node.
async fn viewer_sockets(node: &Node) -> u64 {
    let text = node.http.get(node.url("/metrics")).send().await.unwrap();
    let text = text.text().await.unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("livetally_connections{role=\"viewer\"} "))
        .map(|v| v.trim().parse().unwrap())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_balances_viewer_sockets_and_routes_around_a_stopped_node() {
    let Some(binary) = require(
        "nginx",
        "nginx_balances_viewer_sockets_and_routes_around_a_stopped_node",
    ) else {
        return;
    };
    let redis = RedisServer::start();
    let a = Node::spawn(&["--redis", &redis.url()]);
    let mut b = Node::spawn(&["--redis", &redis.url()]);
    a.campaign("gala").await;
    b.await_known("gala").await;
    let lb = Nginx::start(&binary, [a.addr, b.addr]).await;

    let mut sockets = Vec::new();
    for i in 0..6 {
        sockets.push(lb.viewer("gala", &format!("gala-session-{i:04}")).await);
    }
    // least_conn over a shared zone: the six long-lived sockets split evenly.
    assert_eq!((viewer_sockets(&a).await, viewer_sockets(&b).await), (3, 3));
    // The API through nginx (https://) sees all of them.
    let https = lb.ca.https();
    let stats: Value = https
        .get(format!(
            "https://localhost:{}/api/v1/campaigns/gala/stats",
            lb.tls_addr.port()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // Plain HTTP is redirected to https://.
    let plain = a
        .http
        .get(format!("http://{}/api/v1/campaigns/gala/stats", lb.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(plain.status(), 301);
    let location = plain.headers()["location"].to_str().unwrap();
    assert_eq!(location, "https://127.0.0.1/api/v1/campaigns/gala/stats");
    if stats["viewers"] != 6 {
        a.await_stats("gala", "6 viewers through nginx", |s| s["viewers"] == 6)
            .await;
    }

    // Node b stops: its viewers are closed with 1001 and its presence released; new
    // sockets through nginx all land on a (the refused connect to b is retried there).
    b.signal("TERM");
    assert!(b.wait().success());
    let mut closed = 0;
    for ws in &mut sockets {
        if let Ok(end) = tokio::time::timeout(Duration::from_millis(200), ws.closed()).await {
            assert_eq!(end, End::Close(1001));
            closed += 1;
        }
    }
    assert_eq!(closed, 3, "b's three sockets closed with 1001");
    for i in 0..3 {
        sockets.push(lb.viewer("gala", &format!("gala-again-{i:04}")).await);
    }
    assert_eq!(viewer_sockets(&a).await, 6);
    a.await_stats("gala", "6 viewers, all on a", |s| s["viewers"] == 6)
        .await;
}

// ---------------------------------------------------------------------------------------
// --drain-period (the preStop drain of deploy/k8s/deployment.yaml)

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_period_spreads_closes_and_answers_503_meanwhile() {
    let mut node = Node::spawn(&["--drain-period", "2s"]);
    node.campaign("drain").await;
    let mut sockets = Vec::new();
    for _ in 0..10 {
        let mut ws = node.viewer("drain", "").await;
        ws.next().await;
        sockets.push(ws);
    }
    let started = Instant::now();
    node.signal("TERM");
    let closes: Vec<_> = sockets
        .into_iter()
        .map(|mut ws| tokio::spawn(async move { (ws.closed().await, started.elapsed()) }))
        .collect();
    // While draining, the node is unready and refuses new sockets quickly (a proxy retries
    // another node); the sockets it has are closed one by one.
    let body = eventually("/readyz 503 while draining", || async {
        let (status, body) = node.call("GET", "/readyz", None, None).await;
        if status == 503 {
            Ok(body)
        } else {
            Err(status)
        }
    })
    .await;
    assert_eq!(body["status"], "shutting_down");
    assert_eq!(node.refused("/ws/v1/campaigns/drain").await, 503);
    let mut times = Vec::new();
    for c in closes {
        let (end, at) = c.await.unwrap();
        assert_eq!(end, End::Close(1001));
        times.push(at);
    }
    times.sort();
    let (first, last) = (times[0], times[times.len() - 1]);
    assert!(
        last - first >= Duration::from_millis(500),
        "closes were not spread over the drain period: {times:?}"
    );
    assert!(last < Duration::from_secs(4), "drain took too long: {times:?}");
    assert!(node.wait().success());
}
