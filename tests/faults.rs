//! Faults with Redis as the shared truth: nodes killed or stopped, Redis hung or crashed,
//! nodes restarted. What must hold (the spec's "Guarantees"): viewers of a dead node stop
//! counting within the presence TTL, a node that leaves says so at once, and every
//! acknowledged interaction is counted exactly once through all of it.
//!
//! Every test starts its own redis-server and nodes on free ports. Clients send seq'd
//! likes with varying counts (see `support::load`), so a lost or doubled message shows in
//! the totals.

mod support;

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use serde_json::{json, Value};
use support::load::{self, total_upto, Client, Streaming};
use support::node::{End, Node, Ws, TOKEN};
use support::redis::{RedisCluster, RedisServer};
use support::wait::{eventually, throughout};
use tokio::sync::watch;

/// A short lease, so a dead node's share expires quickly.
const TTL: Duration = Duration::from_secs(2);

/// Three nodes `node-a`, `node-b`, `node-c` on `redis` with `extra` flags.
fn three_nodes(redis: &RedisServer, extra: &[&str]) -> Vec<Node> {
    Node::spawn_on_redis(redis, &["node-a", "node-b", "node-c"], extra)
}

async fn open_viewers(node: &Node, campaign: &str, n: usize) -> Vec<Ws> {
    join_all((0..n).map(|_| async {
        let mut ws = node.viewer(campaign, "").await;
        assert_eq!(ws.next().await["type"], "welcome");
        ws
    }))
    .await
}

fn viewers(stats: &Value) -> u64 {
    stats["viewers"]
        .as_u64()
        .unwrap_or_else(|| panic!("no viewers in {stats}"))
}

/// Asserts that every node keeps reading exactly `n` viewers for `period`.
async fn assert_viewers_stay(nodes: &[&Node], campaign: &str, n: u64, period: Duration) {
    throughout(period, || async {
        for node in nodes {
            let s = node.stats(campaign).await;
            assert_eq!(viewers(&s), n, "viewers moved: {s}");
        }
    })
    .await;
}

/// 30 / 20 / 10 viewers on the three nodes, and every node reading 60.
async fn spread_sixty(nodes: &[Node], campaign: &str) -> Vec<Vec<Ws>> {
    nodes[0].campaign(campaign).await;
    for node in nodes {
        node.await_known(campaign).await;
    }
    let mut sockets = Vec::new();
    for (node, n) in nodes.iter().zip([30, 20, 10]) {
        sockets.push(open_viewers(node, campaign, n).await);
    }
    for node in nodes {
        node.await_stats(campaign, "60 viewers", |s| viewers(s) == 60).await;
    }
    sockets
}

// ---------------------------------------------------------------------------------------
// Nodes that die and nodes that leave

/// SIGKILL: nobody says goodbye, so node-b's 20 viewers leave the total when its lease
/// runs out (within the TTL), and the other nodes' 40 stay counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_viewers_leave_within_the_presence_ttl() {
    let redis = RedisServer::start();
    let mut nodes = three_nodes(&redis, &["--presence-ttl", "2s"]);
    let mut sockets = spread_sixty(&nodes, "crash").await;

    nodes[1].signal("KILL");
    let killed = Instant::now();
    assert!(!nodes[1].wait().success());
    for node in [&nodes[0], &nodes[2]] {
        node.await_stats("crash", "node-b's share to expire", |s| {
            let v = viewers(s);
            assert!((40..=60).contains(&v), "{s}");
            v == 40
        })
        .await;
    }
    let took = killed.elapsed();
    // The lease was renewed at most one TTL before the kill; the rest is polling slack.
    assert!(took <= TTL + Duration::from_secs(1), "took {took:?}");
    println!("node-b's viewers left the total {took:?} after SIGKILL (TTL {TTL:?})");

    // The survivors keep renewing their leases: 40 for two more TTLs.
    assert_viewers_stay(&[&nodes[0], &nodes[2]], "crash", 40, 2 * TTL).await;
    let (_, c) = nodes[2].op("GET", "/api/v1/campaigns/crash", None).await;
    assert_eq!(c["stats"]["viewers"], 40);
    let mut op = nodes[0].viewer("crash", &format!("role=operator&token={TOKEN}")).await;
    let welcome = op.next().await;
    let shares: Vec<(String, u64)> = welcome["stats"]["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| (n["node"].as_str().unwrap().to_owned(), n["viewers"].as_u64().unwrap()))
        .collect();
    assert_eq!(shares, [("node-a".to_owned(), 30), ("node-c".to_owned(), 10)]);
    // node-b's sockets just broke.
    for ws in &mut sockets[1] {
        assert_eq!(ws.closed().await, End::NoCloseFrame);
    }
}

