//! A node that stands alone in production: TLS in the binary (https:// and wss:// on one
//! port, the certificate reloaded on SIGHUP while sockets stay open), `livetally load`
//! through TLS, JSON logs, and the shipped example token refused at start. Certificates are
//! made at test time by a CA of the test's own (`support::tls`).

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::node::{Node, Ws, PATIENCE, TOKEN};
use support::tls::{self, TestCa};
use support::wait::{eventually, poll};

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// Creates `id` over https; panics unless 201.
async fn create(https: &reqwest::Client, base: &str, id: &str) {
    let r = https
        .post(format!("{base}/api/v1/campaigns"))
        .bearer_auth(TOKEN)
        .json(&json!({"id": id, "title": "Over TLS"}))
        .send()
        .await
        .expect("POST over https");
    assert_eq!(r.status(), 201, "{:?}", r.text().await);
}

/// Polls the public stats over https until `pred` holds.
async fn await_stats(https: &reqwest::Client, base: &str, id: &str, pred: impl Fn(&Value) -> bool) -> Value {
    eventually("the stats over https", || async {
        let r = https
            .get(format!("{base}/api/v1/campaigns/{id}/stats"))
            .send()
            .await
            .expect("GET over https");
        assert_eq!(r.status(), 200);
        let s: Value = r.json().await.expect("JSON stats");
        if pred(&s) {
            Ok(s)
        } else {
            Err(s)
        }
    })
    .await
}

/// Sends like `seq` (count 1) and waits for its ack.
async fn like(ws: &mut Ws, seq: u64) {
    ws.send(json!({"type": "interact", "kind": "like", "count": 1, "seq": seq}))
        .await;
    let ack = ws.until(|m| m["type"] == "ack" || m["type"] == "error").await;
    assert_eq!(ack["type"], "ack", "{ack}");
    assert_eq!(ack["seq"], seq, "{ack}");
}

/// Waits until the process node's log has a line containing `what`; returns that line.
async fn await_log(node: &Node, what: &str) -> String {
    let line = poll(PATIENCE, || async {
        node.log_text().lines().find(|l| l.contains(what)).map(str::to_owned)
    })
    .await;
    line.unwrap_or_else(|_| panic!("no {what:?} in the log:\n{}", node.log_text()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_serves_https_and_wss_and_counts_the_socket() {
    let ca = TestCa::new("serve");
    let leaf = ca.leaf("node", 1);
    let node = Node::start(&strs(&tls::flags(&leaf)));
    let port = node.addr.port();
    let base = format!("https://localhost:{port}");
    let https = ca.https();

    let r = https.get(format!("{base}/healthz")).send().await.expect("https");
    assert_eq!(r.status(), 200);
    create(&https, &base, "tls").await;

    let url = format!("wss://localhost:{port}/ws/v1/campaigns/tls?viewer=viewer-tls1&session=session-tls1");
    let mut ws = ca.wss(&url).await.expect("wss accepted");
    assert_eq!(ws.next().await["type"], "welcome");
    like(&mut ws, 1).await;
    like(&mut ws, 2).await;
    // The socket is counted, and its stats frames arrive over wss.
    ws.until(|m| m["type"] == "stats" && m["viewers"] == 1 && m["interactions"]["like"] == 2)
        .await;
    let stats = await_stats(&https, &base, "tls", |s| s["viewers"] == 1).await;
    assert_eq!(stats["interactions"]["like"], 2, "{stats}");

    // A refusal travels over TLS too: an unknown campaign is 404 before the upgrade.
    let refused = ca.wss(&format!("wss://localhost:{port}/ws/v1/campaigns/nope")).await;
    assert_eq!(refused.err(), Some(404));
    // Nothing is served in clear on the TLS port.
    assert!(node.http.get(node.url("/healthz")).send().await.is_err());
    ws.close().await;
}

/// Opens a TCP connection to `to` from the loopback address `from` that never says a word.
async fn silent_from(from: std::net::Ipv4Addr, to: std::net::SocketAddr) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind((from, 0).into()).unwrap();
    socket.connect(to).await.expect("connect")
}

/// Whether the node closes `stream` within `within` (a silent TLS connection is closed by
/// the node only when refused, or at its handshake timeout).
async fn closed_within(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(within, stream.read(&mut byte)).await,
        Ok(Ok(0) | Err(_))
    )
}

/// TLS under a handshake flood: connections that never send a ClientHello cannot keep a
/// real client out. One peer past its cap of pending handshakes has its further
/// connections closed at once; 1,500 more silent connections from 15 other addresses (100
/// each, under the cap) hold no slot a new client needs: its `GET /healthz` is answered
/// within 2 s. (actix-tls alone ran 256 handshakes per worker thread and made every new
/// client wait for the silent ones' 10 s timeout.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_tls_connections_keep_no_client_waiting() {
    // The test holds both ends of ~1,650 connections (the node runs in-process).
    assert!(
        livetally::util::fd::raise_fd_limit() >= 4_000,
        "this test needs 4,000 descriptors"
    );
    let ca = TestCa::new("flood");
    let leaf = ca.leaf("node", 1);
    // The defaults: 128 pending handshakes per peer, 10,000 per node, a 10 s timeout.
    let node = Node::start(&strs(&tls::flags(&leaf)));

    let one_peer = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let mut held = Vec::new();
    for _ in 0..128 + 20 {
        held.push(silent_from(one_peer, node.addr).await);
    }
    let closed = futures_util::future::join_all(
        held.into_iter()
            .map(|mut s| async move { (!closed_within(&mut s, Duration::from_secs(1)).await).then_some(s) }),
    )
    .await;
    let kept: Vec<_> = closed.into_iter().flatten().collect();
    assert_eq!(kept.len(), 128, "the peer's connections past its cap of 128 are closed");

    let mut silent = Vec::with_capacity(1500);
    for i in 0..1500u32 {
        let from = std::net::Ipv4Addr::new(127, 0, 1, 10 + (i / 100) as u8);
        silent.push(silent_from(from, node.addr).await);
    }
    let started = Instant::now();
    let https = ca.https();
    let answer = tokio::time::timeout(
        Duration::from_secs(2),
        https
            .get(format!("https://localhost:{}/healthz", node.addr.port()))
            .send(),
    )
    .await;
    let elapsed = started.elapsed();
    let status = answer
        .unwrap_or_else(|_| panic!("no answer within 2 s behind 1,628 silent connections"))
        .expect("https")
        .status();
    assert_eq!(status, 200, "answered in {elapsed:?}");
    // The silent ones were neither refused nor timed out meanwhile: they held their slots.
    for mut s in kept.into_iter().chain(silent.into_iter().step_by(100)) {
        assert!(!closed_within(&mut s, Duration::from_millis(10)).await);
    }
}

