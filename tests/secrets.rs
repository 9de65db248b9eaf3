//! Nothing to learn from a token or a log: the join key is the deployment's random one (not
//! a function of the operator token), `--join-secret` is long enough and rotates as a list,
//! and an operator socket authenticates with a single-use ticket instead of its token in
//! the URL.

mod support;

use std::process::Command;

use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use support::node::{Node, Ws, TOKEN};
use support::redis::RedisServer;

const BIN: &str = env!("CARGO_BIN_EXE_livetally");

fn now_s() -> u64 {
    (livetally::util::now_ms() / 1000) as u64
}

/// A join token signed with `key`, as any JWT library would.
fn signed(key: &[u8], claims: &Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(key).unwrap();
    jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256), claims, &key).unwrap()
}

/// Whether `token` carries a valid HS256 signature by `key` (claims not checked).
fn signed_by(token: &str, key: &[u8]) -> bool {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.validate_aud = false;
    let key = jsonwebtoken::DecodingKey::from_secret(key).unwrap();
    jsonwebtoken::decode::<Value>(token, &key, &v).is_ok()
}

/// v1.1's join key: SHA-256 of the first operator token.
fn derived_key() -> Vec<u8> {
    Sha256::digest(format!("livetally-join:{TOKEN}")).to_vec()
}

async fn private_campaign(node: &Node, id: &str) {
    node.campaign_with(json!({"id": id, "title": "VIP", "access": "token"}))
        .await;
}

async fn mint(node: &Node, campaign: &str) -> String {
    let (status, body) = node
        .op("POST", &format!("/api/v1/campaigns/{campaign}/tokens"), Some(json!({})))
        .await;
    assert_eq!(status, 201, "{body}");
    body["token"].as_str().unwrap().to_owned()
}