/// SIGTERM: node-b closes its 20 sockets with 1001 and drops its lease on the way out, so
/// the total reads 40 at once, long before the (default, 10 s) TTL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_that_shuts_down_leaves_at_once_with_1001() {
    let redis = RedisServer::start();
    let mut nodes = three_nodes(&redis, &["--presence-ttl", "10s"]);
    let mut sockets = spread_sixty(&nodes, "leave").await;

    nodes[1].signal("TERM");
    let termed = Instant::now();
    let codes = join_all(sockets[1].iter_mut().map(Ws::closed)).await;
    assert!(codes.iter().all(|c| *c == End::Close(1001)), "{codes:?}");
    for node in [&nodes[0], &nodes[2]] {
        node.await_stats("leave", "node-b gone", |s| viewers(s) == 40).await;
    }
    let took = termed.elapsed();
    assert!(took < Duration::from_secs(3), "took {took:?} with a 10 s TTL");
    assert!(nodes[1].wait().success(), "node-b exit status");
    println!("node-b's viewers left the total {took:?} after SIGTERM (TTL 10s)");
    assert_viewers_stay(&[&nodes[0], &nodes[2]], "leave", 40, Duration::from_millis(500)).await;
}

// ---------------------------------------------------------------------------------------
// Redis hangs

fn streams(clients: Vec<Client>, last: u64, per_sec: f64, stop: &watch::Receiver<bool>) -> Vec<Streaming> {
    clients
        .into_iter()
        .map(|c| Streaming::start(c, last, per_sec, stop.clone()))
        .collect()
}

/// Waits until every stream has sent everything and every seq is acked; returns the
/// clients. A correct run has no `error` message (no rate limit, no seq gap).
async fn finish_all(streams: Vec<Streaming>, last: u64) -> Vec<Client> {
    let mut clients = Vec::new();
    for (mut c, ok) in join_all(streams.into_iter().map(Streaming::finish)).await {
        assert!(ok, "{}: socket lost ({:?})", c.session, c.ended());
        assert_eq!(c.next, last + 1);
        c.await_ack(last).await;
        assert_eq!(c.errors(), Vec::<Value>::new(), "{}", c.session);
        clients.push(c);
    }
    clients
}

/// Waits until `/readyz` says the store is `up` or `down`; it answers 200 either way (a
/// node keeps admitting viewers through an outage, so a balancer must keep sending them).
async fn await_store(node: &Node, store: &str) -> Value {
    eventually(&format!("/readyz store {store}"), || async {
        let (s, body) = load::readyz(node).await;
        assert_eq!(s, 200, "{body}");
        (body["store"] == store).then_some(body)
    })
    .await
}

