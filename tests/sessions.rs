//! Per-session resume state on a real node (`--session-ttl`): kept while any socket of the
//! session is open, however quiet, and forgotten within two TTLs of its last socket
//! closing, with the store back to its size before.

mod support;

use std::time::Duration;

use support::load::Client;
use support::node::{Backend, End, Node, Storage};
use support::redis::RedisServer;

/// Long enough for state last written now to be forgotten: two `--session-ttl`s (2 s)
/// and some slack.
const FORGOTTEN: Duration = Duration::from_millis(2 * 2_000 + 500);

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
        &["--session-ttl", "2s", "--presence-ttl", "1s", "--tick", "100ms"],
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
    tokio::time::sleep(FORGOTTEN).await;
    assert_eq!(quiet.ended(), None);

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
    tokio::time::sleep(FORGOTTEN).await;
    assert_eq!(session_footprint(redis, "ttl"), 0);
    let fresh = Client::connect(&node, "ttl", "session-quiet").await;
    assert_eq!(fresh.welcome_acked(), 0);
}
