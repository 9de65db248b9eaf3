//! The `Outbox` seam on every backend: per-receiver cursors, the queue bound
//! (`--webhook-queue-max`) and erasure in the queue. The receivers are one setting per
//! deployment, so these cases never share a backend with the rest of the contract: each
//! gets a memory store of its own, or a connection to Redis servers only they use, one case
//! at a time, starting from no receiver and an empty queue.

use super::*;
use livetally::store::outbox::{Backlog, Delivery, Lease, LeasedEvent, Receiver, Settle};

macro_rules! outbox_contract {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test] async fn $test() { super::$test("memory").await; })*
        }
        mod redis {
            $(#[tokio::test] async fn $test() { super::$test("redis").await; })*
        }
        mod cluster {
            $(#[tokio::test] async fn $test() { super::$test("redis-cluster").await; })*
        }
    };
}

outbox_contract!(
    a_dead_receiver_holds_back_no_live_one,
    the_queue_bound_drops_the_oldest_registrations_first,
    erasure_removes_a_person_from_the_queue,
);

static REDIS: OnceLock<RedisServer> = OnceLock::new();
static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();
/// One outbox case at a time on the Redis servers above (the receivers are global there).
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const LEASE: Duration = Duration::from_secs(30);

/// A store of backend `kind` whose queues hold at most `max` events, with no receiver
/// and nothing queued, and the guard that keeps other outbox cases off its servers.
async fn outbox_store(kind: &str, max: usize) -> (Arc<dyn Store>, tokio::sync::MutexGuard<'static, ()>) {
    let guard = ONE_AT_A_TIME.lock().await;
    let store: Arc<dyn Store> = match kind {
        "memory" => Arc::new(MemoryStore::new().with_queue_max(max)),
        "redis" => {
            let url = REDIS.get_or_init(RedisServer::start).url();
            Arc::new(RedisStore::connect_standalone(&url).await.unwrap().with_queue_max(max))
        }
        _ => {
            let urls = CLUSTER.get_or_init(|| RedisCluster::start(3)).urls();
            Arc::new(RedisStore::connect_cluster(&urls).await.unwrap().with_queue_max(max))
        }
    };
    // An earlier case's receivers and events go; its dropped count is taken.
    store.set_receivers(&[]).await.unwrap();
    store.backlog().await.unwrap();
    assert_eq!(store.backlog().await.unwrap(), Backlog::default());
    (store, guard)
}

fn receiver(id: &str) -> Receiver {
    Receiver {
        id: id.to_owned(),
        url: format!("https://{id}.example/hook"),
        types: None,
        secret: "0123456789abcdef".to_owned(),
    }
}

/// `receiver`'s next event of `campaign`, leased now (it must be due).
async fn lease(store: &dyn Store, campaign: &str, receiver: &str) -> LeasedEvent {
    match store.lease_event(campaign, receiver, "node-a", LEASE).await.unwrap() {
        Lease::Leased(e) => e,
        other => panic!("{receiver} in {campaign}: {other:?}"),
    }
}

async fn settle(store: &dyn Store, e: &LeasedEvent, receiver: &str, outcome: Settle) {
    let to = Delivery {
        campaign: &e.campaign,
        receiver,
        id: &e.id,
        node: "node-a",
    };
    store.settle_event(&to, outcome).await.unwrap();
}

/// Leases and delivers `receiver`'s events of `campaign` until none is left: their ids,
/// types and `data`, in the order they came.
async fn drain(store: &dyn Store, campaign: &str, receiver: &str) -> Vec<(String, String, serde_json::Value)> {
    let mut got = vec![];
    loop {
        match store.lease_event(campaign, receiver, "node-a", LEASE).await.unwrap() {
            Lease::Leased(e) => {
                let body: serde_json::Value = serde_json::from_str(&e.body).unwrap();
                assert_eq!((e.attempts, body["id"].as_str()), (1, Some(e.id.as_str())));
                got.push((e.id.clone(), e.kind.clone(), body["data"].clone()));
                settle(store, &e, receiver, Settle::Delivered).await;
            }
            Lease::Empty => return got,
            Lease::NotDue => panic!("{receiver} in {campaign}: its next event is not due"),
        }
    }
}

