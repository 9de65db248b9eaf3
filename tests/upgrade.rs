//! Upgrading a running v1 deployment node by node (docs/operations.md, "Upgrading"), on a
//! store a real v1 node wrote: `tests/fixtures/v1-store.txt` holds every key of it as
//! `DUMP` output (restorable on Redis 7.0 and later), made by `make_v1_fixture` below with
//! the released v1 binary.
//!
//! The mixed part (a v1 node and a v2 node serving the same campaign) needs that binary in
//! `LIVETALLY_V1_BIN` (a release build of commit 3e49d34); without it the test says so and
//! checks the rest.

mod support;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use support::load::{total_upto, Client};
use support::node::{End, Node, Ws, PATIENCE, TOKEN};
use support::redis::RedisServer;
use support::wait::{eventually, poll_blocking, throughout};

/// The fixture, relative to the crate.
const FIXTURE: &str = "tests/fixtures/v1-store.txt";

/// What the v1 node counted into the fixture (see `make_v1_fixture`): five viewers at
/// once, `session-kept` acked up to seq 5, `session-other` up to seq 3, one registration,
/// one share visit.
const PEAK: u64 = 5;
const KEPT_ACKED: u64 = 5;
const OTHER_ACKED: u64 = 3;

/// The v1 release binary for the mixed-version part, from `LIVETALLY_V1_BIN` (build commit
/// 3e49d34 and point it there). Without it that part is skipped with a note; the fixture,
/// written by that binary, still tests the upgrade itself.
fn v1_bin() -> Option<String> {
    let bin = std::env::var("LIVETALLY_V1_BIN").ok()?;
    std::path::Path::new(&bin).exists().then_some(bin)
}

fn fixture_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(FIXTURE)
}

fn connection(redis: &RedisServer) -> redis::Connection {
    redis::Client::open(redis.url())
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap()
}

/// Writes the fixture: a v1 node on a fresh Redis, five viewers, some likes, a
/// registration and a share visit, a graceful stop, then every key dumped.
/// `cargo test --test upgrade -- --ignored make_v1_fixture`
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "writes tests/fixtures/v1-store.txt from the released v1 binary"]
async fn make_v1_fixture() {
    let bin = v1_bin().expect("set LIVETALLY_V1_BIN to the v1 binary");
    let redis = RedisServer::start();
    let mut node = Node::spawn_bin(&bin, "127.0.0.1:0", &["--redis", &redis.url()]);
    node.campaign_with(serde_json::json!({"id": "launch", "title": "Launch", "regions": ["CN", "US"]}))
        .await;
    let mut kept = Client::connect(&node, "launch", "session-kept").await;
    let mut other = Client::connect(&node, "launch", "session-other").await;
    let mut watchers = Vec::new();
    for i in 0..3 {
        watchers.push(Client::connect(&node, "launch", &format!("session-watch-{i}")).await);
    }
    node.await_stats("launch", "five viewers", |s| s["peak_viewers"] == PEAK)
        .await;
    kept.send_upto(KEPT_ACKED).await;
    other.send_upto(OTHER_ACKED).await;
    kept.await_ack(KEPT_ACKED).await;
    other.await_ack(OTHER_ACKED).await;
    let (status, _) = node
        .call(
            "POST",
            "/api/v1/campaigns/launch/registrations",
            Some(serde_json::json!({"viewer": "v-session-kept"})),
            None,
        )
        .await;
    assert_eq!(status, 201);
    let (status, _) = node.call("GET", "/s/launch?via=wechat", None, None).await;
    assert_eq!(status, 302);
    node.await_stats("launch", "the share visit", |s| s["share_visits"] == 1)
        .await;
    for c in [kept, other].into_iter().chain(watchers) {
        c.close().await;
    }
    node.signal("TERM");
    assert!(node.wait().success());

    let mut con = connection(&redis);
    let mut keys: Vec<String> = redis::cmd("KEYS").arg("lt:*").query(&mut con).unwrap();
    keys.sort();
    let mut out =
        String::from("# Every key a v1 node wrote (tests/upgrade.rs, make_v1_fixture): key, tab, DUMP as hex.\n");
    for key in keys {
        let dump: Vec<u8> = redis::cmd("DUMP").arg(&key).query(&mut con).unwrap();
        let hex: String = dump.iter().map(|b| format!("{b:02x}")).collect();
        out.push_str(&format!("{key}\t{hex}\n"));
    }
    std::fs::create_dir_all(fixture_path().parent().unwrap()).unwrap();
    std::fs::write(fixture_path(), out).unwrap();
}

