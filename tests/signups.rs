//! Sign-ups: declared registration fields, validated registrations, join tokens on private
//! campaigns, the streamed export (CSV and JSON, exact at scale) and the erasure of one
//! person.

mod support;

use std::collections::BTreeSet;

use futures_util::StreamExt;
use serde_json::{json, Value};
use support::node::{Backend, Node, TOKEN};

on_every_store!(
    fields_are_declared_validated_stored_and_exported,
    a_private_campaign_takes_registrations_with_a_join_token_only,
    a_large_export_is_exact,
);

const REGS: &str = "/api/v1/campaigns/drive/registrations";

/// Values a spreadsheet would split or run, in both CSVs the node writes: each must come
/// out as one cell of text. Excel in a `;` (or tab) locale splits an unquoted `x;=1+1`
/// and runs its second half; an id `-1234567` is a number to it, so it is prefixed too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_values_export_as_one_cell_of_text() {
    let node = Node::start_with(Backend::Memory, &[]);
    let fields = json!([{"name": "a"}, {"name": "b"}, {"name": "c"}]);
    node.campaign_with(json!({"id": "drive", "title": "x;=1+1", "registration_fields": fields}))
        .await;
    let rows = [
        ("viewer-0001", json!({"a": "x;=1+1", "b": "tab\there", "c": "=1;2"})),
        ("-1234567", json!({"a": "-5", "b": "\t=cmd", "c": "@x;y"})),
    ];
    for (viewer, fields) in rows {
        let (status, resp) = register(&node, REGS, json!({"viewer": viewer, "fields": fields})).await;
        assert_eq!(status, 201, "{resp}");
    }
    let (status, _, csv) = export(&node, "?format=csv").await;
    assert_eq!(status, 200);
    let (_, _, json) = export(&node, "?format=json").await;
    let at: Vec<i64> = serde_json::from_str::<Vec<Value>>(&json)
        .unwrap()
        .iter()
        .map(|r| r["registered_at"].as_i64().unwrap())
        .collect();
    assert_eq!(
        csv,
        format!(
            "viewer,registered_at,a,b,c\r\n\
             viewer-0001,{},\"x;=1+1\",\"tab\there\",\"'=1;2\"\r\n\
             '-1234567,{},-5,\"'\t=cmd\",\"'@x;y\"\r\n",
            at[0], at[1]
        )
    );
    let (_, _, report) = operator_get(&node, "/api/v1/campaigns/drive/report?format=csv").await;
    assert!(report.lines().any(|l| l == "campaign.title,\"x;=1+1\""), "{report}");
}

async fn register(node: &Node, path: &str, body: Value) -> (u16, Value) {
    node.call("POST", path, Some(body), None).await
}

/// The export as text, with its status and content type.
async fn export(node: &Node, query: &str) -> (u16, String, String) {
    operator_get(node, &format!("{REGS}{query}")).await
}

/// An operator `GET` as text, with its status and content type.
async fn operator_get(node: &Node, path: &str) -> (u16, String, String) {
    let resp = node.http.get(node.url(path)).bearer_auth(TOKEN).send().await.unwrap();
    let status = resp.status().as_u16();
    let ty = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    (status, ty.unwrap_or_default(), resp.text().await.unwrap())
}

fn error_field(body: &Value) -> &str {
    body["error"]["field"].as_str().unwrap_or("")
}

