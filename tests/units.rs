//! A campaign counted by the units of its org, through real nodes (spec v1.2, "The
//! organisation"): sockets and share links attributed to units, every number rolled up to
//! every ancestor, read live (`GET …/units`) and after (`GET …/report/units`); on every
//! store. Then, on Redis with two nodes: a node killed while its viewers sit in units, and
//! a half-open socket replaced on another node, each counted once in every unit.

mod support;

use std::time::Duration;

use serde_json::{json, Value};
use support::node::{Backend, Node, Ws, TOKEN};
use support::org::PARTY_CSV as ORG_CSV;
use support::redis::RedisServer;
use support::wait::eventually;

on_every_store!(units_roll_up_live_and_in_the_per_level_report);

async fn with_org(node: &Node, campaign: &str) {
    let resp = node
        .http
        .put(node.url("/api/v1/orgs/party"))
        .bearer_auth(TOKEN)
        .header("content-type", "text/csv")
        .body(ORG_CSV)
        .send()
        .await
        .expect("upload");
    assert!(resp.status().is_success(), "{}", resp.status());
    let c = node
        .campaign_with(json!({"id": campaign, "title": "直播", "org": "party"}))
        .await;
    assert_eq!(c["org"], "party", "{c}");
}

/// A viewer socket in `unit` (none when empty), its welcome read.
async fn viewer(node: &Node, campaign: &str, session: &str, unit: &str) -> Ws {
    let unit = if unit.is_empty() {
        String::new()
    } else {
        format!("&unit={unit}")
    };
    let mut ws = node
        .viewer(
            campaign,
            &format!("viewer=viewer-{session}&session=session-{session}{unit}"),
        )
        .await;
    assert_eq!(ws.next().await["type"], "welcome");
    ws
}

async fn like(ws: &mut Ws, seq: u64) {
    ws.send(json!({"type": "interact", "kind": "like", "count": 1, "seq": seq}))
        .await;
    loop {
        let m = ws.next().await;
        if m["type"] == "ack" && m["seq"] == seq {
            return;
        }
    }
}

async fn units(node: &Node, campaign: &str, query: &str) -> (u16, Value) {
    node.op("GET", &format!("/api/v1/campaigns/{campaign}/units{query}"), None)
        .await
}

/// `(code, viewers)` of a listing's rows, in order.
fn viewers(listing: &Value) -> Vec<(String, u64)> {
    listing["units"]
        .as_array()
        .unwrap_or_else(|| panic!("no units in {listing}"))
        .iter()
        .map(|u| (u["code"].as_str().unwrap().to_owned(), u["viewers"].as_u64().unwrap()))
        .collect()
}

fn pairs(p: &[(&str, u64)]) -> Vec<(String, u64)> {
    p.iter().map(|(c, n)| (c.to_string(), *n)).collect()
}

/// Polls the listing of `query` until `want` holds.
async fn await_units(node: &Node, campaign: &str, query: &str, what: &str, want: impl Fn(&Value) -> bool) -> Value {
    eventually(what, || async {
        let (status, body) = units(node, campaign, query).await;
        assert_eq!(status, 200, "{body}");
        want(&body).then_some(body)
    })
    .await
}

