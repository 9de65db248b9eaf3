//! Viewer sockets against a real node: exact counts, acks, resume, operators, campaign end.

mod support;

use support::node::Backend;

on_every_store!(
    counts_200_viewers_exactly_then_100_after_half_leave,
    acks_arrive_in_order_and_totals_are_exact,
    resume_after_reconnect_never_double_counts,
    operators_watch_without_being_counted,
    ending_a_campaign_closes_sockets_with_4000_and_freezes_counts,
    private_campaigns_need_a_valid_join_token,
    a_message_sent_with_the_upgrade_request_is_counted_and_acked,
    a_healthy_store_is_never_a_reason_to_refuse,
);

use serde_json::json;
use support::node::{End, Node};

async fn counts_200_viewers_exactly_then_100_after_half_leave(backend: Backend) {
    let node = Node::start_with(backend, &[]);
    node.campaign("crowd").await;
    let mut sockets = Vec::new();
    for i in 0..200 {
        let region = if i % 2 == 0 { "CN" } else { "US" };
        let mut ws = node
            .viewer("crowd", &format!("viewer=viewer-{i:04}&region={region}"))
            .await;
        assert_eq!(ws.next().await["type"], "welcome");
        sockets.push(ws);
    }
    let s = node.await_stats("crowd", "200 viewers", |s| s["viewers"] == 200).await;
    support::node::assert_sketch(&s["unique_viewers"], 200);
    let rest = sockets.split_off(100);
    futures_util::future::join_all(sockets.into_iter().map(|ws| ws.close())).await;
    let s = node.await_stats("crowd", "100 viewers", |s| s["viewers"] == 100).await;
    assert_eq!(s["peak_viewers"], 200);
    support::node::assert_sketch(&s["unique_viewers"], 200);
    // The remaining sockets see the same number pushed to them.
    // Keep the other 99 open: dropping them would take the count on to 1 before the
    // next tick, and the frame with 100 might never be pushed.
    let mut rest = rest;
    let last = rest.last_mut().unwrap();
    last.until(|m| m["type"] == "stats" && m["viewers"] == 100).await;
}

async fn acks_arrive_in_order_and_totals_are_exact(backend: Backend) {
    let node = Node::start_with(backend, &["--max-interactions-per-sec", "1000"]);
    node.campaign("acks").await;
    let mut ws = node.viewer("acks", "viewer=viewer-aaaa&session=session-aaaa").await;
    let welcome = ws.next().await;
    assert_eq!(welcome["acked_seq"], 0);
    assert_eq!(welcome["session"], "session-aaaa");
    for seq in 1..=50u64 {
        let kind = if seq % 2 == 0 { "like" } else { "cheer" };
        ws.send(json!({"type":"interact","kind":kind,"count":2,"seq":seq}))
            .await;
    }
    // Unsequenced interactions are counted but never acked.
    ws.send(json!({"type":"interact","kind":"comment"})).await;
    let mut last = 0;
    while last < 50 {
        let m = ws.next().await;
        if m["type"] == "ack" {
            let seq = m["seq"].as_u64().unwrap();
            assert!(seq > last, "acks are cumulative and increasing: {seq} after {last}");
            last = seq;
        }
    }
    assert_eq!(last, 50);
    let s = node
        .await_stats("acks", "totals", |s| s["interactions"]["comment"] == 1)
        .await;
    assert_eq!(
        s["interactions"],
        json!({"like": 50, "cheer": 50, "comment": 1, "share": 0})
    );
    assert_eq!(s["interactors"], 1);
}

async fn resume_after_reconnect_never_double_counts(backend: Backend) {
    let node = Node::start_with(backend, &["--max-interactions-per-sec", "1000"]);
    node.campaign("resume").await;
    let q = "viewer=viewer-rrrr&session=session-rrrr";
    let mut ws = node.viewer("resume", q).await;
    ws.next().await;
    for seq in 1..=10u64 {
        ws.send(json!({"type":"interact","kind":"like","seq":seq})).await;
    }
    ws.until(|m| m["type"] == "ack" && m["seq"] == 10).await;
    ws.close().await;

    let mut ws = node.viewer("resume", q).await;
    let welcome = ws.next().await;
    assert_eq!(welcome["acked_seq"], 10);
    // The client resends 8..=10 (it never saw those acks) and goes on with 11 and 12.
    for seq in 8..=12u64 {
        ws.send(json!({"type":"interact","kind":"like","seq":seq})).await;
    }
    ws.until(|m| m["type"] == "ack" && m["seq"] == 12).await;
    let s = node
        .await_stats("resume", "12 likes", |s| s["interactions"]["like"] == 12)
        .await;
    assert_eq!(s["interactions"]["like"], 12);
    // A resend of something acked gets the current ack straight away.
    ws.send(json!({"type":"interact","kind":"like","seq":3})).await;
    assert_eq!(ws.next_of("ack").await["seq"], 12);
    assert_eq!(node.stats("resume").await["interactions"]["like"], 12);
}