async fn fields_are_declared_validated_stored_and_exported(backend: Backend) {
    let node = Node::start_with(backend, &[]);
    // Bad declarations name the field; nothing is created.
    for bad in [
        json!([{"name": "Phone"}]),
        json!([{"name": "viewer"}]),
        json!([{"name": "phone", "max": 257}]),
        json!([{"name": "phone", "max": 0}]),
        json!([{"name": "phone"}, {"name": "phone"}]),
        json!([{"name": "phone", "maxlen": 3}]),
        json!([{"name": "phone", "required": "yes"}]),
        json!({"name": "phone"}),
        json!((0..9).map(|i| json!({"name": format!("f{i}")})).collect::<Vec<_>>()),
    ] {
        let (status, body) = node
            .op(
                "POST",
                "/api/v1/campaigns",
                Some(json!({"id": "drive", "title": "t", "registration_fields": bad})),
            )
            .await;
        assert_eq!(
            (status, error_field(&body)),
            (400, "registration_fields"),
            "{bad}: {body}"
        );
    }
    let fields = json!([
        {"name": "phone", "max": 16, "required": true},
        {"name": "city", "max": 8},
        {"name": "note"},
    ]);
    let c = node
        .campaign_with(json!({"id": "drive", "title": "Drive", "registration_fields": fields}))
        .await;
    let declared = json!([
        {"name": "phone", "max": 16, "required": true},
        {"name": "city", "max": 8, "required": false},
        {"name": "note", "max": 256, "required": false},
    ]);
    assert_eq!(c["registration_fields"], declared);
    let (_, read) = node.call("GET", "/api/v1/campaigns/drive", None, None).await;
    assert_eq!(read["registration_fields"], declared);

    // Every refusal names the field, and nothing is counted.
    for (body, field) in [
        (json!({"viewer": "viewer-0001"}), "fields.phone"),
        (
            json!({"viewer": "viewer-0001", "fields": {"phone": " "}}),
            "fields.phone",
        ),
        (
            json!({"viewer": "viewer-0001", "fields": {"phone": 123}}),
            "fields.phone",
        ),
        (
            json!({"viewer": "viewer-0001", "fields": {"phone": "1".repeat(17)}}),
            "fields.phone",
        ),
        (
            json!({"viewer": "viewer-0001", "fields": {"phone": "1", "city": "Ouagadougou"}}),
            "fields.city",
        ),
        (
            json!({"viewer": "viewer-0001", "fields": {"phone": "1", "email": "a@b"}}),
            "fields.email",
        ),
        (json!({"viewer": "viewer-0001", "fields": ["1"]}), "fields"),
        (json!({"viewer": 1, "fields": {"phone": "1"}}), "viewer"),
        (json!({"fields": {"phone": "1"}}), "viewer"),
    ] {
        let (status, resp) = register(&node, REGS, body.clone()).await;
        assert_eq!((status, error_field(&resp)), (400, field), "{body}: {resp}");
    }
    assert_eq!(node.stats("drive").await["registrations"], 0);

    let ann = json!({"phone": "=1+2", "city": "北京, CN", "note": "said \"hi\"\nthen left"});
    let (status, resp) = register(&node, REGS, json!({"viewer": "viewer-0001", "fields": ann})).await;
    assert_eq!((status, resp["created"].clone()), (201, json!(true)));
    // The first registration wins.
    let (status, resp) = register(
        &node,
        REGS,
        json!({"viewer": "viewer-0001", "fields": {"phone": "999"}}),
    )
    .await;
    assert_eq!((status, resp["created"].clone()), (200, json!(false)));
    let (status, _) = register(&node, REGS, json!({"viewer": "-viewer-02", "fields": {"phone": "@x"}})).await;
    assert_eq!(status, 201);
    assert_eq!(node.stats("drive").await["registrations"], 2);

    let (status, ty, text) = export(&node, "?format=json").await;
    assert_eq!((status, ty.as_str()), (200, "application/json"));
    let rows: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["viewer"], "viewer-0001");
    assert_eq!(rows[0]["fields"], ann);
    assert_eq!(rows[1]["fields"], json!({"phone": "@x"}));
    assert!(rows[0]["registered_at"].as_i64().unwrap() > 1_600_000_000_000);
    let at = |i: usize| rows[i]["registered_at"].as_i64().unwrap();

    let (status, ty, csv) = export(&node, "?format=csv").await;
    assert_eq!((status, ty.as_str()), (200, "text/csv; charset=utf-8"));
    assert_eq!(
        csv,
        format!(
            "viewer,registered_at,phone,city,note\r\n\
             viewer-0001,{},'=1+2,\"北京, CN\",\"said \"\"hi\"\"\nthen left\"\r\n\
             '-viewer-02,{},'@x,,\r\n",
            at(0),
            at(1)
        )
    );
    let (status, _, _) = export(&node, "?format=xml").await;
    assert_eq!(status, 400);
    let (status, _) = node.call("GET", REGS, None, None).await;
    assert_eq!(status, 401, "the export is for operators");
    let (status, _) = node.call("GET", REGS, None, Some("wrong")).await;
    assert_eq!(status, 403);

    // Erasing one person: gone from the export, still in the count.
    let one = format!("{REGS}/viewer-0001");
    assert_eq!(node.call("DELETE", &one, None, None).await.0, 401);
    assert_eq!(node.op("DELETE", &one, None).await.0, 204);
    assert_eq!(node.op("DELETE", &one, None).await.0, 404);
    assert_eq!(
        node.op("DELETE", &format!("{REGS}/never-registered"), None).await.0,
        404
    );
    assert_eq!(
        node.op("DELETE", "/api/v1/campaigns/nope/registrations/viewer-0001", None)
            .await
            .0,
        404
    );
    let (_, _, text) = export(&node, "").await;
    let rows: Vec<Value> = serde_json::from_str(&text).unwrap();
    assert_eq!(
        rows.iter().map(|r| r["viewer"].clone()).collect::<Vec<_>>(),
        vec![json!("-viewer-02")]
    );
    assert_eq!(node.stats("drive").await["registrations"], 2);

    // Deleting the campaign takes the rest; the id starts again from nothing.
    node.op("POST", "/api/v1/campaigns/drive/end", None).await;
    assert_eq!(
        export(&node, "?format=csv").await.0,
        200,
        "an ended campaign still exports"
    );
    assert_eq!(node.op("DELETE", "/api/v1/campaigns/drive", None).await.0, 204);
    assert_eq!(export(&node, "").await.0, 404);
    node.campaign_with(json!({"id": "drive", "title": "Again"})).await;
    let (_, _, text) = export(&node, "?format=csv").await;
    assert_eq!(text, "viewer,registered_at\r\n");
    let (_, _, text) = export(&node, "?format=json").await;
    assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), json!([]));
    // A campaign without fields takes a registration without `fields`.
    assert_eq!(register(&node, REGS, json!({"viewer": "viewer-0001"})).await.0, 201);
    let (status, resp) = register(&node, REGS, json!({"viewer": "viewer-0002", "fields": {"phone": "1"}})).await;
    assert_eq!((status, error_field(&resp)), (400, "fields.phone"));
}

