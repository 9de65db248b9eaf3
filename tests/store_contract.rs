//! The `Store` contract (every seam of it): one suite, run on every backend (memory, standalone Redis, a
//! 3-master Redis Cluster). Every check asserts the numbers a user would see.
//!
//! Redis servers are started once per test binary, lazily, and shared: each test works on
//! campaigns with ids of its own. Each test connects its own store, because a Redis
//! connection belongs to the runtime of the test that made it.
//!
//! A few Redis-only tests at the end (hung server, AOF restart, command count per batch)
//! start servers of their own, since they pause or restart them.

mod support;
#[path = "store_contract/units.rs"]
mod units;

use units::*;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use livetally::campaign::{Access, Campaign, State};
use livetally::org::{Tree, TreeBuilder};
use livetally::store::memory::MemoryStore;
use livetally::store::redis::RedisStore;
use livetally::store::{
    Applied, Batch, Campaigns, Counting, Health, NodeShare, Owner, Presence, Reads, Registration, SeriesMetric,
    SessionDelta, Store, StoreError,
};
use support::redis::{RedisCluster, RedisServer};
use support::wait::{eventually, eventually_within};

// ---------------------------------------------------------------------------------------
// Backends

static REDIS: OnceLock<RedisServer> = OnceLock::new();
static CLUSTER: OnceLock<RedisCluster> = OnceLock::new();

async fn memory_store() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

async fn redis_store() -> Arc<dyn Store> {
    let url = REDIS.get_or_init(RedisServer::start).url();
    Arc::new(RedisStore::connect_standalone(&url).await.expect("connect redis"))
}

async fn cluster_store() -> Arc<dyn Store> {
    let urls = CLUSTER.get_or_init(|| RedisCluster::start(3)).urls();
    Arc::new(RedisStore::connect_cluster(&urls).await.expect("connect cluster"))
}

/// The session TTL of [`short_ttl_store`]: short enough to watch sessions being forgotten.
const SHORT_TTL: Duration = Duration::from_secs(1);

/// Long enough for anything written now to be forgotten (two TTLs and some slack).
const FORGOTTEN: Duration = Duration::from_millis(2 * 1_000 + 300);

