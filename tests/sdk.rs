//! The JS SDK as a brand's page on another origin loads it: `GET /sdk/v1/livetally.js`
//! with the CORS answer of the public routes, a JavaScript type and its caching.

mod support;

use support::node::Node;

/// GETs the SDK with `Origin: origin`: status, `Access-Control-Allow-Origin`, `Vary`.
async fn sdk_from(node: &Node, origin: &str) -> (u16, Option<String>, Option<String>, reqwest::Response) {
    let resp = node
        .http
        .get(node.url("/sdk/v1/livetally.js"))
        .header("origin", origin)
        .send()
        .await
        .unwrap();
    let header = |name: &str| resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let (allow, vary) = (header("access-control-allow-origin"), header("vary"));
    (resp.status().as_u16(), allow, vary, resp)
}

#[tokio::test]
async fn the_sdk_is_served_to_any_origin_as_a_cached_module() {
    let node = Node::start(&[]);
    let (status, allow, _, resp) = sdk_from(&node, "https://brand.example").await;
    assert_eq!((status, allow.as_deref()), (200, Some("*")));
    let h = |name: &str| resp.headers().get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!(h("content-type"), "text/javascript; charset=utf-8");
    assert_eq!(h("cache-control"), "public, max-age=300");
    let etag = h("etag");
    assert!(resp.text().await.unwrap().contains("export function connect("));
    let again = node
        .http
        .get(node.url("/sdk/v1/livetally.js"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
}

#[tokio::test]
async fn with_allowed_origins_the_sdk_answers_only_those() {
    let node = Node::start(&["--allowed-origins", "https://brand.example,https://shop.example"]);
    let (status, allow, vary, _) = sdk_from(&node, "https://shop.example").await;
    assert_eq!((status, allow.as_deref()), (200, Some("https://shop.example")));
    assert!(vary.is_some_and(|v| v.to_lowercase().contains("origin")));
    let (status, allow, _, _) = sdk_from(&node, "https://evil.example").await;
    assert_eq!((status, allow), (200, None));
}
