//! The flusher under paused time, on a memory store that can be taken down.

use super::*;
use crate::store::flaky::{campaign, Flaky};
use crate::store::{Applied, Campaigns, Owner, Reads, StoreResult};
use crate::tally::session::SessionSlot;

/// The builder's flush interval (the flag's default).
const INTERVAL: Duration = crate::config::defaults::FLUSH_INTERVAL.value;

fn flusher(store: Arc<Flaky>, tallies: &Arc<Tallies>) -> Flusher {
    let mut b = crate::node::Builder::for_tests(store);
    b.tallies = tallies.clone();
    b.flusher()
}

/// A viewer socket as admission leaves it: a claimed session in the tally.
async fn viewer(store: &Flaky, tally: &CampaignTally, session: &str) -> Arc<SessionSlot> {
    let (epoch, acked) = store
        .claim_session(&tally.campaign.id, session, &crate::store::flaky::N1)
        .await
        .unwrap();
    let kinds = tally.campaign.kinds.len();
    let slot = Arc::new(SessionSlot::new(
        session.into(),
        format!("viewer-{session}"),
        epoch,
        acked,
        kinds,
    ));
    tally.viewer_joined(tally.region_index("unknown"), &slot);
    slot
}

/// What the socket task does with an accepted `interact`.
fn like(tallies: &Tallies, tally: &CampaignTally, slot: &Arc<SessionSlot>, n: u64, seq: u64) {
    assert!(tallies.pending().try_take(n));
    if slot.add(0, n, Some(seq)) {
        tally.queue_dirty(slot);
    }
}

async fn acked(slot: &SessionSlot, seq: u64) {
    while slot.acked() < seq {
        slot.wake.notified().await;
    }
}

async fn likes(store: &Flaky, id: &str) -> (u64, u64) {
    let kinds = ["like".to_owned()];
    let s = store.stats(id, &kinds, crate::util::now_ms()).await.unwrap();
    (s.interactions["like"], s.viewers)
}

fn start(f: Flusher) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let stop = CancellationToken::new();
    let (_tx, rx) = tokio::sync::mpsc::channel(1);
    let task = tokio::spawn(f.run(stop.clone(), rx));
    (stop, task)
}

/// A live campaign `launch` on a store that can be taken down, its tally, and one viewer
/// socket in it with a claimed session.
struct Viewer {
    store: Arc<Flaky>,
    tallies: Arc<Tallies>,
    tally: Arc<CampaignTally>,
    slot: Arc<SessionSlot>,
}

async fn one_viewer() -> Viewer {
    let store = Arc::new(Flaky::default());
    let c = campaign("launch");
    store.create_campaign(&c).await.unwrap();
    let tallies = Arc::new(Tallies::new(1_000));
    let tally = tallies.get_or_create(&c);
    let slot = viewer(&store, &tally, "session-1").await;
    Viewer {
        store,
        tallies,
        tally,
        slot,
    }
}