/// Redis frozen (SIGSTOP) for 5 s while 4 clients stream seq'd likes: the node says the
/// store is down (still 200), keeps every socket, buffers (metric > 0), withholds acks; after SIGCONT the
/// acks resume and the totals are exactly what was sent, every seq acked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_redis_withholds_acks_and_loses_nothing() {
    const LAST: u64 = 350; // 7 s at 50 messages/s per client
    let redis = RedisServer::start();
    let node = Node::spawn(&["--redis", &redis.url(), "--max-interactions-per-sec", "1000"]);
    node.campaign("hang").await;
    assert_eq!(load::readyz(&node).await.0, 200);
    let clients = load::clients(&node, "hang", "hang", 4).await;
    let (_stop, stop) = watch::channel(false);
    let streams = streams(clients, LAST, 50.0, &stop);
    eventually("first acks", || async {
        streams.iter().all(|s| s.acked() >= 5).then_some(())
    })
    .await;

    redis.pause();
    let paused = Instant::now();
    let unready = await_store(&node, "down").await;
    assert_eq!(unready["status"], "store_unavailable");
    // Any ack in flight at the pause has arrived by now (/readyz waits 1 s for Redis).
    let frozen: Vec<u64> = streams.iter().map(Streaming::acked).collect();
    let pending = eventually("store_pending > 0", || async {
        let p = load::metric(&node, "livetally_store_pending").await;
        (p > 0.0).then_some(p)
    })
    .await;
    tokio::time::sleep_until((paused + Duration::from_secs(5)).into()).await;
    let still: Vec<u64> = streams.iter().map(Streaming::acked).collect();
    assert_eq!(still, frozen, "acks while Redis was frozen");
    let (status, body) = load::readyz(&node).await;
    assert_eq!((status, body["store"].as_str()), (200, Some("down")), "{body}");
    // The clients kept sending: the buffer grew (the gauge moves once per flush attempt,
    // every 2 s while Redis does not answer; /readyz reads the counter itself).
    let buffered = body["pending"].as_u64().expect("pending");
    assert!(buffered > pending as u64, "{buffered} buffered, {pending} at first");
    redis.resume();
    println!("while Redis was frozen: acks held at {frozen:?}, {buffered} likes buffered");

    await_store(&node, "up").await;
    let clients = finish_all(streams, LAST).await;
    // The same sockets got the acks after the freeze: they stayed connected throughout.
    for (c, frozen) in clients.iter().zip(&frozen) {
        assert!(*frozen < LAST, "{} was done before the freeze", c.session);
        assert_eq!(c.ended(), None, "{}", c.session);
    }
    let s = node.stats("hang").await;
    assert_eq!(load::likes(&s), 4 * total_upto(LAST), "{s}");
    eventually("store_pending back to 0", || async {
        (load::metric(&node, "livetally_store_pending").await == 0.0).then_some(())
    })
    .await;
}

// ---------------------------------------------------------------------------------------
// Redis and node restarts

/// Redis (AOF, `appendfsync always`) is killed with SIGKILL mid-stream and restarted on
/// the same port and directory: the node reconnects, flushes what it buffered, and the
/// totals are exactly what the clients sent (each waits for the ack of its last seq).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_redis_with_aof_comes_back_with_every_ack() {
    const LAST: u64 = 300; // 3 s at 100 messages/s per client
    let mut redis = RedisServer::start_with_aof();
    let node = Node::spawn(&["--redis", &redis.url(), "--max-interactions-per-sec", "1000"]);
    node.campaign("crash").await;
    let clients = load::clients(&node, "crash", "crash", 4).await;
    let (_stop, stop) = watch::channel(false);
    let streams = streams(clients, LAST, 100.0, &stop);
    eventually("first acks", || async {
        streams.iter().all(|s| s.acked() >= 10).then_some(())
    })
    .await;

    redis.kill();
    await_store(&node, "down").await;
    let before: Vec<u64> = streams.iter().map(Streaming::acked).collect();
    redis.restart();
    await_store(&node, "up").await;

    let clients = finish_all(streams, LAST).await;
    let s = node.stats("crash").await;
    assert_eq!(load::likes(&s), 4 * total_upto(LAST), "{s}");
    assert_eq!(s["viewers"], 4, "presence came back with Redis: {s}");
    support::node::assert_sketch(&s["unique_viewers"], 4);
    println!(
        "acked before the crash: {before:?}; all {LAST} acked after the restart on {} sockets",
        clients.len()
    );
}

