//! Several nodes on one Redis (standalone or a 3-master Cluster): the audience is counted
//! exactly across nodes, an acknowledged interaction is counted once wherever the client
//! resumes, a node that lost its session is fenced, and Redis traffic stays flat while the
//! interaction rate grows.
//!
//! Every test starts its own redis-server(s) and nodes on free ports.

mod support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::Value;
use support::load::{self, total_upto, Client, Streaming};
use support::node::{End, Node, Ws, PATIENCE, TOKEN};
use support::redis::{RedisCluster, RedisServer};
use support::wait::eventually;
use tokio::sync::watch;

/// `store` flags plus `--node-id <id>` plus `extra`, for each id.
fn node_args(store: &[String], ids: &[&str], extra: &[&str]) -> Vec<Vec<String>> {
    ids.iter()
        .map(|id| {
            let mut a = store.to_vec();
            a.extend(["--node-id".to_owned(), (*id).to_owned()]);
            a.extend(extra.iter().map(|s| (*s).to_owned()));
            a
        })
        .collect()
}

/// Opens `n` plain viewer sockets (no session) and reads their welcomes.
async fn open_viewers(node: &Node, campaign: &str, n: usize) -> Vec<Ws> {
    join_all((0..n).map(|_| async {
        let mut ws = node.viewer(campaign, "").await;
        assert_eq!(ws.next().await["type"], "welcome");
        ws
    }))
    .await
}

/// Polls a node's stats until `viewers == n`, failing at once if it ever reads more than
/// `max` (an over-count is a bug, not a delay).
async fn await_viewers(node: &Node, campaign: &str, n: u64, max: u64) -> Value {
    node.await_stats(campaign, &format!("{n} viewers"), |s| {
        let v = s["viewers"].as_u64().expect("viewers");
        assert!(v <= max, "viewers {v} above {max}: {s}");
        v == n
    })
    .await
}

/// `nodes` of an operator stats object as `node → viewers`.
fn shares(stats: &Value) -> BTreeMap<String, u64> {
    stats["nodes"]
        .as_array()
        .unwrap_or_else(|| panic!("no nodes in {stats}"))
        .iter()
        .map(|n| (n["node"].as_str().unwrap().to_owned(), n["viewers"].as_u64().unwrap()))
        .collect()
}

fn share_map(expected: &[(&str, u64)]) -> BTreeMap<String, u64> {
    expected.iter().map(|(n, v)| ((*n).to_owned(), *v)).collect()
}

/// Reads an operator socket until its stats show exactly `expected` shares; `first` is a
/// stats object already in hand (the welcome's: frames are pushed only when numbers
/// change, so what the welcome showed is not pushed again).
async fn await_shares(op: &mut Ws, first: Option<&Value>, total: u64, expected: &[(&str, u64)]) -> Value {
    let expected = share_map(expected);
    if let Some(s) = first.filter(|s| s["viewers"] == total && shares(s) == expected) {
        return s.clone();
    }
    // Inside the harness's own PATIENCE per read, so this reports the last stats seen.
    let deadline = Instant::now() + PATIENCE - Duration::from_secs(1);
    let mut last = first.cloned().unwrap_or(Value::Null);
    loop {
        let remaining = deadline.saturating_duration_since(Instant::now());
        let Ok(m) = tokio::time::timeout(remaining, op.next_of("stats")).await else {
            panic!("operator never saw {total} viewers as {expected:?}; last stats: {last}");
        };
        if m["viewers"] == total && shares(&m) == expected {
            return m;
        }
        last = m;
    }
}

/// The traffic test measures rates, so it runs alone: the others take this lock shared,
/// it takes it exclusively.
static EXCLUSIVE: tokio::sync::RwLock<()> = tokio::sync::RwLock::const_new(());

// ---------------------------------------------------------------------------------------
// The audience across nodes

