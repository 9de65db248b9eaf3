//! The HTTP API: campaigns, auth, registrations, share links, series, reports, probes.

mod support;

use support::node::Backend;

on_every_store!(
    campaigns_are_created_listed_and_fetched,
    operator_routes_need_the_token,
    registrations_are_idempotent_per_viewer,
    share_links_redirect_and_count_by_channel,
    report_json_and_csv_carry_the_same_numbers,
    series_hold_viewers_and_interactions_per_tick,
    metrics_parse_and_carry_the_contract_names,
    pages_are_served,
    deleting_an_ended_campaign_removes_it_and_frees_the_id,
    share_channels_beyond_the_bound_count_under_other,
    declared_share_channels_keep_their_names_against_made_up_ones,
);

use serde_json::json;
use support::node::{Node, TOKEN};
use support::wait::eventually;

async fn campaigns_are_created_listed_and_fetched(backend: Backend) {
    let node = Node::start_with(backend, &[]);
    let c = node
        .campaign_with(json!({
            "id": "launch-2026", "title": "Launch", "stream_url": "https://video.example/live.m3u8",
            "kinds": ["like", "signup"], "regions": ["CN", "US"], "access": "public"
        }))
        .await;
    assert_eq!(c["id"], "launch-2026");
    assert_eq!(c["kinds"], json!(["like", "signup"]));
    assert_eq!(c["state"], "live");
    assert!(c["created_at"].as_i64().unwrap() > 1_700_000_000_000);
    assert_eq!(c["ended_at"], serde_json::Value::Null);
    node.campaign("second").await;
    let (status, dup) = node
        .op(
            "POST",
            "/api/v1/campaigns",
            Some(json!({"id": "second", "title": "Again"})),
        )
        .await;
    assert_eq!((status, dup["error"]["code"].as_str()), (409, Some("conflict")));
    let (status, list) = node.op("GET", "/api/v1/campaigns", None).await;
    assert_eq!(status, 200);
    let ids: Vec<_> = list["campaigns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].clone())
        .collect();
    assert_eq!(ids, vec![json!("launch-2026"), json!("second")]);
    // Public read: the campaign plus its stats.
    let (status, got) = node.call("GET", "/api/v1/campaigns/second", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(got["title"], "Campaign second");
    assert_eq!(got["kinds"], json!(["like", "cheer", "comment", "share"]));
    assert_eq!(got["stats"]["viewers"], 0);
    assert_eq!(got["stats"]["interactions"]["cheer"], 0);
}

async fn operator_routes_need_the_token(backend: Backend) {
    let node = Node::start_with(backend, &[]);
    node.campaign("auth").await;
    let routes = [
        ("POST", "/api/v1/campaigns"),
        ("GET", "/api/v1/campaigns"),
        ("POST", "/api/v1/campaigns/auth/end"),
        ("POST", "/api/v1/campaigns/auth/tokens"),
        ("GET", "/api/v1/campaigns/auth/series"),
        ("GET", "/api/v1/campaigns/auth/report"),
        ("DELETE", "/api/v1/campaigns/auth"),
    ];
    for (method, path) in routes {
        let (status, body) = node.call(method, path, Some(json!({})), None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (401, Some("unauthorized")),
            "{method} {path}"
        );
        let (status, body) = node.call(method, path, Some(json!({})), Some("not-the-token")).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("forbidden")),
            "{method} {path}"
        );
    }
    let (status, _) = node.call("GET", "/api/v1/campaigns", None, Some(TOKEN)).await;
    assert_eq!(status, 200);
    // Unknown campaigns are 404 for operators too.
    assert_eq!(node.op("POST", "/api/v1/campaigns/nope/end", None).await.0, 404);
}

