//! Admission on the memory store: limits, resumed sessions, tokens, regions, refusals.

use super::*;
use crate::store::{Batch, Counting, SessionDelta};
use crate::ws::testing::{rig, rig_with};
use actix_web::ResponseError;

fn client(ip: &str) -> ClientKey {
    ClientKey::of(ip.parse().unwrap())
}

async fn admit_from(a: &Admission, query: &str, from: &str) -> Result<Admitted, ApiError> {
    a.admit(a.check("launch", query, None, None, client(from)).await?).await
}

async fn admit(a: &Admission, query: &str) -> Result<Admitted, ApiError> {
    admit_from(a, query, "198.51.100.1").await
}

#[tokio::test]
async fn the_connection_limit_refuses_until_a_socket_leaves() {
    let rig = rig_with(1).await;
    let a = &rig.admission;
    let first = admit(a, "").await.unwrap();
    let refused = admit(a, "").await.err().unwrap();
    assert_eq!(refused.status_code().as_u16(), 503);
    assert_eq!(a.connections.open(), 1);
    drop(first);
    assert_eq!(a.connections.open(), 0);
    let again = admit(a, "").await.unwrap();
    assert_eq!(again.tally.local_viewers(), 1);
    assert_eq!(a.metrics.connections.with_label_values(&["viewer"]).get(), 1);
}

#[tokio::test]
async fn a_resumed_session_is_welcomed_with_what_the_store_acked() {
    let rig = rig().await;
    let (epoch, _) = rig
        .store
        .claim_session("launch", "session-0001", &crate::store::flaky::N1)
        .await
        .unwrap();
    let delta = SessionDelta {
        session: "session-0001".into(),
        viewer: "viewer-0001".into(),
        epoch,
        seq: 5,
        counts: vec![("like".into(), 5)],
        unit: None,
    };
    let batch = Batch {
        campaign: "launch".into(),
        sessions: vec![delta],
        ..Default::default()
    };
    rig.store.apply(&batch).await.unwrap();
    let s = admit(&rig.admission, "viewer=viewer-0001&session=session-0001")
        .await
        .unwrap();
    let welcome: serde_json::Value = serde_json::from_str(&s.welcome).unwrap();
    assert_eq!(welcome["acked_seq"], 5);
    assert_eq!(welcome["session"], "session-0001");
    // The node has not ticked yet: the first welcome reads the store, not zeros.
    assert_eq!(welcome["stats"]["interactions"]["like"], 5);
    let published = rig.admission.tallies.get("launch").unwrap().frames.borrow().clone();
    let published: serde_json::Value = serde_json::from_str(&published.viewer_stats).unwrap();
    assert_eq!(published, welcome["stats"], "published for the sockets behind it");
}

#[tokio::test]
async fn refusals_carry_their_status_and_count_nobody() {
    let rig = rig().await;
    let a = &rig.admission;
    for (query, status) in [
        ("viewer=short", 400),
        ("region=far%20away", 400),
        ("role=admin", 400),
        ("role=operator", 401),
        ("role=operator&token=wrong-token-0123456789", 403),
    ] {
        let e = admit(a, query).await.err().unwrap();
        assert_eq!(e.status_code().as_u16(), status, "{query}");
    }
    assert_eq!(
        a.check("nope", "", None, None, client("198.51.100.1"))
            .await
            .err()
            .unwrap()
            .status_code()
            .as_u16(),
        404
    );
    rig.admission.shutdown.cancel();
    assert_eq!(admit(a, "").await.err().unwrap().status_code().as_u16(), 503);
    assert_eq!(a.connections.open(), 0);
    assert_eq!(rig.tallies.get("launch").map(|t| t.sockets()).unwrap_or(0), 0);
}