/// Restores the fixture into `redis`.
fn restore_fixture(redis: &RedisServer) {
    let text = std::fs::read_to_string(fixture_path()).expect("fixture");
    let mut con = connection(redis);
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (key, hex) = line.split_once('\t').expect("key<TAB>hex");
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
            .collect();
        let () = redis::cmd("RESTORE")
            .arg(key)
            .arg(0)
            .arg(bytes)
            .arg("REPLACE")
            .query(&mut con)
            .unwrap();
    }
}

fn likes(s: &serde_json::Value) -> u64 {
    s["interactions"]["like"].as_u64().unwrap_or(0)
}

/// A node's stats show exactly `total` likes, the fixture's peak and the rest intact.
async fn assert_counts(node: &Node, total: u64) {
    let s = node
        .await_stats("launch", "every acked like once", |s| likes(s) == total)
        .await;
    assert_eq!(s["peak_viewers"], PEAK, "{s}");
    assert_eq!(s["registrations"], 1, "{s}");
    assert_eq!(s["share_visits"], 1, "{s}");
    support::node::assert_sketch(&s["unique_viewers"], PEAK);
    // Nothing was counted twice: the likes stay put for a few ticks and flushes.
    throughout(Duration::from_millis(300), || async {
        assert_eq!(likes(&node.stats("launch").await), total);
    })
    .await;
}

