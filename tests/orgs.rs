//! Organisations over HTTP: upload (CSV and NDJSON, Chinese names), every kind of upload
//! error with its line and field, versions, the unit reads and search, and `DELETE` while
//! a live campaign counts by the org; on every store.

mod support;

use serde_json::{json, Value};
use support::node::{Backend, Node, TOKEN};
use support::org::PARTY_CSV as ORG_CSV;

on_every_store!(
    a_csv_org_is_read_searched_and_replaced,
    an_ndjson_org_uploads_like_a_csv,
    every_upload_error_names_its_line_and_field_and_stores_nothing,
    a_campaign_keeps_its_version_and_a_live_one_blocks_delete,
);

async fn upload(node: &Node, org: &str, content_type: &str, body: String) -> (u16, Value) {
    let resp = node
        .http
        .put(node.url(&format!("/api/v1/orgs/{org}")))
        .bearer_auth(TOKEN)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .expect("upload");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn a_csv_org_is_read_searched_and_replaced(backend: Backend) {
    let node = Node::start_with(backend, &[]);
    let (status, body) = upload(&node, "party", "text/csv", ORG_CSV.into()).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body,
        json!({"org": "party", "version": 1, "units": 8, "levels": [1, 2, 2, 1, 1, 1]})
    );

    let (status, unit) = node.op("GET", "/api/v1/orgs/party/units/kj", None).await;
    assert_eq!(status, 200, "{unit}");
    assert_eq!(
        unit,
        json!({"code": "kj", "name": "科技园社区, 南区", "parent": "yh", "level": 6,
               "path": ["cn", "gd", "sz", "ns", "yh", "kj"], "children": 0})
    );
    let (_, gd) = node.op("GET", "/api/v1/orgs/party/units/gd", None).await;
    assert_eq!((gd["children"].as_u64(), gd["parent"].as_str()), (Some(2), Some("cn")));
    let (_, cn) = node.op("GET", "/api/v1/orgs/party/units/cn", None).await;
    assert_eq!(cn["parent"], Value::Null);
    assert_eq!(node.op("GET", "/api/v1/orgs/party/units/nope", None).await.0, 404);

    let codes = |v: &Value| -> Vec<String> {
        v["units"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["code"].as_str().unwrap().to_owned())
            .collect()
    };
    let (status, found) = node.op("GET", "/api/v1/orgs/party/units?q=%E5%B9%BF", None).await; // 广
    assert_eq!(status, 200, "{found}");
    assert_eq!(codes(&found), ["gd", "gz"]);
    let (_, found) = node.op("GET", "/api/v1/orgs/party/units?q=s", None).await;
    assert_eq!(codes(&found), ["sz"]);
    assert_eq!(node.op("GET", "/api/v1/orgs/party/units?q=", None).await.0, 400);

    // Replaced: 200, the next version; the older one is still readable by number.
    let smaller = "code,parent,name\ncn,,中国\nsh,cn,上海市\n".to_owned();
    let (status, body) = upload(&node, "party", "text/csv", smaller).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"org": "party", "version": 2, "units": 2, "levels": [1, 1]})
    );
    assert_eq!(node.op("GET", "/api/v1/orgs/party", None).await.1["version"], 2);
    assert_eq!(node.op("GET", "/api/v1/orgs/party/units/gd", None).await.0, 404);
    let (status, old) = node.op("GET", "/api/v1/orgs/party/units/gd?version=1", None).await;
    assert_eq!((status, old["name"].as_str()), (200, Some("广东省")));
    assert_eq!(node.op("GET", "/api/v1/orgs/party?version=1", None).await.1["units"], 8);
    assert_eq!(node.op("GET", "/api/v1/orgs/party?version=9", None).await.0, 404);

    let (_, list) = node.op("GET", "/api/v1/orgs", None).await;
    assert_eq!(
        list["orgs"],
        json!([{"org": "party", "version": 2, "units": 2, "levels": [1, 1]}])
    );
    assert_eq!(node.call("GET", "/api/v1/orgs", None, None).await.0, 401);
}

async fn an_ndjson_org_uploads_like_a_csv(backend: Backend) {
    let node = Node::start_with(backend, &[]);
    let body = [
        json!({"code": "cn", "parent": null, "name": "中国"}),
        json!({"code": "gd", "parent": "cn", "name": "广东省"}),
        json!({"code": "gz", "parent": "gd", "name": "广州市"}),
    ]
    .iter()
    .map(|u| format!("{u}\n"))
    .collect::<String>();
    let (status, summary) = upload(&node, "ndj", "application/x-ndjson", body).await;
    assert_eq!(status, 201, "{summary}");
    assert_eq!(summary["levels"], json!([1, 1, 1]));
    let (_, gz) = node.op("GET", "/api/v1/orgs/ndj/units/gz", None).await;
    assert_eq!(gz["path"], json!(["cn", "gd", "gz"]));
    let (status, _) = upload(&node, "ndj", "application/json", "{}".into()).await;
    assert_eq!(status, 400);
}

