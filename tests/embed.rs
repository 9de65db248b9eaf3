//! Embedding on a brand's own site: join tokens minted by a backend with a stock JWT
//! implementation, the region from the edge, and cross-origin answers (the widget and SDK
//! modules included).

mod support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use support::node::{Node, Ws, TOKEN};

/// The `--join-secret` a brand's backend shares with the nodes.
const SECRET: &str = "brand-backend-join-secret";

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A JWT as any backend builds it (RFC 7519 with HS256), assembled by hand from its JSON
/// header and claims: nothing of the node's own minting code.
fn jwt(secret: &str, claims: Value) -> String {
    let header = json!({"alg": "HS256", "typ": "JWT"});
    let signing_input = format!("{}.{}", B64.encode(header.to_string()), B64.encode(claims.to_string()));
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(signing_input.as_bytes());
    format!("{signing_input}.{}", B64.encode(mac.finalize().into_bytes()))
}

async fn private_campaign(node: &Node, id: &str) {
    node.campaign_with(json!({"id": id, "title": "VIP", "access": "token", "regions": ["DE", "US"]}))
        .await;
}

/// The operator's view of `campaign` once `viewers` are counted: its `regions`. The
/// welcome's stats may already show them, and then no frame repeats them (frames are
/// pushed only when a number changes).
async fn regions_once(node: &Node, campaign: &str, viewers: u64) -> Value {
    let mut op = node.viewer(campaign, &format!("role=operator&token={TOKEN}")).await;
    let welcome = op.next().await;
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    if welcome["stats"]["viewers"] == viewers {
        return welcome["stats"]["regions"].clone();
    }
    op.until(|m| m["type"] == "stats" && m["viewers"] == viewers).await["regions"].clone()
}

#[tokio::test]
async fn a_backend_minted_jwt_admits_the_viewer_as_its_sub() {
    let node = Node::start(&["--join-secret", SECRET]);
    private_campaign(&node, "vip").await;
    let exp = now_s() + 60;
    // Claims the node does not know (`aud`, `iat`, `jti`) are ignored.
    let token = jwt(
        SECRET,
        json!({"campaign": "vip", "exp": exp, "sub": "brand-user-42", "region": "DE",
               "aud": "brand-site", "iat": now_s(), "jti": "x1"}),
    );
    let mut ws = node.viewer("vip", &format!("token={token}&region=US")).await;
    let welcome = ws.next().await;
    assert_eq!(welcome["type"], "welcome");
    assert_eq!(welcome["viewer"], "brand-user-42");
    // The `viewer` query may repeat the sub.
    let mut same = node.viewer("vip", &format!("token={token}&viewer=brand-user-42")).await;
    assert_eq!(same.next().await["viewer"], "brand-user-42");
    // The token's region won over the query's.
    assert_eq!(regions_once(&node, "vip", 2).await, json!({"DE": 2}));

    // A different viewer, a forged signature, an expired token, another campaign's token,
    // a token without `exp`: 403.
    let refused = |query: String| {
        let node = &node;
        async move { node.refused(&format!("/ws/v1/campaigns/vip?{query}")).await }
    };
    assert_eq!(refused(format!("token={token}&viewer=someone-else-1")).await, 403);
    let forged = jwt("a-guessed-secret", json!({"campaign": "vip", "exp": exp}));
    assert_eq!(refused(format!("token={forged}")).await, 403);
    let expired = jwt(SECRET, json!({"campaign": "vip", "exp": now_s() - 1}));
    assert_eq!(refused(format!("token={expired}")).await, 403);
    let elsewhere = jwt(SECRET, json!({"campaign": "other", "exp": exp}));
    assert_eq!(refused(format!("token={elsewhere}")).await, 403);
    let forever = jwt(SECRET, json!({"campaign": "vip"}));
    assert_eq!(refused(format!("token={forever}")).await, 403);
    assert_eq!(refused(String::new()).await, 401);
    same.close().await;
    ws.close().await;
}

/// Mints with the `jsonwebtoken` crate as a Rust backend would (its own header and
/// encoding, not the node's minting code nor the hand-built `jwt` above).
fn stock_jwt(alg: jsonwebtoken::Algorithm, secret: &str, claims: &Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()).unwrap();
    jsonwebtoken::encode(&jsonwebtoken::Header::new(alg), claims, &key).unwrap()
}

