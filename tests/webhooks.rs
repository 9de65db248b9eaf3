//! Webhooks end to end: a receiver on a free port (tests/support/receiver.rs verifies every
//! signature, `Livetally-Signature` and the Standard Webhooks headers, with a stock HMAC) gets each event once per id, in order per campaign, retried
//! after a 500 or while it is down, and delivered by another node when the node holding
//! the delivery is killed. Retry timing is shortened with `--webhook-retry-base` and the
//! hidden test flags, so nothing waits for the production schedule.

mod support;

use std::collections::BTreeMap;

use serde_json::{json, Value};
use support::load::{self, total_upto, Client};
use support::node::{Backend, Node};
use support::receiver::Receiver;
use support::redis::RedisServer;
use support::wait::eventually;

const SECRET: &str = "whsec-test-0123456789";
/// A Standard Webhooks secret: the key is the base64 after the prefix.
const WHSEC: &str = "whsec_BwgJCgsMDQ4PEBESExQVFhcYGRobHB0e";

on_every_store!(
    events_are_signed_in_order_and_the_end_carries_the_report,
    milestones_are_edited_on_a_live_campaign,
);

/// The webhook flags of a test node delivering to `receiver`.
fn hook_flags(receiver: &Receiver) -> Vec<String> {
    [
        "--webhook-url",
        &receiver.url(),
        "--webhook-secret",
        &receiver.secret,
        "--webhook-retry-base",
        "200ms",
        "--webhook-poll",
        "50ms",
    ]
    .map(str::to_owned)
    .to_vec()
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `<campaign>-<n>` → n.
fn seq(event: &Value) -> u64 {
    let id = event["id"].as_str().expect("id");
    id.rsplit('-').next().unwrap().parse().expect("numbered id")
}

/// `(metric, threshold)` → how many times it was delivered.
fn milestones(events: &[Value]) -> BTreeMap<(String, u64), usize> {
    let mut m = BTreeMap::new();
    for e in events.iter().filter(|e| e["type"] == "campaign.milestone") {
        let key = (
            e["data"]["metric"].as_str().unwrap().to_owned(),
            e["data"]["threshold"].as_u64().unwrap(),
        );
        *m.entry(key).or_default() += 1;
    }
    m
}

fn has_ended(events: &[Value]) -> bool {
    events.iter().any(|e| e["type"] == "campaign.ended")
}

/// Every event delivered once, in the order it was queued (ids count up per campaign).
fn assert_once_in_order(events: &[Value]) {
    let seqs: Vec<u64> = events.iter().map(seq).collect();
    assert!(
        seqs.windows(2).all(|w| w[0] < w[1]),
        "out of order or repeated: {seqs:?}"
    );
}

async fn register(node: &Node, campaign: &str, viewer: &str) {
    let path = format!("/api/v1/campaigns/{campaign}/registrations");
    let (status, body) = node.call("POST", &path, Some(json!({ "viewer": viewer })), None).await;
    assert_eq!(status, 201, "{body}");
}

async fn events_are_signed_in_order_and_the_end_carries_the_report(backend: Backend) {
    let receiver = Receiver::start(SECRET).await;
    let node = Node::start_with(backend, &args(&hook_flags(&receiver)));
    let c = node
        .campaign_with(json!({"id": "hooks", "title": "t",
            "milestones": {"like": [1000, 3], "viewers": [1], "peak_viewers": [1]},
            "registration_fields": [{"name": "phone", "max": 32, "required": true}]}))
        .await;
    assert_eq!(
        c["milestones"],
        json!({"like": [3, 1000], "peak_viewers": [1], "viewers": [1]})
    );
    let (_, list) = node.op("GET", "/api/v1/campaigns", None).await;
    assert_eq!(list["campaigns"][0]["milestones"]["like"], json!([3, 1000]));

    let mut client = Client::connect(&node, "hooks", "session-0001").await;
    assert!(client.send_upto(2).await);
    client.await_ack(2).await;
    let (status, body) = node
        .call(
            "POST",
            "/api/v1/campaigns/hooks/registrations",
            Some(json!({"viewer": "viewer-0001", "fields": {"phone": "+44 20 7946 0000"}})),
            None,
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let (status, _) = node.op("POST", "/api/v1/campaigns/hooks/end", None).await;
    assert_eq!(status, 200);

    let events = receiver.await_delivered("campaign.ended", has_ended).await;
    assert!(
        receiver.received().iter().all(|r| r.signed),
        "a signature did not verify"
    );
    assert_once_in_order(&events);
    let m = milestones(&events);
    let expected = [
        (("like".to_owned(), 3), 1),
        (("peak_viewers".to_owned(), 1), 1),
        (("viewers".to_owned(), 1), 1),
    ];
    assert_eq!(m, BTreeMap::from(expected), "{events:#?}");
    let like = events.iter().find(|e| e["data"]["metric"] == "like").unwrap();
    assert_eq!(like["data"]["value"], total_upto(2));
    assert_eq!(like["campaign"], "hooks");
    let registration = events.iter().find(|e| e["type"] == "registration.created").unwrap();
    assert_eq!(
        registration["data"],
        json!({"viewer": "viewer-0001", "fields": {"phone": "+44 20 7946 0000"}})
    );
    let peak = events
        .iter()
        .find(|e| e["type"] == "campaign.peak")
        .expect("campaign.peak");
    assert_eq!(peak["data"]["peak_viewers"], 1);
    let ended = events.last().unwrap();
    assert_eq!(ended["type"], "campaign.ended");
    let (_, report) = node.op("GET", "/api/v1/campaigns/hooks/report", None).await;
    assert_eq!(ended["data"], report);
    assert_eq!(ended["data"]["interactions"]["like"], total_upto(2));
    assert_eq!(ended["data"]["registrations"], 1);
    assert!(ended["at"].as_i64().unwrap() >= c["created_at"].as_i64().unwrap());
    drop(client);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_redis_emit_each_milestone_and_the_end_once() {
    let redis = RedisServer::start();
    let receiver = Receiver::start(SECRET).await;
    let flags = hook_flags(&receiver);
    let node_flags = |id: &str| {
        let mut a = vec!["--redis".to_owned(), redis.url(), "--node-id".to_owned(), id.to_owned()];
        a.extend(flags.iter().cloned());
        a
    };
    let (fa, fb) = (node_flags("node-a"), node_flags("node-b"));
    let a = Node::start(&args(&fa));
    let b = Node::start(&args(&fb));
    a.campaign_with(json!({"id": "twice", "title": "t",
        "milestones": {"like": [10, 20], "viewers": [2], "peak_viewers": [2]}}))
        .await;
    b.await_known("twice").await;
    let mut on_a = Client::connect(&a, "twice", "session-a-01").await;
    let mut on_b = Client::connect(&b, "twice", "session-b-01").await;
    // Both nodes count likes into the same totals, in flushes that interleave.
    for last in 1..=6 {
        assert!(on_a.send_upto(last).await && on_b.send_upto(last).await);
    }
    on_a.await_ack(6).await;
    on_b.await_ack(6).await;
    a.await_stats("twice", "2 viewers", |s| s["viewers"] == 2).await;
    let (status, _) = b.op("POST", "/api/v1/campaigns/twice/end", None).await;
    assert_eq!(status, 200);
    let events = receiver.await_delivered("campaign.ended", has_ended).await;
    assert_once_in_order(&events);
    let m = milestones(&events);
    let once: BTreeMap<(String, u64), usize> = [("like", 10), ("like", 20), ("viewers", 2), ("peak_viewers", 2)]
        .into_iter()
        .map(|(metric, t)| ((metric.to_owned(), t), 1))
        .collect();
    assert_eq!(m, once, "{events:#?}");
    assert_eq!(events.iter().filter(|e| e["type"] == "campaign.ended").count(), 1);
    assert_eq!(
        events.last().unwrap()["data"]["interactions"]["like"],
        2 * total_upto(6)
    );
    // Whichever node delivered, nothing was sent twice.
    assert_eq!(receiver.received().len(), events.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_500_then_204_is_retried_with_the_same_id() {
    let receiver = Receiver::start(WHSEC).await;
    receiver.script(&[500]);
    let node = Node::start(&args(&hook_flags(&receiver)));
    node.campaign("retry").await;
    register(&node, "retry", "viewer-0001").await;
    receiver.await_delivered("the registration", |d| d.len() == 1).await;
    let got = receiver.received();
    let statuses: Vec<Option<u16>> = got.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(500), Some(204)]);
    assert_eq!(got[0].body, got[1].body, "a retry is the same event");
    assert_eq!(got[1].body["type"], "registration.created");
    assert!(got.iter().all(|r| r.signed && r.standard_signed));
    let header = |r: &support::receiver::Received, name: &str| {
        let found: Vec<&str> = r
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(found.len(), 1, "{name} once in {:?}", r.headers);
        found[0].to_owned()
    };
    let id = got[1].body["id"].as_str().unwrap().to_owned();
    for r in &got {
        assert_eq!(header(r, "webhook-id"), id, "a retry keeps the event id");
        let t = header(r, "webhook-timestamp");
        assert!(header(r, "livetally-signature").starts_with(&format!("t={t},v1=")));
        let sig = header(r, "webhook-signature");
        assert!(sig.starts_with("v1,") && sig.len() == 3 + 44, "{sig}");
    }
    let series = |r: &str| format!("livetally_webhook_deliveries_total{{result=\"{r}\"}}");
    assert_eq!(load::metric(&node, &series("failed")).await, 1.0);
    assert_eq!(load::metric(&node, &series("delivered")).await, 1.0);
    assert_eq!(load::metric(&node, &series("dropped")).await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_gets_every_event_afterwards_in_order() {
    let mut receiver = Receiver::down_at_first(SECRET).await;
    let node = Node::start_with(Backend::Redis, &args(&hook_flags(&receiver)));
    node.campaign("outage").await;
    let viewers: Vec<String> = (1..=5).map(|i| format!("viewer-000{i}")).collect();
    for v in &viewers {
        register(&node, "outage", v).await;
    }
    node.op("POST", "/api/v1/campaigns/outage/end", None).await;
    // The node has tried (and failed) while the receiver was down.
    eventually("a failed delivery", || async {
        let failed = load::metric(&node, "livetally_webhook_deliveries_total{result=\"failed\"}").await;
        (failed >= 2.0).then_some(())
    })
    .await;
    receiver.up().await;
    let events = receiver.await_delivered("every event", |d| d.len() == 6).await;
    assert_once_in_order(&events);
    let got: Vec<&str> = events[..5]
        .iter()
        .map(|e| e["data"]["viewer"].as_str().unwrap())
        .collect();
    assert_eq!(got, viewers);
    assert_eq!(events[5]["type"], "campaign.ended");
    assert_eq!(events[5]["data"]["registrations"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_node_s_delivery_is_made_by_another_node() {
    let redis = RedisServer::start();
    let receiver = Receiver::start(SECRET).await;
    receiver.hang(true);
    let mut flags = vec![
        "--redis".to_owned(),
        redis.url(),
        "--node-id".to_owned(),
        "node-a".to_owned(),
    ];
    flags.extend(hook_flags(&receiver));
    // A 1 s timeout: the lease of one receiver is 2 s.
    flags.extend(["--webhook-timeout".to_owned(), "1s".to_owned()]);
    let a = Node::spawn(&args(&flags));
    a.campaign("crash").await;
    register(&a, "crash", "viewer-0001").await;
    // node-a holds the lease: its POST is in flight. Kill it there.
    eventually("node-a's attempt", || async {
        (!receiver.received().is_empty()).then_some(())
    })
    .await;
    a.signal("KILL");
    let first = receiver.received()[0].body.clone();
    receiver.hang(false);
    flags[3] = "node-b".to_owned();
    let b = Node::start(&args(&flags));
    let events = receiver.await_delivered("node-b's delivery", |d| !d.is_empty()).await;
    assert_eq!(events, std::slice::from_ref(&first), "the same event, same id");
    assert_eq!(first["type"], "registration.created");
    assert!(receiver.received().iter().all(|r| r.signed));
    assert_eq!(
        load::metric(&b, "livetally_webhook_deliveries_total{result=\"delivered\"}").await,
        1.0
    );
}

async fn milestones_are_edited_on_a_live_campaign(backend: Backend) {
    let receiver = Receiver::start(SECRET).await;
    let node = Node::start_with(backend, &args(&hook_flags(&receiver)));
    let c = node.campaign("edit").await;
    assert_eq!(c["milestones"], json!({}));
    let path = "/api/v1/campaigns/edit";
    for (body, field) in [
        (json!({"milestones": {"nope": [1]}}), json!("milestones")),
        (json!({"milestones": {"like": [0]}}), json!("milestones")),
        (json!({"milestones": {"like": "5"}}), json!("milestones")),
        (json!({"milestones": {}, "title": "x"}), Value::Null),
        (json!({}), json!("milestones")),
    ] {
        let (status, err) = node.op("PATCH", path, Some(body.clone())).await;
        assert_eq!(status, 400, "{body}: {err}");
        assert_eq!(err["error"]["field"], field, "{body}: {err}");
    }
    let (status, _) = node
        .op("PATCH", "/api/v1/campaigns/unknown", Some(json!({"milestones": {}})))
        .await;
    assert_eq!(status, 404);
    let (status, c) = node
        .op("PATCH", path, Some(json!({"milestones": {"like": [4, 2]}})))
        .await;
    assert_eq!(status, 200, "{c}");
    assert_eq!(c["milestones"], json!({"like": [2, 4]}));
    let (_, read) = node.call("GET", path, None, None).await;
    assert_eq!(read["milestones"], json!({"like": [2, 4]}));
    let mut client = Client::connect(&node, "edit", "session-0001").await;
    assert!(client.send_upto(1).await);
    client.await_ack(1).await;
    let events = receiver
        .await_delivered("the like milestone", |d| !milestones(d).is_empty())
        .await;
    assert_eq!(milestones(&events), BTreeMap::from([(("like".to_owned(), 2), 1)]));
}

/// Adds a receiver through the API; returns its id.
async fn add_receiver(node: &Node, receivers: Value) -> Value {
    let (status, body) = node
        .op("PUT", "/api/v1/webhooks", Some(json!({ "receivers": receivers })))
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

/// A dead receiver (a port that refuses) beside a live one: the live one gets every
/// sign-up at once, the dead one's retries hold nothing back; the log names the dead one
/// by id, scheme and host, never its path or query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_receiver_never_delays_a_live_one() {
    let redis = RedisServer::start();
    let live = Receiver::start(SECRET).await;
    let mut dead = Receiver::start(SECRET).await;
    let dead_url = format!("{}?token=do-not-log-me", dead.url());
    dead.down();
    let node = Node::spawn(&[
        "--redis",
        &redis.url(),
        "--webhook-retry-base",
        "10s",
        "--webhook-poll",
        "50ms",
    ]);
    let set = add_receiver(
        &node,
        json!([{"url": dead_url, "secret": SECRET}, {"url": live.url(), "secret": SECRET}]),
    )
    .await;
    let dead_id = set["receivers"][0]["id"].as_str().unwrap().to_owned();
    node.campaign("both").await;
    for v in ["viewer-0001", "viewer-0002", "viewer-0003"] {
        register(&node, "both", v).await;
    }
    let started = std::time::Instant::now();
    let events = live.await_delivered("all three sign-ups", |d| d.len() == 3).await;
    assert!(
        started.elapsed() < std::time::Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    let viewers: Vec<&str> = events.iter().map(|e| e["data"]["viewer"].as_str().unwrap()).collect();
    assert_eq!(viewers, ["viewer-0001", "viewer-0002", "viewer-0003"]);
    eventually("a failed delivery to the dead one", || async {
        let failed = load::metric(&node, "livetally_webhook_deliveries_total{result=\"failed\"}").await;
        (failed >= 1.0).then_some(())
    })
    .await;
    let log = node.log_text();
    assert!(log.contains("webhook not delivered") && log.contains(&dead_id), "{log}");
    assert!(log.contains("http://127.0.0.1"), "names scheme and host: {log}");
    assert!(!log.contains("do-not-log-me") && !log.contains("/hooks"), "{log}");
}

/// Receivers set on one node are used by another, and the secret is never shown.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn receivers_set_on_one_node_are_used_by_another_and_the_secret_is_never_shown() {
    let redis = RedisServer::start();
    let receiver = Receiver::start(WHSEC).await;
    let flags = |id: &str| {
        vec![
            "--redis".to_owned(),
            redis.url(),
            "--node-id".to_owned(),
            id.to_owned(),
            "--webhook-poll".to_owned(),
            "50ms".to_owned(),
        ]
    };
    let (fa, fb) = (flags("node-a"), flags("node-b"));
    let a = Node::start(&args(&fa));
    let b = Node::start(&args(&fb));
    let (status, empty) = b.op("GET", "/api/v1/webhooks", None).await;
    assert_eq!((status, empty), (200, json!({"receivers": []})));
    let (status, _) = b.call("GET", "/api/v1/webhooks", None, None).await;
    assert_eq!(status, 401);
    let set = add_receiver(
        &a,
        json!([{"url": receiver.url(), "secret": WHSEC, "types": ["registration.created"]}]),
    )
    .await;
    let id = set["receivers"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(
        set,
        json!({"receivers": [{"id": id, "url": receiver.url(), "types": ["registration.created"]}]})
    );
    let (_, read) = b.op("GET", "/api/v1/webhooks", None).await;
    assert_eq!(read, set);
    assert!(!read.to_string().contains(WHSEC));
    // An edit without the secret keeps it: deliveries still verify.
    let edited = add_receiver(&b, json!([{"id": id, "url": receiver.url()}])).await;
    assert_eq!(edited, json!({"receivers": [{"id": id, "url": receiver.url()}]}));
    let (status, err) = b
        .op(
            "PUT",
            "/api/v1/webhooks",
            Some(json!({"receivers": [{"url": receiver.url()}]})),
        )
        .await;
    assert_eq!(
        (status, err["error"]["field"].as_str()),
        (400, Some("receivers[0].secret"))
    );
    // b has no webhook flags: it queues and delivers all the same.
    b.campaign("shared").await;
    register(&b, "shared", "viewer-0001").await;
    let got = receiver.await_delivered("the sign-up", |d| d.len() == 1).await;
    assert_eq!(got[0]["data"]["viewer"], "viewer-0001");
    assert!(receiver.received().iter().all(|r| r.signed && r.standard_signed));
}

/// A campaign's queue is bounded: past --webhook-queue-max the oldest sign-ups go first,
/// counted as dropped; what is left goes out in order once the receiver is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_drops_the_oldest_sign_ups_and_counts_them() {
    let redis = RedisServer::start();
    let mut receiver = Receiver::start(SECRET).await;
    receiver.down();
    let node = Node::start(&[
        "--redis",
        &redis.url(),
        "--webhook-queue-max",
        "3",
        "--webhook-retry-base",
        "200ms",
        "--webhook-poll",
        "50ms",
    ]);
    add_receiver(&node, json!([{"url": receiver.url(), "secret": SECRET}])).await;
    node.campaign("full").await;
    for i in 1..=5 {
        register(&node, "full", &format!("viewer-000{i}")).await;
    }
    node.op("POST", "/api/v1/campaigns/full/end", None).await;
    let len: u64 = redis.query(&["ZCARD", "lt:{c:full}:events"]);
    assert_eq!(len, 3);
    eventually("three dropped", || async {
        let dropped = load::metric(&node, "livetally_webhook_deliveries_total{result=\"dropped\"}").await;
        (dropped == 3.0).then_some(())
    })
    .await;
    receiver.up().await;
    let events = receiver.await_delivered("what is left", |d| d.len() == 3).await;
    let got: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(got, ["registration.created", "registration.created", "campaign.ended"]);
    assert_eq!(events[0]["data"]["viewer"], "viewer-0004");
    assert_once_in_order(&events);
}

/// Every key of the store and everything in it, as text.
fn every_value(redis: &RedisServer) -> String {
    let keys: Vec<String> = redis.query(&["KEYS", "*"]);
    let mut out = String::new();
    for key in keys {
        let kind: String = redis.query(&["TYPE", &key]);
        let values: Vec<Vec<u8>> = match kind.as_str() {
            "string" => vec![redis.query(&["GET", &key])],
            "hash" => redis.query(&["HGETALL", &key]),
            "list" => redis.query(&["LRANGE", &key, "0", "-1"]),
            "set" => redis.query(&["SMEMBERS", &key]),
            "zset" => redis.query(&["ZRANGE", &key, "0", "-1"]),
            other => panic!("{key}: a {other} the scan cannot read"),
        };
        out.push_str(&key);
        for v in values {
            out.push('\n');
            out.push_str(&String::from_utf8_lossy(&v));
        }
        out.push('\n');
    }
    out
}

/// Erasure is complete: after `DELETE .../registrations/{viewer}` no key of the store holds
/// the person's phone number, though a receiver that is down never got the event; after
/// deleting the campaign no key holds anybody's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn erasure_leaves_no_personal_data_in_any_key() {
    let redis = RedisServer::start();
    let mut receiver = Receiver::start(SECRET).await;
    receiver.down();
    let node = Node::start(&["--redis", &redis.url()]);
    add_receiver(&node, json!([{"url": receiver.url(), "secret": SECRET}])).await;
    node.campaign_with(json!({"id": "gdpr", "title": "t",
        "registration_fields": [{"name": "phone", "max": 32, "required": true}]}))
        .await;
    for (viewer, phone) in [("viewer-0001", "+44 20 7946 0001"), ("viewer-0002", "+44 20 7946 0002")] {
        let (status, body) = node
            .call(
                "POST",
                "/api/v1/campaigns/gdpr/registrations",
                Some(json!({"viewer": viewer, "fields": {"phone": phone}})),
                None,
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    assert!(
        every_value(&redis).contains("7946 0001"),
        "the scan sees the queued event"
    );
    let (status, _) = node
        .op("DELETE", "/api/v1/campaigns/gdpr/registrations/viewer-0001", None)
        .await;
    assert_eq!(status, 204);
    let all = every_value(&redis);
    assert!(!all.contains("7946 0001"), "erased, queue included");
    assert!(all.contains("7946 0002"), "the other person stays");
    node.op("POST", "/api/v1/campaigns/gdpr/end", None).await;
    let (status, _) = node.op("DELETE", "/api/v1/campaigns/gdpr", None).await;
    assert_eq!(status, 204);
    assert!(
        !every_value(&redis).contains("7946"),
        "a deleted campaign keeps no sign-up queued"
    );
    let pending: u64 = redis.query(&["ZCARD", "lt:{c:gdpr}:events"]);
    assert_eq!(pending, 1, "campaign.ended still goes out");
}

// ---------------------------------------------------------------------------------------
// The queue itself, on each store with events on: leases in order, retries, expiry.

mod queue {
    use std::sync::Arc;
    use std::time::Duration;

    use livetally::campaign::NewCampaign;
    use livetally::store::memory::MemoryStore;
    use livetally::store::outbox::{Delivery, Lease, LeasedEvent, Receiver, Settle};
    use livetally::store::redis::RedisStore;
    use livetally::store::{Registration, Store};

    use crate::support::redis::{RedisCluster, RedisServer};
    use crate::support::wait::eventually;

    const LEASE: Duration = Duration::from_millis(600);

    fn receiver(id: &str) -> Receiver {
        Receiver {
            id: id.into(),
            url: format!("https://{id}.example/hook"),
            types: None,
            secret: "0123456789abcdef".into(),
        }
    }

    async fn leased(store: &dyn Store, receiver: &str, node: &str) -> LeasedEvent {
        eventually(&format!("a lease of {receiver} for {node}"), || async {
            match store.lease_event("q", receiver, node, LEASE).await.unwrap() {
                Lease::Leased(e) => Some(e),
                _ => None,
            }
        })
        .await
    }

    async fn settle(store: &dyn Store, receiver: &str, id: &str, node: &str, outcome: Settle) {
        let to = Delivery {
            campaign: "q",
            receiver,
            id,
            node,
        };
        store.settle_event(&to, outcome).await.unwrap();
    }

    fn registration(viewer: &str) -> Registration {
        Registration {
            viewer: viewer.into(),
            registered_at: livetally::util::now_ms(),
            fields: "{}".into(),
            unit: None,
        }
    }

    async fn create(store: &dyn Store, id: &str) {
        let c = NewCampaign {
            id: Some(id.into()),
            title: Some("t".into()),
            ..Default::default()
        }
        .validate(livetally::util::now_ms())
        .unwrap();
        store.create_campaign(&c).await.unwrap();
    }

    /// Per receiver: in order, leased once, retried, taken over when a lease expires; an
    /// event leaves the queue once both receivers passed it.
    async fn leases_retries_and_expiry(store: Arc<dyn Store>) {
        create(&*store, "q").await;
        store.register("q", &registration("viewer-0000")).await.unwrap();
        assert_eq!(store.backlog().await.unwrap().pending, 0, "no receiver: nothing queued");
        store.set_receivers(&[receiver("one"), receiver("two")]).await.unwrap();
        assert_eq!(store.lease_event("q", "one", "a", LEASE).await.unwrap(), Lease::Empty);
        store.register("q", &registration("viewer-0001")).await.unwrap();
        store.register("q", &registration("viewer-0002")).await.unwrap();
        store.end_campaign("q", livetally::util::now_ms()).await.unwrap();
        assert_eq!(store.backlog().await.unwrap().pending, 3);
        let due = store.due_outboxes(livetally::util::now_ms() + 1, 10).await.unwrap();
        assert_eq!(due, ["q"]);

        let e = leased(&*store, "one", "a").await;
        assert_eq!(
            (e.id.as_str(), e.kind.as_str(), e.attempts),
            ("q-1", "registration.created", 1)
        );
        assert_eq!(store.lease_event("q", "one", "b", LEASE).await.unwrap(), Lease::NotDue);
        // Receiver two is not held back by one's lease.
        let two = leased(&*store, "two", "b").await;
        assert_eq!(two.id, "q-1");
        settle(&*store, "two", "q-1", "b", Settle::Delivered).await;
        settle(
            &*store,
            "one",
            "q-1",
            "a",
            Settle::Retry {
                after: Duration::from_millis(100),
            },
        )
        .await;
        // The retry waits its turn, then goes to whoever asks.
        let e = leased(&*store, "one", "b").await;
        assert_eq!((e.id.as_str(), e.attempts), ("q-1", 2));
        // node b dies holding it: once the lease expires, a gets the same event.
        let e = leased(&*store, "one", "a").await;
        assert_eq!((e.id.as_str(), e.attempts), ("q-1", 3));
        settle(&*store, "one", "q-1", "a", Settle::Delivered).await;
        assert_eq!(store.backlog().await.unwrap().pending, 2, "q-1 passed by both");
        let e = leased(&*store, "one", "a").await;
        assert_eq!((e.id.as_str(), e.attempts), ("q-2", 1));
        // b's late settle of q-1 changes nothing.
        settle(&*store, "one", "q-1", "b", Settle::Delivered).await;
        settle(&*store, "one", "q-2", "a", Settle::Delivered).await;
        let e = leased(&*store, "one", "b").await;
        assert_eq!((e.id.as_str(), e.kind.as_str()), ("q-3", "campaign.ended"));
        settle(&*store, "one", "q-3", "b", Settle::Dropped).await;
        assert_eq!(store.lease_event("q", "one", "a", LEASE).await.unwrap(), Lease::Empty);
        assert_eq!(store.backlog().await.unwrap().pending, 2, "two has not passed q-2, q-3");
        // Removing two lets its events go; a new receiver starts at the tail.
        store
            .set_receivers(&[receiver("one"), receiver("three")])
            .await
            .unwrap();
        assert_eq!(store.backlog().await.unwrap().pending, 0);
        assert_eq!(store.lease_event("q", "three", "a", LEASE).await.unwrap(), Lease::Empty);
        assert!(store.due_outboxes(i64::MAX / 2, 10).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn on_memory() {
        leases_retries_and_expiry(Arc::new(MemoryStore::new())).await;
    }

    #[tokio::test]
    async fn on_redis() {
        let redis = RedisServer::start();
        let s = RedisStore::connect_standalone(&redis.url()).await.unwrap();
        leases_retries_and_expiry(Arc::new(s)).await;
    }

    /// A node that dies between queuing an event (in the campaign's slot) and indexing it
    /// (in `lt:{webhooks}:due`) leaves a queue no node looks at: the backlog sweep finds it.
    #[tokio::test]
    async fn the_sweep_finds_a_queue_missing_from_the_index() {
        let redis = RedisServer::start();
        let s = RedisStore::connect_standalone(&redis.url()).await.unwrap();
        let store: Arc<dyn Store> = Arc::new(s);
        store.set_receivers(&[receiver("one")]).await.unwrap();
        create(&*store, "lost").await;
        store.register("lost", &registration("viewer-0001")).await.unwrap();
        let removed: i64 = redis.query(&["ZREM", "lt:{webhooks}:due", "lost"]);
        assert_eq!(removed, 1);
        let later = livetally::util::now_ms() + 60_000;
        assert!(store.due_outboxes(later, 10).await.unwrap().is_empty());
        assert_eq!(store.backlog().await.unwrap().pending, 1);
        assert_eq!(store.due_outboxes(later, 10).await.unwrap(), ["lost"]);
    }

    #[tokio::test]
    async fn on_cluster() {
        let cluster = RedisCluster::start(3);
        let s = RedisStore::connect_cluster(&cluster.urls()).await.unwrap();
        leases_retries_and_expiry(Arc::new(s)).await;
    }
}