/// 30 + 20 + 10 viewers on three nodes read 60 everywhere, with per-node shares for
/// operators; 10 leaving one node read 50 everywhere.
async fn sixty_viewers_on_three_nodes(store: Vec<String>) {
    let ids = ["node-a", "node-b", "node-c"];
    let nodes = Node::spawn_many(&node_args(&store, &ids, &[]));
    nodes[0].campaign("spread").await;
    for node in &nodes {
        node.await_known("spread").await;
    }
    let mut sockets = Vec::new();
    for (node, n) in nodes.iter().zip([30, 20, 10]) {
        sockets.push(open_viewers(node, "spread", n).await);
    }
    for node in &nodes {
        await_viewers(node, "spread", 60, 60).await;
    }
    let mut op = nodes[2].viewer("spread", &format!("role=operator&token={TOKEN}")).await;
    let welcome = op.next().await;
    assert_eq!(welcome["type"], "welcome");
    let expected = [("node-a", 30), ("node-b", 20), ("node-c", 10)];
    let m = await_shares(&mut op, Some(&welcome["stats"]), 60, &expected).await;
    assert_eq!(m["nodes"].as_array().unwrap().len(), 3);
    assert_eq!(m["regions"], serde_json::json!({"unknown": 60}));

    let leaving = sockets[0].split_off(20);
    join_all(leaving.into_iter().map(Ws::close)).await;
    for node in &nodes {
        await_viewers(node, "spread", 50, 60).await;
    }
    await_shares(&mut op, None, 50, &[("node-a", 20), ("node-b", 20), ("node-c", 10)]).await;
    // The peak saw all 60 at once.
    assert_eq!(nodes[1].stats("spread").await["peak_viewers"], 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_standalone_redis_count_the_audience_exactly() {
    let _shared = EXCLUSIVE.read().await;
    let redis = RedisServer::start();
    sixty_viewers_on_three_nodes(vec!["--redis".into(), redis.url()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_on_redis_cluster_count_the_audience_exactly() {
    let _shared = EXCLUSIVE.read().await;
    let cluster = RedisCluster::start(3);
    sixty_viewers_on_three_nodes(vec!["--redis-cluster".into(), cluster.urls().join(",")]).await;
}

// ---------------------------------------------------------------------------------------
// Public reads from the node's index

/// A campaign created on node A is served by node B within one tick, then both nodes'
/// public reads cost Redis nothing per request (the finding: 13 commands per GET), and an
/// unknown id is 404 without a store read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_reads_are_served_from_every_nodes_index() {
    let _alone = EXCLUSIVE.write().await;
    const TICK: Duration = Duration::from_millis(500);
    let redis = RedisServer::start();
    let store = vec!["--redis".to_owned(), redis.url()];
    let nodes = Node::spawn_many(&node_args(&store, &["node-a", "node-b"], &["--tick", "500ms"]));
    let (a, b) = (&nodes[0], &nodes[1]);
    assert_eq!(b.call("GET", "/api/v1/campaigns/known", None, None).await.0, 404);
    let created = Instant::now();
    a.campaign_with(serde_json::json!({"id": "known", "title": "t", "share_channels": ["wechat"]}))
        .await;
    b.await_known("known").await;
    // One tick, plus what a loaded 2-core machine adds to a process's HTTP round trips.
    assert!(
        created.elapsed() < TICK + Duration::from_secs(1),
        "{:?}",
        created.elapsed()
    );
    let (_, c) = b.call("GET", "/api/v1/campaigns/known", None, None).await;
    assert_eq!(c["share_channels"], serde_json::json!(["wechat"]));
    assert_eq!(c["stats"]["viewers"], 0);

    const READS: u64 = 300;
    let before = load::redis_commands(&redis);
    for node in [a, b] {
        for _ in 0..READS / 6 {
            for path in [
                "/api/v1/campaigns/known",
                "/api/v1/campaigns/known/stats",
                "/api/v1/campaigns/nope",
            ] {
                let (status, _) = node.call("GET", path, None, None).await;
                assert_eq!(status, if path.contains("nope") { 404 } else { 200 });
            }
        }
    }
    let spent = load::redis_commands(&redis) - before;
    // The ticks meanwhile: each node reads the index version and the one live campaign's
    // stats (a script of about 15 commands) per tick, and the webhook deliverer looks at
    // its queues. Before the index, each read cost 13 commands or more: 3,900 here.
    assert!(spent < READS, "{spent} Redis commands for {READS} public reads");
}

// ---------------------------------------------------------------------------------------
// Exactly once across nodes

/// A client sends 1..=200 to node A and disconnects right after sending 101..=200, with
/// only 100 seen acked. It resumes on node B, resends everything after the last ack it saw
/// (some of which A may have written meanwhile: those are answered, not counted) and goes
/// on to 250.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_resumed_on_another_node_is_counted_exactly_once() {
    let _shared = EXCLUSIVE.read().await;
    let redis = RedisServer::start();
    let store = vec!["--redis".to_owned(), redis.url()];
    let nodes = Node::spawn_many(&node_args(
        &store,
        &["node-a", "node-b"],
        &["--max-interactions-per-sec", "1000"],
    ));
    let (a, b) = (&nodes[0], &nodes[1]);
    a.campaign("hop").await;
    b.await_known("hop").await;

    let mut c = Client::connect(a, "hop", "hopper-0001").await;
    assert_eq!(c.welcome_acked(), 0);
    assert!(c.send_upto(100).await);
    c.await_ack(100).await;
    assert!(c.send_upto(200).await);
    let seen = c.acked();
    c.close().await; // before A acked 101..=200, maybe before it even flushed them

    let mut c = Client::connect(b, "hop", "hopper-0001").await;
    let resumed = c.welcome_acked();
    assert!(
        (seen..=200).contains(&resumed),
        "welcome.acked_seq {resumed} outside [{seen}, 200]"
    );
    // A client that only trusts what it saw resends everything after that.
    c.next = seen + 1;
    assert!(c.send_upto(250).await);
    c.await_ack(250).await;
    assert_eq!(c.errors(), Vec::<Value>::new());

    // A settles whatever it still held (written before B's claim, or fenced after it).
    eventually("node A has nothing pending", || async {
        (load::readyz(a).await.1["pending"] == 0).then_some(())
    })
    .await;
    for node in [a, b] {
        // Public stats are the node's last tick's: a tick after the last flush at most.
        let s = node
            .await_stats("hop", "all 250", |s| load::likes(s) >= total_upto(250))
            .await;
        assert_eq!(load::likes(&s), total_upto(250), "{s}");
        assert_eq!(s["interactors"], 1);
    }
    println!("acks seen on A: {seen}; B resumed at {resumed}");
}

/// The slow old node: A takes 11..=20 and freezes (SIGSTOP) before flushing them. The
/// client resumes on B from 10, resends 11..=20 and goes on to 30. When A wakes up, its
/// late batch carries the old session epoch: the store fences it, A closes its socket
/// with 4001, and the total stays exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_flush_from_a_frozen_node_is_fenced() {
    let _shared = EXCLUSIVE.read().await;
    let redis = RedisServer::start();
    let store = vec!["--redis".to_owned(), redis.url()];
    let mut args = node_args(&store, &["node-a"], &["--max-interactions-per-sec", "1000"]);
    // A flushes once a second, so what it takes right after an ack stays unflushed
    // long enough to freeze it.
    args[0].extend(["--tick", "1s", "--flush-interval", "1s"].map(String::from));
    args.extend(node_args(&store, &["node-b"], &["--max-interactions-per-sec", "1000"]));
    let nodes = Node::spawn_many(&args);
    let (a, b) = (&nodes[0], &nodes[1]);
    a.campaign("slow").await;
    b.await_known("slow").await;

    let mut old = Client::connect(a, "slow", "slowpoke-01").await;
    assert!(old.send_upto(10).await);
    old.await_ack(10).await;
    assert!(old.send_upto(20).await);
    // A has read 11..=20 into its tally; the next flush is ~1 s after the last ack.
    let unflushed = total_upto(20) - total_upto(10);
    eventually("node A holding 11..=20", || async {
        (load::readyz(a).await.1["pending"] == unflushed).then_some(())
    })
    .await;
    let frozen = Frozen::stop(a);

    let mut c = Client::connect(b, "slow", "slowpoke-01").await;
    assert_eq!(c.welcome_acked(), 10, "A flushed 11..=20 before it froze");
    assert!(c.send_upto(30).await);
    c.await_ack(30).await;
    let s = b
        .await_stats("slow", "30 acked", |s| load::likes(s) >= total_upto(30))
        .await;
    assert_eq!(load::likes(&s), total_upto(30));

    drop(frozen); // SIGCONT
    assert_eq!(
        old.await_end().await,
        End::Close(4001),
        "A's socket after its fenced flush"
    );
    assert_eq!(old.acked(), 10, "A never acked what it could not write");
    eventually("node A settled", || async {
        (load::readyz(a).await.1["pending"] == 0).then_some(())
    })
    .await;
    for node in [a, b] {
        assert_eq!(load::likes(&node.stats("slow").await), total_upto(30));
    }
    // A counted only what it wrote before the claim.
    let counted = load::metric(a, r#"livetally_interactions_total{campaign="slow",kind="like"}"#).await;
    assert_eq!(counted as u64, total_upto(10));
}

/// A node frozen with SIGSTOP; SIGCONT when dropped, so a failing assertion never leaves
/// it frozen.
struct Frozen<'a>(&'a Node);

impl<'a> Frozen<'a> {
    fn stop(node: &'a Node) -> Self {
        node.signal("STOP");
        Frozen(node)
    }
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        self.0.signal("CONT");
    }
}

// ---------------------------------------------------------------------------------------
// Redis traffic does not grow with the interaction rate

/// Redis commands per second (by command) and acknowledged messages and interactions
/// (likes) per second over one window. Both are sampled without asking the node, whose
/// HTTP answers lag behind under a storm: Redis counts the commands, and the clients'
/// acks say what was durably counted.
struct Rates {
    commands: f64,
    by_command: BTreeMap<String, f64>,
    messages: f64,
    interactions: f64,
}

/// [`Rates`] over `window`, from a second after the streams started (once they have
/// reached their rate). Both waits are plain time: a rate is counted over a window, and
/// no event says a stream has settled at its rate.
async fn measure(redis: &RedisServer, streams: &[Streaming], window: Duration) -> Rates {
    tokio::time::sleep(Duration::from_secs(1)).await; // reach the steady state
    let acked = || streams.iter().map(Streaming::acked).collect::<Vec<u64>>();
    let (c0, a0, t0) = (load::redis_command_calls(redis), acked(), Instant::now());
    tokio::time::sleep(window).await;
    let (c1, a1, dt) = (load::redis_command_calls(redis), acked(), t0.elapsed().as_secs_f64());
    let by_command: BTreeMap<String, f64> = c1
        .iter()
        .map(|(name, n)| (name.clone(), (n - c0.get(name).unwrap_or(&0)) as f64 / dt))
        .filter(|(_, rate)| *rate > 0.0)
        .collect();
    let (mut messages, mut interactions) = (0, 0);
    for (before, after) in a0.iter().zip(&a1) {
        messages += after - before;
        interactions += total_upto(*after) - total_upto(*before);
    }
    Rates {
        commands: by_command.values().sum(),
        by_command,
        messages: messages as f64 / dt,
        interactions: interactions as f64 / dt,
    }
}

/// 200 sockets on one node: ~1,000 messages/s, then as fast as this machine allows. The
/// Redis command rate (scripts' inner commands included) stays the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_traffic_stays_flat_while_interactions_grow() {
    let _alone = EXCLUSIVE.write().await;
    const SOCKETS: usize = 200;
    const WINDOW: Duration = Duration::from_secs(3);
    let redis = RedisServer::start();
    // The product's default flush interval and tick: on a busy 2-core machine one flush
    // cycle (wake-up, script, reply) can take longer than the tests' usual 20 ms, and then
    // the flush rate would measure the scheduler, not the node.
    let node = Node::spawn(&[
        "--redis",
        &redis.url(),
        "--max-interactions-per-sec",
        "1000000",
        "--flush-interval",
        "100ms",
        "--tick",
        "1s",
    ]);
    node.campaign("storm").await;
    let clients = load::clients(&node, "storm", "storm", SOCKETS).await;

    // ~1,000 interactions/s: 500 messages/s of 2 likes on average, 2.5 per socket.
    let (stop_slow, stop) = watch::channel(false);
    let streams: Vec<Streaming> = clients
        .into_iter()
        .map(|c| Streaming::start(c, u64::MAX, 500.0 / SOCKETS as f64, stop.clone()))
        .collect();
    let slow = measure(&redis, &streams, WINDOW).await;
    stop_slow.send_replace(true);
    let clients: Vec<Client> = join_all(streams.into_iter().map(Streaming::finish))
        .await
        .into_iter()
        .map(|(c, ok)| {
            assert!(ok, "socket lost");
            c
        })
        .collect();

    // ~50,000 interactions/s: 25,000 messages/s, or as close as this machine gets.
    let (stop_fast, stop) = watch::channel(false);
    let streams: Vec<Streaming> = clients
        .into_iter()
        .map(|c| Streaming::start(c, u64::MAX, 25_000.0 / SOCKETS as f64, stop.clone()))
        .collect();
    let fast = measure(&redis, &streams, WINDOW).await;
    stop_fast.send_replace(true);
    let mut clients = Vec::new();
    for (c, ok) in join_all(streams.into_iter().map(Streaming::finish)).await {
        assert!(ok, "socket lost");
        clients.push(c);
    }

    // Everything sent is acked and counted exactly once.
    let mut expected = 0;
    for c in &mut clients {
        let last = c.next - 1;
        c.await_ack(last).await;
        assert_eq!(c.errors(), Vec::<Value>::new(), "{}", c.session);
        expected += total_upto(last);
    }
    assert_eq!(load::likes(&node.stats("storm").await), expected);

    println!(
        "slow: {:.0} msgs/s, {:.0} interactions/s acked, {:.0} Redis commands/s {:.0?}\n\
         fast: {:.0} msgs/s, {:.0} interactions/s acked, {:.0} Redis commands/s {:.0?}",
        slow.messages,
        slow.interactions,
        slow.commands,
        slow.by_command,
        fast.messages,
        fast.interactions,
        fast.commands,
        fast.by_command
    );
    assert!(
        fast.interactions >= 20.0 * slow.interactions,
        "the fast phase reached only {:.1}× the slow one",
        fast.interactions / slow.interactions
    );
    let drift = (fast.commands - slow.commands).abs() / slow.commands;
    assert!(
        drift <= 0.2,
        "Redis commands/s moved by {:.0}% ({:.0} → {:.0})\nslow: {:.0?}\nfast: {:.0?}",
        drift * 100.0,
        slow.commands,
        fast.commands,
        slow.by_command,
        fast.by_command
    );
}