async fn units_roll_up_live_and_in_the_per_level_report(backend: Backend) {
    let node = Node::start_with(backend, &[]);
    with_org(&node, "tree").await;
    // 3 in the village kj (level 6), 2 in the city gz (level 3), 1 in bj (level 2), one
    // with a code the org lacks and one with none: unassigned.
    let mut sockets = Vec::new();
    for (i, unit) in ["kj", "kj", "kj", "gz", "gz", "bj", "nope", ""].iter().enumerate() {
        sockets.push(viewer(&node, "tree", &format!("s{i}"), unit).await);
    }
    for ws in &mut sockets[..3] {
        like(ws, 1).await;
    }
    like(&mut sockets[3], 1).await;
    // A share link through 深圳市 keeps its unit in the redirect.
    let resp = node
        .http
        .get(node.url("/s/tree?via=wechat&unit=sz"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 302);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    assert!(location.ends_with("?unit=sz"), "{location}");

    // A sign-up through 广州市 (the body's unit; a token's claim would win).
    let (s, r) = node
        .call(
            "POST",
            "/api/v1/campaigns/tree/registrations",
            Some(json!({"viewer": "viewer-s3", "unit": "gz"})),
            None,
        )
        .await;
    assert_eq!(s, 201, "{r}");

    // The cumulative numbers are folded into the totals within a second or so.
    let top = await_units(&node, "tree", "", "the top level's numbers", |b| {
        let cn = &b["units"][0];
        cn["share_visits"] == 1 && cn["sessions"] == 6 && cn["registrations"] == 1 && cn["interactions"]["like"] == 4
    })
    .await;
    assert_eq!(viewers(&top), pairs(&[("cn", 6)]));
    let cn = &top["units"][0];
    assert_eq!(
        (cn["name"].as_str(), cn["level"].as_u64(), cn["peak_viewers"].as_u64()),
        (Some("中华人民共和国"), Some(1), Some(6))
    );
    assert_eq!(
        cn["interactions"],
        json!({"like": 4, "cheer": 0, "comment": 0, "share": 0})
    );
    let un = &top["unassigned"];
    assert_eq!(
        (un["viewers"].as_u64(), un["sessions"].as_u64()),
        (Some(2), Some(2)),
        "{top}"
    );
    assert_eq!(top["parent"], Value::Null);
    assert_eq!(top["next_cursor"], Value::Null);

    let gd = await_units(&node, "tree", "?parent=gd", "the cities' numbers", |b| {
        b["units"][1]["registrations"] == 1 && b["units"][0]["interactions"]["like"] == 3
    })
    .await;
    assert_eq!(viewers(&gd), pairs(&[("sz", 3), ("gz", 2)]));
    assert_eq!(
        (
            gd["units"][0]["share_visits"].as_u64(),
            gd["units"][1]["sessions"].as_u64()
        ),
        (Some(1), Some(2))
    );
    assert_eq!(gd["units"][0]["interactions"]["like"], 3);
    assert_eq!(
        (
            gd["units"][1]["code"].as_str(),
            gd["units"][1]["registrations"].as_u64()
        ),
        (Some("gz"), Some(1))
    );
    assert_eq!(top["units"][0]["registrations"], 1);
    let export = node
        .http
        .get(node.url("/api/v1/campaigns/tree/registrations?format=csv"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let rows: Vec<&str> = export.lines().collect();
    assert_eq!(rows[0], "viewer,registered_at,unit");
    assert!(
        rows[1].starts_with("viewer-s3,") && rows[1].ends_with(",gz"),
        "{export}"
    );
    // Below --unit-peak-depth (3): viewers from the nodes' hashes, no peak.
    let (_, yh) = units(&node, "tree", "?parent=yh").await;
    assert_eq!(viewers(&yh), pairs(&[("kj", 3)]));
    assert_eq!(yh["units"][0].get("peak_viewers"), None, "{yh}");
    assert_eq!(yh["units"][0]["name"], "科技园社区, 南区");

    // Pages of one: a cursor walks the order of its tick.
    let (_, first) = units(&node, "tree", "?parent=cn&limit=1").await;
    assert_eq!(viewers(&first), pairs(&[("gd", 5)]));
    let cursor = first["next_cursor"].as_str().expect("a cursor").to_owned();
    let (_, second) = units(&node, "tree", &format!("?parent=cn&limit=1&cursor={cursor}")).await;
    assert_eq!(viewers(&second), pairs(&[("bj", 1)]));
    assert_eq!(second["next_cursor"], Value::Null);

    // Two of the village's sockets close: every ancestor drops by two.
    sockets.drain(..2);
    await_units(&node, "tree", "?parent=yh", "kj's two to leave", |b| {
        viewers(b) == pairs(&[("kj", 1)])
    })
    .await;
    await_units(&node, "tree", "", "cn's two to leave", |b| {
        viewers(b) == pairs(&[("cn", 4)])
    })
    .await;

    // Bad asks.
    for (query, status, field) in [
        ("?limit=0", 400, Some("limit")),
        ("?limit=1001", 400, Some("limit")),
        ("?cursor=abc", 400, Some("cursor")),
        ("?parent=zz", 404, None),
    ] {
        let (s, body) = units(&node, "tree", query).await;
        assert_eq!(s, status, "{query}: {body}");
        if let Some(f) = field {
            assert_eq!(body["error"]["field"], f, "{body}");
        }
    }
    let (s, _) = node.call("GET", "/api/v1/campaigns/tree/units", None, None).await;
    assert_eq!(s, 401);

    // During the event the per-level report shows viewers now too.
    let (_, live6) = node
        .op("GET", "/api/v1/campaigns/tree/report/units?level=6", None)
        .await;
    assert_eq!(
        (live6[0]["code"].as_str(), live6[0]["viewers"].as_u64()),
        (Some("kj"), Some(1)),
        "{live6}"
    );

    // After the event: every active unit of a level, with its parent and numbers.
    let (s, _) = node.op("POST", "/api/v1/campaigns/tree/end", None).await;
    assert_eq!(s, 200);
    let (s, level6) = node
        .op("GET", "/api/v1/campaigns/tree/report/units?level=6", None)
        .await;
    assert_eq!(s, 200, "{level6}");
    assert_eq!(
        level6,
        json!([{"code": "kj", "name": "科技园社区, 南区", "level": 6, "parent": "yh", "viewers": 0, "sessions": 3,
                "interactions": {"like": 3, "cheer": 0, "comment": 0, "share": 0},
                "registrations": 0, "share_visits": 0}])
    );
    let csv = node
        .http
        .get(node.url("/api/v1/campaigns/tree/report/units?level=2&format=csv"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.headers()["content-type"], "text/csv; charset=utf-8");
    let csv = csv.text().await.unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(
        rows[0],
        "code,name,level,parent,viewers,sessions,interactions,interactions.like,interactions.cheer,\
         interactions.comment,interactions.share,registrations,share_visits,peak_viewers,peak_at,unique_viewers"
    );
    assert_eq!(rows.len(), 3, "{csv}");
    assert!(rows[1].starts_with("gd,广东省,2,cn,0,5,4,4,0,0,0,1,1,5,"), "{csv}");
    assert!(rows[1].ends_with(",5"), "gd's unique viewers: {csv}");
    assert!(rows[2].starts_with("bj,北京市,2,cn,0,1,0,0,0,0,0,0,0,1,"), "{csv}");
    let (_, level1) = node
        .op("GET", "/api/v1/campaigns/tree/report/units?level=1", None)
        .await;
    let codes: Vec<&str> = level1
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["code"].as_str().unwrap())
        .collect();
    assert_eq!(codes, ["cn", "unassigned"]);
    let (s, body) = node
        .op("GET", "/api/v1/campaigns/tree/report/units?level=7", None)
        .await;
    assert_eq!((s, body["error"]["field"].as_str()), (400, Some("level")));
    // The campaign report: each province's viewers at the campaign's peak (8).
    let (_, report) = node.op("GET", "/api/v1/campaigns/tree/report", None).await;
    assert_eq!(report["units_at_peak"], json!({"gd": 5, "bj": 1}), "{report}");
}

/// Two nodes `node-a` and `node-b` on `redis` with `extra` flags.
fn two_nodes(redis: &RedisServer, extra: &[&str]) -> Vec<Node> {
    Node::spawn_on_redis(redis, &["node-a", "node-b"], extra)
}

/// SIGKILL with viewers in units: their share leaves every unit with the node's lease
/// (upper units) and its hash (deeper ones); the cumulative numbers stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_nodes_viewers_leave_every_unit() {
    let redis = RedisServer::start();
    let mut nodes = two_nodes(&redis, &["--presence-ttl", "2s"]);
    with_org(&nodes[0], "kill").await;
    nodes[1].await_known("kill").await;
    let _a = [
        viewer(&nodes[0], "kill", "a1", "kj").await,
        viewer(&nodes[0], "kill", "a2", "kj").await,
        viewer(&nodes[0], "kill", "a3", "gz").await,
    ];
    let _b = viewer(&nodes[1], "kill", "b1", "kj").await;
    await_units(&nodes[1], "kill", "?parent=yh", "4 viewers", |b| {
        viewers(b) == pairs(&[("kj", 3)])
    })
    .await;
    await_units(&nodes[1], "kill", "?parent=gd", "both cities", |b| {
        viewers(b) == pairs(&[("sz", 3), ("gz", 1)])
    })
    .await;

    nodes[0].signal("KILL");
    assert!(!nodes[0].wait().success());
    await_units(&nodes[1], "kill", "?parent=yh", "node-a's kj viewers to leave", |b| {
        viewers(b) == pairs(&[("kj", 1)])
    })
    .await;
    // The sessions stay counted where they qualified.
    await_units(&nodes[1], "kill", "?parent=gd", "node-a's city viewers to leave", |b| {
        viewers(b) == pairs(&[("sz", 1), ("gz", 0)])
            && (b["units"][0]["sessions"].as_u64(), b["units"][1]["sessions"].as_u64()) == (Some(3), Some(1))
    })
    .await;
    let top = await_units(&nodes[1], "kill", "", "cn at 1", |b| viewers(b) == pairs(&[("cn", 1)])).await;
    assert_eq!(top["units"][0]["peak_viewers"], 4);
}

/// A half-open socket (the server still holds it) replaced by the same session on another
/// node: the session counts once in each of its units, never twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_half_open_socket_and_its_replacement_count_once_in_every_unit() {
    let redis = RedisServer::start();
    let nodes = two_nodes(&redis, &[]);
    with_org(&nodes[0], "half").await;
    nodes[1].await_known("half").await;
    let _first = viewer(&nodes[0], "half", "s", "gz").await;
    await_units(&nodes[0], "half", "?parent=gd", "gz's viewer", |b| {
        viewers(b) == pairs(&[("gz", 1), ("sz", 0)])
    })
    .await;
    let _second = viewer(&nodes[1], "half", "s", "gz").await;
    // node-a closes its socket (4001); until then and after, gz holds one viewer.
    // Its session counts once too (the totals are folded within a second or so).
    for node in &nodes {
        await_units(node, "half", "?parent=gd", "one viewer and one session in gz", |b| {
            viewers(b) == pairs(&[("gz", 1), ("sz", 0)]) && b["units"][0]["sessions"] == 1
        })
        .await;
    }
    support::wait::throughout(Duration::from_secs(1), || async {
        let (_, top) = units(&nodes[1], "half", "").await;
        assert_eq!(viewers(&top), pairs(&[("cn", 1)]), "{top}");
        assert_eq!(top["units"][0]["peak_viewers"], 1, "{top}");
    })
    .await;
}

/// A node whose writes fail for longer than its lease (a frozen Redis) finds its deep-unit
/// hash expired when the store is back: it writes the whole of it again, so its viewers
/// deep in the tree count again, not only the units that changed since.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deep_viewers_come_back_after_their_hash_expired_in_an_outage() {
    let redis = RedisServer::start();
    let node = Node::start(&["--redis", &redis.url(), "--presence-ttl", "2s"]);
    with_org(&node, "frozen").await;
    let _kj = viewer(&node, "frozen", "k", "kj").await;
    await_units(&node, "frozen", "?parent=yh", "kj's viewer", |b| {
        viewers(b) == pairs(&[("kj", 1)])
    })
    .await;
    redis.pause();
    // Frozen past the lease: time must pass in Redis' clock, nothing to await.
    tokio::time::sleep(Duration::from_secs(3)).await;
    redis.resume();
    await_units(&node, "frozen", "?parent=yh", "kj's viewer back", |b| {
        viewers(b) == pairs(&[("kj", 1)])
    })
    .await;
}