async fn every_upload_error_names_its_line_and_field_and_stores_nothing(backend: Backend) {
    let node = Node::start_with(backend, &[]);
    let deep = "code,parent,name\nl1,,一\nl2,l1,二\nl3,l2,三\nl4,l3,四\nl5,l4,五\nl6,l5,六\nl7,l6,七\n";
    let csv_cases = [
        ("", 1, "header"),
        ("code,name\n", 1, "header"),
        ("code,parent,name\n", 2, "units"),
        ("code,parent,name\ncn,,中国\nguang dong,cn,广东\n", 3, "code"),
        ("code,parent,name\ncn,,中国\ncn,,又一个\n", 3, "code"),
        ("code,parent,name\ngd,cn,广东\ncn,,中国\n", 2, "parent"),
        ("code,parent,name\ncn,,中国\ngd,cn,\n", 3, "name"),
        ("code,parent,name\ncn,,中国\ngd,cn,\"广东\n省\"\n", 3, "name"),
        ("code,parent,name\ncn,,中国\ngd,cn,广东,多\n", 3, "columns"),
        (deep, 8, "parent"),
    ];
    for (body, line, field) in csv_cases {
        let (status, e) = upload(&node, "bad", "text/csv", body.into()).await;
        assert_eq!(status, 400, "{body:?}: {e}");
        assert_eq!(
            (e["error"]["line"].as_u64(), e["error"]["field"].as_str()),
            (Some(line), Some(field)),
            "{body:?}: {e}"
        );
        assert_eq!(e["error"]["code"], "invalid");
    }
    let long_name = format!("code,parent,name\ncn,,{}\n", "名".repeat(101));
    let (_, e) = upload(&node, "bad", "text/csv", long_name).await;
    assert_eq!(
        (e["error"]["line"].as_u64(), e["error"]["field"].as_str()),
        (Some(2), Some("name"))
    );
    let nd_cases = [
        ("{\"code\":\"cn\",\"name\":\"中国\"}\n{oops\n", 2, "json"),
        ("{\"code\":\"cn\",\"name\":\"中国\",\"x\":1}\n", 1, "json"),
        ("{\"code\":\"cn\"}\n", 1, "name"),
        ("{\"code\":7,\"name\":\"中国\"}\n", 1, "code"),
    ];
    for (body, line, field) in nd_cases {
        let (status, e) = upload(&node, "bad", "application/x-ndjson", body.into()).await;
        assert_eq!(status, 400, "{body:?}: {e}");
        assert_eq!(
            (e["error"]["line"].as_u64(), e["error"]["field"].as_str()),
            (Some(line), Some(field)),
            "{body:?}: {e}"
        );
    }
    assert_eq!(node.op("GET", "/api/v1/orgs/bad", None).await.0, 404);
    // A failed replace leaves the stored version as it was.
    assert_eq!(upload(&node, "bad", "text/csv", ORG_CSV.into()).await.0, 201);
    assert_eq!(upload(&node, "bad", "text/csv", deep.into()).await.0, 400);
    let (_, summary) = node.op("GET", "/api/v1/orgs/bad", None).await;
    assert_eq!(
        (summary["version"].as_u64(), summary["units"].as_u64()),
        (Some(1), Some(8))
    );
    let (status, e) = upload(&node, "Bad_Id", "text/csv", ORG_CSV.into()).await;
    assert_eq!((status, e["error"]["field"].as_str()), (400, Some("org")));
}

async fn a_campaign_keeps_its_version_and_a_live_one_blocks_delete(backend: Backend) {
    let node = Node::start_with(backend, &[]);
    let (status, e) = node
        .op(
            "POST",
            "/api/v1/campaigns",
            Some(json!({"id": "launch", "title": "t", "org": "party"})),
        )
        .await;
    assert_eq!((status, e["error"]["field"].as_str()), (400, Some("org")));
    assert_eq!(upload(&node, "party", "text/csv", ORG_CSV.into()).await.0, 201);
    let c = node
        .campaign_with(json!({"id": "launch", "title": "t", "org": "party"}))
        .await;
    assert_eq!((c["org"].as_str(), c["org_version"].as_u64()), (Some("party"), Some(1)));

    // Two more uploads: version 1 stays while the campaign uses it.
    for _ in 0..2 {
        assert_eq!(upload(&node, "party", "text/csv", ORG_CSV.into()).await.0, 200);
    }
    let (_, c) = node.op("GET", "/api/v1/campaigns/launch", None).await;
    assert_eq!(c["org_version"], 1);
    assert_eq!(
        node.op("GET", "/api/v1/orgs/party/units/kj?version=1", None).await.0,
        200
    );

    let (status, e) = node.op("DELETE", "/api/v1/orgs/party", None).await;
    assert_eq!((status, e["error"]["code"].as_str()), (409, Some("conflict")), "{e}");
    assert_eq!(node.op("GET", "/api/v1/orgs/party", None).await.0, 200);
    assert_eq!(node.op("POST", "/api/v1/campaigns/launch/end", None).await.0, 200);
    assert_eq!(node.op("DELETE", "/api/v1/orgs/party", None).await.0, 204);
    assert_eq!(node.op("GET", "/api/v1/orgs/party", None).await.0, 404);
    assert_eq!(node.op("DELETE", "/api/v1/orgs/party", None).await.0, 404);
    // Uploaded again: a new number, never one handed out before.
    let (status, body) = upload(&node, "party", "text/csv", ORG_CSV.into()).await;
    assert_eq!((status, body["version"].as_u64()), (201, Some(4)));
}