async fn operators_watch_without_being_counted(backend: Backend) {
    let node = Node::start_with(backend, &[]);
    node.campaign_with(json!({"id":"ops","title":"Ops","regions":["CN","US"]}))
        .await;
    let mut op = node
        .viewer("ops", &format!("role=operator&token={}", support::node::TOKEN))
        .await;
    let w = op.next().await;
    assert_eq!(w["role"], "operator");
    let mut v1 = node.viewer("ops", "region=CN").await;
    v1.next().await;
    let mut v2 = node.viewer("ops", "region=FR").await;
    v2.next().await;
    let m = op.until(|m| m["type"] == "stats" && m["viewers"] == 2).await;
    assert_eq!(m["regions"], json!({"CN": 1, "other": 1}));
    assert_eq!(m["nodes"].as_array().unwrap().len(), 1);
    assert_eq!(m["nodes"][0]["viewers"], 2);
    // Viewers do not get the operator-only fields.
    let vm = v1.until(|m| m["type"] == "stats" && m["viewers"] == 2).await;
    assert!(vm.get("regions").is_none());
    assert!(vm.get("nodes").is_none());
}

async fn ending_a_campaign_closes_sockets_with_4000_and_freezes_counts(backend: Backend) {
    let node = Node::start_with(backend, &[]);
    node.campaign("fin").await;
    let mut ws = node.viewer("fin", "session=session-ffff").await;
    ws.next().await;
    ws.send(json!({"type":"interact","kind":"like","count":5,"seq":1}))
        .await;
    ws.until(|m| m["type"] == "ack").await;
    node.await_stats("fin", "1 viewer", |s| s["viewers"] == 1).await;
    let (status, c) = node.op("POST", "/api/v1/campaigns/fin/end", None).await;
    assert_eq!(status, 200);
    assert_eq!(c["state"], "ended");
    assert_eq!(ws.closed().await, End::Close(4000));
    let s = node.await_stats("fin", "0 viewers", |s| s["viewers"] == 0).await;
    assert_eq!(s["interactions"]["like"], 5);
    assert_eq!(s["peak_viewers"], 1);
    // Ending again is a no-op; new sockets are refused with 410.
    let (status, again) = node.op("POST", "/api/v1/campaigns/fin/end", None).await;
    assert_eq!(status, 200);
    assert_eq!(again["ended_at"], c["ended_at"]);
    assert_eq!(node.refused("/ws/v1/campaigns/fin").await, 410);
}

async fn private_campaigns_need_a_valid_join_token(backend: Backend) {
    let node = Node::start_with(backend, &[]);
    node.campaign_with(json!({"id":"vip","title":"VIP","access":"token"}))
        .await;
    assert_eq!(node.refused("/ws/v1/campaigns/vip").await, 401);
    assert_eq!(node.refused("/ws/v1/campaigns/vip?token=nonsense").await, 403);
    let (status, t) = node
        .op("POST", "/api/v1/campaigns/vip/tokens", Some(json!({"ttl_s": 60})))
        .await;
    assert_eq!(status, 201);
    let token = t["token"].as_str().unwrap();
    assert!(t["expires_at"].as_i64().unwrap() > 0);
    let mut ws = node.viewer("vip", &format!("token={token}")).await;
    assert_eq!(ws.next().await["type"], "welcome");
    // A token for another campaign does not open this one.
    node.campaign_with(json!({"id":"vip2","title":"VIP 2","access":"token"}))
        .await;
    assert_eq!(node.refused(&format!("/ws/v1/campaigns/vip2?token={token}")).await, 403);
    // An expired token is refused.
    let (_, short) = node
        .op("POST", "/api/v1/campaigns/vip/tokens", Some(json!({"ttl_s": 1})))
        .await;
    let short = short["token"].as_str().unwrap().to_owned();
    support::wait::eventually("the 1 s token to expire", || async {
        match support::node::Ws::connect(&node.ws_url(&format!("/ws/v1/campaigns/vip?token={short}"))).await {
            Err(403) => true,
            Ok(ws) => {
                ws.close().await;
                false
            }
            Err(other) => panic!("expired token got {other}"),
        }
    })
    .await;
}