/// How much a store holds for one campaign: every map entry of the memory store, every key
/// and field of the campaign's slot on Redis.
enum Footprint {
    Memory(Arc<MemoryStore>),
    Redis(Vec<&'static RedisServer>),
}

impl Footprint {
    fn of(&self, id: &str) -> u64 {
        match self {
            Footprint::Memory(m) => m.footprint(id) as u64,
            Footprint::Redis(servers) => servers.iter().map(|s| s.footprint(&format!("lt:{{c:{id}}}:*"))).sum(),
        }
    }
}

/// A store of backend `kind` whose new campaigns forget sessions after [`SHORT_TTL`].
async fn short_ttl_store(kind: &str) -> (Arc<dyn Store>, Footprint) {
    store_with_session_ttl(kind, SHORT_TTL).await
}

/// A store of backend `kind` whose new campaigns forget sessions after `ttl`, and its size.
async fn store_with_session_ttl(kind: &str, ttl: Duration) -> (Arc<dyn Store>, Footprint) {
    match kind {
        "memory" => {
            let m = Arc::new(MemoryStore::new().with_session_ttl(ttl));
            (m.clone(), Footprint::Memory(m))
        }
        "redis" => {
            let server = REDIS.get_or_init(RedisServer::start);
            let s = RedisStore::connect_standalone(&server.url()).await.unwrap();
            (Arc::new(s.with_session_ttl(ttl)), Footprint::Redis(vec![server]))
        }
        _ => {
            let cluster = CLUSTER.get_or_init(|| RedisCluster::start(3));
            let s = RedisStore::connect_cluster(&cluster.urls()).await.unwrap();
            let servers = cluster.nodes().iter().collect();
            (Arc::new(s.with_session_ttl(ttl)), Footprint::Redis(servers))
        }
    }
}

/// Instantiates every contract test for every backend: `memory::x`, `redis::x`,
/// `cluster::x`.
macro_rules! contract {
    ($($test:ident),* $(,)?) => {
        mod memory {
            $(#[tokio::test] async fn $test() { super::$test(super::memory_store().await, "memory").await; })*
        }
        mod redis {
            $(#[tokio::test] async fn $test() { super::$test(super::redis_store().await, "redis").await; })*
        }
        mod cluster {
            $(#[tokio::test] async fn $test() { super::$test(super::cluster_store().await, "redis-cluster").await; })*
        }
    };
}

contract!(
    kind_and_ping,
    create_get_and_conflict,
    list_is_oldest_first_with_ties_in_creation_order,
    end_is_idempotent_and_unknown_is_not_found,
    claim_bumps_epoch_and_returns_acked_seq,
    apply_counts_exactly,
    acked_seq_is_never_lowered,
    stale_epoch_is_fenced_and_not_counted,
    ended_campaign_freezes_counts,
    unique_viewers_and_interactors,
    large_batch_is_counted_exactly,
    share_visits_by_channel,
    share_channels_are_bounded_per_campaign,
    declared_share_channels_count_by_name_whoever_came_first,
    the_index_version_moves_with_every_campaign_write,
    presence_sums_nodes_and_drops_on_leave,
    presence_expires_after_ttl,
    end_drops_viewers_to_zero,
    regions_at_peak_follow_the_peak_through_reads,
    record_tick_tracks_peak_and_viewer_series,
    interaction_series_per_kind_and_total,
    register_is_idempotent,
    registrations_are_read_in_order_page_by_page,
    erasing_a_registration_keeps_the_count,
    retried_batch_is_applied_once,
    delete_removes_an_ended_campaign_and_all_its_data,
    sessions_are_forgotten_within_two_ttls,
    quiet_open_sessions_are_kept_and_stale_ones_are_not,
    a_session_claimed_while_counted_elsewhere_counts_once,
    a_dead_nodes_moved_sockets_go_with_its_lease,
    a_closed_socket_moves_nothing,
    a_moved_socket_closing_last_on_its_node_counts_once,
    sessions_that_never_sent_a_seq_leave_nothing_behind,
    interactors_wait_for_the_socket_to_qualify,
    keys_are_made_once_and_nonces_spent_once,
    org_versions_are_switched_kept_and_pruned,
    a_large_org_round_trips_through_a_fresh_connection,
    unit_numbers_roll_up_to_every_ancestor,
    upper_unit_viewers_ride_in_leases_and_leave_with_the_node,
    deep_viewers_sum_the_live_nodes_and_expire_with_the_lease,
    registrations_count_in_their_unit_and_keep_its_code,
);

// ---------------------------------------------------------------------------------------
// Helpers

/// A campaign id no other test (of this binary) uses.
fn uid(tag: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    format!("{tag}-{}", SEQ.fetch_add(1, Ordering::Relaxed))
}

fn kinds() -> Vec<String> {
    ["like", "cheer", "comment", "share"].map(String::from).to_vec()
}

fn campaign(id: &str, created_at: i64) -> Campaign {
    Campaign {
        id: id.to_owned(),
        title: "Launch — «live» / 直播".to_owned(),
        stream_url: Some("https://example.com/live".to_owned()),
        kinds: kinds(),
        regions: vec!["CN-BJ".to_owned(), "US".to_owned()],
        access: Access::Public,
        state: State::Live,
        created_at,
        ended_at: None,
        milestones: Default::default(),
        registration_fields: vec![],
        share_channels: vec![],
        org: None,
        org_version: None,
    }
}

async fn new_campaign(store: &dyn Store, tag: &str) -> String {
    let id = uid(tag);
    store.create_campaign(&campaign(&id, 1_000)).await.unwrap();
    id
}

fn delta(session: &str, viewer: &str, epoch: u64, seq: u64, counts: &[(&str, u64)]) -> SessionDelta {
    SessionDelta {
        session: session.to_owned(),
        viewer: viewer.to_owned(),
        epoch,
        seq,
        counts: counts.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
        unit: None,
    }
}

fn batch(campaign: &str, bucket_ms: i64, sessions: Vec<SessionDelta>) -> Batch {
    Batch {
        campaign: campaign.to_owned(),
        bucket_ms,
        sessions,
        presence_ttl: Duration::from_secs(30),
        ..Batch::default()
    }
}

fn presence(viewers: u64, regions: &[(&str, u64)]) -> Presence {
    Presence {
        viewers,
        regions: map(regions),
    }
}

fn map(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

async fn interactions(store: &dyn Store, id: &str) -> BTreeMap<String, u64> {
    store.stats(id, &kinds(), now()).await.unwrap().interactions
}

fn now() -> i64 {
    livetally::util::now_ms()
}

fn ok() -> Applied {
    Applied::default()
}

fn ended() -> Applied {
    Applied {
        ended: true,
        ..Applied::default()
    }
}

/// What the store did, without the session TTL it reports (see `sessions_are_forgotten`).
fn bare(a: Applied) -> Applied {
    Applied { session_ttl: None, ..a }
}

/// Who the contract tests claim sessions for: a node that never writes presence, so its
/// claims move nothing that other tests count (its lease outlives every test).
const CLAIMER: Owner<'static> = Owner {
    node: "node-claim",
    region: "US",
    units: &[],
    lease: Duration::from_secs(600),
};

/// Claims `session` and returns its new epoch.
async fn claim(store: &dyn Store, id: &str, session: &str) -> u64 {
    store.claim_session(id, session, &CLAIMER).await.unwrap().0
}

// ---------------------------------------------------------------------------------------
// The contract

async fn kind_and_ping(store: Arc<dyn Store>, kind: &str) {
    assert_eq!(store.kind(), kind);
    store.ping().await.unwrap();
}

/// The join key exists from the start on a store no older node used, and every call
/// returns the same one; the ticket key is another; a nonce is spent once while its ttl lasts.
async fn keys_are_made_once_and_nonces_spent_once(store: Arc<dyn Store>, _: &str) {
    let join = store
        .join_key()
        .await
        .unwrap()
        .expect("a new deployment has its join key");
    assert_eq!(join.len(), 43, "32 random bytes as base64url");
    assert_eq!(store.create_join_key().await.unwrap(), join);
    assert_eq!(store.join_key().await.unwrap(), Some(join.clone()));
    let ticket = store.ticket_key().await.unwrap();
    assert_eq!(ticket.len(), 43);
    assert_ne!(ticket, join);
    assert_eq!(store.ticket_key().await.unwrap(), ticket);

    let nonce = format!("{}-{}", uid("nonce"), now());
    assert!(store.spend_once(&nonce, Duration::from_millis(300)).await.unwrap());
    assert!(
        !store.spend_once(&nonce, Duration::from_millis(300)).await.unwrap(),
        "spent once"
    );
    let other = format!("{nonce}-b");
    assert!(store.spend_once(&other, Duration::from_secs(60)).await.unwrap());
    eventually("the nonce is forgotten after its ttl", || {
        let store = store.clone();
        let nonce = nonce.clone();
        async move { store.spend_once(&nonce, Duration::from_secs(60)).await.unwrap() }
    })
    .await;
    assert!(!store.spend_once(&nonce, Duration::from_secs(60)).await.unwrap());
}

async fn create_get_and_conflict(store: Arc<dyn Store>, _: &str) {
    let id = uid("create");
    let c = campaign(&id, 1_700_000_000_123);
    store.create_campaign(&c).await.unwrap();
    assert_eq!(store.get_campaign(&id).await.unwrap(), Some(c.clone()));

    let mut other = campaign(&id, 5);
    other.title = "Another".to_owned();
    assert!(matches!(store.create_campaign(&other).await, Err(StoreError::Conflict)));
    // The first one is untouched.
    assert_eq!(store.get_campaign(&id).await.unwrap(), Some(c));

    // Empty lists, no stream URL and token access round-trip too.
    let id2 = uid("create");
    let mut bare = campaign(&id2, 7);
    bare.regions.clear();
    bare.stream_url = None;
    bare.access = Access::Token;
    store.create_campaign(&bare).await.unwrap();
    assert_eq!(store.get_campaign(&id2).await.unwrap(), Some(bare));

    assert_eq!(store.get_campaign(&uid("missing")).await.unwrap(), None);
}

async fn list_is_oldest_first_with_ties_in_creation_order(store: Arc<dyn Store>, _: &str) {
    let base = uid("list");
    // Created in this order; ids sort the other way round within the tie at t=2000.
    let created = [("z", 3_000), ("y", 2_000), ("b", 2_000), ("a", 1_000)];
    for (suffix, at) in created {
        store
            .create_campaign(&campaign(&format!("{base}-{suffix}"), at))
            .await
            .unwrap();
    }
    let listed: Vec<(String, i64)> = store
        .list_campaigns()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.id.starts_with(&format!("{base}-")))
        .map(|c| (c.id, c.created_at))
        .collect();
    let expected: Vec<(String, i64)> = [("a", 1_000), ("y", 2_000), ("b", 2_000), ("z", 3_000)]
        .iter()
        .map(|(s, at)| (format!("{base}-{s}"), *at))
        .collect();
    assert_eq!(listed, expected);

    // Ended campaigns are listed with their state.
    store.end_campaign(&format!("{base}-y"), 9_000).await.unwrap();
    let y = store
        .list_campaigns()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.id == format!("{base}-y"))
        .unwrap();
    assert_eq!((y.state, y.ended_at), (State::Ended, Some(9_000)));
}

async fn end_is_idempotent_and_unknown_is_not_found(store: Arc<dyn Store>, _: &str) {
    let id = new_campaign(&*store, "end").await;
    let ended = store.end_campaign(&id, 5_000).await.unwrap();
    assert_eq!(ended.state, State::Ended);
    assert_eq!(ended.ended_at, Some(5_000));
    assert!(!ended.is_live());
    assert_eq!(ended.title, campaign(&id, 1_000).title);

    // Ending again changes nothing, ended_at included.
    let again = store.end_campaign(&id, 9_000).await.unwrap();
    assert_eq!(again, ended);
    assert_eq!(store.get_campaign(&id).await.unwrap(), Some(ended));

    assert!(matches!(
        store.end_campaign(&uid("missing"), 1).await,
        Err(StoreError::NotFound)
    ));
}

async fn claim_bumps_epoch_and_returns_acked_seq(store: Arc<dyn Store>, _: &str) {
    let id = new_campaign(&*store, "claim").await;
    // Epochs come from one counter per campaign: never the same twice, whatever the session.
    assert_eq!(store.claim_session(&id, "session-1", &CLAIMER).await.unwrap(), (1, 0));
    assert_eq!(store.claim_session(&id, "session-1", &CLAIMER).await.unwrap(), (2, 0));
    assert_eq!(store.claim_session(&id, "session-2", &CLAIMER).await.unwrap(), (3, 0));

    let applied = store
        .apply(&batch(
            &id,
            0,
            vec![delta("session-1", "viewer-1", 2, 5, &[("like", 5)])],
        ))
        .await
        .unwrap();
    assert_eq!(bare(applied), ok());
    assert_eq!(store.claim_session(&id, "session-1", &CLAIMER).await.unwrap(), (4, 5));
    assert_eq!(store.claim_session(&id, "session-2", &CLAIMER).await.unwrap(), (5, 0));

    assert!(matches!(
        store.claim_session(&uid("missing"), "session-1", &CLAIMER).await,
        Err(StoreError::NotFound)
    ));
}

async fn apply_counts_exactly(store: Arc<dyn Store>, _: &str) {
    let id = new_campaign(&*store, "counts").await;
    let (e1, _) = store.claim_session(&id, "session-1", &CLAIMER).await.unwrap();
    let (e2, _) = store.claim_session(&id, "session-2", &CLAIMER).await.unwrap();
    let e3 = claim(&*store, &id, "session-3").await;
    let b1 = batch(
        &id,
        1_000,
        vec![
            delta("session-1", "viewer-1", e1, 3, &[("like", 4), ("cheer", 1)]),
            delta("session-2", "viewer-2", e2, 0, &[("like", 2)]),
            delta("session-3", "viewer-3", e3, 1, &[("comment", 1)]),
        ],
    );
    assert_eq!(bare(store.apply(&b1).await.unwrap()), ok());
    let b2 = batch(
        &id,
        2_000,
        vec![delta("session-1", "viewer-1", e1, 7, &[("like", 1), ("cheer", 2)])],
    );
    assert_eq!(bare(store.apply(&b2).await.unwrap()), ok());

    assert_eq!(
        interactions(&*store, &id).await,
        map(&[("like", 7), ("cheer", 3), ("comment", 1), ("share", 0)])
    );
    // Only the kinds asked for are reported.
    let only = store.stats(&id, &["like".to_owned()], now()).await.unwrap();
    assert_eq!(only.interactions, map(&[("like", 7)]));
    assert_eq!(store.claim_session(&id, "session-3", &CLAIMER).await.unwrap().1, 1);

    // An empty batch changes nothing and is not refused.
    assert_eq!(bare(store.apply(&batch(&id, 3_000, vec![])).await.unwrap()), ok());
    assert_eq!(interactions(&*store, &id).await["like"], 7);
}

async fn acked_seq_is_never_lowered(store: Arc<dyn Store>, _: &str) {
    let id = new_campaign(&*store, "acked").await;
    let (e, _) = store.claim_session(&id, "session-1", &CLAIMER).await.unwrap();
    for seq in [10, 4, 0] {
        store
            .apply(&batch(
                &id,
                0,
                vec![delta("session-1", "viewer-1", e, seq, &[("like", 1)])],
            ))
            .await
            .unwrap();
    }
    // The same session twice in one batch: the higher seq wins whatever the order.
    store
        .apply(&batch(
            &id,
            0,
            vec![
                delta("session-1", "viewer-1", e, 12, &[]),
                delta("session-1", "viewer-1", e, 11, &[]),
            ],
        ))
        .await
        .unwrap();
    let (_, acked) = store.claim_session(&id, "session-1", &CLAIMER).await.unwrap();
    assert_eq!(acked, 12);
    assert_eq!(interactions(&*store, &id).await["like"], 3);
}

async fn stale_epoch_is_fenced_and_not_counted(store: Arc<dyn Store>, _: &str) {
    let id = new_campaign(&*store, "fence").await;
    // Node A owns the session, then the viewer reconnects through node B.
    let (a, _) = store.claim_session(&id, "session-1", &CLAIMER).await.unwrap();
    let (b, _) = store.claim_session(&id, "session-1", &CLAIMER).await.unwrap();
    assert!(a < b);
    let (other, _) = store.claim_session(&id, "session-2", &CLAIMER).await.unwrap();

    let applied = store
        .apply(&batch(
            &id,
            1_000,
            vec![
                delta("session-1", "viewer-stale", a, 9, &[("like", 5)]),
                delta("session-2", "viewer-2", other, 1, &[("like", 2)]),
                delta("session-1", "viewer-1", b, 3, &[("cheer", 1)]),
                delta("session-2", "viewer-2", other + 5, 4, &[("like", 100)]),
            ],
        ))
        .await
        .unwrap();
    assert_eq!(
        bare(applied),
        Applied {
            fenced: vec![0, 3],
            ..ok()
        }
    );
    assert_eq!(
        interactions(&*store, &id).await,
        map(&[("like", 2), ("cheer", 1), ("comment", 0), ("share", 0)])
    );
    // The fenced seqs did not move the acks; the stale viewer is no interactor.
    assert_eq!(store.claim_session(&id, "session-1", &CLAIMER).await.unwrap().1, 3);
    assert_eq!(store.claim_session(&id, "session-2", &CLAIMER).await.unwrap().1, 1);
    assert_eq!(store.stats(&id, &kinds(), now()).await.unwrap().interactors, 2);
    // The fenced counts are not in the series either.
    let total = store
        .series(&id, &SeriesMetric::Interactions(None), 0, 10_000)
        .await
        .unwrap();
    assert_eq!(total, vec![(1_000, 3)]);
}

async fn ended_campaign_freezes_counts(store: Arc<dyn Store>, _: &str) {
    let id = new_campaign(&*store, "frozen").await;
    let (e, _) = store.claim_session(&id, "session-1", &CLAIMER).await.unwrap();
    let mut b = batch(&id, 1_000, vec![delta("session-1", "viewer-1", e, 1, &[("like", 3)])]);
    b.new_viewers = vec!["viewer-1".to_owned()];
    b.share_visits = vec![("wechat".to_owned(), 2)];
    assert_eq!(bare(store.apply(&b).await.unwrap()), ok());
    store.end_campaign(&id, 2_000).await.unwrap();
    let before = store.stats(&id, &kinds(), now()).await.unwrap();

    let mut late = batch(&id, 2_000, vec![delta("session-1", "viewer-1", e, 2, &[("like", 9)])]);
    late.new_viewers = vec!["viewer-9".to_owned()];
    late.share_visits = vec![("wechat".to_owned(), 5)];
    late.presence = Some(("node-a".to_owned(), presence(4, &[])));
    assert_eq!(bare(store.apply(&late).await.unwrap()), ended());

    let after = store.stats(&id, &kinds(), now()).await.unwrap();
    assert_eq!(after, before);
    assert_eq!(after.interactions["like"], 3);
    assert_eq!((after.unique_viewers, after.share_visits, after.viewers), (1, 2, 0));

    // Unknown campaigns read as ended: nothing to count into.
    assert_eq!(
        bare(store.apply(&batch(&uid("missing"), 0, vec![])).await.unwrap()),
        ended()
    );
}

async fn unique_viewers_and_interactors(store: Arc<dyn Store>, _: &str) {
    let id = new_campaign(&*store, "uniq").await;
    let viewers: Vec<String> = (0..1000).map(|i| format!("viewer-{i:05}")).collect();
    // Two batches, overlapping by 200: 1000 distinct.
    let mut b1 = batch(&id, 0, vec![]);
    b1.new_viewers = viewers[..600].to_vec();
    let mut b2 = batch(&id, 0, vec![]);
    b2.new_viewers = viewers[400..].to_vec();
    store.apply(&b1).await.unwrap();
    store.apply(&b2).await.unwrap();

    // Interactors: viewers with counts in an accepted delta; empty counts do not count.
    let mut e = Vec::new();
    for s in ["session-1", "session-2", "session-3", "session-4", "session-5"] {
        e.push(claim(&*store, &id, s).await);
    }
    let b3 = batch(
        &id,
        0,
        vec![
            delta("session-1", "viewer-a", e[0], 0, &[("like", 1)]),
            delta("session-2", "viewer-b", e[1], 0, &[("cheer", 2)]),
            delta("session-3", "viewer-a", e[2], 0, &[("like", 1)]),
            delta("session-4", "viewer-c", e[3], 1, &[]),
            delta("session-5", "viewer-d", e[4] + 1, 0, &[("like", 1)]), // fenced
        ],
    );
    assert_eq!(store.apply(&b3).await.unwrap().fenced, vec![4]);

    let stats = store.stats(&id, &kinds(), now()).await.unwrap();
    assert!(
        (980..=1020).contains(&stats.unique_viewers),
        "unique_viewers {} not within 2% of 1000",
        stats.unique_viewers
    );
    assert_eq!(stats.interactors, 2);
}

async fn large_batch_is_counted_exactly(store: Arc<dyn Store>, _: &str) {
    // More sessions and viewers than one variadic Redis command carries.
    let id = new_campaign(&*store, "large").await;
    let mut epochs = Vec::new();
    for i in 0..2_500 {
        epochs.push(claim(&*store, &id, &format!("session-{i:05}")).await);
    }
    let sessions: Vec<SessionDelta> = (0..2_500)
        .map(|i| {
            let s = format!("session-{i:05}");
            let v = format!("viewer-{i:05}");
            delta(
                &s,
                &v,
                epochs[i],
                (i % 7) as u64 + 1,
                &[("like", 2), ("cheer", (i % 3) as u64 + 1)],
            )
        })
        .collect();
    let mut b = batch(&id, 5_000, sessions);
    b.new_viewers = (0..3_000).map(|i| format!("viewer-{i:05}")).collect();
    assert_eq!(bare(store.apply(&b).await.unwrap()), ok());

    let stats = store.stats(&id, &kinds(), now()).await.unwrap();
    // cheer: i%3+1 over 2500 sessions = 834·1 + 833·2 + 833·3
    assert_eq!(
        stats.interactions,
        map(&[("like", 5_000), ("cheer", 4_999), ("comment", 0), ("share", 0)])
    );
    assert!((2_450..=2_550).contains(&stats.interactors), "{}", stats.interactors);
    assert!(
        (2_940..=3_060).contains(&stats.unique_viewers),
        "{}",
        stats.unique_viewers
    );
    // Acked seq of session i is i%7+1.
    assert_eq!(store.claim_session(&id, "session-02498", &CLAIMER).await.unwrap().1, 7);
    assert_eq!(
        store
            .series(&id, &SeriesMetric::Interactions(None), 0, i64::MAX)
            .await
            .unwrap(),
        vec![(5_000, 9_999)]
    );
}

async fn share_visits_by_channel(store: Arc<dyn Store>, _: &str) {
    let id = new_campaign(&*store, "shares").await;
    let mut b1 = batch(&id, 0, vec![]);
    b1.share_visits = vec![("wechat".into(), 3), ("x".into(), 2), ("wechat".into(), 1)];
    let mut b2 = batch(&id, 0, vec![]);
    b2.share_visits = vec![("other".into(), 1), ("x".into(), 40)];
    store.apply(&b1).await.unwrap();
    store.apply(&b2).await.unwrap();
    let stats = store.stats(&id, &kinds(), now()).await.unwrap();
    assert_eq!(stats.share_visits, 47);
    assert_eq!(
        stats.share_visits_by_channel,
        map(&[("wechat", 4), ("x", 42), ("other", 1)])
    );
}

async fn share_channels_are_bounded_per_campaign(store: Arc<dyn Store>, _: &str) {
    const MAX: u64 = 64;
    // 2,000 distinct channels over 20 flushes (of any nodes), with more visits on a channel
    // counted early and on `other` itself, which is not one of the 64.
    let id = new_campaign(&*store, "channels").await;
    let mut total = 0;
    for flush in 0..20 {
        let mut b = batch(&id, 0, vec![]);
        b.origin = format!("node-{}/run", flush % 3);
        b.max_share_channels = MAX;
        b.share_visits = (0..100)
            .map(|i| (format!("ch-{:04}", flush * 100 + i), i % 3 + 1))
            .collect();
        b.share_visits.push(("ch-0000".into(), 1));
        b.share_visits.push(("other".into(), 2));
        total += b.share_visits.iter().map(|(_, n)| n).sum::<u64>();
        assert_eq!(bare(store.apply(&b).await.unwrap()), ok());
    }
    let stats = store.stats(&id, &kinds(), now()).await.unwrap();
    assert_eq!(stats.share_visits, total, "no visit is lost");
    let by_channel = &stats.share_visits_by_channel;
    assert_eq!(by_channel.len() as u64, MAX + 1, "{by_channel:?}");
    let firsts: Vec<String> = (0..MAX).map(|i| format!("ch-{i:04}")).collect();
    assert!(
        by_channel.keys().all(|c| c == "other" || firsts.contains(c)),
        "{by_channel:?}"
    );
    assert_eq!(by_channel["ch-0000"], 1 + 20, "a counted channel keeps counting");
    assert_eq!(by_channel.values().sum::<u64>(), total);

    // One batch with more channels than one Redis command carries.
    let id = new_campaign(&*store, "channels").await;
    let mut b = batch(&id, 0, vec![]);
    b.max_share_channels = MAX;
    b.share_visits = (0..2_000).map(|i| (format!("ch-{i:04}"), 1)).collect();
    store.apply(&b).await.unwrap();
    let stats = store.stats(&id, &kinds(), now()).await.unwrap();
    assert_eq!(stats.share_visits, 2_000);
    assert_eq!(stats.share_visits_by_channel.len() as u64, MAX + 1);
    assert_eq!(stats.share_visits_by_channel["other"], 2_000 - MAX);
}

async fn declared_share_channels_count_by_name_whoever_came_first(store: Arc<dyn Store>, _: &str) {
    const MAX: u64 = 64;
    // 64 made-up channels first take every first-come place ...
    let id = new_campaign(&*store, "declared").await;
    let mut b = batch(&id, 0, vec![]);
    b.max_share_channels = MAX;
    b.share_visits = (0..MAX).map(|i| (format!("fake-{i:02}"), 1)).collect();
    store.apply(&b).await.unwrap();
    let mut b = batch(&id, 0, vec![]);
    b.max_share_channels = MAX;
    b.share_visits = vec![("wechat".into(), 1)];
    store.apply(&b).await.unwrap();
    let stats = store.stats(&id, &kinds(), now()).await.unwrap();
    assert_eq!(stats.share_visits_by_channel.get("wechat"), None, "v1.1: first come");
    assert_eq!(stats.share_visits_by_channel["other"], 1);

    // ... then the declared list counts the real ones by name, every other under `other`,
    // and what was counted keeps its name.
    let declared = vec!["wechat".to_owned(), "weibo".to_owned()];
    let c = store.set_share_channels(&id, &declared).await.unwrap();
    assert_eq!(c.share_channels, declared);
    assert_eq!(store.get_campaign(&id).await.unwrap().unwrap().share_channels, declared);
    let mut b = batch(&id, 0, vec![]);
    b.max_share_channels = MAX;
    b.share_visits = vec![
        ("wechat".into(), 3),
        ("fake-00".into(), 2),
        ("made-up".into(), 4),
        ("weibo".into(), 1),
    ];
    store.apply(&b).await.unwrap();
    let by_channel = store.stats(&id, &kinds(), now()).await.unwrap().share_visits_by_channel;
    assert_eq!(by_channel["wechat"], 3);
    assert_eq!(by_channel["weibo"], 1);
    assert_eq!(by_channel["fake-00"], 1, "counts already made keep their name");
    assert_eq!(by_channel["other"], 1 + 2 + 4);
    assert_eq!(by_channel.len(), MAX as usize + 3);

    // Withdrawn: the first-come bound again (its 64 places are taken).
    store.set_share_channels(&id, &[]).await.unwrap();
    let mut b = batch(&id, 0, vec![]);
    b.max_share_channels = MAX;
    b.share_visits = vec![("fresh".into(), 1), ("wechat".into(), 1)];
    store.apply(&b).await.unwrap();
    let by_channel = store.stats(&id, &kinds(), now()).await.unwrap().share_visits_by_channel;
    assert_eq!(
        (by_channel.get("fresh"), by_channel["wechat"], by_channel["other"]),
        (None, 4, 8)
    );

    // Declared at creation.
    let id = uid("declared");
    let mut c = campaign(&id, 1_000);
    c.share_channels = vec!["line".into()];
    store.create_campaign(&c).await.unwrap();
    let mut b = batch(&id, 0, vec![]);
    b.share_visits = vec![("line".into(), 1), ("x".into(), 1)];
    store.apply(&b).await.unwrap();
    let by_channel = store.stats(&id, &kinds(), now()).await.unwrap().share_visits_by_channel;
    assert_eq!(by_channel, map(&[("line", 1), ("other", 1)]));
    assert!(matches!(
        store.set_share_channels(&uid("unknown"), &[]).await,
        Err(StoreError::NotFound)
    ));
}

async fn the_index_version_moves_with_every_campaign_write(store: Arc<dyn Store>, _: &str) {
    // Other tests write to the same store at the same time: each step only checks that
    // the version moved, never by how much.
    let mut last = store.index_version().await.unwrap();
    let mut moved = |v: u64, what: &str| {
        assert!(v > last, "{what}: {v} after {last}");
        last = v;
    };
    let id = new_campaign(&*store, "version").await;
    moved(store.index_version().await.unwrap(), "create");
    store.set_milestones(&id, &Default::default()).await.unwrap();
    moved(store.index_version().await.unwrap(), "milestones");
    store.set_share_channels(&id, &["wechat".to_owned()]).await.unwrap();
    moved(store.index_version().await.unwrap(), "share channels");
    store.end_campaign(&id, now()).await.unwrap();
    moved(store.index_version().await.unwrap(), "end");
    store.delete_campaign(&id).await.unwrap();
    moved(store.index_version().await.unwrap(), "delete");
}

async fn presence_sums_nodes_and_drops_on_leave(store: Arc<dyn Store>, _: &str) {
    let id = new_campaign(&*store, "presence").await;
    let before = now();
    let mut a = batch(&id, 0, vec![]);
    a.presence = Some(("node-a".into(), presence(3, &[("CN-BJ", 2), ("US", 1)])));
    let mut b = batch(&id, 0, vec![]);
    b.presence = Some(("node-b".into(), presence(4, &[("US", 4)])));
    store.apply(&a).await.unwrap();
    store.apply(&b).await.unwrap();

    let stats = store.stats(&id, &kinds(), now()).await.unwrap();
    assert_eq!(stats.viewers, 7);
    assert_eq!(stats.regions, map(&[("CN-BJ", 2), ("US", 5)]));
    let nodes: Vec<(String, u64)> = stats.nodes.iter().map(|n| (n.node.clone(), n.viewers)).collect();
    assert_eq!(nodes, vec![("node-a".to_owned(), 3), ("node-b".to_owned(), 4)]);
    for NodeShare { updated_at, .. } in &stats.nodes {
        // Redis stamps leases with its own clock: same host, so within a few seconds.
        assert!((before - 5_000..=now() + 5_000).contains(updated_at), "{updated_at}");
    }

    // A newer lease replaces the node's share; regions at 0 are not reported.
    let mut a2 = batch(&id, 0, vec![]);
    a2.presence = Some(("node-a".into(), presence(0, &[("CN-BJ", 0)])));
    store.apply(&a2).await.unwrap();
    let stats = store.stats(&id, &kinds(), now()).await.unwrap();
    assert_eq!((stats.viewers, stats.regions.clone()), (4, map(&[("US", 4)])));
    assert_eq!(stats.nodes.len(), 2);

    store.drop_presence(&id, "node-b").await.unwrap();
    let stats = store.stats(&id, &kinds(), now()).await.unwrap();
    assert_eq!(stats.viewers, 0);
    assert_eq!(stats.nodes.len(), 1);
    assert_eq!(stats.nodes[0].node, "node-a");
    // Dropping what is not there, or on an unknown campaign, is fine.
    store.drop_presence(&id, "node-b").await.unwrap();
    store.drop_presence(&uid("missing"), "node-b").await.unwrap();
    assert!(matches!(
        store.stats(&uid("missing"), &kinds(), now()).await,
        Err(StoreError::NotFound)
    ));
}

async fn presence_expires_after_ttl(store: Arc<dyn Store>, _: &str) {
    let id = new_campaign(&*store, "expiry").await;
    let mut short = batch(&id, 0, vec![]);
    short.presence = Some(("node-dies".into(), presence(5, &[("US", 5)])));
    short.presence_ttl = Duration::from_secs(1);
    let mut long = batch(&id, 0, vec![]);
    long.presence = Some(("node-lives".into(), presence(2, &[("US", 2)])));
    let started = Instant::now();
    store.apply(&short).await.unwrap();
    store.apply(&long).await.unwrap();
    assert_eq!(store.stats(&id, &kinds(), now()).await.unwrap().viewers, 7);

    let stats = eventually_within(Duration::from_secs(5), "the 1 s lease to expire", || async {
        let stats = store.stats(&id, &kinds(), now()).await.unwrap();
        if stats.viewers != 2 {
            assert_eq!(stats.viewers, 7);
        }
        (stats.viewers == 2).then_some(stats)
    })
    .await;
    assert_eq!(stats.regions, map(&[("US", 2)]));
    assert_eq!(stats.nodes.len(), 1);
    assert!(
        started.elapsed() >= Duration::from_millis(900),
        "expired early: {:?}",
        started.elapsed()
    );
}

async fn end_drops_viewers_to_zero(store: Arc<dyn Store>, _: &str) {
    let id = new_campaign(&*store, "end-viewers").await;
    let (e, _) = store.claim_session(&id, "session-1", &CLAIMER).await.unwrap();
    let mut b = batch(&id, 0, vec![delta("session-1", "viewer-1", e, 4, &[("like", 1)])]);
    b.presence = Some(("node-a".into(), presence(5, &[("US", 5)])));
    let before = now() - 1_000;
    store.apply(&b).await.unwrap();
    store
        .record_tick(&id, 1_000, 1_001, 5, &map(&[("US", 5)]))
        .await
        .unwrap();
    assert_eq!(store.stats(&id, &kinds(), now()).await.unwrap().viewers, 5);

    store.end_campaign(&id, 2_000).await.unwrap();
    let stats = store.stats(&id, &kinds(), now()).await.unwrap();
    assert_eq!((stats.viewers, stats.nodes.len(), stats.regions.len()), (0, 0, 0));
    // The peak was raised when the presence was written (at the store's clock).
    assert_eq!(stats.peak_viewers, 5);
    assert!(stats.peak_at.is_some_and(|t| t >= before), "{:?}", stats.peak_at);
    assert_eq!(stats.regions_at_peak, map(&[("US", 5)]));
    assert_eq!(stats.interactions["like"], 1);
    // Sessions are forgotten with the campaign: a late claim starts over.
    let (late, acked) = store.claim_session(&id, "session-1", &CLAIMER).await.unwrap();
    assert!(late > e && acked == 0, "{late} {acked}");
}

/// The regions at the peak are the totals of the moment the peak was raised, by a flush
/// or a tick, however often they are read in between (a node keeps them while the peak
/// stays where it was).
async fn regions_at_peak_follow_the_peak_through_reads(store: Arc<dyn Store>, _: &str) {
    let id = new_campaign(&*store, "at-peak").await;
    let write = |node: &str, p: Presence| {
        let mut b = batch(&id, 0, vec![]);
        b.presence = Some((node.into(), p));
        b
    };
    let at_peak = || async { store.stats(&id, &kinds(), now()).await.unwrap().regions_at_peak };
    store
        .apply(&write("node-a", presence(3, &[("US", 2), ("CN", 1), ("u:GD", 3)])))
        .await
        .unwrap();
    for _ in 0..2 {
        let s = store.stats(&id, &kinds(), now()).await.unwrap();
        assert_eq!(s.regions_at_peak, map(&[("CN", 1), ("US", 2)]));
        assert_eq!(s.units_at_peak, map(&[("GD", 3)]), "upper units at the peak, apart");
    }
    store.apply(&write("node-b", presence(2, &[("US", 2)]))).await.unwrap();
    assert_eq!(at_peak().await, map(&[("CN", 1), ("US", 4)]));
    // Below the peak: the regions stay those of the peak.
    store.apply(&write("node-b", presence(1, &[("US", 1)]))).await.unwrap();
    assert_eq!(at_peak().await, map(&[("CN", 1), ("US", 4)]));
    assert_eq!(at_peak().await, map(&[("CN", 1), ("US", 4)]));
    // A tick that saw more raises them, and a flush past that raises them again.
    store
        .record_tick(&id, 1_000, 1_010, 9, &map(&[("DE", 9)]))
        .await
        .unwrap();
    assert_eq!(at_peak().await, map(&[("DE", 9)]));
    store.apply(&write("node-a", presence(8, &[("US", 8)]))).await.unwrap();
    assert_eq!(at_peak().await, map(&[("DE", 9)]), "9 is not above 9");
    store
        .apply(&write("node-a", presence(10, &[("US", 10)])))
        .await
        .unwrap();
    let s = store.stats(&id, &kinds(), now()).await.unwrap();
    assert_eq!((s.peak_viewers, s.regions_at_peak), (11, map(&[("US", 11)])));
}

async fn record_tick_tracks_peak_and_viewer_series(store: Arc<dyn Store>, _: &str) {
    let id = new_campaign(&*store, "tick").await;
    let hour = 3_600_000;
    assert_eq!(
        store
            .record_tick(&id, 1_000, 1_010, 5, &map(&[("US", 5)]))
            .await
            .unwrap(),
        (5, Some(1_010))
    );
    assert_eq!(
        store
            .record_tick(&id, 2_000, 2_010, 3, &map(&[("US", 3)]))
            .await
            .unwrap(),
        (5, Some(1_010))
    );
    // Equal to the peak: not a new peak.
    assert_eq!(
        store
            .record_tick(&id, hour - 1_000, hour - 990, 5, &map(&[]))
            .await
            .unwrap(),
        (5, Some(1_010))
    );
    let at_peak = map(&[("CN-BJ", 2), ("US", 6)]);
    assert_eq!(
        store
            .record_tick(&id, hour + 1_000, hour + 1_020, 8, &at_peak)
            .await
            .unwrap(),
        (8, Some(hour + 1_020))
    );
    // A bucket written twice keeps the last value.
    assert_eq!(
        store.record_tick(&id, 2_000, 2_050, 4, &map(&[])).await.unwrap(),
        (8, Some(hour + 1_020))
    );
    assert_eq!(
        store
            .record_tick(&id, 3 * hour, 3 * hour + 5, 0, &map(&[]))
            .await
            .unwrap(),
        (8, Some(hour + 1_020))
    );

    let stats = store.stats(&id, &kinds(), now()).await.unwrap();
    assert_eq!((stats.peak_viewers, stats.peak_at), (8, Some(hour + 1_020)));
    assert_eq!(stats.regions_at_peak, at_peak);

    let all = store
        .series(&id, &SeriesMetric::Viewers, i64::MIN, i64::MAX)
        .await
        .unwrap();
    assert_eq!(
        all,
        vec![
            (1_000, 5),
            (2_000, 4),
            (hour - 1_000, 5),
            (hour + 1_000, 8),
            (3 * hour, 0)
        ]
    );
    let window = store
        .series(&id, &SeriesMetric::Viewers, 2_000, hour + 1_000)
        .await
        .unwrap();
    assert_eq!(window, vec![(2_000, 4), (hour - 1_000, 5), (hour + 1_000, 8)]);
    assert_eq!(
        store
            .series(&id, &SeriesMetric::Viewers, 2_001, hour - 1_001)
            .await
            .unwrap(),
        vec![]
    );
    assert_eq!(
        store.series(&id, &SeriesMetric::Viewers, 5_000, 4_000).await.unwrap(),
        vec![]
    );

    // Once ended, ticks record nothing and report the frozen peak.
    store.end_campaign(&id, 4 * hour).await.unwrap();
    assert_eq!(
        store.record_tick(&id, 4 * hour, 4 * hour, 99, &map(&[])).await.unwrap(),
        (8, Some(hour + 1_020))
    );
    assert_eq!(
        store
            .series(&id, &SeriesMetric::Viewers, 0, i64::MAX)
            .await
            .unwrap()
            .len(),
        5
    );

    let missing = uid("missing");
    assert!(matches!(
        store.record_tick(&missing, 0, 0, 1, &map(&[])).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.series(&missing, &SeriesMetric::Viewers, 0, 1).await,
        Err(StoreError::NotFound)
    ));

    // A fresh campaign has no peak yet.
    let fresh = new_campaign(&*store, "tick").await;
    let stats = store.stats(&fresh, &kinds(), now()).await.unwrap();
    assert_eq!(
        (stats.peak_viewers, stats.peak_at, stats.regions_at_peak.len()),
        (0, None, 0)
    );
}

async fn interaction_series_per_kind_and_total(store: Arc<dyn Store>, _: &str) {
    let id = new_campaign(&*store, "iseries").await;
    let hour = 3_600_000;
    let apply = |bucket: i64, sessions: Vec<SessionDelta>| {
        let store = store.clone();
        let b = batch(&id, bucket, sessions);
        async move { store.apply(&b).await.unwrap() }
    };
    let (e1, e2) = (claim(&*store, &id, "s-1").await, claim(&*store, &id, "s-2").await);
    apply(1_000, vec![delta("s-1", "v-1", e1, 0, &[("like", 2), ("cheer", 1)])]).await;
    apply(1_000, vec![delta("s-2", "v-2", e2, 0, &[("like", 1)])]).await;
    apply(2_000, vec![delta("s-1", "v-1", e1, 0, &[("like", 3)])]).await;
    apply(hour + 1_000, vec![delta("s-2", "v-2", e2, 0, &[("comment", 4)])]).await;
    // Nothing accepted (never claimed): no bucket.
    apply(9 * hour, vec![delta("s-3", "v-3", 7, 0, &[("like", 50)])]).await;

    let like = SeriesMetric::Interactions(Some("like".to_owned()));
    let total = SeriesMetric::Interactions(None);
    // A bucket with other kinds reads 0 for this one.
    assert_eq!(
        store.series(&id, &like, 0, i64::MAX).await.unwrap(),
        vec![(1_000, 3), (2_000, 3), (hour + 1_000, 0)]
    );
    assert_eq!(
        store.series(&id, &total, i64::MIN, i64::MAX).await.unwrap(),
        vec![(1_000, 4), (2_000, 3), (hour + 1_000, 4)]
    );
    assert_eq!(
        store
            .series(&id, &SeriesMetric::Interactions(Some("cheer".into())), 0, 1_999)
            .await
            .unwrap(),
        vec![(1_000, 1)]
    );
    assert_eq!(
        store.series(&id, &total, 1_500, hour + 1_000).await.unwrap(),
        vec![(2_000, 3), (hour + 1_000, 4)]
    );
    assert_eq!(store.series(&id, &total, 2_001, hour + 999).await.unwrap(), vec![]);
    assert_eq!(store.series(&id, &total, 3_000, 1_000).await.unwrap(), vec![]);
    // Interactions are not viewers.
    assert_eq!(
        store.series(&id, &SeriesMetric::Viewers, 0, i64::MAX).await.unwrap(),
        vec![]
    );
}

fn reg(viewer: &str, fields: &str) -> Registration {
    Registration {
        viewer: viewer.to_owned(),
        registered_at: 1_700_000_000_000,
        fields: fields.to_owned(),
        unit: None,
    }
}

async fn register_is_idempotent(store: Arc<dyn Store>, _: &str) {
    let id = new_campaign(&*store, "register").await;
    assert!(store.register(&id, &reg("viewer-1", r#"{"phone":"1"}"#)).await.unwrap());
    // The first registration wins: a second one changes nothing.
    assert!(!store.register(&id, &reg("viewer-1", r#"{"phone":"2"}"#)).await.unwrap());
    assert!(store.register(&id, &reg("viewer-2", "{}")).await.unwrap());
    assert_eq!(store.stats(&id, &kinds(), now()).await.unwrap().registrations, 2);
    let page = store.registrations(&id, 0, 10).await.unwrap();
    assert_eq!(
        page,
        vec![(1, reg("viewer-1", r#"{"phone":"1"}"#)), (2, reg("viewer-2", "{}"))]
    );
    assert!(matches!(
        store.register(&uid("missing"), &reg("viewer-1", "{}")).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.registrations(&uid("missing"), 0, 10).await,
        Err(StoreError::NotFound)
    ));
}

/// 2,500 sign-ups read back in pages of 1,000 (the export's page): every one exactly once,
/// in the order they came, with its fields, Unicode and quotes intact.
async fn registrations_are_read_in_order_page_by_page(store: Arc<dyn Store>, _: &str) {
    let id = new_campaign(&*store, "signups").await;
    let n = 2_500u64;
    for i in 1..=n {
        let fields = format!(r#"{{"name":"名字 \"{i}\"","n":"{i}"}}"#);
        assert!(store
            .register(&id, &reg(&format!("viewer-{i:05}"), &fields))
            .await
            .unwrap());
    }
    let (mut after, mut seen) = (0, 0u64);
    loop {
        let page = store.registrations(&id, after, 1_000).await.unwrap();
        let Some((last, _)) = page.last() else { break };
        assert!(page.len() <= 1_000);
        for (number, r) in &page {
            seen += 1;
            assert_eq!(*number, seen);
            assert_eq!(r.viewer, format!("viewer-{seen:05}"));
            assert_eq!(r.fields, format!(r#"{{"name":"名字 \"{seen}\"","n":"{seen}"}}"#));
        }
        after = *last;
    }
    assert_eq!(seen, n);
    assert_eq!(store.stats(&id, &kinds(), now()).await.unwrap().registrations, n);
}

async fn erasing_a_registration_keeps_the_count(store: Arc<dyn Store>, _: &str) {
    let id = new_campaign(&*store, "erase").await;
    for v in ["viewer-1", "viewer-2", "viewer-3"] {
        store.register(&id, &reg(v, r#"{"phone":"1"}"#)).await.unwrap();
    }
    assert!(store.erase_registration(&id, "viewer-2").await.unwrap());
    assert!(
        !store.erase_registration(&id, "viewer-2").await.unwrap(),
        "already erased"
    );
    assert!(
        !store.erase_registration(&id, "viewer-9").await.unwrap(),
        "never registered"
    );
    let viewers = |page: Vec<(u64, Registration)>| page.into_iter().map(|(n, r)| (n, r.viewer)).collect::<Vec<_>>();
    assert_eq!(
        viewers(store.registrations(&id, 0, 10).await.unwrap()),
        vec![(1, "viewer-1".to_owned()), (3, "viewer-3".to_owned())]
    );
    // A page starting at the erased one's number moves on to the next.
    assert_eq!(
        viewers(store.registrations(&id, 1, 1).await.unwrap()),
        vec![(3, "viewer-3".to_owned())]
    );
    assert_eq!(store.stats(&id, &kinds(), now()).await.unwrap().registrations, 3);
    // Nothing is kept to recognise the erased person: coming back is a new sign-up.
    assert!(store.register(&id, &reg("viewer-2", "{}")).await.unwrap());
    assert_eq!(store.stats(&id, &kinds(), now()).await.unwrap().registrations, 4);
    assert_eq!(
        viewers(store.registrations(&id, 3, 10).await.unwrap()),
        vec![(4, "viewer-2".to_owned())]
    );
    // Erasing twice more keeps every placeholder apart (the count never drops).
    assert!(store.erase_registration(&id, "viewer-1").await.unwrap());
    assert!(store.erase_registration(&id, "viewer-2").await.unwrap());
    assert_eq!(store.stats(&id, &kinds(), now()).await.unwrap().registrations, 4);
    assert!(matches!(
        store.erase_registration(&uid("missing"), "viewer-1").await,
        Err(StoreError::NotFound)
    ));
}

async fn delete_removes_an_ended_campaign_and_all_its_data(store: Arc<dyn Store>, kind: &str) {
    let id = uid("delete");
    let before = footprint(kind, &id);
    assert_eq!(before, 0);
    fill(&*store, &id).await;
    if kind != "memory" {
        // 14 keys that do not depend on the hour (one generation each of session state and
        // retry records: a v2 store writes no v1 `epochs`/`sessions`, and `moved` only while
        // a socket is moved; the one node's lease hash, not schema 3's `presence`), 3 of the
        // presence totals (not schema 3's `presence-eff`; `moved-n` only while a socket is
        // moved) and the totals at the peak, two hour hashes per series, and the index
        // entries.
        assert_eq!(footprint(kind, &id), 14 + 4 + 4 + 2, "the probe sees every key");
    }
    // A live campaign is refused and keeps everything.
    assert!(matches!(store.delete_campaign(&id).await, Err(StoreError::Live)));
    assert_eq!(interactions(&*store, &id).await["like"], 5);
    store.end_campaign(&id, 4 * HOUR).await.unwrap();

    store.delete_campaign(&id).await.unwrap();
    assert_eq!(footprint(kind, &id), before, "every key is gone");
    assert_eq!(store.get_campaign(&id).await.unwrap(), None);
    assert!(!store.list_campaigns().await.unwrap().iter().any(|c| c.id == id));
    assert!(matches!(store.delete_campaign(&id).await, Err(StoreError::NotFound)));
    assert!(matches!(
        store.stats(&id, &kinds(), now()).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.series(&id, &SeriesMetric::Viewers, 0, i64::MAX).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.claim_session(&id, "session-1", &CLAIMER).await,
        Err(StoreError::NotFound)
    ));
    assert!(matches!(
        store.register(&id, &reg("viewer-1", "{}")).await,
        Err(StoreError::NotFound)
    ));
    let mut late = batch(&id, 0, vec![delta("session-1", "viewer-1", 1, 9, &[("like", 1)])]);
    late.presence = Some(("node-a".into(), presence(1, &[])));
    assert_eq!(store.apply(&late).await.unwrap(), ended());
    store.drop_presence(&id, "node-a").await.unwrap();
    assert_eq!(footprint(kind, &id), before, "and nothing wrote it back");
    assert!(matches!(
        store.delete_campaign(&uid("missing")).await,
        Err(StoreError::NotFound)
    ));

    // The id can be created again, and starts from nothing.
    store.create_campaign(&campaign(&id, 5 * HOUR)).await.unwrap();
    let fresh = store.stats(&id, &kinds(), now()).await.unwrap();
    assert_eq!(
        fresh,
        livetally::store::Stats {
            interactions: map(&[("like", 0), ("cheer", 0), ("comment", 0), ("share", 0)]),
            ..Default::default()
        }
    );
    assert_eq!(store.claim_session(&id, "session-1", &CLAIMER).await.unwrap(), (1, 0));
    assert!(store.register(&id, &reg("viewer-1", "{}")).await.unwrap());
    assert_eq!(
        store
            .series(&id, &SeriesMetric::Interactions(None), 0, i64::MAX)
            .await
            .unwrap(),
        vec![]
    );
    let listed: Vec<String> = store
        .list_campaigns()
        .await
        .unwrap()
        .into_iter()
        .filter(|c| c.id == id)
        .map(|c| c.id)
        .collect();
    assert_eq!(listed, vec![id.clone()]);
}

const HOUR: i64 = 3_600_000;

/// Creates campaign `id` and writes every kind of data a campaign keeps: sessions and
/// epochs, counts and interaction series in two hours, sketches, share channels, presence,
/// a retry mark, registrations, viewer series in two hours and the peak.
async fn fill(store: &dyn Store, id: &str) {
    store.create_campaign(&campaign(id, 1_000)).await.unwrap();
    let (e, _) = store.claim_session(id, "session-1", &CLAIMER).await.unwrap();
    let mut b = batch(id, 1_000, vec![delta("session-1", "viewer-1", e, 1, &[("like", 2)])]);
    b.origin = "node-a/run-1".into();
    b.number = 1;
    b.new_viewers = vec!["viewer-1".into(), "viewer-2".into()];
    b.share_visits = vec![("wechat".into(), 3)];
    b.presence = Some(("node-a".into(), presence(2, &[("US", 2)])));
    assert_eq!(bare(store.apply(&b).await.unwrap()), ok());
    let later = batch(
        id,
        HOUR + 1_000,
        vec![delta("session-1", "viewer-1", e, 2, &[("like", 3)])],
    );
    assert_eq!(bare(store.apply(&later).await.unwrap()), ok());
    assert!(store.register(id, &reg("viewer-1", "{}")).await.unwrap());
    store
        .record_tick(id, 1_000, 1_000, 2, &map(&[("US", 2)]))
        .await
        .unwrap();
    store
        .record_tick(id, HOUR + 1_000, HOUR + 1_000, 3, &map(&[]))
        .await
        .unwrap();
}

/// The Redis servers behind a backend (none for memory).
fn servers(kind: &str) -> Vec<&'static RedisServer> {
    match kind {
        "redis" => REDIS.get().into_iter().collect(),
        "redis-cluster" => CLUSTER.get().map(|c| c.nodes().iter().collect()).unwrap_or_default(),
        _ => vec![],
    }
}

/// What Redis holds for campaign `id`: its `{c:<id>}` and `{ct:<id>:<s>}` keys on every server (SCAN, so
/// other tests' campaigns on the shared servers do not count) plus its index entries.
/// Always 0 on the memory store, where a campaign is one map entry.
fn footprint(kind: &str, id: &str) -> usize {
    // The campaign's slot, and the unit totals' shards in slots of their own.
    let patterns = [format!("lt:{{c:{id}}}:*"), format!("lt:{{ct:{id}:*")];
    let mut n = 0;
    for server in servers(kind) {
        for pattern in &patterns {
            let mut cursor = "0".to_owned();
            loop {
                let (next, keys): (String, Vec<String>) =
                    server.query(&["SCAN", &cursor, "MATCH", pattern, "COUNT", "1000"]);
                n += keys.len();
                if next == "0" {
                    break;
                }
                cursor = next;
            }
        }
        // On Cluster only the node owning `{campaigns}` answers; the others redirect.
        let client = ::redis::Client::open(server.url()).unwrap();
        let mut con = client.get_connection().unwrap();
        let indexed: ::redis::RedisResult<Option<f64>> = ::redis::cmd("ZSCORE")
            .arg("lt:{campaigns}:index")
            .arg(id)
            .query(&mut con);
        let ordered: ::redis::RedisResult<bool> = ::redis::cmd("HEXISTS")
            .arg("lt:{campaigns}:order")
            .arg(id)
            .query(&mut con);
        n += usize::from(matches!(indexed, Ok(Some(_)))) + usize::from(matches!(ordered, Ok(true)));
    }
    n
}

// ---------------------------------------------------------------------------------------
// Redis only: failure behaviour and traffic shape, on servers of their own.

mod redis_only {
    use super::*;
    use livetally::store::redis::CALL_TIMEOUT;

    #[tokio::test]
    async fn hung_redis_is_unavailable_within_the_timeout_then_recovers() {
        let server = RedisServer::start();
        let store = RedisStore::connect_standalone(&server.url()).await.unwrap();
        let id = new_campaign(&store, "hung").await;
        let e = claim(&store, &id, "s-1").await;

        server.pause();
        let started = Instant::now();
        let mut first = batch(&id, 0, vec![delta("s-1", "v-1", e, 1, &[("like", 1)])]);
        first.origin = "node-a/run-1".into();
        first.number = 1;
        let err = store.apply(&first).await;
        assert!(matches!(err, Err(StoreError::Unavailable(_))), "{err:?}");
        assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))));
        assert!(
            started.elapsed() < 2 * CALL_TIMEOUT + Duration::from_secs(1),
            "{:?}",
            started.elapsed()
        );

        server.resume();
        eventually_within(Duration::from_secs(10), "the store to recover after SIGCONT", || {
            store.ping()
        })
        .await;
        // The timed-out batch ran when the server woke up; the flusher resends it unchanged
        // and the store recognises the retry, so the like is counted once.
        assert_eq!(bare(store.apply(&first).await.unwrap()), ok());
        assert_eq!(interactions(&store, &id).await["like"], 1);
        let mut second = batch(&id, 0, vec![delta("s-1", "v-1", e, 2, &[("like", 1)])]);
        second.origin = "node-a/run-1".into();
        second.number = 2;
        assert_eq!(bare(store.apply(&second).await.unwrap()), ok());
        assert_eq!(interactions(&store, &id).await["like"], 2);
    }

    #[tokio::test]
    async fn aof_restart_keeps_counts_and_the_store_reconnects() {
        let mut server = RedisServer::start_with_aof();
        let store = RedisStore::connect_standalone(&server.url()).await.unwrap();
        let id = new_campaign(&store, "aof").await;
        let (e, _) = store.claim_session(&id, "s-1", &CLAIMER).await.unwrap();
        store
            .apply(&batch(&id, 0, vec![delta("s-1", "v-1", e, 6, &[("like", 6)])]))
            .await
            .unwrap();

        server.kill(); // a crash: appendfsync always keeps every acknowledged write
        assert!(matches!(store.ping().await, Err(StoreError::Unavailable(_))));
        server.restart();

        eventually_within(Duration::from_secs(15), "the store to reconnect after restart", || {
            store.ping()
        })
        .await;
        assert_eq!(interactions(&store, &id).await["like"], 6);
        let (e, acked) = store.claim_session(&id, "s-1", &CLAIMER).await.unwrap();
        assert_eq!(acked, 6);
        // Scripts are gone after a restart; EVALSHA reloads them transparently.
        store
            .apply(&batch(&id, 0, vec![delta("s-1", "v-1", e, 7, &[("like", 1)])]))
            .await
            .unwrap();
        assert_eq!(interactions(&store, &id).await["like"], 7);
    }

    #[tokio::test]
    async fn unreachable_redis_fails_fast_at_connect() {
        let mut server = RedisServer::start();
        let url = server.url();
        server.stop();
        let started = Instant::now();
        let res = RedisStore::connect_standalone(&url).await;
        assert!(matches!(res, Err(StoreError::Unavailable(_))));
        assert!(started.elapsed() <= CALL_TIMEOUT + Duration::from_millis(500));
    }

    /// On a server of its own, `DBSIZE` is where it was before the campaign: nothing of it
    /// is left anywhere, the index included.
    #[tokio::test]
    async fn delete_leaves_the_key_count_where_it_was() {
        let server = RedisServer::start();
        let store = RedisStore::connect_standalone(&server.url()).await.unwrap();
        assert_eq!(
            store.list_campaigns().await.unwrap(),
            vec![],
            "an empty index lists nothing"
        );
        new_campaign(&store, "keeper").await; // the index keys exist before and after
        let before: u64 = server.query(&["DBSIZE"]);
        let id = uid("delete");
        fill(&store, &id).await;
        store.end_campaign(&id, now()).await.unwrap();
        assert!(server.query::<u64>(&["DBSIZE"]) > before);
        store.delete_campaign(&id).await.unwrap();
        assert_eq!(server.query::<u64>(&["DBSIZE"]), before);
    }

    /// Sum of `calls=` over `INFO commandstats` (commands run inside scripts included).
    fn commands_run(server: &RedisServer) -> u64 {
        let info: String = server.query(&["INFO", "commandstats"]);
        info.lines()
            .filter_map(|l| l.split("calls=").nth(1))
            .filter_map(|rest| rest.split(',').next()?.parse::<u64>().ok())
            .sum()
    }

    #[tokio::test]
    async fn commands_per_batch_do_not_grow_with_interactions() {
        let server = RedisServer::start();
        let store = RedisStore::connect_standalone(&server.url()).await.unwrap();
        let id = new_campaign(&store, "traffic").await;
        let mut epochs = Vec::new();
        for i in 0..10 {
            epochs.push(claim(&store, &id, &format!("s-{i}")).await);
        }
        let run = |per_session: u64| {
            let sessions = (0..10)
                .map(|i| {
                    delta(
                        &format!("s-{i}"),
                        &format!("v-{i}"),
                        epochs[i as usize],
                        i + 1,
                        &[("like", per_session), ("cheer", per_session)],
                    )
                })
                .collect();
            let mut b = batch(&id, 0, sessions);
            b.new_viewers = (0..10).map(|i| format!("v-{i}")).collect();
            b.share_visits = vec![("wechat".into(), per_session)];
            b.presence = Some(("node-a".into(), presence(10, &[("US", 10)])));
            b
        };
        store.apply(&run(1)).await.unwrap(); // loads the script
        let before = commands_run(&server);
        store.apply(&run(1)).await.unwrap();
        let small = commands_run(&server) - before;
        let before = commands_run(&server);
        store.apply(&run(100_000)).await.unwrap();
        let big = commands_run(&server) - before;
        // INFO itself is one call; the rest is one EVALSHA and what runs inside it.
        assert_eq!(small, big);
        assert!(small <= 34, "{small} commands for one batch");
        assert_eq!(interactions(&store, &id).await["like"], 2 * 10 + 10 * 100_000);
    }

    /// The presence totals are kept incrementally: a flush that writes presence, and a stats
    /// read, cost as many commands with 200 nodes' leases live as with 2, and the totals
    /// stay exact.
    #[tokio::test]
    async fn presence_writes_do_not_grow_with_nodes() {
        let server = RedisServer::start();
        let store = RedisStore::connect_standalone(&server.url()).await.unwrap();
        let id = new_campaign(&store, "nodes").await;
        let lease = |node: String, viewers: u64| {
            let mut b = batch(&id, 0, vec![]);
            b.presence = Some((node, presence(viewers, &[("US", viewers - 1), ("CN-BJ", 1)])));
            b
        };
        let cost = |nodes: u64| {
            let (store, server, lease, id) = (&store, &server, &lease, &id);
            async move {
                let before = commands_run(server);
                store.apply(&lease("node-x".into(), 7)).await.unwrap();
                let write = commands_run(server) - before;
                let before = commands_run(server);
                let stats = store.stats(id, &kinds(), now()).await.unwrap();
                let read = commands_run(server) - before;
                assert_eq!(stats.viewers, 7 + 3 * nodes);
                assert_eq!(stats.regions, map(&[("US", 6 + 2 * nodes), ("CN-BJ", 1 + nodes)]));
                assert_eq!(stats.peak_viewers, 7 + 3 * nodes);
                assert_eq!(stats.nodes.len() as u64, nodes + 1);
                (write, read)
            }
        };
        for n in 0..2 {
            store.apply(&lease(format!("node-{n}"), 3)).await.unwrap();
        }
        store.apply(&lease("node-x".into(), 7)).await.unwrap(); // loads the scripts
        store.stats(&id, &kinds(), now()).await.unwrap();
        let few = cost(2).await;
        for n in 2..200 {
            store.apply(&lease(format!("node-{n}"), 3)).await.unwrap();
        }
        // As before `few`: the regions at the new peak are read once, then kept by the node.
        store.stats(&id, &kinds(), now()).await.unwrap();
        let many = cost(200).await;
        assert_eq!(few, many, "(write, read) commands with 2 and with 200 nodes");
        // Neither a flush nor a read decodes another node's lease: one that would not parse
        // is never looked at (summing the leases on each write would fail here).
        let key = format!("lt:{{c:{id}}}:presence");
        let _: () = server.query(&["HSET", &key, "node-5", "1|not json"]);
        assert_eq!(cost(200).await, many);
    }
}

mod cluster_only {
    use super::*;
    use livetally::store::redis::CALL_TIMEOUT;

    #[tokio::test]
    async fn hung_cluster_is_unavailable_within_the_timeout_then_recovers() {
        let cluster = RedisCluster::start(3);
        let store = RedisStore::connect_cluster(&cluster.urls()).await.unwrap();
        let id = new_campaign(&store, "hung").await;

        // Short of --cluster-node-timeout (5 s), so no node is marked failed meanwhile.
        for node in cluster.nodes() {
            node.pause();
        }
        let started = Instant::now();
        let res = store.claim_session(&id, "s-1", &CLAIMER).await;
        let elapsed = started.elapsed();
        for node in cluster.nodes() {
            node.resume();
        }
        assert!(matches!(res, Err(StoreError::Unavailable(_))), "{res:?}");
        assert!(elapsed < CALL_TIMEOUT + Duration::from_millis(500), "{elapsed:?}");

        eventually_within(Duration::from_secs(10), "the cluster store to recover", || store.ping()).await;
        let (epoch, acked) = store.claim_session(&id, "s-1", &CLAIMER).await.unwrap();
        // The timed-out claim may have run when the node woke up.
        assert!((1..=2).contains(&epoch) && acked == 0, "{epoch} {acked}");
    }
}

async fn retried_batch_is_applied_once(store: Arc<dyn Store>, _: &str) {
    let id = new_campaign(&*store, "retry").await;
    let (e1, _) = store.claim_session(&id, "session-1", &CLAIMER).await.unwrap();
    let (e2, _) = store.claim_session(&id, "session-2", &CLAIMER).await.unwrap();
    // session-2 moves on elsewhere, so its delta in this batch is fenced.
    store.claim_session(&id, "session-2", &CLAIMER).await.unwrap();
    let mut b = batch(
        &id,
        0,
        vec![
            delta("session-1", "viewer-1", e1, 3, &[("like", 3)]),
            delta("session-2", "viewer-2", e2, 1, &[("like", 5)]),
        ],
    );
    b.origin = "node-a/run-1".into();
    b.number = 7;
    let first = store.apply(&b).await.unwrap();
    assert_eq!(first.fenced, vec![1]);
    // The same batch again (its reply was lost): same answer, nothing counted twice.
    assert_eq!(store.apply(&b).await.unwrap(), first);
    assert_eq!(interactions(&*store, &id).await["like"], 3);
    // An older number from the same origin is a retry too.
    b.number = 6;
    assert_eq!(store.apply(&b).await.unwrap().fenced, vec![1]);
    assert_eq!(interactions(&*store, &id).await["like"], 3);
    // Another process (a restarted node) numbers its batches on its own.
    let mut other = batch(&id, 0, vec![delta("session-1", "viewer-1", e1, 4, &[("like", 1)])]);
    other.origin = "node-a/run-2".into();
    other.number = 1;
    assert_eq!(bare(store.apply(&other).await.unwrap()), ok());
    assert_eq!(interactions(&*store, &id).await["like"], 4);
    assert!(!store.stats(&id, &kinds(), now()).await.unwrap().ended);
    store.end_campaign(&id, now()).await.unwrap();
    assert!(store.stats(&id, &kinds(), now()).await.unwrap().ended);
}

/// Claims `n` sessions `<prefix>-<i>` and applies one like with seq 3 for each; returns
/// their epochs.
async fn sessions_with_likes(store: &dyn Store, id: &str, prefix: &str, n: usize) -> Vec<u64> {
    let mut epochs = Vec::new();
    for i in 0..n {
        epochs.push(claim(store, id, &format!("{prefix}-{i:03}")).await);
    }
    let deltas = (0..n)
        .map(|i| delta(&format!("{prefix}-{i:03}"), "viewer-1", epochs[i], 3, &[("like", 1)]))
        .collect();
    let mut b = batch(id, 0, deltas);
    b.origin = format!("node-{prefix}/run-1");
    b.number = 1;
    let applied = store.apply(&b).await.unwrap();
    assert_eq!((applied.fenced, applied.session_ttl), (vec![], Some(SHORT_TTL)));
    epochs
}

async fn sessions_are_forgotten_within_two_ttls(_: Arc<dyn Store>, kind: &str) {
    let (store, size) = short_ttl_store(kind).await;
    let id = new_campaign(&*store, "forget").await;
    // What stays for the report (counts, series bucket, sketches) is there after round one.
    sessions_with_likes(&*store, &id, "first", 1).await;
    // Plain time: its session and retry records expire one by one, so no single reading
    // says the last of them is gone; two TTLs is the bound the store promises.
    tokio::time::sleep(FORGOTTEN).await;
    let before = size.of(&id);

    let epochs = sessions_with_likes(&*store, &id, "session", 50).await;
    assert!(size.of(&id) >= before + 50, "{} vs {before}", size.of(&id));
    eventually_within(FORGOTTEN, "sessions and retry records forgotten", || async {
        let now = size.of(&id);
        if now == before {
            Ok(())
        } else {
            Err(format!("{now} vs {before}"))
        }
    })
    .await;
    assert_eq!(interactions(&*store, &id).await["like"], 51, "counts are not");

    // A socket that still holds a forgotten session's epoch can neither count nor ack...
    let late = delta("session-007", "viewer-1", epochs[7], 4, &[("like", 5)]);
    assert_eq!(
        store.apply(&batch(&id, 0, vec![late.clone()])).await.unwrap().fenced,
        vec![0]
    );
    // ... the session comes back from the start, with an epoch never seen before ...
    let (again, acked) = store.claim_session(&id, "session-007", &CLAIMER).await.unwrap();
    assert_eq!(acked, 0);
    assert!(again > epochs[49], "{again} vs {epochs:?}");
    // ... and the old socket stays fenced.
    assert_eq!(store.apply(&batch(&id, 0, vec![late])).await.unwrap().fenced, vec![0]);
    assert_eq!(interactions(&*store, &id).await["like"], 51);
}

async fn sessions_that_never_sent_a_seq_leave_nothing_behind(_: Arc<dyn Store>, kind: &str) {
    // Sessions kept an hour: what goes below goes because its socket closed, not by TTL.
    let (store, size) = store_with_session_ttl(kind, Duration::from_secs(3_600)).await;
    let id = new_campaign(&*store, "loop").await;
    let kept = claim(&*store, &id, "session-kept").await;
    let acked = delta("session-kept", "viewer-1", kept, 1, &[("like", 1)]);
    store.apply(&batch(&id, 0, vec![acked])).await.unwrap();
    store
        .apply(&flush_of(&id, "node-a", None, &[("session-kept", kept)]))
        .await
        .unwrap();
    let before = size.of(&id);
    // 400 connect loops: half like (no seq) before they close, half close at once.
    let mut epochs = Vec::new();
    for i in 0..400 {
        let s = format!("loop-{i:04}");
        let e = claim(&*store, &id, &s).await;
        let mut b = flush_of(&id, "node-a", None, &[(&s, e)]);
        if i % 2 == 0 {
            b.sessions = vec![delta(&s, "", e, 0, &[("like", 1)])];
        }
        assert_eq!(store.apply(&b).await.unwrap().fenced, Vec::<usize>::new());
        epochs.push(e);
    }
    assert_eq!(size.of(&id), before, "the loop left state behind");
    assert_eq!(interactions(&*store, &id).await["like"], 201, "its likes count");
    // The session that sent a seq resumes; a loop's comes back from the start, and a
    // socket still holding its old epoch can neither count nor ack.
    assert_eq!(store.claim_session(&id, "session-kept", &CLAIMER).await.unwrap().1, 1);
    let (again, acked) = store.claim_session(&id, "loop-0007", &CLAIMER).await.unwrap();
    assert_eq!(acked, 0);
    assert!(again > epochs[399]);
    let late = delta("loop-0007", "viewer-1", epochs[7], 1, &[("like", 5)]);
    assert_eq!(store.apply(&batch(&id, 0, vec![late])).await.unwrap().fenced, vec![0]);
    assert_eq!(interactions(&*store, &id).await["like"], 201);
}

async fn interactors_wait_for_the_socket_to_qualify(store: Arc<dyn Store>, _: &str) {
    let id = new_campaign(&*store, "dwell").await;
    let a = claim(&*store, &id, "session-a").await;
    let b = claim(&*store, &id, "session-b").await;
    // Counts of sockets that have not qualified (viewer ""): counted, nobody added.
    let early = batch(
        &id,
        0,
        vec![
            delta("session-a", "", a, 1, &[("like", 2)]),
            delta("session-b", "", b, 0, &[("cheer", 1)]),
        ],
    );
    store.apply(&early).await.unwrap();
    let stats = store.stats(&id, &kinds(), now()).await.unwrap();
    assert_eq!((stats.unique_viewers, stats.interactors), (0, 0));
    assert_eq!(stats.interactions["like"] + stats.interactions["cheer"], 3);
    // Socket a qualifies: its viewer is unique and, having interacted, an interactor.
    let mut qualified = batch(&id, 0, vec![]);
    qualified.new_viewers = vec!["viewer-a".into()];
    qualified.interactors = vec!["viewer-a".into()];
    store.apply(&qualified).await.unwrap();
    let stats = store.stats(&id, &kinds(), now()).await.unwrap();
    assert_eq!((stats.unique_viewers, stats.interactors), (1, 1));
    // Ended: the lists count no more than the counts do.
    store.end_campaign(&id, 2_000).await.unwrap();
    qualified.new_viewers = vec!["viewer-b".into()];
    qualified.interactors = vec!["viewer-b".into()];
    assert!(store.apply(&qualified).await.unwrap().ended);
    let stats = store.stats(&id, &kinds(), now()).await.unwrap();
    assert_eq!((stats.unique_viewers, stats.interactors), (1, 1));
}

async fn quiet_open_sessions_are_kept_and_stale_ones_are_not(_: Arc<dyn Store>, kind: &str) {
    let (store, _) = short_ttl_store(kind).await;
    let id = new_campaign(&*store, "touch").await;
    let epochs = sessions_with_likes(&*store, &id, "session", 2).await;
    let quiet = ("session-000".to_owned(), epochs[0]);
    // Three TTLs pass; the flusher refreshes the open socket's session every TTL/3. Plain
    // time: the test plays the flusher's clock, and what it shows is that nothing expires.
    for _ in 0..9 {
        tokio::time::sleep(SHORT_TTL / 3).await;
        let mut b = batch(&id, 0, vec![]);
        b.touch = vec![quiet.clone()];
        store.apply(&b).await.unwrap();
    }
    let next = |s: &str, e: u64| batch(&id, 0, vec![delta(s, "viewer-1", e, 4, &[("like", 1)])]);
    assert_eq!(
        store.apply(&next("session-000", epochs[0])).await.unwrap().fenced,
        Vec::<usize>::new()
    );
    assert_eq!(
        store.apply(&next("session-001", epochs[1])).await.unwrap().fenced,
        vec![0]
    );
    assert_eq!(interactions(&*store, &id).await["like"], 3);

    // Once the session moved to another socket, the old one's refreshes keep nothing alive.
    let (moved, acked) = store.claim_session(&id, "session-000", &CLAIMER).await.unwrap();
    assert_eq!(acked, 4);
    // The flusher's clock again: a read that would show the session gone would claim it.
    for _ in 0..7 {
        tokio::time::sleep(SHORT_TTL / 3).await;
        let mut b = batch(&id, 0, vec![]);
        b.touch = vec![quiet.clone()];
        store.apply(&b).await.unwrap();
    }
    assert_eq!(store.apply(&next("session-000", moved)).await.unwrap().fenced, vec![0]);
    assert_eq!(store.claim_session(&id, "session-000", &CLAIMER).await.unwrap().1, 0);
}

fn owner(node: &'static str, region: &'static str, lease: Duration) -> Owner<'static> {
    Owner {
        node,
        region,
        units: &[],
        lease,
    }
}

/// A flush from `node` carrying only its presence (when given) and the sockets it closed.
fn flush_of(id: &str, node: &str, p: Option<Presence>, left: &[(&str, u64)]) -> Batch {
    let mut b = batch(id, 0, vec![]);
    b.node = node.to_owned();
    b.presence = p.map(|p| (node.to_owned(), p));
    b.left = left.iter().map(|(s, e)| (s.to_string(), *e)).collect();
    b
}

async fn moved_from(store: &dyn Store, b: &Batch) -> Vec<u64> {
    let mut moved = store.apply(b).await.unwrap().moved;
    moved.sort_unstable();
    moved
}

async fn a_session_claimed_while_counted_elsewhere_counts_once(store: Arc<dyn Store>, _: &str) {
    let id = new_campaign(&*store, "once").await;
    let lease = Duration::from_secs(30);
    let (a, b) = (owner("node-a", "US", lease), owner("node-b", "CN-BJ", lease));
    let mut on_a = Vec::new();
    for s in ["session-1", "session-2", "session-3"] {
        on_a.push(store.claim_session(&id, s, &a).await.unwrap().0);
    }
    store
        .apply(&flush_of(&id, "node-a", Some(presence(3, &[("US", 3)])), &[]))
        .await
        .unwrap();
    // Two of them come back through node-b while node-a still counts them (a crashed node,
    // half-open sockets): at once, node-a counts them no more.
    store.claim_session(&id, "session-1", &b).await.unwrap();
    store.claim_session(&id, "session-2", &b).await.unwrap();
    let s = store.stats(&id, &kinds(), now()).await.unwrap();
    assert_eq!((s.viewers, s.regions.clone()), (1, map(&[("US", 1)])), "{s:?}");
    // node-b's flush counts them there: three viewers, and the peak never saw five.
    let to_b = flush_of(&id, "node-b", Some(presence(2, &[("CN-BJ", 2)])), &[]);
    assert_eq!(moved_from(&*store, &to_b).await, Vec::<u64>::new());
    let s = store.stats(&id, &kinds(), now()).await.unwrap();
    assert_eq!((s.viewers, s.peak_viewers), (3, 3), "{s:?}");
    assert_eq!(s.regions, map(&[("US", 1), ("CN-BJ", 2)]));
    // node-a learns which of its sockets moved, closes them and says so: still three.
    let told = moved_from(&*store, &flush_of(&id, "node-a", None, &[])).await;
    assert_eq!(told, on_a[..2].to_vec());
    let closed = [("session-1", on_a[0]), ("session-2", on_a[1])];
    let done = flush_of(&id, "node-a", Some(presence(1, &[("US", 1)])), &closed);
    assert_eq!(moved_from(&*store, &done).await, Vec::<u64>::new());
    let s = store.stats(&id, &kinds(), now()).await.unwrap();
    assert_eq!((s.viewers, s.peak_viewers), (3, 3), "{s:?}");

    // The same node: a half-open socket and its replacement on node-a count once.
    store.claim_session(&id, "session-3", &a).await.unwrap();
    let both = flush_of(&id, "node-a", Some(presence(2, &[("US", 2)])), &[]);
    assert_eq!(moved_from(&*store, &both).await, vec![on_a[2]]);
    let s = store.stats(&id, &kinds(), now()).await.unwrap();
    assert_eq!((s.viewers, s.peak_viewers), (3, 3), "{s:?}");
    let one = flush_of(
        &id,
        "node-a",
        Some(presence(1, &[("US", 1)])),
        &[("session-3", on_a[2])],
    );
    assert_eq!(moved_from(&*store, &one).await, Vec::<u64>::new());
    let s = store.stats(&id, &kinds(), now()).await.unwrap();
    assert_eq!((s.viewers, s.peak_viewers), (3, 3), "{s:?}");
    let shares: Vec<_> = s.nodes.iter().map(|n| (n.node.as_str(), n.viewers)).collect();
    assert_eq!(shares, [("node-a", 1), ("node-b", 2)]);
}

async fn a_dead_nodes_moved_sockets_go_with_its_lease(store: Arc<dyn Store>, _: &str) {
    let id = new_campaign(&*store, "dead").await;
    let short = Duration::from_millis(700);
    let (a, b) = (
        owner("node-a", "US", short),
        owner("node-b", "US", Duration::from_secs(30)),
    );
    for s in ["session-1", "session-2"] {
        store.claim_session(&id, s, &a).await.unwrap();
    }
    let mut to_a = flush_of(&id, "node-a", Some(presence(2, &[("US", 2)])), &[]);
    to_a.presence_ttl = short;
    store.apply(&to_a).await.unwrap();
    // node-a is killed; its viewers reconnect through node-b before its lease runs out.
    for s in ["session-1", "session-2"] {
        store.claim_session(&id, s, &b).await.unwrap();
    }
    store
        .apply(&flush_of(&id, "node-b", Some(presence(2, &[("US", 2)])), &[]))
        .await
        .unwrap();
    let s = store.stats(&id, &kinds(), now()).await.unwrap();
    assert_eq!((s.viewers, s.peak_viewers), (2, 2), "{s:?}");
    let listed = |nodes: &[NodeShare], node: &str| nodes.iter().any(|n| n.node == node);
    assert!(listed(&s.nodes, "node-a"), "{s:?}");
    // node-a's lease runs out: it leaves the list, and its moved marks take nothing along.
    let s = eventually("node-a's lease to run out", || async {
        let s = store.stats(&id, &kinds(), now()).await.unwrap();
        (!listed(&s.nodes, "node-a")).then_some(s)
    })
    .await;
    assert_eq!(s.viewers, 2, "{s:?}");
    // node-a comes back under the same name: the old marks went with its old lease.
    store.claim_session(&id, "session-9", &a).await.unwrap();
    let mut back = flush_of(&id, "node-a", Some(presence(1, &[("US", 1)])), &[]);
    back.presence_ttl = Duration::from_secs(30);
    assert_eq!(moved_from(&*store, &back).await, Vec::<u64>::new());
    let s = store.stats(&id, &kinds(), now()).await.unwrap();
    assert_eq!((s.viewers, s.peak_viewers), (3, 3), "{s:?}");
}

async fn a_closed_socket_moves_nothing(store: Arc<dyn Store>, _: &str) {
    let id = new_campaign(&*store, "closed").await;
    let lease = Duration::from_secs(30);
    let (a, b) = (owner("node-a", "US", lease), owner("node-b", "US", lease));
    let e1 = store.claim_session(&id, "session-1", &a).await.unwrap().0;
    store.claim_session(&id, "session-2", &a).await.unwrap();
    store
        .apply(&flush_of(&id, "node-a", Some(presence(2, &[("US", 2)])), &[]))
        .await
        .unwrap();
    // session-1's socket closes on node-a, then the viewer comes back through node-b.
    let gone = flush_of(&id, "node-a", Some(presence(1, &[("US", 1)])), &[("session-1", e1)]);
    store.apply(&gone).await.unwrap();
    store.claim_session(&id, "session-1", &b).await.unwrap();
    store
        .apply(&flush_of(&id, "node-b", Some(presence(1, &[("US", 1)])), &[]))
        .await
        .unwrap();
    assert_eq!(
        moved_from(&*store, &flush_of(&id, "node-a", None, &[])).await,
        Vec::<u64>::new()
    );
    assert_eq!(store.stats(&id, &kinds(), now()).await.unwrap().viewers, 2);
}

/// What an idle node's flusher does when its last socket was moved away and closed: it
/// reports the close with its presence, which no longer counts the socket, then leaves.
/// The moved mark goes in the same step as the lease that counted the socket, so no read
/// in between (a tick on any node raises the peak from one) counts the session twice.
async fn a_moved_socket_closing_last_on_its_node_counts_once(store: Arc<dyn Store>, _: &str) {
    let id = new_campaign(&*store, "last").await;
    let lease = Duration::from_secs(30);
    let (a, b) = (owner("node-a", "US", lease), owner("node-b", "US", lease));
    let old = store.claim_session(&id, "session-1", &a).await.unwrap().0;
    let one = || Some(presence(1, &[("US", 1)]));
    store.apply(&flush_of(&id, "node-a", one(), &[])).await.unwrap();
    // The viewer's new socket on node-b; the old one, half-open on node-a, is its only one.
    store.claim_session(&id, "session-1", &b).await.unwrap();
    store.apply(&flush_of(&id, "node-b", one(), &[])).await.unwrap();
    let counted_once =
        |what: &str, s: livetally::store::Stats| assert_eq!((s.viewers, s.peak_viewers), (1, 1), "{what}: {s:?}");
    counted_once("moved", store.stats(&id, &kinds(), now()).await.unwrap());
    assert_eq!(
        moved_from(&*store, &flush_of(&id, "node-a", one(), &[])).await,
        vec![old]
    );
    let closed = flush_of(&id, "node-a", Some(presence(0, &[])), &[("session-1", old)]);
    assert_eq!(moved_from(&*store, &closed).await, Vec::<u64>::new());
    counted_once("closed", store.stats(&id, &kinds(), now()).await.unwrap());
    store.drop_presence(&id, "node-a").await.unwrap();
    counted_once("left", store.stats(&id, &kinds(), now()).await.unwrap());
}

// ---------------------------------------------------------------------------------------
// Orgs

/// A second connection to the same backend: it has read no org tree yet, so a read goes
/// to the store's chunks, not to the node's cache. The memory store is its own backend.
async fn fresh(store: &Arc<dyn Store>, kind: &str) -> Arc<dyn Store> {
    match kind {
        "redis" => redis_store().await,
        "redis-cluster" => cluster_store().await,
        _ => store.clone(),
    }
}

/// A six-level org of `n` units: one top unit, then each unit's parent is `(i - 1) / 8`
/// up to level 6, Chinese names.
fn org_tree(n: usize) -> Arc<Tree> {
    let mut b = TreeBuilder::default();
    let mut level = vec![0usize; n];
    for i in 0..n {
        let parent = if i == 0 { None } else { Some((i - 1) / 8) };
        let parent = parent.filter(|&p| level[p] < 6).unwrap_or(0);
        level[i] = if i == 0 { 1 } else { level[parent] + 1 };
        let parent_code = if i == 0 { String::new() } else { format!("u{parent}") };
        b.push(&format!("u{i}"), &parent_code, &format!("单位{i}号")).unwrap();
    }
    Arc::new(b.finish())
}

async fn org_versions_are_switched_kept_and_pruned(store: Arc<dyn Store>, kind: &str) {
    let org = uid("org");
    let (first, replaced) = store.put_org(&org, org_tree(20)).await.unwrap();
    assert_eq!((first.version, first.units, replaced), (1, 20, false));
    assert_eq!(first.levels, [1, 8, 11]);
    let (second, replaced) = store.put_org(&org, org_tree(9)).await.unwrap();
    assert_eq!((second.version, second.units, replaced), (2, 9, true));
    assert_eq!(store.org_summary(&org, None).await.unwrap(), Some(second.clone()));
    assert_eq!(store.org_summary(&org, Some(1)).await.unwrap(), Some(first.clone()));
    assert_eq!(store.org_summary(&org, Some(3)).await.unwrap(), None);
    assert!(store.list_orgs().await.unwrap().contains(&second));

    let other = fresh(&store, kind).await;
    let old = other.org_tree(&org, 1).await.unwrap().expect("version 1");
    assert_eq!(old.unit(old.find("u19").unwrap()).path, ["u0", "u2", "u19"]);

    store.prune_org(&org, &[]).await.unwrap();
    let other = fresh(&store, kind).await;
    assert!(other.org_tree(&org, 1).await.unwrap().is_none());
    assert_eq!(other.org_tree(&org, 2).await.unwrap().unwrap().len(), 9);

    // Deleted: gone from the reads, the kept version still there for its campaigns.
    assert!(store.delete_org(&org, &[2]).await.unwrap());
    assert_eq!(store.org_summary(&org, None).await.unwrap(), None);
    assert!(!store.list_orgs().await.unwrap().iter().any(|s| s.org == org));
    assert!(fresh(&store, kind).await.org_tree(&org, 2).await.unwrap().is_some());
    assert!(!store.delete_org(&org, &[]).await.unwrap());
    let (again, replaced) = store.put_org(&org, org_tree(3)).await.unwrap();
    assert_eq!((again.version, replaced), (3, false));
}

async fn a_large_org_round_trips_through_a_fresh_connection(store: Arc<dyn Store>, kind: &str) {
    let org = uid("big");
    let tree = org_tree(40_000);
    let (summary, _) = store.put_org(&org, tree.clone()).await.unwrap();
    assert_eq!(summary.levels.iter().sum::<u64>(), 40_000);
    assert_eq!(summary.levels.len(), 6);
    let back = fresh(&store, kind).await.org_tree(&org, 1).await.unwrap().unwrap();
    assert_eq!(back.len(), 40_000);
    for code in ["u0", "u39999", "u12345"] {
        assert_eq!(back.unit(back.find(code).unwrap()), tree.unit(tree.find(code).unwrap()));
    }
    assert_eq!(back.search("单位3999", 50).len(), 11);
    if kind == "redis-cluster" {
        // The chunks are spread: more than one master holds some.
        let holding = CLUSTER
            .get()
            .unwrap()
            .nodes()
            .iter()
            .filter(|n| n.footprint(&format!("lt:{{o:{org}:*")) > 0);
        assert!(holding.count() > 1);
    }
}

// ---------------------------------------------------------------------------------------
// The webhook outbox

#[path = "store_contract/outbox.rs"]
mod outbox;