#[tokio::test]
async fn a_token_minted_by_the_stock_jsonwebtoken_crate_admits_its_sub() {
    let node = Node::start(&["--join-secret", SECRET]);
    private_campaign(&node, "vip").await;
    let claims = json!({"campaign": "vip", "exp": now_s() + 600, "sub": "crate-user-0007", "iat": now_s()});
    let token = stock_jwt(jsonwebtoken::Algorithm::HS256, SECRET, &claims);
    let mut ws = node.viewer("vip", &format!("token={token}")).await;
    let welcome = ws.next().await;
    assert_eq!(
        (welcome["type"].as_str(), welcome["viewer"].as_str()),
        (Some("welcome"), Some("crate-user-0007"))
    );
    ws.send(json!({"type": "interact", "kind": "like", "seq": 1})).await;
    assert_eq!(ws.until(|m| m["type"] == "ack").await["seq"], 1);
    let stats = node.stats("vip").await;
    assert_eq!(stats["interactions"]["like"], 1);

    // Only HS256 with the join secret: the same claims under another algorithm, another
    // secret, or unsigned (`alg: none`) are 403.
    let hs384 = stock_jwt(jsonwebtoken::Algorithm::HS384, SECRET, &claims);
    let other_secret = stock_jwt(jsonwebtoken::Algorithm::HS256, "not-the-join-secret", &claims);
    let unsigned = format!(
        "{}.{}.",
        B64.encode(json!({"alg": "none", "typ": "JWT"}).to_string()),
        B64.encode(claims.to_string())
    );
    for bad in [hs384, other_secret, unsigned] {
        assert_eq!(
            node.refused(&format!("/ws/v1/campaigns/vip?token={bad}")).await,
            403,
            "{bad}"
        );
    }
    ws.close().await;
}

#[tokio::test]
async fn a_token_from_the_api_carries_sub_and_region() {
    let node = Node::start(&[]);
    private_campaign(&node, "vip").await;
    let (status, t) = node
        .op(
            "POST",
            "/api/v1/campaigns/vip/tokens",
            Some(json!({"ttl_s": 60, "sub": "api-user-0001", "region": "US"})),
        )
        .await;
    assert_eq!(status, 201, "{t}");
    let token = t["token"].as_str().unwrap();
    // A standard JWT: three parts, its claims readable by anyone.
    let claims: Value = serde_json::from_slice(&B64.decode(token.split('.').nth(1).unwrap()).unwrap()).unwrap();
    assert_eq!(claims["campaign"], "vip");
    assert_eq!(claims["sub"], "api-user-0001");
    assert_eq!(
        claims["exp"].as_i64().unwrap() * 1000,
        t["expires_at"].as_i64().unwrap()
    );
    let mut ws = node.viewer("vip", &format!("token={token}&region=DE")).await;
    assert_eq!(ws.next().await["viewer"], "api-user-0001");
    assert_eq!(regions_once(&node, "vip", 1).await, json!({"US": 1}));
    assert_eq!(
        node.refused(&format!("/ws/v1/campaigns/vip?token={token}&viewer=api-user-0002"))
            .await,
        403
    );
    // Bad claims are refused before a token is minted.
    for body in [
        json!({"sub": "short"}),
        json!({"region": "not a region"}),
        json!({"aud": "x"}),
    ] {
        let (status, _) = node
            .op("POST", "/api/v1/campaigns/vip/tokens", Some(body.clone()))
            .await;
        assert_eq!(status, 400, "{body}");
    }
    ws.close().await;
}

/// Opens a viewer socket of `campaign` with `query`, the edge's region header saying `edge`.
async fn viewer_behind_edge(node: &Node, campaign: &str, query: &str, edge: &str) -> Ws {
    let url = node.ws_url(&format!("/ws/v1/campaigns/{campaign}?{query}"));
    let mut ws = Ws::connect_with(&url, &[("CF-IPCountry", edge)])
        .await
        .unwrap_or_else(|status| panic!("refused with {status}"));
    assert_eq!(ws.next().await["type"], "welcome");
    ws
}

#[tokio::test]
async fn the_region_comes_from_the_token_then_the_edge_header_then_the_query() {
    let node = Node::start(&["--region-header", "CF-IPCountry", "--join-secret", SECRET]);
    node.campaign_with(json!({"id": "geo", "title": "Geo", "regions": ["DE", "US", "FR"]}))
        .await;
    let by_edge = viewer_behind_edge(&node, "geo", "region=US", "DE").await;
    let token = jwt(SECRET, json!({"campaign": "geo", "exp": now_s() + 60, "region": "FR"}));
    let by_token = viewer_behind_edge(&node, "geo", &format!("token={token}&region=US"), "DE").await;
    // An edge value that is not a region is ignored, not refused.
    let by_query = viewer_behind_edge(&node, "geo", "region=US", "not a region").await;
    assert_eq!(regions_once(&node, "geo", 3).await, json!({"DE": 1, "FR": 1, "US": 1}));
    for ws in [by_edge, by_token, by_query] {
        ws.close().await;
    }
}

/// The region counted for a viewer asking for `US` whose edge header says `DE`, on a node
/// with `--region-header CF-IPCountry --trusted-proxies proxies`.
async fn region_behind(proxies: &str) -> Value {
    let node = Node::start(&["--region-header", "CF-IPCountry", "--trusted-proxies", proxies]);
    node.campaign_with(json!({"id": "geo", "title": "Geo", "regions": ["DE", "US"]}))
        .await;
    let ws = viewer_behind_edge(&node, "geo", "region=US", "DE").await;
    let regions = regions_once(&node, "geo", 1).await;
    ws.close().await;
    regions
}