/// A client may send its first frame in the same packet as its upgrade request, before the
/// 101 arrives: the node must read it from what the HTTP layer already buffered.
async fn a_message_sent_with_the_upgrade_request_is_counted_and_acked(backend: Backend) {
    use futures_util::StreamExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::tungstenite::Message;

    let node = Node::start_with(backend, &[]);
    node.campaign("eager").await;
    let payload = br#"{"type":"interact","kind":"like","count":3,"seq":1}"#;
    let mask = [0x12u8, 0x34, 0x56, 0x78];
    let mut bytes = format!(
        "GET /ws/v1/campaigns/eager?session=session-eager-1 HTTP/1.1\r\nhost: {}\r\n\
         connection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        node.addr
    )
    .into_bytes();
    // One masked text frame: FIN + text, mask bit + length, key, masked payload.
    bytes.extend([0x81, 0x80 | payload.len() as u8]);
    bytes.extend(mask);
    bytes.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    let mut tcp = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    tcp.write_all(&bytes).await.unwrap();

    let mut head = Vec::new();
    let end = loop {
        let mut chunk = [0u8; 1024];
        let n = tcp.read(&mut chunk).await.unwrap();
        assert!(n > 0, "closed before the response");
        head.extend_from_slice(&chunk[..n]);
        if let Some(i) = head.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let status = String::from_utf8_lossy(&head[..end]);
    assert!(status.starts_with("HTTP/1.1 101 "), "{status}");
    assert!(
        status.contains("sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo="),
        "{status}"
    );
    let mut ws =
        tokio_tungstenite::WebSocketStream::from_partially_read(tcp, head[end..].to_vec(), Role::Client, None).await;
    let mut seen = Vec::new();
    while let Some(Ok(Message::Text(t))) = ws.next().await {
        let m: serde_json::Value = serde_json::from_str(&t).unwrap();
        if m["type"] == "ack" {
            assert_eq!(m["seq"], 1);
            break;
        }
        seen.push(m["type"].as_str().unwrap_or_default().to_owned());
    }
    assert_eq!(seen.first().map(String::as_str), Some("welcome"), "{seen:?}");
    let s = node
        .await_stats("eager", "the like", |s| s["interactions"]["like"] != 0)
        .await;
    assert_eq!(s["interactions"]["like"], 3, "{s}");
}

/// `--max-pending` bounds what a failing store leaves buffered, not the traffic: 30
/// sockets sending `count` 100 buffer far more than 1,000 between two flushes, and a
/// healthy store takes all of it.
async fn a_healthy_store_is_never_a_reason_to_refuse(backend: Backend) {
    let node = Node::start_with(
        backend,
        &["--max-pending", "1000", "--max-interactions-per-sec", "1000"],
    );
    node.campaign("busy").await;
    let sockets = futures_util::future::join_all((0..30).map(|i| {
        let node = &node;
        async move {
            let mut ws = node
                .viewer("busy", &format!("viewer=viewer-{i:04}&session=session-{i:04}"))
                .await;
            assert_eq!(ws.next().await["type"], "welcome");
            ws
        }
    }))
    .await;
    futures_util::future::join_all(sockets.into_iter().map(|mut ws| async move {
        for seq in 1..=20 {
            ws.send(json!({"type":"interact","kind":"like","count":100,"seq":seq}))
                .await;
        }
        let last = ws.until(|m| m["type"] == "error" || m["seq"] == 20).await;
        assert_eq!(last, json!({"type":"ack","seq":20}), "no refusal");
    }))
    .await;
    let s = node
        .await_stats("busy", "60,000 likes", |s| s["interactions"]["like"] == 60_000)
        .await;
    assert_eq!(s["interactions"]["like"], 60_000);
}
