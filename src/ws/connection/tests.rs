//! The socket loop over an in-memory pipe, against the memory store, under paused time:
//! what a client sees for each way a socket can go.

use futures_util::{SinkExt, StreamExt};
use tokio::io::DuplexStream;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::*;
use crate::store::{Campaigns, Reads};
use crate::ws::testing::{next_json, rig, Rig};

type Client = WebSocketStream<DuplexStream>;

impl Rig {
    /// Admits a viewer with `query` and serves it; returns the client end.
    async fn connect(&self, query: &str) -> (Client, tokio::task::JoinHandle<()>) {
        let client = crate::clients::ClientKey::of([198, 51, 100, 1].into());
        let checked = self.admission.check("launch", query, None, None, client).await.unwrap();
        let admitted = self.admission.admit(checked).await.unwrap();
        let (server, client) = tokio::io::duplex(64 * 1024);
        let transport = Transport::new(server, vec![]).await;
        let task = tokio::spawn(run(self.env.clone(), admitted, transport));
        (WebSocketStream::from_raw_socket(client, Role::Client, None).await, task)
    }
}

/// Reads until the socket ends: the close code, or `None` when it ended without one.
async fn close_code(c: &mut Client) -> Option<u16> {
    loop {
        match c.next().await {
            Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            _ => return None,
        }
    }
}

