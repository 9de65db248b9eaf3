//! The plain-TCP path, over real loopback sockets: the broadcaster writes stats frames into
//! each socket itself (`broadcast::outlet`). What a client sees when its socket is idle, full,
//! or stops reading.

use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use super::policy::PING_INTERVAL;
use super::testing::{next_json, rig, rig_with, OPERATOR_TOKEN};
use super::transport::SEND_TIMEOUT;
use crate::broadcast::outlet::Offered;
use crate::protocol::{self, text_frame, Frames};
use crate::store::Stats;

/// A stats message numbered `n`, padded to over `pad` bytes so a few fill the socket.
fn big(n: u64, pad: usize) -> (String, Bytes) {
    let text = format!(r#"{{"type":"stats","n":{n},"pad":"{}"}}"#, "x".repeat(pad));
    let wire = text_frame(text.as_bytes());
    (text, wire)
}

#[tokio::test(start_paused = true)]
async fn the_broadcaster_writes_each_socket_its_frame() {
    let rig = rig().await;
    let (mut viewer, _) = rig.connect_tcp("").await;
    let (mut operator, _) = rig.connect_tcp(&format!("role=operator&token={OPERATOR_TOKEN}")).await;
    assert_eq!(next_json(&mut viewer).await["type"], "welcome");
    assert_eq!(next_json(&mut operator).await["role"], "operator");
    let tally = rig.tallies.get("launch").unwrap();
    // Operators (few, answering each frame with their `watch`) take frames from the
    // campaign's channel; viewers are written by the broadcaster.
    assert_eq!(tally.outlets.len(), 1);
    let stats = Stats {
        viewers: 7,
        ..Default::default()
    };
    let f = std::sync::Arc::new(Frames::build("launch", 1, &stats));
    let offered = tally.outlets.offer(&f.viewer_wire, &f.operator_wire);
    assert_eq!(
        offered,
        Offered { written: 1, queued: 0 },
        "idle sockets take it at once"
    );
    tally.frames.send_replace(f);
    let (v, o) = (next_json(&mut viewer).await, next_json(&mut operator).await);
    assert_eq!((v["type"].as_str(), v["viewers"].as_u64()), (Some("stats"), Some(7)));
    assert!(v.get("nodes").is_none(), "viewers get the viewer frame");
    assert_eq!(o["nodes"], serde_json::json!([]), "operators the operator frame");
}

/// A frame published after a socket's welcome was built but before the socket was in the
/// broadcast is not lost on it: the broadcaster sends a frame only when the numbers change,
/// so a socket that missed one would show stale numbers until the next change.
#[tokio::test(start_paused = true)]
async fn a_frame_published_before_the_socket_joined_the_broadcast_still_reaches_it() {
    let rig = rig().await;
    let newer = Frames::build(
        "launch",
        2,
        &Stats {
            viewers: 41,
            ..Default::default()
        },
    );
    let (mut c, _) = rig
        .connect_tcp_after("", || {
            let tally = rig.tallies.get("launch").unwrap();
            tally.frames.send_replace(std::sync::Arc::new(newer));
        })
        .await;
    let welcome = next_json(&mut c).await;
    assert_eq!(welcome["type"], "welcome");
    assert_ne!(welcome["stats"]["viewers"], 41);
    let caught_up = next_json(&mut c).await;
    assert_eq!(
        (caught_up["type"].as_str(), caught_up["viewers"].as_u64()),
        (Some("stats"), Some(41))
    );
}

/// A large campaign's broadcast is split over threads: every socket of every shard gets
/// each frame once, whole and in order, and the counts add up.
#[tokio::test(start_paused = true)]
async fn a_broadcast_split_over_threads_reaches_every_socket_once() {
    let rig = rig_with(40).await;
    let mut clients = Vec::new();
    for _ in 0..40 {
        let (mut c, _) = rig.connect_tcp("").await;
        assert_eq!(next_json(&mut c).await["type"], "welcome");
        clients.push(c);
    }
    let tally = rig.tallies.get("launch").unwrap();
    for n in 1..=2 {
        let (_, wire) = big(n, 16);
        assert_eq!(
            tally.outlets.offer_on(
                crate::broadcast::outlet::Wires {
                    viewer: Some(&wire),
                    operator: Some(&wire),
                    units: &[],
                },
                4,
            ),
            Offered { written: 40, queued: 0 },
            "frame {n}"
        );
    }
    for c in &mut clients {
        assert_eq!(next_json(c).await["n"], 1);
        assert_eq!(next_json(c).await["n"], 2);
    }
}

/// The client stops reading: big frames fill the kernel's buffers until one goes out in part
/// or not at all, the next ones wait for the socket's task (each replacing the one before), and an ack the task must send meanwhile waits for the rest. Once the
/// client reads, every message arrives whole (any interleaving would break the client's
/// parser), the stats frames in order, ending with the newest, and the ack among them.
/// Real time: the client reads megabytes through a tiny window, which paused time would
/// turn into a send timeout.
#[tokio::test]
async fn a_full_socket_gets_whole_frames_in_order_and_its_ack() {
    const PAD: usize = 256 * 1024;
    let rig = rig().await;
    let _flusher = rig.flusher().drop_guard();
    let (mut c, task) = rig.connect_tcp("session=session-0001").await;
    assert_eq!(next_json(&mut c).await["type"], "welcome");
    let tally = rig.tallies.get("launch").unwrap();
    // Offers frames until one is left to the task (the kernel's buffers are full), then
    // three more, which replace each other: the last is what the client must end with.
    let (mut n, mut queued) = (0, 0);
    while queued < 4 {
        n += 1;
        assert!(n <= 200, "a socket that reads nothing took 50 MB");
        let (_, wire) = big(n, PAD);
        queued += tally.outlets.offer(&wire, &wire).queued;
    }
    let last = n;
    c.send(Message::text(protocol::client::interact("like", 1, Some(1))))
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut acked = false;
    while !(acked && seen.last() == Some(&last)) {
        let m = next_json(&mut c).await;
        match m["type"].as_str() {
            Some("ack") => {
                assert_eq!(m["seq"], 1);
                acked = true;
            }
            Some("stats") => {
                let n = m["n"].as_u64().unwrap();
                assert_eq!(m["pad"].as_str().map(str::len), Some(PAD), "frame {n} whole");
                seen.push(n);
            }
            _ => panic!("unexpected {m}"),
        }
    }
    assert_eq!(seen.first(), Some(&1));
    let first_queued = last - 3;
    assert_eq!(
        seen.iter().filter(|&&k| k < first_queued).count() as u64,
        first_queued - 1,
        "every frame written before the socket filled arrived, the one begun finished: {seen:?}"
    );
    assert!(seen.windows(2).all(|w| w[0] < w[1]), "in order, none twice: {seen:?}");
    assert!(!task.is_finished());
}

/// A client that takes nothing is dropped once a frame has waited for it for the send
/// timeout; the broadcaster never waited for it.
#[tokio::test(start_paused = true)]
async fn a_socket_that_takes_nothing_is_dropped_after_the_send_timeout() {
    let rig = rig().await;
    let (mut c, task) = rig.connect_tcp("").await;
    assert_eq!(next_json(&mut c).await["type"], "welcome");
    let tally = rig.tallies.get("launch").unwrap();
    let (_, wire) = big(1, 4 << 20);
    assert_eq!(tally.outlets.offer(&wire, &wire), Offered { written: 0, queued: 1 });
    tokio::time::sleep(SEND_TIMEOUT - Duration::from_secs(1)).await;
    assert!(!task.is_finished(), "still within the send timeout");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(task.is_finished());
    assert_eq!(rig.closed("slow_client"), 1);
    assert!(tally.outlets.is_empty(), "out of the broadcast");
    assert_eq!(tally.local_viewers(), 0, "released");
}

#[tokio::test(start_paused = true)]
async fn acks_and_pings_still_flow_over_a_direct_socket() {
    let rig = rig().await;
    let _flusher = rig.flusher().drop_guard();
    let (mut c, task) = rig.connect_tcp("session=session-0001").await;
    assert_eq!(next_json(&mut c).await["type"], "welcome");
    c.send(Message::text(protocol::client::interact("like", 2, Some(1))))
        .await
        .unwrap();
    assert_eq!(next_json(&mut c).await, serde_json::json!({"type":"ack","seq":1}));
    let started = tokio::time::Instant::now();
    match c.next().await {
        Some(Ok(Message::Ping(_))) => {}
        other => panic!("expected a ping, got {other:?}"),
    }
    assert!(started.elapsed() >= PING_INTERVAL - Duration::from_secs(1));
    assert!(!task.is_finished());
}