/// Moves `session-kept` from `old` (acked up to `acked`) to a new socket on `to`: the new
/// socket resumes at `acked`, the old one is fenced (4001) at its next message, and the
/// new one's next two seqs are acked.
async fn move_kept(mut old: Client, to: &Node, acked: u64, what: &str) -> Client {
    let mut new = Client::connect(to, "launch", "session-kept").await;
    assert_eq!(new.welcome_acked(), acked, "{what}");
    old.send_upto(acked + 1).await;
    assert_eq!(old.await_end().await, End::Close(4001));
    new.send_upto(acked + 2).await;
    new.await_ack(acked + 2).await;
    new
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_deployment_upgrades_node_by_node_without_losing_or_doubling_a_count() {
    let redis = RedisServer::start();
    restore_fixture(&redis);
    let schema = |r: &RedisServer| r.query::<Option<String>>(&["GET", "lt:{campaigns}:schema"]);
    assert_eq!(schema(&redis), None, "v1 writes no version");

    // The first v2 node finds a v1 store: it marks it version 1 and runs mixed.
    let a = Node::start(&["--redis", &redis.url(), "--node-id", "v2-a"]);
    assert_eq!(schema(&redis).as_deref(), Some("1"));
    let other_total = total_upto(OTHER_ACKED);
    assert_counts(&a, total_upto(KEPT_ACKED) + other_total).await;
    let mut kept = Client::connect(&a, "launch", "session-kept").await;
    assert_eq!(kept.welcome_acked(), KEPT_ACKED);
    kept.send_upto(7).await;
    kept.await_ack(7).await;
    let mut last = 7;

    // A v1 node still serving the campaign: sessions move both ways, still exactly once.
    match v1_bin() {
        Some(bin) => {
            let b = Node::spawn_bin(&bin, "127.0.0.1:0", &["--redis", &redis.url(), "--node-id", "v1-b"]);
            // Whichever version claimed last owns the session; the other's socket is fenced.
            let on_v1 = move_kept(kept, &b, 7, "v1 reads what v2 acked").await;
            kept = move_kept(on_v1, &a, 9, "v2 reads what v1 acked").await;
            last = 11;
            assert_counts(&b, total_upto(last) + other_total).await;
            // The last v1 node leaves.
            b.signal("TERM");
            let mut b = b;
            assert!(b.wait().success());
        }
        None => eprintln!("no v1 binary (LIVETALLY_V1_BIN): skipping the mixed v1/v2 part"),
    }
    assert_counts(&a, total_upto(last) + other_total).await;

    // No v1 node left: finish the upgrade. Running nodes stop writing the v1 keys.
    let out = Command::new(env!("CARGO_BIN_EXE_livetally"))
        .args(["upgrade-store", "--redis", &redis.url()])
        .output()
        .expect("run upgrade-store");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(schema(&redis).as_deref(), Some("4"));
    let ttl: i64 = redis.query(&["PTTL", "lt:{c:launch}:sessions"]);
    assert!(ttl > 0, "v1 session keys expire after the upgrade ({ttl})");
    let fresh = Client::connect(&a, "launch", "session-after").await;
    let v1_epoch: bool = redis.query(&["HEXISTS", "lt:{c:launch}:epochs", "session-after"]);
    assert!(!v1_epoch, "a node that saw the upgrade finish writes no v1 keys");
    fresh.close().await;

    // A new v2 node: the session resumes exactly where it was acked, on either layout.
    let c = Node::start(&["--redis", &redis.url(), "--node-id", "v2-c"]);
    let mut resumed = Client::connect(&c, "launch", "session-kept").await;
    assert_eq!(resumed.welcome_acked(), last);
    let mut other = Client::connect(&c, "launch", "session-other").await;
    assert_eq!(other.welcome_acked(), OTHER_ACKED, "a session only v1 wrote migrates");
    resumed.send_upto(last + 2).await;
    other.send_upto(OTHER_ACKED + 1).await;
    resumed.await_ack(last + 2).await;
    other.await_ack(OTHER_ACKED + 1).await;
    drop(kept);
    assert_counts(&c, total_upto(last + 2) + total_upto(OTHER_ACKED + 1)).await;
    assert_counts(&a, total_upto(last + 2) + total_upto(OTHER_ACKED + 1)).await;
}

/// Starts a node that is expected to refuse to start; returns its exit status and log.
fn refused_start(redis: &RedisServer) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_livetally"))
        .args(["serve", "--listen", "127.0.0.1:0", "--operator-token", TOKEN])
        .args(["--redis", &redis.url()])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn livetally");
    let stderr = child.stderr.take().unwrap();
    let reader = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
            .join("\n")
    });
    let status = poll_blocking(PATIENCE, || child.try_wait().unwrap()).unwrap_or_else(|_| {
        let _ = child.kill();
        panic!("the node did not refuse to start");
    });
    (status, reader.join().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_marks_an_empty_store_and_refuses_a_newer_one() {
    let redis = RedisServer::start();
    let node = Node::start(&["--redis", &redis.url()]);
    let version: String = redis.query(&["GET", "lt:{campaigns}:schema"]);
    assert_eq!(version, "4", "an empty store is v4 from the start");
    drop(node);

    let _: () = redis.query(&["SET", "lt:{campaigns}:schema", "5"]);
    let (status, log) = refused_start(&redis);
    assert!(!status.success());
    assert!(
        log.contains("schema version 5") && log.contains("this node's 4"),
        "the error names both versions: {log}"
    );
}

/// A store at `schema` (older nodes may run) and two nodes `<name>-a` and `<name>-b` on
/// it, with three viewers of campaign `launch`: CN and US on a, US on b.
async fn three_viewers_at_schema(redis: &RedisServer, schema: u64, name: &str) -> (Node, Node, Vec<Ws>) {
    let _: () = redis.query(&["SET", "lt:{campaigns}:schema", &schema.to_string()]);
    let a = Node::start(&["--redis", &redis.url(), "--node-id", &format!("{name}-a")]);
    let b = Node::start(&["--redis", &redis.url(), "--node-id", &format!("{name}-b")]);
    a.campaign_with(serde_json::json!({"id": "launch", "title": "Launch", "regions": ["CN", "US"]}))
        .await;
    b.await_known("launch").await;
    let mut viewers = Vec::new();
    for (node, i, region) in [(&a, 0, "CN"), (&a, 1, "US"), (&b, 2, "US")] {
        viewers.push(
            node.viewer(
                "launch",
                &format!("viewer=viewer-{i}&session=session-000{i}&region={region}"),
            )
            .await,
        );
    }
    (a, b, viewers)
}

/// A v2 deployment (schema 2) moves to the presence totals of schema 3: while v2 nodes
/// may run, a v3 node writes leases only as v2 reads them and sums them on every read;
/// after `upgrade-store` the totals are built from the live leases and kept from then on,
/// with every viewer, region and the peak exactly where they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v2_store_moves_to_presence_totals_without_losing_a_viewer() {
    let redis = RedisServer::start();
    let (a, b, mut viewers) = three_viewers_at_schema(&redis, 2, "v3").await;
    let sum = |r: &RedisServer| r.query::<bool>(&["EXISTS", "lt:{c:launch}:presence-sum"]);
    let three = |s: &serde_json::Value| s["viewers"] == 3 && s["peak_viewers"] == 3;
    a.await_stats("launch", "three viewers on two v3 nodes, mixed", three)
        .await;
    assert!(!sum(&redis), "no totals while v2 nodes may run");

    let out = Command::new(env!("CARGO_BIN_EXE_livetally"))
        .args(["upgrade-store", "--redis", &redis.url()])
        .output()
        .expect("run upgrade-store");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    eventually("the totals to be built", || async { sum(&redis) }).await;
    let totals: HashMap<String, String> = redis.query(&["HGETALL", "lt:{c:launch}:presence-sum"]);
    assert_eq!(totals["viewers"], "3", "built from the live leases: {totals:?}");
    assert_eq!((totals["r:CN"].as_str(), totals["r:US"].as_str()), ("1", "2"));
    b.await_stats("launch", "still three", three).await;

    // From now on the totals move with each lease: a viewer leaves, the peak stays.
    viewers.pop().unwrap().close().await;
    b.await_stats("launch", "two viewers, peak three", |s| {
        s["viewers"] == 2 && s["peak_viewers"] == 3
    })
    .await;
    let totals: HashMap<String, String> = redis.query(&["HGETALL", "lt:{c:launch}:presence-sum"]);
    assert_eq!((totals["viewers"].as_str(), totals["r:US"].as_str()), ("2", "1"));
}