/// A renewal in place: new handshakes get the new certificate after SIGHUP, the socket
/// opened before it keeps acking and receiving stats, and a broken renewal is logged while
/// the node goes on serving the previous certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_serves_the_renewed_certificate_and_open_sockets_survive() {
    let ca = TestCa::new("reload");
    let first = ca.leaf("node", 1001);
    let node = Node::spawn(&strs(&tls::flags(&first)));
    let port = node.addr.port();
    let base = format!("https://localhost:{port}");
    let https = ca.https();
    assert_eq!(ca.served(node.addr).await, first.der, "serial 1001 served at start");
    create(&https, &base, "renewal").await;
    let mut ws = ca
        .wss(&format!(
            "wss://localhost:{port}/ws/v1/campaigns/renewal?viewer=viewer-hup1&session=session-hup1"
        ))
        .await
        .expect("wss accepted");
    assert_eq!(ws.next().await["type"], "welcome");
    like(&mut ws, 1).await;

    // Renewed in place (same paths, serial 1002), then SIGHUP.
    let second = ca.leaf("node", 1002);
    assert_ne!(second.der, first.der);
    node.signal("HUP");
    let line = await_log(&node, "SIGHUP: serving the reloaded certificate").await;
    assert!(line.contains(&livetally::tls::fingerprint(&second.der)), "{line}");
    assert_eq!(
        ca.served(node.addr).await,
        second.der,
        "serial 1002 served after SIGHUP"
    );

    // The socket opened under the old certificate is untouched.
    like(&mut ws, 2).await;
    ws.until(|m| m["type"] == "stats" && m["interactions"]["like"] == 2)
        .await;

    // A broken renewal (the key file half-written): logged, the previous pair kept.
    std::fs::write(&second.key, "-----BEGIN PRIVATE KEY-----\ngarbage\n").unwrap();
    node.signal("HUP");
    let line = await_log(&node, "certificate not reloaded").await;
    assert!(line.contains("--tls-key"), "{line}");
    assert_eq!(ca.served(node.addr).await, second.der, "still serial 1002");
    like(&mut ws, 3).await;
    ws.until(|m| m["type"] == "stats" && m["interactions"]["like"] == 3)
        .await;
    let stats = await_stats(&https, &base, "renewal", |s| s["interactions"]["like"] == 3).await;
    assert_eq!(stats["viewers"], 1, "{stats}");
    ws.close().await;
}

/// Runs `livetally load` through TLS against `node` with `extra` flags.
fn load(extra: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_livetally"))
        .args(["load", "--json"])
        .args(extra)
        .output()
        .expect("run livetally load")
}

fn clean_report(out: &std::process::Output, viewers: u64) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "no JSON report ({e}); status {:?}\nstderr:\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        )
    });
    assert!(out.status.success(), "{report:#}");
    assert_eq!(report["connect"]["connected"], viewers, "{report:#}");
    assert_eq!(report["connect"]["failed"], 0, "{report:#}");
    let acked = report["interactions"]["acked"].as_u64().unwrap();
    assert!(acked > 0, "{report:#}");
    assert_eq!(report["interactions"]["sent"], acked, "{report:#}");
    assert_eq!(report["server"]["totals_equal"], true, "{report:#}");
    assert_eq!(report["clean"], true, "{report:#}");
    report
}