/// A viewer admitted while the store is out (its claim pending) is in its unit already:
/// once the store is back, its socket gets its unit's frames, itself counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_admitted_during_an_outage_gets_its_units_frames() {
    let redis = RedisServer::start();
    let node = Node::start(&["--redis", &redis.url()]);
    with_org(&node, "dark").await;
    redis.pause();
    eventually("/readyz store down", || async {
        let (_, body) = node.call("GET", "/readyz", None, None).await;
        (body["store"] == "down").then_some(())
    })
    .await;
    let mut ws = node
        .viewer("dark", "viewer=viewer-d&session=session-d&proto=2&unit=sz")
        .await;
    let welcome = ws.next_of("welcome").await;
    assert!(
        welcome["acked_seq"].is_null(),
        "admitted with its claim pending: {welcome}"
    );
    redis.resume();
    let unit = ws.until(|m| m["type"] == "unit" && m["path"][2]["viewers"] == 1).await;
    assert_eq!(
        (unit["path"][0]["code"].as_str(), unit["path"][2]["code"].as_str()),
        (Some("cn"), Some("sz")),
        "{unit}"
    );
}

/// The live frames: an operator's `watch` gets a `units` frame now and whenever its
/// listing changes; a viewer in a unit gets its path's `unit` frame (down to
/// `--unit-peak-depth`), its own socket counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watch_and_unit_frames_follow_the_live_numbers() {
    let node = Node::start_with(Backend::Memory, &[]);
    with_org(&node, "frames").await;
    let mut op = node.viewer("frames", &format!("role=operator&token={TOKEN}")).await;
    assert_eq!(op.next().await["type"], "welcome");
    op.send(json!({"type": "watch", "unit": "gd"})).await;
    let first = op.next_of("units").await;
    assert_eq!(
        (first["parent"].as_str(), first["next_cursor"].as_str()),
        (Some("gd"), None)
    );
    assert_eq!(viewers(&first), pairs(&[("gz", 0), ("sz", 0)]));

    let mut v = viewer(&node, "frames", "in-gz", "gz").await;
    loop {
        let units = op.next_of("units").await;
        if viewers(&units) == pairs(&[("gz", 1), ("sz", 0)]) {
            break;
        }
    }
    loop {
        let unit = v.next_of("unit").await;
        let path: Vec<(String, String, u64)> = unit["path"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| {
                let s = |k: &str| u[k].as_str().unwrap().to_owned();
                (s("code"), s("name"), u["viewers"].as_u64().unwrap())
            })
            .collect();
        assert_eq!(path.len(), 3, "down to --unit-peak-depth: {unit}");
        if path[2].2 == 1 {
            assert_eq!(
                path,
                [
                    ("cn".to_owned(), "中华人民共和国".to_owned(), 1),
                    ("gd".to_owned(), "广东省".to_owned(), 1),
                    ("gz".to_owned(), "广州市".to_owned(), 1)
                ]
            );
            break;
        }
    }

    // The top level, then a unit the org lacks: an error, and the watch ends.
    op.send(json!({"type": "watch", "unit": null})).await;
    let top = op.next_of("units").await;
    assert_eq!(
        (top["parent"].clone(), viewers(&top)),
        (Value::Null, pairs(&[("cn", 1)]))
    );
    op.send(json!({"type": "watch", "unit": "zz"})).await;
    let e = op.next_of("error").await;
    assert_eq!(e["code"], "unknown_unit");
    op.send(json!({"type": "watch", "unit": "bad code!"})).await;
    assert_eq!(op.next_of("error").await["code"], "unknown_unit");
}
