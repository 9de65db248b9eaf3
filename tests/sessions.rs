//! Per-session resume state on a real node (`--session-ttl`): kept while any socket of the
//! session is open, however quiet, and forgotten within two TTLs of its last socket
//! closing, with the store back to its size before.

mod support;

use std::time::Duration;

use support::load::Client;
use support::node::{Backend, End, Node, Storage};
use support::redis::RedisServer;
use support::wait::{eventually, eventually_within, throughout};

/// The nodes' `--session-ttl`: the shortest the node takes (it must be at least
/// `--presence-ttl`, itself at least 1 s), so the waits for it are short.
const SESSION_TTL: &str = "1s";

/// Long enough for state last written now to be forgotten: two `--session-ttl`s and some
/// slack.
const FORGOTTEN: Duration = Duration::from_millis(2 * 1_000 + 500);

/// Keys and fields of a campaign's session state and retry records (the rest of the
/// campaign, like its series, grows by design while it is watched).
fn session_footprint(redis: &RedisServer, campaign: &str) -> u64 {
    ["sessions*", "applied*", "epochs"]
        .iter()
        .map(|k| redis.footprint(&format!("lt:{{c:{campaign}}}:{k}")))
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_sockets_keep_their_session_and_closed_ones_are_forgotten() {
    let node = Node::start_with(
        Backend::Redis,
        &["--session-ttl", SESSION_TTL, "--presence-ttl", "1s", "--tick", "100ms"],
    );
    let Some(Storage::Redis(redis)) = &node.storage else {
        unreachable!()
    };
    node.campaign("ttl").await;
    assert_eq!(session_footprint(redis, "ttl"), 0);

    // One viewer likes and leaves; another likes and then only watches.
    let mut gone = Client::connect(&node, "ttl", "session-gone").await;
    gone.send_upto(3).await;
    gone.await_ack(3).await;
    gone.close().await;
    let mut quiet = Client::connect(&node, "ttl", "session-quiet").await;
    quiet.send_upto(2).await;
    quiet.await_ack(2).await;
    // Kept for as long as the other one takes to be forgotten: the quiet socket stays.
    throughout(FORGOTTEN, || async { assert_eq!(quiet.ended(), None) }).await;

    // The one who left starts over; the quiet one's session was kept by its open socket.
    let back = Client::connect(&node, "ttl", "session-gone").await;
    assert_eq!(back.welcome_acked(), 0);
    let mut again = Client::connect(&node, "ttl", "session-quiet").await;
    assert_eq!(again.welcome_acked(), 2);
    // Its new socket owns it now: the quiet one is fenced at its next message.
    quiet.send_upto(3).await;
    assert_eq!(quiet.await_end().await, End::Close(4001));
    again.send_upto(4).await;
    again.await_ack(4).await;
    let likes = |s: &serde_json::Value| s["interactions"]["like"].as_u64();
    let total = support::load::total_upto(3) + support::load::total_upto(4);
    node.await_stats("ttl", "every acked like once", |s| likes(s) == Some(total))
        .await;

    // Everyone leaves: two TTLs later nothing of their sessions is left in the store.
    back.close().await;
    again.close().await;
    node.await_stats("ttl", "no viewers", |s| s["viewers"] == 0).await;
    // The last socket's close reaches the store with the flush after it (up to a flush
    // after `viewers` reads 0), so allow a little more than two TTLs from here.
    eventually_within(FORGOTTEN + Duration::from_secs(1), "sessions forgotten", || async {
        if session_footprint(redis, "ttl") == 0 {
            return Ok(());
        }
        let keys: Vec<String> = redis.query(&["KEYS", "lt:{c:ttl}:*"]);
        let left: Vec<(String, Vec<String>)> = keys
            .iter()
            .filter(|k| k.contains(":sessions") || k.contains(":applied"))
            .map(|k| (k.clone(), redis.query::<Vec<String>>(&["HGETALL", k])))
            .collect();
        Err(format!("left behind: {left:?}"))
    })
    .await;
    let fresh = Client::connect(&node, "ttl", "session-quiet").await;
    assert_eq!(fresh.welcome_acked(), 0);
}

/// Two nodes `node-a` and `node-b` on a fresh Redis with `extra` flags.
fn two_nodes(redis: &RedisServer, extra: &[&str]) -> Vec<Node> {
    Node::spawn_on_redis(redis, &["node-a", "node-b"], extra)
}

/// Polls `node` for `period`: `viewers` never above `n`, `peak_viewers` always `n`.
async fn never_above(node: &Node, campaign: &str, n: u64, period: Duration) {
    throughout(period, || async {
        let s = node.stats(campaign).await;
        assert!(s["viewers"].as_u64().unwrap() <= n, "a session counted twice: {s}");
        assert_eq!(s["peak_viewers"], n, "{s}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn viewers_of_a_killed_node_reconnecting_elsewhere_count_once() {
    let redis = RedisServer::start();
    let mut nodes = two_nodes(&redis, &["--presence-ttl", "15s"]);
    nodes[0].campaign("crash").await;
    nodes[1].await_known("crash").await;
    let mut on_a = Vec::new();
    for i in 0..20 {
        on_a.push(Client::connect(&nodes[0], "crash", &format!("session-{i:03}")).await);
    }
    nodes[1]
        .await_stats("crash", "20 viewers", |s| s["viewers"] == 20)
        .await;

    // node-a dies; its lease would count its 20 for 15 s more. They come back at once.
    nodes[0].signal("KILL");
    assert!(!nodes[0].wait().success());
    let reconnect = async {
        let mut on_b = Vec::new();
        for i in 0..20 {
            on_b.push(Client::connect(&nodes[1], "crash", &format!("session-{i:03}")).await);
        }
        on_b
    };
    let (on_b, ()) = tokio::join!(
        reconnect,
        never_above(&nodes[1], "crash", 20, Duration::from_millis(500))
    );
    let s = nodes[1]
        .await_stats("crash", "20 viewers on node-b", |s| s["viewers"] == 20)
        .await;
    assert_eq!(s["peak_viewers"], 20, "{s}");
    never_above(&nodes[1], "crash", 20, Duration::from_secs(2)).await;
    assert_eq!(nodes[1].stats("crash").await["viewers"], 20);
    drop((on_a, on_b));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_socket_and_its_replacement_count_once() {
    let redis = RedisServer::start();
    let nodes = two_nodes(&redis, &[]);
    nodes[0].campaign("half").await;
    // The first socket stays open on node-a as far as the server knows (a half-open one).
    let mut first = Client::connect(&nodes[0], "half", "session-half").await;
    nodes[0].await_stats("half", "1 viewer", |s| s["viewers"] == 1).await;
    // node-b knows a campaign created on node-a within a tick (its index), not at once.
    eventually("node-b to know the campaign", || async {
        let (status, _) = nodes[1].call("GET", "/api/v1/campaigns/half", None, None).await;
        (status == 200).then_some(())
    })
    .await;

    // The viewer's new socket, elsewhere: counted once, and the old one is closed at once.
    let mut second = Client::connect(&nodes[1], "half", "session-half").await;
    let (end, ()) = tokio::join!(
        first.await_end(),
        never_above(&nodes[1], "half", 1, Duration::from_secs(1))
    );
    assert_eq!(end, End::Close(4001));
    // And again on the same node.
    let third = Client::connect(&nodes[1], "half", "session-half").await;
    let (end, ()) = tokio::join!(
        second.await_end(),
        never_above(&nodes[1], "half", 1, Duration::from_secs(1))
    );
    assert_eq!(end, End::Close(4001));
    let s = nodes[0].await_stats("half", "1 viewer", |s| s["viewers"] == 1).await;
    assert_eq!(s["peak_viewers"], 1);
    drop(third);
}
