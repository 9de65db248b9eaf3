//! The public reads against a store that counts its calls: after a tick, no request
//! costs the store anything, and an unknown id is 404 without asking it.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use actix_web::{test as web_test, web, App};

use crate::node::Builder;
use crate::store::flaky::{campaign, Flaky};
use crate::store::Campaigns;

#[actix_web::test]
async fn public_reads_cost_the_store_nothing_per_request() {
    let store = Arc::new(Flaky::default());
    let builder = Builder::for_tests(store.clone());
    let mut c = campaign("launch");
    c.share_channels = vec!["wechat".into()];
    store.create_campaign(&c).await.unwrap();
    builder.broadcaster().tick_all(Instant::now()).await;
    let app = web_test::init_service(
        App::new()
            .app_data(web::Data::new(builder.api()))
            .configure(crate::http::routes),
    )
    .await;
    store.calls.store(0, Ordering::SeqCst);

    for _ in 0..100 {
        for uri in ["/api/v1/campaigns/launch", "/api/v1/campaigns/launch/stats"] {
            let res = web_test::call_service(&app, web_test::TestRequest::get().uri(uri).to_request()).await;
            assert_eq!(res.status(), 200, "{uri}");
        }
        let share = web_test::TestRequest::get().uri("/s/launch?via=made-up").to_request();
        assert_eq!(web_test::call_service(&app, share).await.status(), 302);
    }
    for uri in ["/api/v1/campaigns/nope", "/api/v1/campaigns/nope/stats", "/s/nope"] {
        let res = web_test::call_service(&app, web_test::TestRequest::get().uri(uri).to_request()).await;
        assert_eq!(res.status(), 404, "{uri}");
    }
    assert_eq!(store.calls.load(Ordering::SeqCst), 0, "300 reads and 3 unknown ids");

    let req = web_test::TestRequest::get()
        .uri("/api/v1/campaigns/launch")
        .to_request();
    let body: serde_json::Value = web_test::call_and_read_body_json(&app, req).await;
    assert_eq!(
        (body["id"].as_str(), body["state"].as_str()),
        (Some("launch"), Some("live"))
    );
    assert_eq!(body["share_channels"], serde_json::json!(["wechat"]));
    assert_eq!(body["stats"]["campaign"], "launch");
    assert_eq!(body["stats"]["viewers"], 0);
    assert_eq!(body["stats"]["interactions"]["like"], 0);
    // The 100 visits on an undeclared channel wait in the tally as `other`.
    let drained = builder.tallies.get("launch").unwrap().drain();
    assert_eq!(drained.share_visits, vec![("other".to_owned(), 100)]);
}