async fn a_private_campaign_takes_registrations_with_a_join_token_only(backend: Backend) {
    let node = Node::start_with(backend, &[]);
    node.campaign_with(json!({
        "id": "drive", "title": "VIP", "access": "token",
        "registration_fields": [{"name": "phone", "required": true}],
    }))
    .await;
    let mint = |body: Value| {
        let node = &node;
        async move {
            let (status, t) = node.op("POST", "/api/v1/campaigns/drive/tokens", Some(body)).await;
            assert_eq!(status, 201, "{t}");
            t["token"].as_str().unwrap().to_owned()
        }
    };
    let body = json!({"viewer": "viewer-0001", "fields": {"phone": "1"}});
    assert_eq!(register(&node, REGS, body.clone()).await.0, 401);
    assert_eq!(
        register(&node, &format!("{REGS}?token=not-a-jwt"), body.clone())
            .await
            .0,
        403
    );
    // A token of another campaign does not open this one.
    node.campaign_with(json!({"id": "other", "title": "Other", "access": "token"}))
        .await;
    let (_, other) = node.op("POST", "/api/v1/campaigns/other/tokens", Some(json!({}))).await;
    let other = other["token"].as_str().unwrap();
    assert_eq!(
        register(&node, &format!("{REGS}?token={other}"), body.clone()).await.0,
        403
    );
    assert_eq!(node.stats("drive").await["registrations"], 0);

    let token = mint(json!({})).await;
    assert_eq!(register(&node, &format!("{REGS}?token={token}"), body).await.0, 201);
    // With `sub`, the token names the viewer: another one is 403, none is the sub.
    let signed = mint(json!({"sub": "member-0042"})).await;
    let path = format!("{REGS}?token={signed}");
    let posing = json!({"viewer": "viewer-0009", "fields": {"phone": "1"}});
    assert_eq!(register(&node, &path, posing).await.0, 403);
    let (status, resp) = register(&node, &path, json!({"fields": {"phone": "2"}})).await;
    assert_eq!((status, resp["viewer"].clone()), (201, json!("member-0042")));
    assert_eq!(node.stats("drive").await["registrations"], 2);

    // The preflight of a cross-origin sign-up still answers.
    let resp = node
        .http
        .request(reqwest::Method::OPTIONS, node.url(REGS))
        .header("origin", "https://brand.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
}

/// Many sign-ups, sent concurrently: both exports hold each exactly once, with its fields.
/// (That the node reads them page by page is checked beside the code, in
/// `http::signup::tests`.)
async fn a_large_export_is_exact(backend: Backend) {
    // Two and a half export pages (1,000 each); `SIGNUPS_N` sets another count.
    let n = std::env::var("SIGNUPS_N").map_or(2_500, |n| n.parse().unwrap());
    let node = Node::start_with(backend, &["--max-public-writes-per-client", "0"]);
    node.campaign_with(
        json!({"id": "drive", "title": "Big", "registration_fields": [{"name": "n", "required": true}]}),
    )
    .await;
    let created = futures_util::stream::iter(0..n)
        .map(|i| {
            let node = &node;
            async move {
                let body = json!({"viewer": format!("viewer-{i:06}"), "fields": {"n": format!("{i}")}});
                register(node, REGS, body).await.0
            }
        })
        .buffer_unordered(32)
        .filter(|s| std::future::ready(*s == 201))
        .count()
        .await;
    assert_eq!(created, n);
    assert_eq!(node.stats("drive").await["registrations"], n);

    let (status, _, csv) = export(&node, "?format=csv").await;
    assert_eq!(status, 200);
    let body = csv.strip_suffix("\r\n").expect("the file ends with a line break");
    let mut lines = body.split("\r\n");
    assert_eq!(lines.next(), Some("viewer,registered_at,n"));
    let mut seen = BTreeSet::new();
    for line in lines {
        let cells: Vec<&str> = line.split(',').collect();
        let i: usize = cells[2].parse().unwrap();
        assert_eq!(cells[0], format!("viewer-{i:06}"));
        assert!(seen.insert(i), "row {i} twice");
    }
    assert_eq!(seen.len(), n);

    let (status, _, json) = export(&node, "?format=json").await;
    assert_eq!(status, 200);
    let rows: Vec<Value> = serde_json::from_str(&json).unwrap();
    let viewers: BTreeSet<String> = rows
        .iter()
        .map(|r| {
            let v = r["viewer"].as_str().unwrap();
            assert_eq!(
                format!(
                    "viewer-{:06}",
                    r["fields"]["n"].as_str().unwrap().parse::<usize>().unwrap()
                ),
                v
            );
            v.to_owned()
        })
        .collect();
    assert_eq!((rows.len(), viewers.len()), (n, n));
}