#[tokio::test]
async fn a_client_at_its_socket_limit_is_refused_until_one_of_its_sockets_leaves() {
    let mut rig = rig().await;
    rig.admission.sockets_per_client = Some(Arc::new(SocketsPerClient::new(2.try_into().unwrap())));
    let a = &rig.admission;
    let first = admit(a, "").await.unwrap();
    let _second = admit(a, "").await.unwrap();
    let refused = admit(a, "").await.err().unwrap();
    assert_eq!(refused.status_code().as_u16(), 429);
    assert_eq!(refused.code(), "too_many_connections");
    // Before the upgrade and before the store: nothing was counted.
    assert_eq!(a.connections.open(), 2);
    assert_eq!(rig.tallies.get("launch").unwrap().local_viewers(), 2);
    // Another client, and operators of the same one, are not limited.
    let _other = admit_from(a, "", "198.51.100.2").await.unwrap();
    let query = format!("role=operator&token={}", crate::ws::testing::OPERATOR_TOKEN);
    let _operator = admit(a, &query).await.unwrap();
    drop(first);
    let _again = admit(a, "").await.unwrap();
}

#[tokio::test]
async fn wrong_operator_tokens_lock_the_client_out_of_operator_sockets() {
    let rig = rig().await;
    let a = &rig.admission;
    let wrong = "role=operator&token=wrong-token-0123456789";
    for _ in 0..crate::clients::auth_failures::MAX_FAILURES {
        assert_eq!(admit(a, wrong).await.err().unwrap().status_code().as_u16(), 403);
    }
    let locked = admit(a, wrong).await.err().unwrap();
    assert_eq!((locked.status_code().as_u16(), locked.code()), (429, "rate_limited"));
    let right = format!("role=operator&token={}", crate::ws::testing::OPERATOR_TOKEN);
    assert_eq!(admit(a, &right).await.err().unwrap().status_code().as_u16(), 429);
    // Viewers of that client and operators elsewhere are not affected.
    admit(a, "").await.unwrap();
    admit_from(a, &right, "198.51.100.2").await.unwrap();
}

fn join_token(a: &Admission, sub: Option<&str>, region: Option<&str>) -> String {
    a.auth.mint_join(&crate::auth::JoinClaims {
        campaign: "launch".into(),
        exp: (crate::util::now_ms() / 1000) as u64 + 60,
        sub: sub.map(Into::into),
        region: region.map(Into::into),
        unit: None,
    })
}

#[tokio::test]
async fn a_token_names_the_viewer_and_region() {
    let rig = rig().await;
    let a = &rig.admission;
    let check = |query: String| async move { a.check("launch", &query, None, None, client("198.51.100.1")).await };
    let t = join_token(a, Some("viewer-from-sub"), Some("DE"));
    let c = check(format!("token={t}&region=US")).await.unwrap();
    assert_eq!(
        (c.viewer.as_str(), c.region.as_deref()),
        ("viewer-from-sub", Some("DE"))
    );
    let c = check(format!("token={t}&viewer=viewer-from-sub")).await.unwrap();
    assert_eq!(c.viewer, "viewer-from-sub");
    let e = check(format!("token={t}&viewer=someone-else")).await.err().unwrap();
    assert_eq!(e.status_code().as_u16(), 403);
    // Without claims the query decides, as in v1.
    let plain = join_token(a, None, None);
    let c = check(format!("token={plain}&viewer=viewer-0001&region=US"))
        .await
        .unwrap();
    assert_eq!((c.viewer.as_str(), c.region.as_deref()), ("viewer-0001", Some("US")));
    // A token given to a public campaign must still be valid.
    let e = check("token=nonsense".into()).await.err().unwrap();
    assert_eq!(e.status_code().as_u16(), 403);
}