async fn registrations_are_idempotent_per_viewer(backend: Backend) {
    let node = Node::start_with(backend, &[]);
    node.campaign("signup").await;
    let path = "/api/v1/campaigns/signup/registrations";
    let first = node
        .call(
            "POST",
            path,
            Some(json!({"viewer": "viewer-0001", "name": "Ann"})),
            None,
        )
        .await;
    assert_eq!(first.0, 201);
    assert_eq!(first.1["created"], true);
    let again = node
        .call("POST", path, Some(json!({"viewer": "viewer-0001"})), None)
        .await;
    assert_eq!(again.0, 200);
    assert_eq!(again.1["created"], false);
    assert_eq!(
        node.call("POST", path, Some(json!({"viewer": "viewer-0002"})), None)
            .await
            .0,
        201
    );
    assert_eq!(node.stats("signup").await["registrations"], 2);
    node.op("POST", "/api/v1/campaigns/signup/end", None).await;
    let (status, body) = node
        .call("POST", path, Some(json!({"viewer": "viewer-0003"})), None)
        .await;
    assert_eq!((status, body["error"]["code"].as_str()), (410, Some("ended")));
    assert_eq!(node.stats("signup").await["registrations"], 2);
}

async fn share_links_redirect_and_count_by_channel(backend: Backend) {
    let node = Node::start_with(backend, &[]);
    node.campaign("viral").await;
    for via in ["wechat", "wechat", "weibo", "NOT VALID", ""] {
        let resp = node
            .http
            .get(node.url(&format!("/s/viral?via={via}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
        assert_eq!(resp.headers()["location"], "/c/viral");
    }
    let resp = node.http.get(node.url("/s/viral")).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let s = node
        .await_stats("viral", "6 share visits", |s| s["share_visits"] == 6)
        .await;
    assert_eq!(s["share_visits"], 6);
    // Once flushed, the campaign leaves the node (none is active); a later visit brings it
    // back, and its batches must still count (regression: batch numbers restarted at 1 and
    // the store took them for retries).
    eventually("the campaign to leave the node", || async {
        let metrics = node.http.get(node.url("/metrics")).send().await.unwrap();
        metrics.text().await.unwrap().contains("livetally_active_campaigns 0")
    })
    .await;
    node.http.get(node.url("/s/viral?via=wechat")).send().await.unwrap();
    node.await_stats("viral", "7 share visits", |s| s["share_visits"] == 7)
        .await;
    let (_, report) = node.op("GET", "/api/v1/campaigns/viral/report", None).await;
    assert_eq!(
        report["share_visits_by_channel"],
        json!({"wechat": 3, "weibo": 1, "other": 3})
    );
    assert_eq!(
        node.http.get(node.url("/s/unknown")).send().await.unwrap().status(),
        404
    );
    // Ended: still redirects (the page says it ended), no longer counts.
    node.op("POST", "/api/v1/campaigns/viral/end", None).await;
    let resp = node.http.get(node.url("/s/viral?via=wechat")).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    let (_, report) = node.op("GET", "/api/v1/campaigns/viral/report", None).await;
    assert_eq!(report["share_visits"], 7);
}

async fn report_json_and_csv_carry_the_same_numbers(backend: Backend) {
    let node = Node::start_with(backend, &["--max-interactions-per-sec", "1000"]);
    node.campaign_with(json!({"id": "rep", "title": "Report, \"quoted\"", "regions": ["CN"]}))
        .await;
    let mut a = node
        .viewer("rep", "viewer=viewer-aaaa&session=session-aaaa&region=CN")
        .await;
    a.next().await;
    let mut b = node.viewer("rep", "viewer=viewer-bbbb&session=session-bbbb").await;
    b.next().await;
    a.send(json!({"type":"interact","kind":"like","count":5,"seq":1})).await;
    b.send(json!({"type":"interact","kind":"cheer","count":2,"seq":1}))
        .await;
    a.next_of("ack").await;
    b.next_of("ack").await;
    node.call(
        "POST",
        "/api/v1/campaigns/rep/registrations",
        Some(json!({"viewer":"viewer-aaaa"})),
        None,
    )
    .await;
    node.http.get(node.url("/s/rep?via=wechat")).send().await.unwrap();
    node.await_stats("rep", "everything flushed", |s| {
        s["share_visits"] == 1 && s["viewers"] == 2
    })
    .await;
    node.op("POST", "/api/v1/campaigns/rep/end", None).await;

    let (status, r) = node.op("GET", "/api/v1/campaigns/rep/report", None).await;
    assert_eq!(status, 200);
    assert_eq!(r["campaign"]["id"], "rep");
    assert_eq!(r["campaign"]["state"], "ended");
    assert_eq!(r["peak_viewers"], 2);
    assert!(r["peak_at"].as_i64().is_some());
    assert_eq!(r["unique_viewers"], 2);
    assert_eq!(r["interactors"], 2);
    assert_eq!(
        r["interactions"],
        json!({"like": 5, "cheer": 2, "comment": 0, "share": 0})
    );
    assert_eq!(r["registrations"], 1);
    assert_eq!(r["share_visits"], 1);
    assert_eq!(r["share_visits_by_channel"], json!({"wechat": 1}));
    assert_eq!(r["regions_at_peak"], json!({"CN": 1, "unknown": 1}));
    assert!(r["duration_s"].as_i64().unwrap() >= 0);

    for csv in [
        node.http
            .get(node.url("/api/v1/campaigns/rep/report?format=csv"))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap(),
        node.http
            .get(node.url("/api/v1/campaigns/rep/report"))
            .bearer_auth(TOKEN)
            .header("accept", "text/csv")
            .send()
            .await
            .unwrap(),
    ] {
        assert_eq!(csv.status(), 200);
        assert!(csv.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
        let text = csv.text().await.unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "metric,value");
        for row in [
            "peak_viewers,2",
            "unique_viewers,2",
            "interactors,2",
            "interactions.like,5",
            "interactions.cheer,2",
            "registrations,1",
            "share_visits,1",
            "share_visits_by_channel.wechat,1",
            "regions_at_peak.CN,1",
            "campaign.id,rep",
            "campaign.title,\"Report, \"\"quoted\"\"\"",
        ] {
            assert!(lines.contains(&row), "missing {row} in\n{text}");
        }
    }
}

async fn series_hold_viewers_and_interactions_per_tick(backend: Backend) {
    let node = Node::start_with(backend, &["--max-interactions-per-sec", "1000"]);
    node.campaign("series").await;
    let mut ws = node.viewer("series", "session=session-ssss").await;
    ws.next().await;
    for seq in 1..=3 {
        ws.send(json!({"type":"interact","kind":"like","count":2,"seq":seq}))
            .await;
    }
    ws.until(|m| m["type"] == "ack" && m["seq"] == 3).await;
    ws.send(json!({"type":"interact","kind":"cheer","seq":4})).await;
    ws.until(|m| m["type"] == "ack" && m["seq"] == 4).await;
    // Wait until a tick has recorded one viewer.
    let viewers = eventually("a viewer point", || async {
        let (status, v) = node
            .op("GET", "/api/v1/campaigns/series/series?metric=viewers", None)
            .await;
        assert_eq!(status, 200);
        if v["points"].as_array().is_some_and(|p| p.iter().any(|p| p[1] == 1)) {
            Ok(v)
        } else {
            Err(v)
        }
    })
    .await;
    assert_eq!(viewers["metric"], "viewers");
    assert!(viewers["step_ms"].as_i64().unwrap() >= 100);
    let sum = |v: &serde_json::Value| {
        v["points"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p[1].as_u64().unwrap())
            .sum::<u64>()
    };
    let (_, all) = node
        .op("GET", "/api/v1/campaigns/series/series?metric=interactions", None)
        .await;
    assert_eq!(sum(&all), 7);
    let (_, likes) = node
        .op(
            "GET",
            "/api/v1/campaigns/series/series?metric=interactions&kind=like",
            None,
        )
        .await;
    assert_eq!(sum(&likes), 6);
    let (_, coarse) = node
        .op(
            "GET",
            "/api/v1/campaigns/series/series?metric=interactions&step=3600",
            None,
        )
        .await;
    assert_eq!(coarse["step_ms"], 3_600_000);
    assert_eq!(coarse["points"].as_array().unwrap().len(), 1);
    assert_eq!(sum(&coarse), 7);
    for (bad, field) in [
        ("metric=likes", "metric"),
        ("metric=interactions&kind=dance", "kind"),
        ("step=0", "step"),
        ("step=soon", "step"),
        ("from=10&to=5", "from"),
        ("to=5", "to"),
        ("from=-1", "from"),
        ("from=x", "from"),
        ("to=9007199254740992", "to"),
        // Once the node allocated points until the kernel killed it.
        ("metric=interactions&from=0&to=9223372036854775807", "to"),
        ("metric=interactions&from=0&to=10000000&step=0.001", "step"),
        ("metric=interactions&from=0&to=10000000&step=1", "step"),
        ("metric=viewers&from=0&to=9007199254740991&step=0.5", "step"),
    ] {
        let started = std::time::Instant::now();
        let (status, body) = node
            .op("GET", &format!("/api/v1/campaigns/series/series?{bad}"), None)
            .await;
        assert_eq!(
            (status, body["error"]["field"].as_str()),
            (400, Some(field)),
            "{bad}: {body}"
        );
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{bad} took {:?}",
            started.elapsed()
        );
    }
    // The widest windows are fine when the points are few, and take no time either.
    for (wide, points) in [
        ("metric=interactions&from=0&to=9007199254740991", 1_000),
        ("metric=interactions&from=1&to=9007199254740991&step=1e300", 1),
        ("metric=interactions&from=0&to=9999999&step=1", 10_000),
    ] {
        let started = std::time::Instant::now();
        let (status, body) = node
            .op("GET", &format!("/api/v1/campaigns/series/series?{wide}"), None)
            .await;
        assert_eq!(status, 200, "{wide}: {body}");
        assert_eq!(body["points"].as_array().unwrap().len(), points, "{wide}");
        assert!(
            started.elapsed() < std::time::Duration::from_secs(2),
            "{wide} took {:?}",
            started.elapsed()
        );
    }
    // The node still answers, and still counts.
    assert_eq!(node.stats("series").await["interactions"]["like"], 6);
}

async fn metrics_parse_and_carry_the_contract_names(backend: Backend) {
    let node = Node::start_with(backend, &[]);
    node.campaign("m").await;
    let mut ws = node.viewer("m", "session=session-mmmm").await;
    ws.next().await;
    ws.send(json!({"type":"interact","kind":"like","seq":1})).await;
    ws.next_of("ack").await;
    ws.send_text("garbage").await;
    ws.next_of("error").await;
    let text = eventually("the viewer gauge at 1", || async {
        let resp = node.http.get(node.url("/metrics")).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain"));
        let text = resp.text().await.unwrap();
        if text.contains(r#"livetally_campaign_viewers{campaign="m"} 1"#) {
            Ok(text)
        } else {
            Err(text)
        }
    })
    .await;
    // Every sample line is `name{labels} value` with a numeric value.
    for line in text.lines().filter(|l| !l.starts_with('#') && !l.is_empty()) {
        let (name, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("bad line {line}"));
        assert!(value.parse::<f64>().is_ok(), "bad value in {line}");
        assert!(name.chars().next().unwrap().is_ascii_alphabetic(), "bad name in {line}");
    }
    for name in [
        r#"livetally_connections{role="viewer"} 1"#,
        r#"livetally_interactions_total{campaign="m",kind="like"} 1"#,
        r#"livetally_rejected_total{reason="bad_json"} 1"#,
        "livetally_store_flush_seconds_bucket",
        "livetally_store_errors_total 0",
        "livetally_store_pending 0",
        "livetally_broadcast_seconds_bucket",
        "process_resident_memory_bytes",
        "process_open_fds",
    ] {
        assert!(text.contains(name), "missing {name}");
    }
    for probe in ["/healthz", "/readyz"] {
        let resp = node.http.get(node.url(probe)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{probe}");
    }
}

async fn pages_are_served(backend: Backend) {
    let node = Node::start_with(backend, &[]);
    for path in ["/", "/c/some-campaign", "/ops"] {
        let resp = node.http.get(node.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 200, "{path}");
        assert!(resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"));
    }
    assert_eq!(
        node.http.get(node.url("/c/Not_Valid")).send().await.unwrap().status(),
        404
    );
    assert_eq!(
        node.http.get(node.url("/nothing-here")).send().await.unwrap().status(),
        404
    );
}

async fn deleting_an_ended_campaign_removes_it_and_frees_the_id(backend: Backend) {
    let node = Node::start_with(backend, &[]);
    node.campaign("gone").await;
    let mut ws = node.viewer("gone", "session=session-gone").await;
    ws.next().await;
    ws.send(json!({"type":"interact","kind":"like","count":3,"seq":1}))
        .await;
    ws.until(|m| m["type"] == "ack" && m["seq"] == 1).await;
    let path = "/api/v1/campaigns/gone/registrations";
    assert_eq!(
        node.call("POST", path, Some(json!({"viewer": "viewer-gone"})), None)
            .await
            .0,
        201
    );
    assert_eq!(
        node.http
            .get(node.url("/s/gone?via=wechat"))
            .send()
            .await
            .unwrap()
            .status(),
        302
    );
    node.await_stats("gone", "the like and the visit", |s| {
        s["interactions"]["like"] == 3 && s["share_visits"] == 1
    })
    .await;

    // A live campaign is not deleted, nor is one asked with a body it does not take.
    let (status, body) = node.op("DELETE", "/api/v1/campaigns/gone", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("conflict")),
        "{body}"
    );
    assert_eq!(node.op("POST", "/api/v1/campaigns/gone/end", None).await.0, 200);
    assert_eq!(ws.closed().await, support::node::End::Close(4000));
    let (status, _) = node
        .op("DELETE", "/api/v1/campaigns/gone", Some(json!({"force": true})))
        .await;
    assert_eq!(status, 400);
    assert_eq!(node.op("GET", "/api/v1/campaigns/gone/report", None).await.0, 200);

    let resp = node
        .http
        .delete(node.url("/api/v1/campaigns/gone"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert!(resp.bytes().await.unwrap().is_empty());
    for (method, path) in [
        ("DELETE", "/api/v1/campaigns/gone"),
        ("GET", "/api/v1/campaigns/gone"),
        ("GET", "/api/v1/campaigns/gone/report"),
        ("DELETE", "/api/v1/campaigns/never-was"),
        ("DELETE", "/api/v1/campaigns/NOT-AN-ID"),
    ] {
        let (status, body) = node.op(method, path, None).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (404, Some("not_found")),
            "{method} {path}"
        );
    }
    let (_, list) = node.op("GET", "/api/v1/campaigns", None).await;
    assert_eq!(list["campaigns"], json!([]));

    // The id is free again, and the new campaign starts from nothing.
    node.campaign("gone").await;
    let mut ws = node.viewer("gone", "session=session-gone").await;
    let welcome = ws.next().await;
    assert_eq!(welcome["acked_seq"], 0, "{welcome}");
    let s = &welcome["stats"];
    assert_eq!(
        (
            s["interactions"]["like"].as_u64().unwrap_or(0),
            s["registrations"].as_u64(),
            s["share_visits"].as_u64()
        ),
        (0, Some(0), Some(0)),
        "{welcome}"
    );
    ws.send(json!({"type":"interact","kind":"like","seq":1})).await;
    ws.until(|m| m["type"] == "ack" && m["seq"] == 1).await;
    let s = node
        .await_stats("gone", "one like and one viewer", |s| {
            s["interactions"]["like"] == 1 && s["viewers"] == 1
        })
        .await;
    assert_eq!(
        (s["peak_viewers"].as_u64(), s["unique_viewers"].as_u64()),
        (Some(1), Some(1)),
        "{s}"
    );
    assert_eq!(
        node.call("POST", path, Some(json!({"viewer": "viewer-gone"})), None)
            .await
            .0,
        201
    );
}

async fn share_channels_beyond_the_bound_count_under_other(backend: Backend) {
    let node = Node::start_with(backend, &["--max-share-channels", "3"]);
    node.campaign("bounded").await;
    // Six channels, each visit in a flush of its own (the next is made once the store has
    // the last), so a bound per flush would keep them all.
    let visits = ["a", "b", "a", "c", "d", "e", "a", "f", "d", "other"];
    for (n, via) in (1..).zip(visits) {
        let resp = node
            .http
            .get(node.url(&format!("/s/bounded?via={via}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 302);
        node.await_stats("bounded", &format!("visit {n}"), |s| s["share_visits"] == n)
            .await;
    }
    let (_, report) = node.op("GET", "/api/v1/campaigns/bounded/report", None).await;
    assert_eq!(report["share_visits"], 10);
    assert_eq!(
        report["share_visits_by_channel"],
        json!({"a": 3, "b": 1, "c": 1, "other": 5}),
        "{report}"
    );
}

/// The finding: 64 made-up `via` values took every channel name of a campaign, and the real
/// `wechat` then counted under `other`. Declared channels count by name whoever came first.
async fn declared_share_channels_keep_their_names_against_made_up_ones(backend: Backend) {
    let node = Node::start_with(backend, &[]);
    for (bad, why) in [
        (json!(["other"]), "other"),
        (json!(["WeChat"]), "pattern"),
        (json!(["a", "a"]), "twice"),
        (json!((0..65).map(|i| format!("c{i}")).collect::<Vec<_>>()), "65"),
        (json!("wechat"), "not a list"),
    ] {
        let body = json!({"id": "bad", "title": "t", "share_channels": bad});
        let (status, e) = node.op("POST", "/api/v1/campaigns", Some(body)).await;
        assert_eq!(
            (status, e["error"]["field"].as_str()),
            (400, Some("share_channels")),
            "{why}: {e}"
        );
    }
    let c = node.campaign("declared").await;
    assert_eq!(c["share_channels"], json!([]));
    let visit = |via: String| {
        let url = node.url(&format!("/s/declared?via={via}"));
        let http = node.http.clone();
        async move { assert_eq!(http.get(url).send().await.unwrap().status(), 302) }
    };
    for i in 0..64 {
        visit(format!("made-up-{i:02}")).await;
    }
    node.await_stats("declared", "64 visits", |s| s["share_visits"] == 64)
        .await;
    visit("wechat".into()).await;
    node.await_stats("declared", "65 visits", |s| s["share_visits"] == 65)
        .await;
    let (_, report) = node.op("GET", "/api/v1/campaigns/declared/report", None).await;
    assert_eq!(
        report["share_visits_by_channel"]["other"], 1,
        "v1.1: first come: {report}"
    );

    let patch = json!({"share_channels": ["wechat", "weibo"]});
    let (status, c) = node.op("PATCH", "/api/v1/campaigns/declared", Some(patch)).await;
    assert_eq!(
        (status, &c["share_channels"]),
        (200, &json!(["wechat", "weibo"])),
        "{c}"
    );
    let (status, e) = node
        .op(
            "PATCH",
            "/api/v1/campaigns/declared",
            Some(json!({"share_channels": ["other"]})),
        )
        .await;
    assert_eq!((status, e["error"]["field"].as_str()), (400, Some("share_channels")));
    let (_, got) = node.call("GET", "/api/v1/campaigns/declared", None, None).await;
    assert_eq!(
        got["share_channels"],
        json!(["wechat", "weibo"]),
        "the public read has it at once"
    );
    for via in ["wechat", "wechat", "weibo", "made-up-00", "made-up-99"] {
        visit(via.into()).await;
    }
    node.await_stats("declared", "70 visits", |s| s["share_visits"] == 70)
        .await;
    let (_, report) = node.op("GET", "/api/v1/campaigns/declared/report", None).await;
    let by_channel = &report["share_visits_by_channel"];
    assert_eq!(
        (by_channel["wechat"].as_u64(), by_channel["weibo"].as_u64()),
        (Some(2), Some(1))
    );
    assert_eq!(by_channel["other"], 1 + 2, "{report}");
    assert_eq!(by_channel["made-up-00"], 1, "counts already made keep their names");
}

/// `--operator-token` takes a list, so a token is rotated without a restart that logs every
/// operator out: both tokens work during the rotation, for HTTP and for operator sockets.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_token_of_a_rotation_is_accepted() {
    const NEXT: &str = "next-operator-token-0123456789";
    let node = Node::start(&["--operator-token", NEXT]);
    node.campaign("rotate").await;
    for token in [TOKEN, NEXT] {
        let (status, body) = node.call("GET", "/api/v1/campaigns", None, Some(token)).await;
        assert_eq!((status, body["campaigns"][0]["id"].as_str()), (200, Some("rotate")));
        let mut ws = node.viewer("rotate", &format!("role=operator&token={token}")).await;
        assert_eq!(ws.next_of("welcome").await["role"], "operator");
    }
    let (status, _) = node
        .call("GET", "/api/v1/campaigns", None, Some("retired-token-0123456789"))
        .await;
    assert_eq!(status, 403);
}