/// A node restart (SIGTERM, then a new node on the same Redis): the new node sees the
/// campaign, its totals, peak, uniques, report and series exactly as the old one did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_node_sees_everything_the_old_one_wrote() {
    let redis = RedisServer::start();
    let store = ["--redis", &redis.url(), "--max-interactions-per-sec", "1000"];
    let mut old = Node::spawn(&store);
    old.campaign_with(json!({"id":"history","title":"History","regions":["CN","US"]}))
        .await;
    // Five viewers at the peak, three of them with 40 acked seqs each; two leave.
    let mut clients = load::clients(&old, "history", "hist", 3).await;
    let extra = open_viewers(&old, "history", 2).await;
    for c in &mut clients {
        assert!(c.send_upto(40).await);
        c.await_ack(40).await;
    }
    old.await_stats("history", "5 viewers", |s| viewers(s) == 5).await;
    join_all(extra.into_iter().map(Ws::close)).await;
    let s = old.await_stats("history", "3 viewers", |s| viewers(s) == 3).await;
    assert_eq!(s["peak_viewers"], 5);
    assert_eq!(load::likes(&s), 3 * total_upto(40));
    assert_eq!(old.call("GET", "/s/history?via=wechat", None, None).await.0, 302);
    let s = old
        .await_stats("history", "the share visit", |s| s["share_visits"] == 1)
        .await;

    // Everything up to a point safely in the past (500 ms, so later ticks cannot change
    // it) once that point is after the last change: every like and the 3 viewers left.
    let (window, v_series, i_series) = eventually("the series to show everything", || async {
        let window = format!("to={}&step=1", now_ms() - 500);
        let path = format!("/api/v1/campaigns/history/series?metric=viewers&{window}");
        let (status, body) = old.op("GET", &path, None).await;
        if status == 400 && body["error"]["field"] == "to" {
            return Err("the window ends before the campaign started".to_owned());
        }
        let v_series = series(&old, "viewers", &window).await;
        let i_series = series(&old, "interactions", &window).await;
        let series_sum: u64 = i_series.iter().map(|p| p[1].as_u64().unwrap()).sum();
        let last_viewers = v_series.last().map(|p| p[1].clone());
        if series_sum == 3 * total_upto(40) && last_viewers == Some(json!(3)) {
            Ok((window, v_series, i_series))
        } else {
            Err(format!("{series_sum} likes, last viewers {last_viewers:?}"))
        }
    })
    .await;
    let campaigns = old.op("GET", "/api/v1/campaigns", None).await.1;
    let report = old.op("GET", "/api/v1/campaigns/history/report", None).await.1;

    drop(clients);
    old.signal("TERM");
    assert!(old.wait().success());
    let new = Node::spawn(&store);
    assert_eq!(new.op("GET", "/api/v1/campaigns", None).await.1, campaigns);
    let s2 = new.stats("history").await;
    for field in [
        "interactions",
        "peak_viewers",
        "unique_viewers",
        "interactors",
        "share_visits",
        "registrations",
    ] {
        assert_eq!(s2[field], s[field], "{field}");
    }
    assert_eq!(s2["viewers"], 0, "the old node left");
    assert_eq!(s2["peak_viewers"], 5);
    assert_eq!(load::likes(&s2), 3 * total_upto(40));
    support::node::assert_sketch(&s2["unique_viewers"], 5);
    support::node::assert_sketch(&s2["interactors"], 3);
    assert_eq!(s2["share_visits"], 1);
    let mut report2 = new.op("GET", "/api/v1/campaigns/history/report", None).await.1;
    report2["duration_s"] = report["duration_s"].clone();
    assert_eq!(report2, report);
    assert_eq!(series(&new, "viewers", &window).await, v_series);
    assert_eq!(series(&new, "interactions", &window).await, i_series);
}