async fn admitted(node: &Node, campaign: &str, token: &str) -> bool {
    match Ws::connect(&node.ws_url(&format!("/ws/v1/campaigns/{campaign}?token={token}"))).await {
        Ok(mut ws) => ws.next().await["type"] == "welcome",
        Err(_) => false,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_deployment_signs_with_its_stored_key_never_the_operator_tokens() {
    for node in [Node::start(&[]), Node::start_with(support::node::Backend::Redis, &[])] {
        private_campaign(&node, "vip").await;
        let token = mint(&node, "vip").await;
        assert!(admitted(&node, "vip", &token).await);
        assert!(
            !signed_by(&token, &derived_key()),
            "a join token is no oracle for the operator token"
        );
        let forged = signed(&derived_key(), &json!({"campaign": "vip", "exp": now_s() + 600}));
        assert!(
            !admitted(&node, "vip", &forged).await,
            "the derived key is not accepted"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn after_upgrade_store_tokens_signed_with_the_derived_key_are_refused() {
    // A deployment older nodes ran on: its store is marked, and has no join key.
    let redis = RedisServer::start();
    let _: () = redis.query(&["SET", "lt:{campaigns}:schema", "3"]);
    let node = Node::start(&["--redis", &redis.url()]);
    private_campaign(&node, "vip").await;
    // Meanwhile the derived key signs (older nodes verify with it) and verifies.
    let before = mint(&node, "vip").await;
    assert!(signed_by(&before, &derived_key()), "mixed: signed as older nodes do");
    assert!(admitted(&node, "vip", &before).await);
    let by_old_node = signed(&derived_key(), &json!({"campaign": "vip", "exp": now_s() + 600}));
    assert!(admitted(&node, "vip", &by_old_node).await);

    let out = tokio::task::spawn_blocking({
        let url = redis.url();
        move || {
            Command::new(BIN)
                .args(["upgrade-store", "--redis", &url])
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stored: Vec<u8> = redis.query(&["GET", "lt:{campaigns}:join-key"]);
    assert_eq!(stored.len(), 43, "32 random bytes, base64url");

    // By the time upgrade-store returns, the running node has switched.
    assert!(!admitted(&node, "vip", &before).await, "a derived-key token is refused");
    assert!(!admitted(&node, "vip", &by_old_node).await);
    let after = mint(&node, "vip").await;
    assert!(signed_by(&after, &stored) && !signed_by(&after, &derived_key()));
    assert!(admitted(&node, "vip", &after).await);

    // `livetally token` with the store flags signs with the stored key too.
    let out = Command::new(BIN)
        .args(["token", "--campaign", "vip", "--redis", &redis.url()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let shell = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    assert!(signed_by(&shell, &stored));
    assert!(admitted(&node, "vip", &shell).await);
}

#[test]
fn a_join_secret_under_16_characters_is_refused_at_start_and_under_32_warned_about() {
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--join-secret", "fifteen-chars15"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("join-secret") && err.contains("at least 16"), "{err}");
    // One short secret in a list is refused as well.
    let out = Command::new(BIN)
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--join-secret",
            "a-long-enough-join-secret-0123456789,short-0123",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));

    let node = Node::spawn(&["--join-secret", "twenty-char-secret-1"]);
    assert!(
        node.log_text().contains("shorter than 32 characters"),
        "{}",
        node.log_text()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn of_a_join_secret_list_the_first_signs_and_every_one_verifies() {
    let (new, old, other) = (
        "the-new-join-secret-0123456789abcdef",
        "the-old-join-secret-0123456789abcdef",
        "not-this-deployments-secret-0123456789",
    );
    let node = Node::start(&["--join-secret", &format!("{new},{old}")]);
    private_campaign(&node, "vip").await;
    let minted = mint(&node, "vip").await;
    assert!(signed_by(&minted, new.as_bytes()) && !signed_by(&minted, old.as_bytes()));
    let claims = json!({"campaign": "vip", "exp": now_s() + 600});
    assert!(admitted(&node, "vip", &signed(new.as_bytes(), &claims)).await);
    assert!(admitted(&node, "vip", &signed(old.as_bytes(), &claims)).await);
    assert!(!admitted(&node, "vip", &signed(other.as_bytes(), &claims)).await);
}

async fn ticket(node: &Node, campaign: &str) -> String {
    let (status, body) = node
        .op("POST", &format!("/api/v1/campaigns/{campaign}/tickets"), None)
        .await;
    assert_eq!(status, 201, "{body}");
    let expires_at = body["expires_at"].as_i64().unwrap();
    let now = livetally::util::now_ms();
    assert!((now + 55_000..=now + 60_000).contains(&expires_at), "{body}");
    body["ticket"].as_str().unwrap().to_owned()
}

fn ticket_path(campaign: &str, ticket: &str) -> String {
    format!("/ws/v1/campaigns/{campaign}?role=operator&ticket={ticket}")
}

#[tokio::test(flavor = "multi_thread")]
async fn an_operator_ticket_opens_one_socket_once_on_any_node() {
    let redis = RedisServer::start();
    let a = Node::start(&["--redis", &redis.url(), "--node-id", "a"]);
    let b = Node::start(&["--redis", &redis.url(), "--node-id", "b"]);
    a.campaign("launch").await;
    a.campaign("other").await;
    // Minted with the bearer token only.
    assert_eq!(
        a.call("POST", "/api/v1/campaigns/launch/tickets", None, None).await.0,
        401
    );
    let wrong = a
        .call(
            "POST",
            "/api/v1/campaigns/launch/tickets",
            None,
            Some("wrong-token-0123456789"),
        )
        .await;
    assert_eq!(wrong.0, 403);
    assert_eq!(a.op("POST", "/api/v1/campaigns/nope/tickets", None).await.0, 404);

    // Minted on one node, spent on another, refused on both after.
    let t = ticket(&a, "launch").await;
    assert!(!t.contains(TOKEN));
    b.await_known("launch").await;
    let mut ws = Ws::connect(&b.ws_url(&ticket_path("launch", &t))).await.unwrap();
    let welcome = ws.next().await;
    assert_eq!(
        (welcome["type"].as_str(), welcome["role"].as_str()),
        (Some("welcome"), Some("operator"))
    );
    assert_eq!(b.refused(&ticket_path("launch", &t)).await, 403, "spent once");
    assert_eq!(a.refused(&ticket_path("launch", &t)).await, 403, "on every node");

    // For its campaign only, and with its own MAC only.
    let t = ticket(&a, "launch").await;
    assert_eq!(a.refused(&ticket_path("other", &t)).await, 403);
    let mut forged = t.clone();
    let last = if t.ends_with('A') { "B" } else { "A" };
    forged.replace_range(t.len() - 1.., last);
    assert_eq!(a.refused(&ticket_path("launch", &forged)).await, 403);
    // A ticket of another deployment (its own ticket key) is refused too.
    let elsewhere = Node::start(&[]);
    elsewhere.campaign("launch").await;
    let foreign = ticket(&elsewhere, "launch").await;
    assert_eq!(a.refused(&ticket_path("launch", &foreign)).await, 403);
    // The refusals above did not spend the good ticket.
    Ws::connect(&a.ws_url(&ticket_path("launch", &t))).await.unwrap();
    // A viewer's query cannot use a ticket to become an operator, and without any
    // credential an operator socket is 401.
    assert_eq!(a.refused("/ws/v1/campaigns/launch?role=operator").await, 401);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_node_logs_no_token_or_ticket_of_a_url() {
    let node = Node::spawn(&[]);
    node.campaign("launch").await;
    let t = ticket(&node, "launch").await;
    Ws::connect(&node.ws_url(&ticket_path("launch", &t))).await.unwrap();
    assert_eq!(node.refused(&ticket_path("launch", &t)).await, 403);
    // The deprecated form still works for scripts, and a wrong one is refused.
    Ws::connect(&node.ws_url(&format!("/ws/v1/campaigns/launch?role=operator&token={TOKEN}")))
        .await
        .unwrap();
    let wrong = "/ws/v1/campaigns/launch?role=operator&token=wrong-token-0123456789";
    assert_eq!(node.refused(wrong).await, 403);
    let log = node.log_text();
    assert!(log.contains("listening"), "{log}");
    for secret in [TOKEN, "wrong-token-0123456789", t.as_str()] {
        assert!(!log.contains(secret), "the log holds {secret}: {log}");
    }
}
