//! The index under a counting store: what a tick costs, and when another node's campaign
//! is known.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use crate::node::Builder;
use crate::store::flaky::{campaign, Flaky};
use crate::store::{Campaigns, Store};

/// Two nodes' parts on one store (the memory store behind a call counter).
fn two_nodes() -> (Arc<Flaky>, Builder, Builder) {
    let store = Arc::new(Flaky::default());
    let shared: Arc<dyn Store> = store.clone();
    (store, Builder::for_tests(shared.clone()), Builder::new(shared, "n2"))
}

fn calls(store: &Flaky) -> u64 {
    store.calls.swap(0, Ordering::SeqCst)
}

#[tokio::test]
async fn a_campaign_created_on_another_node_is_known_here_at_the_next_tick() {
    let (store, _a, b) = two_nodes();
    let broadcaster = b.broadcaster();
    broadcaster.tick_all(Instant::now()).await;
    assert!(b.index.get("launch").unwrap().is_none());

    // Node A creates it (through the store, as its route does).
    store.create_campaign(&campaign("launch")).await.unwrap();
    assert!(b.index.get("launch").unwrap().is_none(), "not before B's tick");
    calls(&store);
    broadcaster.tick_all(Instant::now()).await;
    let entry = b.index.get("launch").unwrap().expect("known after one tick");
    assert_eq!(entry.campaign.id, "launch");
    assert_eq!(
        calls(&store),
        3,
        "the version, the list (it moved), the campaign's stats"
    );

    // A tick in which no campaign changed reads the version and each live campaign's stats.
    broadcaster.tick_all(Instant::now()).await;
    assert_eq!(calls(&store), 2);

    // Ended on A: B learns it at its next tick, and its final stats are read once, on demand.
    store.end_campaign("launch", crate::util::now_ms()).await.unwrap();
    calls(&store);
    broadcaster.tick_all(Instant::now()).await;
    assert_eq!(calls(&store), 2, "the version and the list; no live campaign to read");
    let entry = b.index.get("launch").unwrap().unwrap();
    assert!(!entry.campaign.is_live());
    for _ in 0..10 {
        entry.frames(&*b.store).await.unwrap();
    }
    assert_eq!(calls(&store), 1, "one read for ten requests");

    store.delete_campaign("launch").await.unwrap();
    broadcaster.tick_all(Instant::now()).await;
    assert!(b.index.get("launch").unwrap().is_none());
}

#[tokio::test]
async fn before_its_first_read_the_index_cannot_tell_an_unknown_id() {
    let (store, a, _) = two_nodes();
    assert!(a.index.get("launch").is_err(), "cannot tell yet: 503, not 404");
    store.set_down(true);
    assert!(a.index.refresh().await.is_err());
    assert!(a.index.get("launch").is_err());
    store.set_down(false);
    a.index.refresh().await.unwrap();
    assert!(a.index.get("launch").unwrap().is_none());

    // Known already, then the store goes down: the index keeps what it knew.
    store.create_campaign(&campaign("launch")).await.unwrap();
    a.index.refresh().await.unwrap();
    store.set_down(true);
    assert!(a.index.refresh().await.is_err());
    assert!(a.index.get("launch").unwrap().is_some());
}

#[tokio::test]
async fn a_campaign_this_node_writes_is_known_here_at_once_with_zeros() {
    let (store, a, _) = two_nodes();
    a.index.refresh().await.unwrap();
    calls(&store);
    let c = campaign("launch");
    a.index.put(c, true);
    let entry = a.index.get("launch").unwrap().unwrap();
    let frames = entry.frames(&*a.store).await.unwrap();
    let stats: serde_json::Value = serde_json::from_str(&frames.viewer_stats).unwrap();
    assert_eq!(
        (stats["viewers"].as_u64(), stats["interactions"]["like"].as_u64()),
        (Some(0), Some(0))
    );
    assert_eq!(calls(&store), 0, "a campaign just created has nothing to read");
    a.index.remove("launch");
    assert!(a.index.get("launch").unwrap().is_none());
}
