//! Embedding on a brand's own site: join tokens minted by a backend with a stock JWT
//! implementation, the region from the edge, and cross-origin answers.

mod support;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use support::node::{Node, TOKEN};

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

/// The operator's view of `campaign` once `viewers` are counted: its `regions`.
async fn regions_once(node: &Node, campaign: &str, viewers: u64) -> Value {
    let mut op = node.viewer(campaign, &format!("role=operator&token={TOKEN}")).await;
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