#[tokio::test]
async fn the_edge_region_is_believed_only_from_trusted_proxies_and_loses_to_the_token() {
    let mut rig = rig().await;
    let mut headers = HeaderMap::new();
    headers.insert(HeaderName::from_static("cf-ipcountry"), HeaderValue::from_static("DE"));
    let peer = Some("10.0.0.7".parse().unwrap());
    assert_eq!(rig.admission.edge_region(peer, &headers), None, "no --region-header");
    rig.admission.region_header = Some(HeaderName::from_static("cf-ipcountry"));
    let a = &rig.admission;
    assert_eq!(a.edge_region(peer, &headers), Some("DE"), "no proxies: any peer");
    let check = |query: String, edge: Option<&'static str>| async move {
        a.check("launch", &query, None, edge, client("198.51.100.1"))
            .await
            .unwrap()
            .region
    };
    assert_eq!(check("region=US".into(), Some("DE")).await.as_deref(), Some("DE"));
    let t = join_token(a, None, Some("FR"));
    assert_eq!(
        check(format!("token={t}&region=US"), Some("DE")).await.as_deref(),
        Some("FR")
    );
    assert_eq!(check("region=US".into(), None).await.as_deref(), Some("US"));
    // Behind proxies only theirs counts; a value that is not a region is ignored.
    let mut rig = rig;
    rig.admission.trusted_proxies = TrustedProxies::new(vec![crate::config::parse_cidr("10.0.0.0/8").unwrap()]);
    let a = &rig.admission;
    assert_eq!(a.edge_region(peer, &headers), Some("DE"));
    assert_eq!(a.edge_region(Some("198.51.100.9".parse().unwrap()), &headers), None);
    assert_eq!(a.edge_region(None, &headers), None);
    headers.insert(
        HeaderName::from_static("cf-ipcountry"),
        HeaderValue::from_static("far away"),
    );
    assert_eq!(a.edge_region(peer, &headers), None);
}

#[tokio::test]
async fn during_an_outage_a_held_campaign_admits_and_an_unknown_one_is_404() {
    let rig = rig().await;
    let a = &rig.admission;
    let first = admit(a, "").await.unwrap();
    rig.store.set_down(true);
    let late = admit(a, "proto=2").await.unwrap();
    let welcome: serde_json::Value = serde_json::from_str(&late.welcome).unwrap();
    assert!(welcome["acked_seq"].is_null(), "{welcome}");
    assert!(
        admit(a, "").await.unwrap().welcome.is_empty(),
        "protocol 1 waits for its welcome"
    );
    drop(first);
    // The node's campaign index answers for ids it does not hold, store or no store.
    let other = a
        .check("other", "", None, None, client("198.51.100.1"))
        .await
        .err()
        .unwrap();
    assert_eq!(other.status_code().as_u16(), 404);
}

#[tokio::test]
async fn an_upgrade_past_the_connect_budget_claims_nothing() {
    let mut rig = rig().await;
    rig.admission.connects = Some(Arc::new(ConnectBudget::per_minute(
        std::num::NonZeroU32::new(6).unwrap(),
    )));
    let a = &rig.admission;
    // A refusal for another reason spends no token.
    assert_eq!(admit(a, "session=bad").await.err().unwrap().status_code().as_u16(), 400);
    let _first = admit(a, "session=session-a").await.unwrap();
    let _second = admit(a, "session=session-b").await.unwrap();
    let refused = admit(a, "session=session-c").await.err().unwrap();
    assert_eq!(refused.status_code().as_u16(), 429);
    assert_eq!(reject_reason(&refused), "client_rate_limited");
    assert!(refused.error_response().headers().contains_key("retry-after"));
    assert_eq!(
        a.connect_refused(&client("198.51.100.1"))
            .err()
            .unwrap()
            .status_code()
            .as_u16(),
        429
    );
    assert!(a.connect_refused(&client("198.51.100.2")).is_ok());
    // Nothing of it reached the store or the tally: the next claim gets the third epoch.
    assert_eq!(rig.tallies.get("launch").unwrap().local_viewers(), 2);
    let (epoch, _) = rig
        .store
        .claim_session("launch", "session-c", &crate::store::flaky::N1)
        .await
        .unwrap();
    assert_eq!(epoch, 3);
    // Operators are exempt.
    let op = format!("role=operator&token={}", crate::ws::testing::OPERATOR_TOKEN);
    admit(a, &op).await.unwrap();
}