fn sign_up(viewer: &str, phone: &str) -> Registration {
    Registration {
        viewer: viewer.to_owned(),
        registered_at: 1_700_000_000_000,
        fields: format!(r#"{{"phone":"{phone}"}}"#),
        unit: None,
    }
}

fn registered(id: &str, viewer: &str, phone: &str) -> (String, String, serde_json::Value) {
    let data = serde_json::json!({"viewer": viewer, "fields": {"phone": phone}});
    (id.to_owned(), "registration.created".to_owned(), data)
}

/// One receiver that fails (its retry waits) and one that answers: the live one gets
/// every event at once, in order, while the dead one keeps its own place; an event
/// leaves the queue only once both have passed it, and a receiver added later starts at
/// the tail.
async fn a_dead_receiver_holds_back_no_live_one(kind: &str) {
    let (store, _one) = outbox_store(kind, 100).await;
    let id = new_campaign(&*store, "outbox-cursors").await;
    assert!(store.register(&id, &sign_up("viewer-0", "0")).await.unwrap());
    assert_eq!(store.backlog().await.unwrap().pending, 0, "no receiver: nothing queued");

    store
        .set_receivers(&[receiver("dead"), receiver("live")])
        .await
        .unwrap();
    for (v, phone) in [("viewer-1", "1"), ("viewer-2", "2"), ("viewer-3", "3")] {
        assert!(store.register(&id, &sign_up(v, phone)).await.unwrap());
    }
    assert_eq!(store.backlog().await.unwrap(), Backlog { pending: 3, dropped: 0 });

    // The dead one fails its first event and waits 2 s for its retry.
    let first = lease(&*store, &id, "dead").await;
    assert_eq!((first.id.clone(), first.attempts), (format!("{id}-1"), 1));
    let retry = Settle::Retry {
        after: Duration::from_secs(2),
    };
    settle(&*store, &first, "dead", retry).await;
    assert_eq!(
        store.lease_event(&id, "dead", "node-b", LEASE).await.unwrap(),
        Lease::NotDue
    );

    // Meanwhile the live one gets all three, in order.
    assert_eq!(
        drain(&*store, &id, "live").await,
        vec![
            registered(&format!("{id}-1"), "viewer-1", "1"),
            registered(&format!("{id}-2"), "viewer-2", "2"),
            registered(&format!("{id}-3"), "viewer-3", "3"),
        ]
    );
    assert_eq!(store.backlog().await.unwrap().pending, 3, "the dead one passed none");
    assert_eq!(
        store.lease_event(&id, "dead", "node-b", LEASE).await.unwrap(),
        Lease::NotDue
    );

    // A receiver added now starts at the tail: it gets the next event, not these three.
    let all = [receiver("dead"), receiver("live"), receiver("late")];
    store.set_receivers(&all).await.unwrap();
    assert_eq!(
        store.lease_event(&id, "late", "node-a", LEASE).await.unwrap(),
        Lease::Empty
    );
    assert!(store.register(&id, &sign_up("viewer-4", "4")).await.unwrap());
    assert_eq!(
        drain(&*store, &id, "late").await,
        vec![registered(&format!("{id}-4"), "viewer-4", "4")]
    );
    assert_eq!(
        drain(&*store, &id, "live").await,
        vec![registered(&format!("{id}-4"), "viewer-4", "4")]
    );
    assert_eq!(store.backlog().await.unwrap().pending, 4);

    // Its retry comes: the same event, the second attempt, first tried when it was.
    let again = eventually("the dead receiver's retry", || async {
        match store.lease_event(&id, "dead", "node-a", LEASE).await.unwrap() {
            Lease::Leased(e) => Some(e),
            _ => None,
        }
    })
    .await;
    assert_eq!(
        (again.id.as_str(), again.attempts, again.first_at_ms),
        (first.id.as_str(), 2, first.first_at_ms)
    );
    // Given up on: its cursor moves on, and the event passed by all leaves the queue.
    settle(&*store, &again, "dead", Settle::Dropped).await;
    assert_eq!(store.backlog().await.unwrap(), Backlog { pending: 3, dropped: 0 });
    let rest: Vec<String> = drain(&*store, &id, "dead").await.into_iter().map(|e| e.0).collect();
    assert_eq!(rest, [2, 3, 4].map(|n| format!("{id}-{n}")));
    assert_eq!(store.backlog().await.unwrap(), Backlog { pending: 0, dropped: 0 });
    assert!(!store.due_outboxes(now() + 3_600_000, 100).await.unwrap().contains(&id));
}

/// `--webhook-queue-max` 3: past it, the oldest `registration.created` goes first even
/// when an older event of another type is queued, then the oldest of any type; each one
/// dropped is counted once in the backlog. Receiver `peek` reads what is queued at each
/// step while `r` passes nothing, so `r`'s cursor keeps every event in the queue.
async fn the_queue_bound_drops_the_oldest_registrations_first(kind: &str) {
    let (store, _one) = outbox_store(kind, 3).await;
    let id = uid("outbox-bound");
    let mut c = campaign(&id, 1_000);
    c.milestones = [("like".to_owned(), vec![1, 2, 3, 4])].into();
    store.create_campaign(&c).await.unwrap();
    store.set_receivers(&[receiver("r"), receiver("peek")]).await.unwrap();
    let e = claim(&*store, &id, "session-1").await;
    let likes = |seq, n| batch(&id, 1_000, vec![delta("session-1", "viewer-1", e, seq, &[("like", n)])]);
    let milestone = |n: u64, threshold: u64, value: u64| {
        let data = serde_json::json!({"metric": "like", "threshold": threshold, "value": value});
        (format!("{id}-{n}"), "campaign.milestone".to_owned(), data)
    };
    let event = |n: u64| format!("{id}-{n}");

    // 1: like milestone 1; 2, 3: two sign-ups. Full, nothing dropped.
    assert_eq!(bare(store.apply(&likes(1, 1)).await.unwrap()), ok());
    assert!(store.register(&id, &sign_up("viewer-1", "1")).await.unwrap());
    assert!(store.register(&id, &sign_up("viewer-2", "2")).await.unwrap());
    assert_eq!(store.backlog().await.unwrap(), Backlog { pending: 3, dropped: 0 });

    // 4: a third sign-up. The oldest sign-up (2) goes, not the older milestone (1).
    assert!(store.register(&id, &sign_up("viewer-3", "3")).await.unwrap());
    assert_eq!(store.backlog().await.unwrap(), Backlog { pending: 3, dropped: 1 });
    assert_eq!(
        store.backlog().await.unwrap(),
        Backlog { pending: 3, dropped: 0 },
        "counted once"
    );
    assert_eq!(
        drain(&*store, &id, "peek").await,
        vec![
            milestone(1, 1, 1),
            registered(&event(3), "viewer-2", "2"),
            registered(&event(4), "viewer-3", "3"),
        ]
    );
    assert_eq!(store.backlog().await.unwrap().pending, 3, "r has passed none of them");

    // 5, 6, 7: milestones 2, 3, 4 in one flush. Sign-ups 3 and 4 go, then, with no
    // sign-up left, the oldest event: milestone 1.
    assert_eq!(bare(store.apply(&likes(2, 3)).await.unwrap()), ok());
    assert_eq!(store.backlog().await.unwrap(), Backlog { pending: 3, dropped: 3 });
    let last_three = vec![milestone(5, 2, 4), milestone(6, 3, 4), milestone(7, 4, 4)];
    assert_eq!(drain(&*store, &id, "peek").await, last_three);
    // r's next event was dropped: it moves on to what is left.
    assert_eq!(drain(&*store, &id, "r").await, last_three);
    assert_eq!(store.backlog().await.unwrap(), Backlog { pending: 0, dropped: 0 });

    // Passed events make room: three more fit again without a drop.
    for (v, phone) in [("viewer-4", "4"), ("viewer-5", "5"), ("viewer-6", "6")] {
        assert!(store.register(&id, &sign_up(v, phone)).await.unwrap());
    }
    assert_eq!(store.backlog().await.unwrap(), Backlog { pending: 3, dropped: 0 });
    let ids: Vec<String> = drain(&*store, &id, "r").await.into_iter().map(|e| e.0).collect();
    assert_eq!(ids, [8, 9, 10].map(event));
}

/// Erasing a registration takes that person's queued `registration.created` with it
/// (the others stay, in order); deleting the campaign takes every queued sign-up, while
/// its `campaign.ended` still goes out.
async fn erasure_removes_a_person_from_the_queue(kind: &str) {
    let (store, _one) = outbox_store(kind, 100).await;
    let id = new_campaign(&*store, "outbox-erase").await;
    store.set_receivers(&[receiver("r")]).await.unwrap();
    for (v, phone) in [
        ("viewer-1", "+44 7946 0001"),
        ("viewer-2", "+44 7946 0002"),
        ("viewer-3", "+44 7946 0003"),
    ] {
        assert!(store.register(&id, &sign_up(v, phone)).await.unwrap());
    }
    assert!(store.erase_registration(&id, "viewer-2").await.unwrap());
    assert_eq!(store.backlog().await.unwrap(), Backlog { pending: 2, dropped: 0 });

    // viewer-1's event is leased (in flight) when they are erased: it leaves the queue
    // all the same, and settling it moves the receiver on to the next person.
    let in_flight = lease(&*store, &id, "r").await;
    assert_eq!(in_flight.id, format!("{id}-1"));
    assert!(in_flight.body.contains("+44 7946 0001"));
    assert!(store.erase_registration(&id, "viewer-1").await.unwrap());
    assert_eq!(store.backlog().await.unwrap().pending, 1);
    settle(&*store, &in_flight, "r", Settle::Delivered).await;
    let next = lease(&*store, &id, "r").await;
    assert_eq!(next.id, format!("{id}-3"));
    assert!(!next.body.contains("7946 0001") && !next.body.contains("7946 0002"));
    // Its delivery fails, so viewer-3's sign-up is still queued (waiting for a retry)...
    let retry = Settle::Retry {
        after: Duration::from_millis(1),
    };
    settle(&*store, &next, "r", retry).await;

    // ...when the campaign is deleted: the sign-up goes, campaign.ended stays.
    store.end_campaign(&id, now()).await.unwrap();
    store.delete_campaign(&id).await.unwrap();
    assert_eq!(store.backlog().await.unwrap(), Backlog { pending: 1, dropped: 0 });
    let last = eventually("the ended event", || async {
        match store.lease_event(&id, "r", "node-a", LEASE).await.unwrap() {
            Lease::Leased(e) => Some(e),
            _ => None,
        }
    })
    .await;
    assert_eq!((last.id, last.kind.as_str()), (format!("{id}-4"), "campaign.ended"));
    assert!(!last.body.contains("7946"));
}