/// A rehearsal through the real edge: wss:// sockets and https:// API calls, trusting the
/// test CA (`--ca-file`), or any certificate (`--insecure`); without either the tool
/// refuses the unknown issuer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_load_tool_rehearses_through_tls() {
    let ca = TestCa::new("load");
    let leaf = ca.leaf("node", 7);
    let node = Node::start(&strs(&tls::flags(&leaf)));
    let port = node.addr.port();
    let wss = format!("wss://localhost:{port}");
    let ca_file = tls::path(&ca.ca_file());
    let common = ["--viewers", "20", "--rate", "100", "--duration", "1s"];

    let mut args = vec!["--url", &wss, "--ca-file", &ca_file, "--campaign", "edge", "--create"];
    args.extend(["--operator-token", TOKEN, "--registrations", "3", "--share-visits", "3"]);
    args.extend(common);
    let report = clean_report(&load(&args), 20);
    assert_eq!(report["server"]["after"]["registrations"], 3, "{report:#}");
    assert_eq!(report["server"]["after"]["share_visits"], 3, "{report:#}");

    // https:// means wss:// for the sockets; an IP address as the name, no CA given.
    let https = format!("https://127.0.0.1:{port}");
    let mut args = vec!["--url", &https, "--insecure", "--campaign", "edge"];
    args.extend(common);
    clean_report(&load(&args), 20);

    // Neither: the test CA is nobody's public CA.
    let mut args = vec!["--url", &wss, "--campaign", "edge"];
    args.extend(common);
    let out = load(&args);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("certificate"), "{stderr}");
}

/// `--log-format json`: every line the node writes, from start to stop, is one JSON object
/// with a timestamp, a level, a target and the event's fields.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_are_one_object_per_line() {
    // No --operator-token: the node warns and logs a generated one (a WARN event).
    let mut child = Command::new(env!("CARGO_BIN_EXE_livetally"))
        .args(["serve", "--listen", "127.0.0.1:0", "--log-format", "json"])
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn livetally");
    let _watchdog = support::redis::Watchdog::kill_on_exit(child.id()).expect("watchdog");
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut lines = Vec::new();
    let addr = loop {
        let line = rx.recv_timeout(PATIENCE).expect("a log line before listening");
        let event: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        lines.push(line);
        if event["fields"]["message"] == "listening" {
            break event["fields"]["addr"].as_str().expect("addr field").to_owned();
        }
    };
    let r = reqwest::get(format!("http://{addr}/healthz")).await.expect("healthz");
    assert_eq!(r.status(), 200);
    let ok = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    reader.join().unwrap();
    lines.extend(rx.try_iter());
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut stdout).unwrap();
    assert_eq!(stdout, "", "the node writes its log to stderr only");

    let events: Vec<Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    for e in &events {
        assert!(e["timestamp"].is_string(), "{e}");
        assert!(
            ["INFO", "WARN", "ERROR", "DEBUG", "TRACE"].contains(&e["level"].as_str().unwrap_or("")),
            "{e}"
        );
        assert!(e["target"].as_str().is_some_and(|t| !t.is_empty()), "{e}");
        assert!(e["fields"]["message"].is_string(), "{e}");
    }
    let messages: Vec<&str> = events.iter().filter_map(|e| e["fields"]["message"].as_str()).collect();
    assert!(messages.contains(&"listening"), "{messages:?}");
    assert!(messages.last() == Some(&"stopped"), "{messages:?}");
    let warn = events
        .iter()
        .find(|e| e["level"] == "WARN")
        .expect("the generated-token warning");
    assert!(warn["fields"]["operator_token"].is_string(), "{warn}");
}

/// The example env file of the systemd unit, as shipped, must not start a node: its token
/// is 16+ characters (it passes the length check) but it is a placeholder.
#[test]
fn the_shipped_example_token_is_refused_at_start() {
    let env = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/systemd/livetally.env")).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_livetally"));
    cmd.arg("serve");
    for line in env.lines().filter(|l| !l.starts_with('#') && l.contains('=')) {
        let (key, value) = line.split_once('=').unwrap();
        // Never the host's Redis: validation must refuse before any connection anyway.
        if key != "LIVETALLY_REDIS" {
            cmd.env(key, value);
        }
    }
    let out = cmd
        .env("LIVETALLY_LISTEN", "127.0.0.1:0")
        .output()
        .expect("run livetally");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid --operator-token"), "{stderr}");
    assert!(stderr.contains("placeholder"), "{stderr}");
    assert!(!stderr.contains("listening"), "{stderr}");
}