/// A v1.1 deployment (schema 3) keeps each lease as one JSON value, re-encoded whole on
/// every write: while v1.1 nodes may run, newer nodes write them so; after `upgrade-store`
/// each campaign's leases move to one hash per node, written from each node's changes,
/// with every viewer, region and the peak exactly where they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_v1_1_store_moves_its_leases_to_hashes_without_losing_a_viewer() {
    let redis = RedisServer::start();
    let (a, b, mut viewers) = three_viewers_at_schema(&redis, 3, "v4").await;
    let layout = |r: &RedisServer| r.query::<Option<String>>(&["HGET", "lt:{c:launch}:presence-sum", "_v"]);
    let lease_of = |r: &RedisServer, node: &str| {
        r.query::<HashMap<String, String>>(&["HGETALL", &format!("lt:{{c:launch}}:presence:{node}")])
    };
    let three = |s: &serde_json::Value| s["viewers"] == 3 && s["peak_viewers"] == 3;
    a.await_stats("launch", "three viewers on two nodes, mixed", three)
        .await;
    assert_eq!(layout(&redis).as_deref(), Some("3"), "leases as v1.1 reads them");
    let json: HashMap<String, String> = redis.query(&["HGETALL", "lt:{c:launch}:presence"]);
    assert!(json["v4-a"].contains(r#""viewers":2"#), "{json:?}");
    assert!(lease_of(&redis, "v4-a").is_empty());

    let out = Command::new(env!("CARGO_BIN_EXE_livetally"))
        .args(["upgrade-store", "--redis", &redis.url()])
        .output()
        .expect("run upgrade-store");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    eventually("the leases to move to hashes", || async {
        layout(&redis).as_deref() == Some("4")
    })
    .await;
    let lease = lease_of(&redis, "v4-a");
    assert_eq!(
        (
            lease["viewers"].as_str(),
            lease["r:CN"].as_str(),
            lease["r:US"].as_str()
        ),
        ("2", "1", "1"),
        "{lease:?}"
    );
    for gone in ["lt:{c:launch}:presence", "lt:{c:launch}:presence-eff"] {
        let exists: bool = redis.query(&["EXISTS", gone]);
        assert!(!exists, "{gone} is schema 3's");
    }
    b.await_stats("launch", "still three", three).await;

    // From now on each lease moves by its changes: a viewer leaves, the peak stays.
    viewers.remove(1).close().await;
    b.await_stats("launch", "two viewers, peak three", |s| {
        s["viewers"] == 2 && s["peak_viewers"] == 3
    })
    .await;
    let totals: HashMap<String, String> = redis.query(&["HGETALL", "lt:{c:launch}:presence-sum"]);
    assert_eq!((totals["viewers"].as_str(), totals["r:US"].as_str()), ("2", "1"));
    let lease = lease_of(&redis, "v4-a");
    assert_eq!(
        (lease["viewers"].as_str(), lease["r:CN"].as_str()),
        ("1", "1"),
        "{lease:?}"
    );
    assert!(!lease.contains_key("r:US"), "a region at 0 leaves the lease: {lease:?}");
}

/// A v1.1 deployment's webhooks were flags and one `outbox` list per campaign:
/// `upgrade-store` given those flags puts the receivers in the store and moves what the
/// lists still hold into the per-receiver queues, so it is delivered, with its ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrade_store_moves_v1_1_webhook_flags_and_queues_in() {
    let redis = RedisServer::start();
    let _: () = redis.query(&["SET", "lt:{campaigns}:schema", "3"]);
    let receiver = support::receiver::Receiver::start("whsec-test-0123456789").await;
    let node = Node::start(&["--redis", &redis.url(), "--webhook-poll", "50ms"]);
    node.campaign("old").await;
    // What a v1.1 node with --webhook-url left queued (its receiver was down).
    let body = r#"{"id":"old-7","type":"registration.created","campaign":"old","at":1,"data":{"viewer":"viewer-0001","fields":{}}}"#;
    let _: () = redis.query(&["RPUSH", "lt:{c:old}:outbox", body]);
    let _: () = redis.query(&["HSET", "lt:{c:old}:outbox-state", "seq", "7"]);
    let out = Command::new(env!("CARGO_BIN_EXE_livetally"))
        .args(["upgrade-store", "--redis", &redis.url()])
        .args(["--webhook-url", &receiver.url(), "--webhook-secret", &receiver.secret])
        .output()
        .expect("run upgrade-store");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(schema_of(&redis).as_deref(), Some("4"));
    let (_, set) = node.op("GET", "/api/v1/webhooks", None).await;
    assert_eq!(set["receivers"][0]["url"], receiver.url(), "{set}");
    let exists: bool = redis.query(&["EXISTS", "lt:{c:old}:outbox"]);
    assert!(!exists, "the list moved");
    let got = receiver.await_delivered("the moved event", |d| !d.is_empty()).await;
    assert_eq!(got[0]["id"], "old-7");
    assert!(receiver.received().iter().all(|r| r.signed));
    // New events carry on from the same numbering.
    let (status, _) = node
        .call(
            "POST",
            "/api/v1/campaigns/old/registrations",
            Some(serde_json::json!({"viewer": "viewer-0002"})),
            None,
        )
        .await;
    assert_eq!(status, 201);
    let got = receiver.await_delivered("the next one", |d| d.len() == 2).await;
    assert_eq!(got[1]["id"], "old-8");
}

fn schema_of(redis: &RedisServer) -> Option<String> {
    redis.query(&["GET", "lt:{campaigns}:schema"])
}