#[tokio::test(start_paused = true)]
async fn counts_reach_the_store_then_are_acked() {
    let Viewer {
        store,
        tallies,
        tally,
        slot,
    } = one_viewer().await;
    like(&tallies, &tally, &slot, 3, 1);
    let (stop, task) = start(flusher(store.clone(), &tallies));
    acked(&slot, 1).await;
    assert_eq!(likes(&store, "launch").await, (3, 1));
    assert_eq!(tallies.pending().get(), 0);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn an_outage_withholds_acks_and_counts_everything_once_after_it() {
    let Viewer {
        store,
        tallies,
        tally,
        slot,
    } = one_viewer().await;
    store.set_down(true);
    like(&tallies, &tally, &slot, 3, 1);
    let (stop, task) = start(flusher(store.clone(), &tallies));
    tokio::time::sleep(INTERVAL * 10).await;
    like(&tallies, &tally, &slot, 2, 2);
    tokio::time::sleep(INTERVAL * 10).await;
    assert_eq!(slot.acked(), 0, "nothing is acked while the store is down");
    assert_eq!(tallies.pending().get(), 5);
    assert!(tallies.pending().is_store_failing(), "so --max-pending applies now");
    store.set_down(false);
    acked(&slot, 2).await;
    assert_eq!(likes(&store, "launch").await, (5, 1));
    assert_eq!(tallies.pending().get(), 0);
    assert!(
        !tallies.pending().is_store_failing(),
        "and no longer once a batch landed"
    );
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_last_viewer_leaving_gives_back_presence_and_the_tally() {
    let Viewer {
        store,
        tallies,
        tally,
        slot,
    } = one_viewer().await;
    like(&tallies, &tally, &slot, 1, 1);
    let (stop, task) = start(flusher(store.clone(), &tallies));
    acked(&slot, 1).await;
    assert_eq!(likes(&store, "launch").await, (1, 1));
    tally.viewer_left(tally.region_index("unknown"), &slot);
    drop((slot, tally));
    for _ in 0..10 {
        if tallies.get("launch").is_none() {
            break;
        }
        tokio::time::sleep(INTERVAL).await;
    }
    assert!(tallies.get("launch").is_none(), "an idle tally is forgotten");
    assert_eq!(
        likes(&store, "launch").await,
        (1, 0),
        "and its presence is given back at once"
    );
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_campaign_ended_elsewhere_ends_the_tally_and_counts_nothing() {
    let Viewer {
        store,
        tallies,
        tally,
        slot,
    } = one_viewer().await;
    store.end_campaign("launch", crate::util::now_ms()).await.unwrap();
    like(&tallies, &tally, &slot, 4, 1);
    let (stop, task) = start(flusher(store.clone(), &tallies));
    tally.ended.cancelled().await;
    assert_eq!(likes(&store, "launch").await.0, 0);
    assert_eq!(slot.acked(), 0, "no ack without the count");
    assert_eq!(tallies.pending().get(), 0, "settled: never to be counted");
    // Nor is it sent again.
    let sent = store.applied.load(std::sync::atomic::Ordering::SeqCst);
    tokio::time::sleep(INTERVAL * 5).await;
    assert_eq!(store.applied.load(std::sync::atomic::Ordering::SeqCst), sent);
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn stopping_flushes_what_is_left() {
    let Viewer {
        store,
        tallies,
        tally,
        slot,
    } = one_viewer().await;
    let (stop, task) = start(flusher(store.clone(), &tallies));
    tokio::time::sleep(INTERVAL * 3).await;
    like(&tallies, &tally, &slot, 7, 1);
    stop.cancel();
    task.await.unwrap();
    assert_eq!(slot.acked(), 1);
    assert_eq!(likes(&store, "launch").await, (7, 0), "counted, and presence left");
}

#[tokio::test(start_paused = true)]
async fn a_batch_of_a_deleted_campaign_never_lands_in_the_new_one_of_its_id() {
    let store = Arc::new(Flaky::default());
    let mut old = campaign("launch");
    old.created_at -= 1_000;
    store.create_campaign(&old).await.unwrap();
    let tallies = Arc::new(Tallies::new(1_000));
    let tally = tallies.get_or_create(&old);
    let slot = viewer(&store, &tally, "session-1").await;
    store.set_down(true);
    like(&tallies, &tally, &slot, 3, 1);
    let (stop, task) = start(flusher(store.clone(), &tallies));
    tokio::time::sleep(INTERVAL * 3).await;
    // Meanwhile another node ended and deleted the campaign and created the id again;
    // the old socket closes, a new one joins with the same session (epoch 1 again).
    store.inner.end_campaign("launch", crate::util::now_ms()).await.unwrap();
    store.inner.delete_campaign("launch").await.unwrap();
    let new = campaign("launch");
    store.inner.create_campaign(&new).await.unwrap();
    tally.ended.cancel();
    tally.viewer_left(tally.region_index("unknown"), &slot);
    let fresh = tallies.get_or_create(&new);
    assert!(!Arc::ptr_eq(&fresh, &tally));
    let (epoch, _) = store
        .inner
        .claim_session("launch", "session-1", &crate::store::flaky::N1)
        .await
        .unwrap();
    let slot2 = Arc::new(SessionSlot::new("session-1".into(), "viewer-1".into(), epoch, 0, 4));
    fresh.viewer_joined(fresh.region_index("unknown"), &slot2);
    like(&tallies, &fresh, &slot2, 2, 1);
    store.set_down(false);
    acked(&slot2, 1).await;
    assert_eq!(likes(&store, "launch").await.0, 2, "the old batch was not sent");
    assert_eq!(slot.acked(), 0);
    assert_eq!(tallies.pending().get(), 0, "and its counts are settled");
    stop.cancel();
    task.await.unwrap();
}

/// The flusher's seam over a [`Flaky`] that reads `campaign`'s viewers after every write:
/// what a tick on any node could have read (and raised the peak to) in between.
struct Watched {
    store: Arc<Flaky>,
    campaign: String,
    viewers: std::sync::Mutex<Vec<u64>>,
}

impl Watched {
    async fn seen(&self) -> StoreResult<()> {
        let s = self.store.stats(&self.campaign, &[], crate::util::now_ms()).await?;
        self.viewers.lock().unwrap().push(s.viewers);
        Ok(())
    }
}

#[async_trait::async_trait]
impl Counting for Watched {
    async fn claim_session(&self, campaign: &str, session: &str, owner: &Owner<'_>) -> StoreResult<(u64, u64)> {
        self.store.claim_session(campaign, session, owner).await
    }
    async fn apply(&self, batch: &Batch) -> StoreResult<Applied> {
        let applied = self.store.apply(batch).await?;
        self.seen().await?;
        Ok(applied)
    }
    async fn drop_presence(&self, campaign: &str, node: &str) -> StoreResult<()> {
        self.store.drop_presence(campaign, node).await?;
        self.seen().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_moved_socket_closing_on_an_idle_node_never_counts_twice() {
    let Viewer {
        store,
        tallies,
        tally,
        slot,
    } = one_viewer().await;
    let watched = Arc::new(Watched {
        store: store.clone(),
        campaign: "launch".into(),
        viewers: Default::default(),
    });
    let b = crate::node::Builder::for_tests(store.clone());
    let n1 = Flusher::new(
        tallies.clone(),
        watched.clone(),
        b.metrics.clone(),
        b.node_id.clone(),
        b.origin.clone(),
        b.timing,
    );
    let mut states = HashMap::new();
    assert!(n1.flush_all(&mut states, false).await, "n1's lease counts the socket");

    // The viewer's new socket on n2 (the old one half-open on n1), counted by n2's flush.
    let mut b2 = crate::node::Builder::for_tests(store.clone());
    (b2.node_id, b2.origin) = ("n2".into(), "n2/run".into());
    let on_n2 = b2.tallies.get_or_create(&tally.campaign);
    let n2_owner = Owner {
        node: "n2",
        region: "unknown",
        units: &[],
        lease: Duration::from_secs(10),
    };
    let (epoch, _) = store.claim_session("launch", "session-1", &n2_owner).await.unwrap();
    let replacement = Arc::new(SessionSlot::new("session-1".into(), "viewer-1".into(), epoch, 0, 4));
    on_n2.viewer_joined(on_n2.region_index("unknown"), &replacement);
    assert!(b2.flusher().flush_all(&mut HashMap::new(), false).await);

    // n1 learns the socket moved with its next batch (its lease renewal, due every ttl/3);
    // the socket's task closes it, and n1 has no socket left.
    states.get_mut("launch").unwrap().presence_at = None;
    assert!(n1.flush_all(&mut states, false).await);
    assert!(slot.is_fenced(), "told to close with 4001");
    tally.viewer_left(tally.region_index("unknown"), &slot);
    assert!(n1.flush_all(&mut states, false).await);

    let kinds = ["like".to_owned()];
    let s = store.stats("launch", &kinds, crate::util::now_ms()).await.unwrap();
    assert_eq!((s.viewers, s.peak_viewers), (1, 1), "{s:?}");
    let seen = watched.viewers.lock().unwrap().clone();
    assert!(
        seen.iter().all(|&v| v == 1),
        "viewers after each of n1's writes: {seen:?}"
    );
}