#[tokio::test]
async fn behind_trusted_proxies_only_theirs_names_the_region() {
    // The test client (127.0.0.1) is not one of the proxies: its header is not believed.
    assert_eq!(region_behind("10.0.0.0/8").await, json!({"US": 1}));
    // From a trusted proxy it is.
    assert_eq!(region_behind("127.0.0.1").await, json!({"DE": 1}));
}

/// Sends `method path` with `Origin: origin` (and the operator token when `operator`); the
/// status and the answer's `Access-Control-Allow-Origin` and `Vary`.
async fn from_origin(
    node: &Node,
    method: &str,
    path: &str,
    origin: &str,
    operator: bool,
) -> (u16, Option<String>, Option<String>) {
    let mut req = node
        .http
        .request(method.parse().unwrap(), node.url(path))
        .header("origin", origin);
    if operator {
        req = req.bearer_auth(TOKEN);
    }
    if method == "POST" {
        req = req.json(&json!({"viewer": "viewer-cors-01"}));
    }
    if method == "OPTIONS" {
        req = req
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type");
    }
    let resp = req.send().await.unwrap();
    let header = |name: &str| resp.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
    let (allow, vary) = (header("access-control-allow-origin"), header("vary"));
    (resp.status().as_u16(), allow, vary)
}

#[tokio::test]
async fn public_routes_answer_any_origin_and_operator_routes_none() {
    let node = Node::start(&[]);
    node.campaign("pub").await;
    let site = "https://brand.example";
    let star = Some("*".to_owned());
    for (method, path, status) in [
        ("GET", "/api/v1/campaigns/pub", 200),
        ("GET", "/api/v1/campaigns/pub/stats", 200),
        // The widget and the SDK it imports, as modules (CORS fetches) from another origin.
        ("GET", "/embed/v1.js", 200),
        ("GET", "/sdk/v1/livetally.js", 200),
        ("POST", "/api/v1/campaigns/pub/registrations", 201),
        ("OPTIONS", "/api/v1/campaigns/pub/registrations", 204),
        // Errors too, so the page can read why.
        ("GET", "/api/v1/campaigns/nope/stats", 404),
    ] {
        let (got, allow, _) = from_origin(&node, method, path, site, false).await;
        assert_eq!((got, allow), (status, star.clone()), "{method} {path}");
    }
    for (method, path) in [
        ("GET", "/api/v1/campaigns"),
        ("GET", "/api/v1/campaigns/pub/report"),
        ("POST", "/api/v1/campaigns/pub/tokens"),
    ] {
        let (_, allow, _) = from_origin(&node, method, path, site, true).await;
        assert_eq!(allow, None, "{method} {path} is an operator route");
    }
    let preflight = node
        .http
        .request(
            "OPTIONS".parse().unwrap(),
            node.url("/api/v1/campaigns/pub/registrations"),
        )
        .header("origin", site)
        .send()
        .await
        .unwrap();
    let h = |name: &str| preflight.headers().get(name).unwrap().to_str().unwrap().to_owned();
    assert_eq!(h("access-control-allow-methods"), "POST");
    assert_eq!(h("access-control-allow-headers"), "content-type");
}

#[tokio::test]
async fn with_allowed_origins_only_those_are_answered() {
    let node = Node::start(&["--allowed-origins", "https://brand.example,https://shop.example"]);
    node.campaign("pub").await;
    for (method, path) in [
        ("GET", "/api/v1/campaigns/pub"),
        ("GET", "/api/v1/campaigns/pub/stats"),
        ("GET", "/embed/v1.js"),
        ("GET", "/sdk/v1/livetally.js"),
        ("POST", "/api/v1/campaigns/pub/registrations"),
        ("OPTIONS", "/api/v1/campaigns/pub/registrations"),
    ] {
        let (_, allow, vary) = from_origin(&node, method, path, "https://shop.example", false).await;
        assert_eq!(allow.as_deref(), Some("https://shop.example"), "{method} {path}");
        assert!(
            vary.is_some_and(|v| v.to_lowercase().contains("origin")),
            "{method} {path}"
        );
        let (status, allow, _) = from_origin(&node, method, path, "https://evil.example", false).await;
        assert_eq!(allow, None, "{method} {path} from a stranger");
        assert!(status < 500);
    }
    // Sockets keep their own Origin check.
    let url = node.ws_url("/ws/v1/campaigns/pub");
    let refused = Ws::connect_with(&url, &[("origin", "https://evil.example")]).await;
    assert_eq!(refused.err(), Some(403));
    let mut ws = Ws::connect_with(&url, &[("origin", "https://brand.example")])
        .await
        .unwrap_or_else(|status| panic!("refused with {status}"));
    assert_eq!(ws.next().await["type"], "welcome");
    ws.close().await;
}