async fn send(c: &mut Client, text: &str) {
    c.send(Message::text(text)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_like_is_acked_once_stored_and_a_resend_is_not_counted_again() {
    let rig = rig().await;
    let _flusher = rig.flusher().drop_guard();
    let (mut c, _) = rig.connect("session=session-0001").await;
    let welcome = next_json(&mut c).await;
    assert_eq!(
        (welcome["type"].as_str(), welcome["acked_seq"].as_u64()),
        (Some("welcome"), Some(0))
    );
    send(&mut c, &protocol::client::interact("like", 2, Some(1))).await;
    assert_eq!(next_json(&mut c).await, serde_json::json!({"type":"ack","seq":1}));
    send(&mut c, &protocol::client::interact("like", 2, Some(1))).await;
    assert_eq!(next_json(&mut c).await, serde_json::json!({"type":"ack","seq":1}));
    let s = rig
        .store
        .stats("launch", &["like".into()], crate::util::now_ms())
        .await
        .unwrap();
    assert_eq!(s.interactions["like"], 2);
}

#[tokio::test(start_paused = true)]
async fn the_eleventh_bad_message_closes_with_1008() {
    let rig = rig().await;
    let (mut c, task) = rig.connect("").await;
    next_json(&mut c).await;
    for _ in 0..policy::MAX_BAD_MESSAGES {
        send(&mut c, "{").await;
        assert_eq!(next_json(&mut c).await["code"], "bad_json");
    }
    send(&mut c, r#"{"type":"interact","kind":"boo","seq":1}"#).await;
    assert_eq!(close_code(&mut c).await, Some(close::POLICY));
    task.await.unwrap();
    assert_eq!(rig.closed("policy"), 1);
    assert_eq!(rig.tallies.get("launch").unwrap().local_viewers(), 0, "released");
}

#[tokio::test(start_paused = true)]
async fn a_silent_client_is_dropped_after_the_idle_timeout_without_a_close() {
    let rig = rig().await;
    let (mut c, task) = rig.connect("").await;
    next_json(&mut c).await;
    // The client reads nothing, so it answers no ping: after three pings it is gone.
    tokio::time::sleep(policy::IDLE_TIMEOUT + Duration::from_secs(1)).await;
    assert!(task.is_finished());
    assert_eq!(close_code(&mut c).await, None);
    assert_eq!(rig.closed("idle_timeout"), 1);
}

#[tokio::test(start_paused = true)]
async fn a_client_answering_pings_stays() {
    let rig = rig().await;
    let (mut c, task) = rig.connect("").await;
    next_json(&mut c).await;
    // Reading lets tungstenite answer each ping with a pong.
    let _ = tokio::time::timeout(policy::IDLE_TIMEOUT * 2, c.next()).await;
    assert!(!task.is_finished());
}

#[tokio::test(start_paused = true)]
async fn shutdown_closes_with_1001_and_campaign_end_with_4000() {
    let rig = rig().await;
    let (mut a, _) = rig.connect("").await;
    next_json(&mut a).await;
    rig.tallies.get("launch").unwrap().ended.cancel();
    assert_eq!(close_code(&mut a).await, Some(close::ENDED));

    let rig = self::rig().await; // a fresh campaign: the first one ended
    let (mut b, _) = rig.connect("").await;
    next_json(&mut b).await;
    rig.env.shutdown.cancel();
    assert_eq!(close_code(&mut b).await, Some(close::GOING_AWAY));
}

#[tokio::test(start_paused = true)]
async fn every_socket_gets_the_published_frame() {
    let rig = rig().await;
    let (mut a, _) = rig.connect("").await;
    let (mut b, _) = rig
        .connect(&format!("role=operator&token={}", crate::ws::testing::OPERATOR_TOKEN))
        .await;
    next_json(&mut a).await;
    assert_eq!(next_json(&mut b).await["role"], "operator");
    let stats = crate::store::Stats {
        viewers: 7,
        ..Default::default()
    };
    let tally = rig.tallies.get("launch").unwrap();
    tally
        .frames
        .send_replace(Arc::new(protocol::Frames::build("launch", 1, &stats)));
    let (va, vb) = (next_json(&mut a).await, next_json(&mut b).await);
    assert_eq!((va["type"].as_str(), va["viewers"].as_u64()), (Some("stats"), Some(7)));
    assert!(va.get("nodes").is_none(), "viewers get the viewer frame");
    assert_eq!(vb["nodes"], serde_json::json!([]), "operators the operator frame");
}

#[tokio::test(start_paused = true)]
async fn a_resend_flood_meets_the_rate_limit_then_closes_with_1008() {
    let rig = rig().await; // 20 messages a second, a burst of 40
    let (mut c, task) = rig.connect("session=session-0001").await;
    next_json(&mut c).await;
    send(&mut c, &protocol::client::interact("like", 1, Some(1))).await;
    let resend = protocol::client::interact("like", 1, Some(1));
    let (mut acks, mut limited) = (0, 0);
    for _ in 0..300 {
        send(&mut c, &resend).await;
        let reply = next_json(&mut c).await;
        match reply["type"].as_str() {
            Some("ack") => acks += 1,
            _ if reply["code"] == "rate_limited" => limited += 1,
            _ => panic!("{reply}"),
        }
    }
    // The limiter runs on tokio's clock, paused here: the 300 came at one instant, so
    // the burst of 40 less the first message's token answered them, no more.
    assert_eq!((acks, limited), (39, 261));
    // Then a flood of 50 a second against a quota of 20: two of every five get a
    // refilled token, the rest are refused, and after 5 s of refusals (the streak
    // survives the odd token) the socket closes like any flood.
    'flood: for _ in 0..60 {
        tokio::time::advance(Duration::from_millis(100)).await;
        for _ in 0..5 {
            if c.send(Message::text(resend.clone())).await.is_err() {
                break 'flood;
            }
        }
        if task.is_finished() {
            break;
        }
    }
    assert_eq!(close_code(&mut c).await, Some(close::POLICY));
    task.await.unwrap();
    assert_eq!(rig.closed("policy"), 1);
    assert_eq!(rig.tallies.pending().get(), 1, "the resends took nothing");
}

#[tokio::test(start_paused = true)]
async fn what_the_store_refused_as_ended_is_never_acked_and_the_socket_closes_with_4000() {
    let rig = rig().await;
    let _flusher = rig.flusher().drop_guard();
    let (mut c, task) = rig.connect("session=session-0001").await;
    next_json(&mut c).await;
    send(&mut c, &protocol::client::interact("like", 1, Some(1))).await;
    assert_eq!(next_json(&mut c).await, serde_json::json!({"type":"ack","seq":1}));
    // Another node ends the campaign; this node learns it from its next batch.
    rig.store.end_campaign("launch", crate::util::now_ms()).await.unwrap();
    send(&mut c, &protocol::client::interact("like", 2, Some(2))).await;
    send(&mut c, &protocol::client::interact("like", 3, Some(3))).await;
    let code = loop {
        match c.next().await {
            Some(Ok(Message::Text(t))) => {
                let m: serde_json::Value = serde_json::from_str(&t).unwrap();
                assert_ne!(m["type"], "ack", "acked what was not counted: {m}");
            }
            Some(Ok(Message::Close(f))) => break f.map(|f| u16::from(f.code)),
            Some(Ok(_)) => continue,
            other => panic!("socket ended without a close: {other:?}"),
        }
    };
    assert_eq!(code, Some(close::ENDED));
    task.await.unwrap();
    let s = rig
        .store
        .stats("launch", &["like".into()], crate::util::now_ms())
        .await
        .unwrap();
    assert_eq!(s.interactions["like"], 1);
    assert_eq!(rig.tallies.pending().get(), 0);
}

// A store outage refuses no viewer (see `tally::claim`).

/// The store's stats of `launch`: `(viewers, peak_viewers, likes)`.
async fn counted(rig: &Rig) -> (u64, u64, u64) {
    let s = rig
        .store
        .stats("launch", &["like".into()], crate::util::now_ms())
        .await
        .unwrap();
    (s.viewers, s.peak_viewers, s.interactions["like"])
}

/// Nothing reaches the client for `period` (pings aside).
async fn silent(c: &mut Client, period: Duration) {
    if let Ok(m) = tokio::time::timeout(period, next_json(c)).await {
        panic!("expected nothing, got {m}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_viewer_joining_during_an_outage_is_welcomed_and_acked_once_the_claim_lands() {
    let rig = rig().await;
    let _flusher = rig.flusher().drop_guard();
    let (mut a, _) = rig.connect("session=session-000a").await;
    next_json(&mut a).await;
    rig.store.set_down(true);
    let (mut b, _) = rig.connect("proto=2&session=session-000b").await;
    let welcome = next_json(&mut b).await;
    assert_eq!(welcome["type"], "welcome");
    assert!(welcome["acked_seq"].is_null(), "{welcome}");
    send(&mut b, &protocol::client::interact("like", 2, Some(1))).await;
    send(&mut b, &protocol::client::interact("like", 3, Some(2))).await;
    silent(&mut b, Duration::from_secs(3)).await;
    let tally = rig.tallies.get("launch").unwrap();
    assert_eq!(tally.local_viewers(), 1, "not in presence before its claim");
    assert_eq!(tally.claiming.load(std::sync::atomic::Ordering::Relaxed), 1);
    rig.store.set_down(false);
    assert_eq!(next_json(&mut b).await, serde_json::json!({"type":"ack","seq":0}));
    assert_eq!(next_json(&mut b).await, serde_json::json!({"type":"ack","seq":2}));
    assert_eq!(counted(&rig).await, (2, 2, 5));
    assert_eq!(tally.local_viewers(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_protocol_1_client_waits_for_its_welcome_and_a_held_resend_counts_once() {
    let rig = rig().await;
    let _flusher = rig.flusher().drop_guard();
    let (mut keep, _) = rig.connect("session=session-keep").await;
    next_json(&mut keep).await;
    let (mut a, task) = rig.connect("session=session-0001").await;
    next_json(&mut a).await;
    for seq in 1..=3 {
        send(&mut a, &protocol::client::interact("like", 1, Some(seq))).await;
    }
    while next_json(&mut a).await["seq"] != 3 {}
    a.close(None).await.unwrap();
    task.await.unwrap();
    rig.store.set_down(true);
    let (mut b, _) = rig.connect("session=session-0001").await;
    // It resends from its own ledger: 3 (already counted) and 4, before any welcome.
    send(&mut b, &protocol::client::interact("like", 1, Some(3))).await;
    send(&mut b, &protocol::client::interact("like", 1, Some(4))).await;
    silent(&mut b, Duration::from_secs(3)).await;
    rig.store.set_down(false);
    let welcome = next_json(&mut b).await;
    assert_eq!(
        (welcome["type"].as_str(), welcome["acked_seq"].as_u64()),
        (Some("welcome"), Some(3))
    );
    assert_eq!(next_json(&mut b).await, serde_json::json!({"type":"ack","seq":4}));
    // `keep` and `b`: each session once; the peak was `keep` and `a`.
    assert_eq!(counted(&rig).await, (2, 2, 4));
}

#[tokio::test(start_paused = true)]
async fn a_socket_that_closes_before_its_claim_lands_is_never_counted() {
    let rig = rig().await;
    let _flusher = rig.flusher().drop_guard();
    let (mut keep, _) = rig.connect("session=session-keep").await;
    next_json(&mut keep).await;
    rig.store.set_down(true);
    let (mut b, task) = rig.connect("proto=2&session=session-000b").await;
    next_json(&mut b).await;
    send(&mut b, &protocol::client::interact("like", 1, Some(1))).await;
    b.close(None).await.unwrap();
    task.await.unwrap();
    let tally = rig.tallies.get("launch").unwrap();
    assert_eq!(tally.claiming.load(std::sync::atomic::Ordering::Relaxed), 0);
    rig.store.set_down(false);
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(counted(&rig).await, (1, 1, 0));
}