async fn series(node: &Node, metric: &str, window: &str) -> Vec<Value> {
    let (status, body) = node
        .op(
            "GET",
            &format!("/api/v1/campaigns/history/series?metric={metric}&{window}"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["points"].as_array().unwrap().clone()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

// ---------------------------------------------------------------------------------------
// Graceful shutdown

/// Clients stream seq'd likes; SIGTERM closes every socket with 1001 after a last flush.
/// A new node then holds exactly what the old one acknowledged (plus, at most, what its
/// very last flush wrote after the acks went out, which `welcome.acked_seq` reports), and
/// resending every seq not seen acked gives exact totals: nothing lost, nothing doubled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_keeps_every_ack_and_resends_count_once() {
    const SESSIONS: usize = 5;
    const LAST: u64 = 2_000; // more than the stream gets through before the SIGTERM
    const FINAL: u64 = 1_000;
    let redis = RedisServer::start();
    let store = ["--redis", &redis.url(), "--max-interactions-per-sec", "1000"];
    let mut old = Node::spawn(&store);
    old.campaign("drain").await;
    let clients = load::clients(&old, "drain", "drain", SESSIONS).await;
    let (_stop, stop) = watch::channel(false);
    let streams = streams(clients, LAST, 200.0, &stop);
    eventually("acks", || async {
        streams.iter().all(|s| s.acked() >= 20).then_some(())
    })
    .await;

    old.signal("TERM");
    let mut clients = Vec::new();
    for (mut c, _) in join_all(streams.into_iter().map(Streaming::finish)).await {
        assert_eq!(c.await_end().await, End::Close(1001), "{}", c.session);
        assert!(
            c.next - 1 <= FINAL,
            "{} sent {} before the shutdown",
            c.session,
            c.next - 1
        );
        clients.push(c);
    }
    assert!(old.wait().success());
    let seen: Vec<u64> = clients.iter().map(Client::acked).collect();
    drop(clients);

    let new = Node::spawn(&store);
    let mut resumed = Vec::new();
    for (i, seen) in seen.iter().enumerate() {
        let c = Client::connect(&new, "drain", &format!("drain-{i:04}")).await;
        assert!(
            c.welcome_acked() >= *seen,
            "{}: acked {seen}, store has {}",
            c.session,
            c.welcome_acked()
        );
        resumed.push(c);
    }
    let stored: Vec<u64> = resumed.iter().map(Client::welcome_acked).collect();
    let s = new.stats("drain").await;
    assert_eq!(
        load::likes(&s),
        stored.iter().map(|n| total_upto(*n)).sum::<u64>(),
        "{s}"
    );
    println!("acks seen before SIGTERM: {seen:?}; acked seqs in the store: {stored:?}");

    // Each client resends everything after what it saw acked, then goes on to FINAL.
    for (c, seen) in resumed.iter_mut().zip(&seen) {
        c.next = seen + 1;
        assert!(c.send_upto(FINAL).await);
    }
    for c in &mut resumed {
        c.await_ack(FINAL).await;
        assert_eq!(c.errors(), Vec::<Value>::new(), "{}", c.session);
    }
    let s = new.stats("drain").await;
    assert_eq!(load::likes(&s), SESSIONS as u64 * total_upto(FINAL), "{s}");
}

/// `--max-pending` bounds what a failing store leaves buffered: a healthy store takes any
/// amount, a failing one gets new interactions refused with an error once the bound is
/// reached (never dropped silently), and what the node took is acked once Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_buffer_bound_interactions_are_refused_not_dropped() {
    let redis = RedisServer::start();
    let node = Node::spawn(&["--redis", &redis.url(), "--max-pending", "5"]);
    node.campaign("bounded").await;
    let mut ws = node.viewer("bounded", "session=session-bound").await;
    ws.next().await;
    let like = |seq: u64, count: u64| json!({"type":"interact","kind":"like","count":count,"seq":seq});
    // Healthy: 12 likes in one burst, more than the bound, are all taken.
    for seq in 1..=4 {
        ws.send(like(seq, 3)).await;
    }
    let ack = ws
        .until(|m| m["type"] != "stats" && (m["type"] == "error" || m["seq"] == 4))
        .await;
    assert_eq!(ack, json!({"type":"ack","seq":4}));

    redis.pause();
    // The node learns the store is failing when a batch fails (within the 2 s call
    // timeout): it takes what comes until then, and refuses once 5 are buffered.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut seq = 5;
    let refused = loop {
        assert!(Instant::now() < deadline, "no store_unavailable after seq {seq}");
        ws.send(like(seq, 1)).await;
        match tokio::time::timeout(Duration::from_millis(200), ws.next_of("error")).await {
            Ok(e) => {
                assert_eq!(
                    (e["code"].as_str(), e["seq"].as_u64()),
                    (Some("store_unavailable"), Some(seq))
                );
                break seq;
            }
            Err(_) => seq += 1,
        }
    };
    assert!(refused >= 9, "refused at seq {refused}, before 5 were buffered");
    redis.resume();
    // The batch in flight at the pause lands first, then the rest: every seq taken is acked.
    ws.until(|m| m["type"] == "ack" && m["seq"] == refused - 1).await;
    // The refused seq was not taken: the client sends it again and it counts once.
    ws.send(like(refused, 1)).await;
    ws.until(|m| m["type"] == "ack" && m["seq"] == refused).await;
    let total = 12 + (refused - 5) + 1;
    let s = node
        .await_stats("bounded", "every like taken", |s| s["interactions"]["like"] == total)
        .await;
    assert_eq!(s["interactions"]["like"], total);
}

// ---------------------------------------------------------------------------------------
// A store outage refuses no new viewer

/// Ten new viewers (eight on protocol 2, two on protocol 1) join a campaign the node holds
/// while its store is out (`outage` starts it, `back` ends it): every socket is opened,
/// protocol 2 is welcomed with `acked_seq: null` at once, protocol 1 only once the store
/// is back; each sends one seq'd like before its claim lands. After the store returns every
/// like is acked, and each session counts once in `viewers` and `peak_viewers`. `/readyz`
/// stays 200 with `"store":"down"` meanwhile; a campaign the node does not hold is 503.
async fn new_viewers_join_through_an_outage(node: &Node, outage: impl FnOnce(), back: impl FnOnce()) {
    node.campaign("outage").await;
    let mut first = node.viewer("outage", "session=session-first").await;
    first.next_of("welcome").await;
    node.await_stats("outage", "the first viewer", |s| s["viewers"] == 1)
        .await;

    outage();
    await_store(node, "down").await;
    let mut late = Vec::new();
    for i in 0..10 {
        let proto = if i < 8 { "&proto=2" } else { "" };
        let mut ws = node
            .viewer("outage", &format!("session=session-late-{i:02}{proto}"))
            .await;
        if i < 8 {
            let welcome = ws.next_of("welcome").await;
            assert!(welcome["acked_seq"].is_null(), "{welcome}");
        }
        ws.send(json!({"type":"interact","kind":"like","seq":1})).await;
        late.push(ws);
    }
    // An id the node's campaign index does not hold is 404 at once, store or no store.
    assert_eq!(node.refused("/ws/v1/campaigns/not-held-here").await, 404);
    let (status, body) = load::readyz(node).await;
    assert_eq!((status, body["store"].as_str()), (200, Some("down")), "{body}");

    back();
    await_store(node, "up").await;
    for (i, ws) in late.iter_mut().enumerate() {
        if i >= 8 {
            let welcome = ws.next_of("welcome").await;
            assert_eq!(welcome["acked_seq"], 0, "{welcome}");
        } else {
            assert_eq!(ws.next_of("ack").await["seq"], 0, "the stored acked seq first");
        }
        ws.until(|m| m["type"] == "ack" && m["seq"] == 1).await;
    }
    let s = node
        .await_stats("outage", "eleven viewers", |s| {
            s["viewers"] == 11 && load::likes(s) == 10
        })
        .await;
    assert_eq!(s["peak_viewers"], 11, "{s}");
    throughout(Duration::from_secs(1), || async {
        let s = node.stats("outage").await;
        assert_eq!(
            (s["viewers"].as_u64(), s["peak_viewers"].as_u64()),
            (Some(11), Some(11)),
            "{s}"
        );
    })
    .await;
}

/// Redis stopped (and restarted with its AOF): the claims fail at once and are retried.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_outage_refuses_no_new_viewer() {
    let mut redis = RedisServer::start_with_aof();
    let node = Node::start(&["--redis", &redis.url()]);
    let redis = std::sync::Mutex::new(&mut redis);
    new_viewers_join_through_an_outage(
        &node,
        || redis.lock().unwrap().stop(),
        || redis.lock().unwrap().restart(),
    )
    .await;
}

/// Every master of a Cluster frozen (SIGSTOP): the claims hang past `--claim-wait` and
/// land when it thaws.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_outage_refuses_no_new_viewer() {
    let cluster = RedisCluster::start(3);
    let node = Node::start(&["--redis-cluster", &cluster.urls().join(",")]);
    let pause = || cluster.nodes().iter().for_each(RedisServer::pause);
    let resume = || cluster.nodes().iter().for_each(RedisServer::resume);
    new_viewers_join_through_an_outage(&node, pause, resume).await;
}
