//! Every bad input of the contract gets its exact status, error code or close code, and
//! never a corrupted count.

mod support;

use support::node::Backend;

on_every_store!(
    bad_messages_get_errors_and_count_nothing,
    more_than_ten_bad_messages_in_ten_seconds_close_with_1008,
    a_5_kib_frame_closes_with_1009,
    a_flood_is_rate_limited_then_closed_with_1008,
    refused_upgrades_have_exact_statuses,
    requests_that_are_not_websocket_upgrades_count_nobody,
    bad_api_input_gets_json_errors,
);

use serde_json::json;
use support::node::{End, Node, Ws};

async fn bad_messages_get_errors_and_count_nothing(backend: Backend) {
    let node = Node::start_with(backend, &[]);
    node.campaign("bad").await;
    let mut ws = node.viewer("bad", "session=session-bbbb").await;
    ws.next().await;
    let cases = [
        ("{not json", "bad_json"),
        (r#"{"type":"hello"}"#, "unknown_type"),
        (r#"{"type":"interact","kind":"dance"}"#, "unknown_kind"),
        (r#"{"type":"interact","kind":"like","count":0}"#, "bad_count"),
        (r#"{"type":"interact","kind":"like","count":101}"#, "bad_count"),
        (r#"{"type":"interact","kind":"like","seq":-1}"#, "bad_seq"),
        (r#"{"type":"interact","kind":"like","seq":5}"#, "seq_gap"),
    ];
    for (text, code) in cases {
        ws.send_text(text).await;
        let m = ws.next_of("error").await;
        assert_eq!(m["code"], code, "for {text}");
        // A refused sequenced message is named, so the client can resend exactly it.
        let expected_seq = if code == "seq_gap" {
            json!(5)
        } else {
            serde_json::Value::Null
        };
        assert_eq!(m["seq"], expected_seq, "for {text}");
        assert!(m["message"].as_str().is_some_and(|s| !s.is_empty()));
    }
    // Still open, and a good message after all that is counted alone.
    ws.send(json!({"type":"interact","kind":"like","seq":1})).await;
    assert_eq!(ws.next_of("ack").await["seq"], 1);
    let s = node.stats("bad").await;
    assert_eq!(
        s["interactions"],
        json!({"like": 1, "cheer": 0, "comment": 0, "share": 0})
    );
}

async fn more_than_ten_bad_messages_in_ten_seconds_close_with_1008(backend: Backend) {
    let node = Node::start_with(backend, &[]);
    node.campaign("spam").await;
    let mut ws = node.viewer("spam", "").await;
    ws.next().await;
    for _ in 0..10 {
        ws.send_text("nope").await;
        assert_eq!(ws.next_of("error").await["code"], "bad_json");
    }
    ws.send_text("nope").await;
    assert_eq!(ws.closed().await, End::Close(1008));
}

async fn a_5_kib_frame_closes_with_1009(backend: Backend) {
    let node = Node::start_with(backend, &[]);
    node.campaign("big").await;
    let mut ws = node.viewer("big", "").await;
    ws.next().await;
    let huge = format!(
        r#"{{"type":"interact","kind":"like","pad":"{}"}}"#,
        "x".repeat(5 * 1024)
    );
    ws.send_text(&huge).await;
    assert_eq!(ws.closed().await, End::Close(1009));
    assert_eq!(node.stats("big").await["interactions"]["like"], 0);
}

async fn a_flood_is_rate_limited_then_closed_with_1008(backend: Backend) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let node = Node::start_with(backend, &["--max-interactions-per-sec", "20"]);
    node.campaign("flood").await;
    let ws = node.viewer("flood", "").await;
    let (mut tx, mut rx) = ws.stream.split();
    let started = std::time::Instant::now();
    // Flood at ~200 messages/s from one task while another reads the answers.
    let sender = tokio::spawn(async move {
        let mut sent = 0u64;
        let msg = json!({"type":"interact","kind":"like"}).to_string();
        let mut pace = tokio::time::interval(std::time::Duration::from_millis(5));
        pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while tx.send(Message::text(msg.clone())).await.is_ok() && sent < 5_000 {
            sent += 1;
            pace.tick().await;
        }
        sent
    });
    let mut limited = 0u64;
    let code = loop {
        match tokio::time::timeout(support::node::PATIENCE, rx.next())
            .await
            .expect("no close")
        {
            Some(Ok(Message::Text(t))) => {
                let m: serde_json::Value = serde_json::from_str(&t).unwrap();
                if m["type"] == "error" {
                    assert_eq!(m["code"], "rate_limited");
                    limited += 1;
                }
            }
            Some(Ok(Message::Close(Some(f)))) => break u16::from(f.code),
            Some(Ok(_)) => {}
            other => panic!("socket ended without a close frame: {other:?}"),
        }
    };
    let elapsed = started.elapsed().as_secs_f64();
    let sent = sender.await.unwrap();
    assert_eq!(code, 1008);
    assert!(
        elapsed >= 5.0,
        "closed after {elapsed:.1}s, before 5 s of rate limiting"
    );
    assert!(limited > 100, "only {limited} rate_limited errors");
    let counted = node.stats("flood").await["interactions"]["like"].as_u64().unwrap();
    let counted = node
        .await_stats("flood", "the accepted burst", |s| {
            s["interactions"]["like"].as_u64() >= Some(counted.max(40))
        })
        .await["interactions"]["like"]
        .as_u64()
        .unwrap();
    // Never more than the burst plus the refill, and refused messages are never counted.
    let allowed = 40 + (20.0 * elapsed).ceil() as u64;
    assert!(counted <= allowed, "{counted} counted, limiter allows {allowed}");
    assert!(
        counted + limited <= sent,
        "{counted} counted + {limited} refused > {sent} sent"
    );
}

async fn refused_upgrades_have_exact_statuses(backend: Backend) {
    let node = Node::start_with(backend, &["--allowed-origins", "https://live.example"]);
    node.campaign("gate").await;
    assert_eq!(node.refused("/ws/v1/campaigns/nope").await, 404, "unknown campaign");
    assert_eq!(
        node.refused("/ws/v1/campaigns/Bad_Id").await,
        404,
        "malformed campaign id"
    );
    assert_eq!(
        node.refused("/ws/v1/campaigns/gate?viewer=short").await,
        400,
        "bad viewer id"
    );
    assert_eq!(
        node.refused("/ws/v1/campaigns/gate?session=bad%20id%20!!").await,
        400,
        "bad session"
    );
    assert_eq!(
        node.refused("/ws/v1/campaigns/gate?region=way-too-long-region").await,
        400,
        "bad region"
    );
    assert_eq!(
        node.refused("/ws/v1/campaigns/gate?role=operator").await,
        401,
        "operator without token"
    );
    assert_eq!(
        node.refused("/ws/v1/campaigns/gate?role=operator&token=wrong").await,
        403,
        "wrong token"
    );
    let url = node.ws_url("/ws/v1/campaigns/gate");
    assert_eq!(
        Ws::connect_with(&url, &[("origin", "https://evil.example")])
            .await
            .err(),
        Some(403),
        "origin not allowed"
    );
    let ok = Ws::connect_with(&url, &[("origin", "https://live.example")]).await;
    assert!(ok.is_ok(), "allowed origin");
    assert!(Ws::connect(&url).await.is_ok(), "no origin header is allowed");
    node.op("POST", "/api/v1/campaigns/gate/end", None).await;
    assert_eq!(node.refused("/ws/v1/campaigns/gate").await, 410, "ended campaign");
}

/// Sends a raw HTTP/1.1 request and returns the status line and body of the response.
async fn raw_request(node: &Node, path: &str, headers: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(node.addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nhost: {}\r\n{headers}\r\n", node.addr);
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    (head.lines().next().unwrap_or("").to_owned(), body.to_owned())
}

async fn requests_that_are_not_websocket_upgrades_count_nobody(backend: Backend) {
    let node = Node::start_with(backend, &[]);
    node.campaign("plain").await;
    let ws_path = "/ws/v1/campaigns/plain?viewer=viewer-plain-1&session=session-plain-1";
    // A plain GET of the socket URL: the same checks, then 400.
    let resp = node.http.get(node.url(ws_path)).send().await.unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["message"], "expected a WebSocket upgrade request");
    let resp = node.http.get(node.url("/ws/v1/campaigns/nope")).send().await.unwrap();
    assert_eq!(resp.status(), 404);
    // An upgrade to something other than a WebSocket: 400; to another path: 404.
    let key = "sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n";
    let (status, body) = raw_request(&node, ws_path, &format!("connection: Upgrade\r\nupgrade: h2c\r\n{key}")).await;
    assert_eq!(status, "HTTP/1.1 400 Bad Request", "{body}");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["message"], "expected a WebSocket upgrade request");
    let (status, _) = raw_request(
        &node,
        "/healthz",
        &format!("connection: Upgrade\r\nupgrade: websocket\r\n{key}"),
    )
    .await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    // A well-formed upgrade to an unknown campaign, written by hand: 404.
    let (status, _) = raw_request(
        &node,
        "/ws/v1/campaigns/nope",
        &format!("connection: Upgrade\r\nupgrade: websocket\r\n{key}"),
    )
    .await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    // None of that counted anyone: one real viewer is exactly one.
    let mut ws = node.viewer("plain", "viewer=viewer-plain-2").await;
    ws.next_of("welcome").await;
    let stats = node.await_stats("plain", "the viewer", |s| s["viewers"] != 0).await;
    assert_eq!(
        (stats["viewers"].as_u64(), stats["unique_viewers"].as_u64()),
        (Some(1), Some(1)),
        "{stats}"
    );
}

async fn bad_api_input_gets_json_errors(backend: Backend) {
    let node = Node::start_with(backend, &[]);
    let cases = [
        (json!({"title": "No id"}), "id"),
        (json!({"id": "UPPER", "title": "x"}), "id"),
        (json!({"id": "ok-id"}), "title"),
        (json!({"id": "ok-id", "title": ""}), "title"),
        (json!({"id": "ok-id", "title": "x".repeat(201)}), "title"),
        (json!({"id": "ok-id", "title": "t", "kinds": []}), "kinds"),
        (json!({"id": "ok-id", "title": "t", "kinds": ["Like!"]}), "kinds"),
        (json!({"id": "ok-id", "title": "t", "access": "secret"}), "access"),
        (
            json!({"id": "ok-id", "title": "t", "stream_url": "ftp://x"}),
            "stream_url",
        ),
    ];
    for (body, field) in cases {
        let (status, err) = node.op("POST", "/api/v1/campaigns", Some(body.clone())).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(err["error"]["code"], "invalid", "{body}");
        assert_eq!(err["error"]["field"], field, "{body}: {err}");
    }
    // Not JSON at all.
    let resp = node
        .http
        .post(node.url("/api/v1/campaigns"))
        .bearer_auth(support::node::TOKEN)
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid");
    // Operator bodies are the documented JSON shape or nothing: no silent defaults.
    node.campaign("strict").await;
    let tokens = "/api/v1/campaigns/strict/tokens";
    let form = Some("application/x-www-form-urlencoded");
    let json = Some("application/json");
    for (path, content_type, body, field) in [
        (tokens, json, r#"{"ttl_s":"60"}"#, Some("ttl_s")),
        (tokens, json, r#"{"ttl_s":-5}"#, Some("ttl_s")),
        (tokens, json, r#"{"ttl_s":60.5}"#, Some("ttl_s")),
        (tokens, json, r#"{"ttl_s":null}"#, Some("ttl_s")),
        (tokens, json, r#"{"ttl":60}"#, None),
        (tokens, json, "[60]", None),
        (tokens, json, "{oops", None),
        (tokens, form, "ttl_s=60", None),
        (tokens, None, r#"{"ttl_s":60}"#, None),
        ("/api/v1/campaigns", form, "id=form&title=Form", None),
        ("/api/v1/campaigns", json, "", None),
        ("/api/v1/campaigns", json, r#"["strict-2"]"#, None),
        (
            "/api/v1/campaigns",
            json,
            r#"{"id":"strict-2","title":"t","extra":1}"#,
            None,
        ),
        (
            "/api/v1/campaigns",
            json,
            r#"{"id":"strict-2","title":"t","kinds":null}"#,
            Some("kinds"),
        ),
        (
            "/api/v1/campaigns",
            json,
            r#"{"id":"strict-2","title":"t","access":true}"#,
            Some("access"),
        ),
        ("/api/v1/campaigns/strict/end", json, r#"{"at":5}"#, None),
        ("/api/v1/campaigns/strict/end", form, "now=1", None),
        ("/api/v1/campaigns/strict/end", json, "null", None),
    ] {
        let (status, err) = raw_op(&node, path, content_type, body).await;
        assert_eq!(
            (status, err["error"]["code"].as_str(), err["error"]["field"].as_str()),
            (400, Some("invalid"), field),
            "{path} {content_type:?} {body}: {err}"
        );
    }
    assert_eq!(node.op("GET", "/api/v1/campaigns/strict-2", None).await.0, 404);
    let (_, strict) = node.op("GET", "/api/v1/campaigns/strict", None).await;
    assert_eq!(strict["state"], "live", "not ended by a bad body");
    // No body at all, or an empty object, means the defaults.
    for (content_type, body) in [(None, ""), (json, ""), (json, "{}"), (json, " { } ")] {
        let (status, t) = raw_op(&node, tokens, content_type, body).await;
        assert_eq!(status, 201, "{content_type:?} {body:?}: {t}");
        let ttl_ms = t["expires_at"].as_i64().unwrap() - now_ms();
        assert!((86_390_000..=86_400_000).contains(&ttl_ms), "{ttl_ms}");
    }
    let (status, t) = raw_op(
        &node,
        tokens,
        Some("application/json; charset=utf-8"),
        r#"{"ttl_s":60}"#,
    )
    .await;
    assert_eq!(status, 201, "{t}");
    assert!(
        (50_000..=60_000).contains(&(t["expires_at"].as_i64().unwrap() - now_ms())),
        "{t}"
    );
    assert_eq!(raw_op(&node, "/api/v1/campaigns/strict/end", json, "{}").await.0, 200);

    // Registrations need a valid viewer id; unknown campaigns are 404.
    node.campaign("reg").await;
    let (status, err) = node
        .call(
            "POST",
            "/api/v1/campaigns/reg/registrations",
            Some(json!({"viewer": "x"})),
            None,
        )
        .await;
    assert_eq!((status, err["error"]["field"].as_str()), (400, Some("viewer")));
    let (status, _) = node
        .call(
            "POST",
            "/api/v1/campaigns/none/registrations",
            Some(json!({"viewer": "viewer-1234"})),
            None,
        )
        .await;
    assert_eq!(status, 404);
    let (status, err) = node.call("GET", "/api/v1/campaigns/none", None, None).await;
    assert_eq!((status, err["error"]["code"].as_str()), (404, Some("not_found")));
}

/// An operator POST with a raw body and content type (none: no header).
async fn raw_op(node: &Node, path: &str, content_type: Option<&str>, body: &str) -> (u16, serde_json::Value) {
    let mut req = node.http.post(node.url(path)).bearer_auth(support::node::TOKEN);
    if let Some(t) = content_type {
        req = req.header("content-type", t);
    }
    let resp = req.body(body.to_owned()).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}
