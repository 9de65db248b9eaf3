//! The units seam's contract (spec v1.2, "The organisation"): a unit's numbers are its own
//! plus its descendants', counted once however a batch is retried or fenced; upper units'
//! viewers ride in the node leases and leave with them; deeper viewers are each node's own
//! hash, summed over the live nodes and gone with the node's lease.

use std::sync::Arc;
use std::time::Duration;

use livetally::org::{Tree, TreeBuilder};
use livetally::store::redis::RedisStore;
use livetally::store::units::{unit_key, UnitPath, UNASSIGNED};
use livetally::store::{Campaigns, Registration, Signups, Store, UnitTotals, Units, FOLD_EVERY};

use super::support::redis::RedisServer;
use super::support::wait::eventually;
use super::{batch, campaign, claim, delta, footprint, kinds, map, new_campaign, now, presence};

fn path(codes: &[&str]) -> UnitPath {
    codes.iter().map(|c| c.to_string()).collect::<Vec<_>>().into()
}

/// The org of these cases: 广东 (GD) > 广州 (GZ) > 天河 (TH); 广东 > 深圳 (SZ); 北京 (BJ).
fn org() -> Arc<Tree> {
    let mut b = TreeBuilder::default();
    for (code, parent) in [("GD", ""), ("GZ", "GD"), ("TH", "GZ"), ("SZ", "GD"), ("BJ", "")] {
        b.push(code, parent, code).unwrap();
    }
    Arc::new(b.finish())
}

fn reg(viewer: &str, unit: Option<UnitPath>) -> Registration {
    Registration {
        viewer: viewer.to_owned(),
        registered_at: 1_700_000_000_000,
        fields: "{}".to_owned(),
        unit,
    }
}

fn codes(cs: &[&str]) -> Vec<String> {
    cs.iter().map(|c| c.to_string()).collect()
}

fn totals(sessions: u64, likes: u64, share_visits: u64) -> UnitTotals {
    let mut t = UnitTotals {
        sessions,
        share_visits,
        ..UnitTotals::default()
    };
    for kind in kinds() {
        t.interactions.insert(kind, 0);
    }
    t.interactions.insert("like".into(), likes);
    t
}

pub async fn unit_numbers_roll_up_to_every_ancestor(store: Arc<dyn Store>, kind: &str) {
    let org = org();
    let id = new_campaign(&*store, "units").await;
    // 广东 (GD) > 广州 (GZ) > 天河 (TH); 广东 > 深圳 (SZ); and a viewer with no unit.
    let (th, sz, none) = (path(&["GD", "GZ", "TH"]), path(&["GD", "SZ"]), path(&[UNASSIGNED]));
    let (e1, e2, e3) = (
        claim(&*store, &id, "s1").await,
        claim(&*store, &id, "s2").await,
        claim(&*store, &id, "s3").await,
    );
    let mut d1 = delta("s1", "v1", e1, 3, &[("like", 3)]);
    d1.unit = Some(th.clone());
    let mut d2 = delta("s2", "v2", e2, 2, &[("like", 2)]);
    d2.unit = Some(sz.clone());
    let mut d3 = delta("s3", "v3", e3, 1, &[("like", 1)]);
    d3.unit = Some(none.clone());
    let mut b = batch(&id, 0, vec![d1, d2, d3]);
    b.units.sessions = vec![
        ("s1".into(), th.clone()),
        ("s2".into(), sz.clone()),
        ("s3".into(), none.clone()),
    ];
    b.units.share_visits = vec![(th.clone(), 4), (none.clone(), 1)];
    (b.origin, b.number) = ("node-a/run-1".into(), 1);
    store.apply(&b).await.unwrap();
    // A retried batch (same origin and number: its reply was lost) counts nothing again.
    store.apply(&b).await.unwrap();

    // Folded into the totals by whichever reader or node gets there: two leased folds at
    // once and a forced one fold each count once.
    let (a, b, c) = tokio::join!(
        store.fold_units(&id, &org, Some(FOLD_EVERY)),
        store.fold_units(&id, &org, Some(FOLD_EVERY)),
        store.fold_units(&id, &org, None)
    );
    for folded in [a, b, c] {
        folded.unwrap();
    }
    store.fold_units(&id, &org, None).await.unwrap();
    let asked = codes(&["GD", "GZ", "TH", "SZ", UNASSIGNED, "ZZ"]);
    let got = store.unit_totals(&id, &kinds(), &asked).await.unwrap();
    assert_eq!(
        got,
        vec![
            totals(2, 5, 4),
            totals(1, 3, 4),
            totals(1, 3, 4),
            totals(1, 2, 0),
            totals(1, 1, 1),
            totals(0, 0, 0)
        ]
    );

    // A session counts in the unit it first qualified in, once (so the top level adds up
    // to the campaign); its interactions count where it is now. A fenced delta (an older
    // epoch) adds nothing anywhere.
    let e1b = claim(&*store, &id, "s1").await;
    let mut stale = delta("s1", "v1", e1, 9, &[("like", 6)]);
    stale.unit = Some(th.clone());
    let mut moved = delta("s1", "v1", e1b, 4, &[("like", 1)]);
    moved.unit = Some(sz.clone());
    // In one batch: the fenced delta is left out of the batch's unit counts, the other kept.
    let mut b2 = batch(&id, 0, vec![stale, moved]);
    b2.units.sessions = vec![("s1".into(), sz.clone())];
    store.apply(&b2).await.unwrap();
    store.fold_units(&id, &org, None).await.unwrap();
    let got = store
        .unit_totals(&id, &kinds(), &codes(&["GD", "TH", "SZ"]))
        .await
        .unwrap();
    assert_eq!(got, vec![totals(2, 6, 4), totals(1, 3, 4), totals(1, 3, 0)]);
    // The campaign's own numbers agree with the top of the tree plus `unassigned`.
    let stats = store.stats(&id, &kinds(), now()).await.unwrap();
    assert_eq!(stats.interactions["like"], 6 + 1);
    // Deleted, the totals go too (in Redis, shards outside the campaign's slot).
    store.end_campaign(&id, now()).await.unwrap();
    store.delete_campaign(&id).await.unwrap();
    assert_eq!(footprint(kind, &id), 0);
}

/// A roller that died between folding some shards and trimming the deltas: the next fold
/// takes the same entries, and the shards that had them already add nothing.
#[tokio::test]
async fn a_fold_cut_short_is_finished_once() {
    let org = org();
    let server = RedisServer::start();
    let store = RedisStore::connect_standalone(&server.url()).await.unwrap();
    let id = new_campaign(&store, "cutshort").await;
    assert!(store.register(&id, &reg("v1", Some(path(&["GD"])))).await.unwrap());
    store.fold_units(&id, &org, None).await.unwrap();
    // Where GD's totals live (one of 64 shards), as a roller would have found it.
    let keys: Vec<String> = server.query(&["KEYS", &format!("lt:{{ct:{id}:*}}:totals")]);
    assert_eq!(keys.len(), 1);
    let gd = &keys[0];
    // Two more registrations' deltas, planned, and GD's shard folded (BJ's is another);
    // then the roller died.
    let delta = r#"{"p":["GD","BJ"],"c":[[1,"r",5],[2,"r",7]]}"#;
    let udelta = format!("lt:{{c:{id}}}:udelta");
    let uroll = format!("lt:{{c:{id}}}:uroll");
    let _: i64 = server.query(&["RPUSH", &udelta, delta]);
    let head: String = server.query(&["HGET", &uroll, "head"]);
    let plan = (head.parse::<u64>().unwrap() + 1).to_string();
    let _: i64 = server.query(&["HSET", &uroll, "plan", &plan]);
    let _: i64 = server.query(&["HINCRBY", gd, "GD|r", "5"]);
    let _: i64 = server.query(&["HSET", gd, "#plan", &plan]);

    store.fold_units(&id, &org, None).await.unwrap();
    store.fold_units(&id, &org, None).await.unwrap();
    let got = store.unit_totals(&id, &kinds(), &codes(&["GD", "BJ"])).await.unwrap();
    let regs: Vec<u64> = got.iter().map(|t| t.registrations).collect();
    assert_eq!(regs, [6, 7]);
    let left: i64 = server.query(&["LLEN", &udelta]);
    assert_eq!(left, 0, "folded entries are trimmed");
}

/// A roller still folding for a campaign when it is deleted: its writes land after the
/// delete. A campaign created again under the same id neither reads them nor takes its
/// own first folds for ones those shards already had.
#[tokio::test]
async fn a_stale_rollers_writes_reach_no_campaign_created_again() {
    let org = org();
    let server = RedisServer::start();
    let store = RedisStore::connect_standalone(&server.url()).await.unwrap();
    let id = new_campaign(&store, "again").await;
    for viewer in ["v1", "v2", "v3"] {
        assert!(store.register(&id, &reg(viewer, Some(path(&["GD"])))).await.unwrap());
    }
    store.fold_units(&id, &org, None).await.unwrap();
    let pattern = format!("lt:{{ct:{id}:*}}:totals");
    let keys: Vec<String> = server.query(&["KEYS", &pattern]);
    assert_eq!(keys.len(), 1, "GD's shard");
    let written: Vec<(String, String)> = server.query(&["HGETALL", &keys[0]]);
    assert!(written.contains(&("GD|r".to_owned(), "3".to_owned())), "{written:?}");
    store.end_campaign(&id, now()).await.unwrap();
    store.delete_campaign(&id).await.unwrap();
    let left: Vec<String> = server.query(&["KEYS", &pattern]);
    assert_eq!(left, Vec::<String>::new());

    // The stale roller's writes, then the campaign again with one registration in GD.
    for (field, value) in &written {
        let _: i64 = server.query(&["HSET", &keys[0], field, value]);
    }
    store.create_campaign(&campaign(&id, 1_000)).await.unwrap();
    assert!(store.register(&id, &reg("v9", Some(path(&["GD"])))).await.unwrap());
    let asked = codes(&["GD"]);
    let got = store.unit_totals(&id, &kinds(), &asked).await.unwrap();
    assert_eq!(got[0].registrations, 0, "nothing folded yet for this campaign");
    store.fold_units(&id, &org, None).await.unwrap();
    let got = store.unit_totals(&id, &kinds(), &asked).await.unwrap();
    assert_eq!(got[0].registrations, 1);
}

pub async fn upper_unit_viewers_ride_in_leases_and_leave_with_the_node(store: Arc<dyn Store>, _: &str) {
    let id = new_campaign(&*store, "uviewers").await;
    let (gd, gz) = (unit_key("GD"), unit_key("GZ"));
    let mut a = batch(&id, 0, vec![]);
    a.presence = Some(("node-a".into(), presence(3, &[("US", 3), (&gd, 3), (&gz, 2)])));
    let mut b = batch(&id, 0, vec![]);
    b.presence = Some(("node-b".into(), presence(2, &[("US", 2), (&gd, 2)])));
    b.units.new_viewers = vec![
        ("GD".into(), "v1".into()),
        ("GD".into(), "v2".into()),
        ("GZ".into(), "v1".into()),
    ];
    store.apply(&a).await.unwrap();
    store.apply(&b).await.unwrap();
    store.apply(&b).await.unwrap();

    let stats = store.stats(&id, &kinds(), now()).await.unwrap();
    assert_eq!(stats.viewers, 5);
    // Units are not regions: the public numbers do not show them.
    assert_eq!(stats.regions, map(&[("US", 5)]));
    assert_eq!(stats.units, map(&[("GD", 5), ("GZ", 2)]));
    let at = now();
    store
        .record_tick(&id, 0, at, stats.viewers, &stats.regions_and_units())
        .await
        .unwrap();

    store.drop_presence(&id, "node-a").await.unwrap();
    let stats = store.stats(&id, &kinds(), now()).await.unwrap();
    assert_eq!(stats.units, map(&[("GD", 2)]));
    store
        .record_tick(&id, 0, now(), stats.viewers, &stats.regions_and_units())
        .await
        .unwrap();

    let peaks = store.unit_peaks(&id, &codes(&["GD", "GZ", "SZ"])).await.unwrap();
    let got: Vec<_> = peaks
        .iter()
        .map(|p| (p.peak_viewers, p.peak_at, p.unique_viewers))
        .collect();
    assert_eq!(got, vec![(5, Some(at), 2), (2, Some(at), 1), (0, None, 0)]);
    assert_eq!(
        store.stats(&id, &kinds(), now()).await.unwrap().units_at_peak,
        map(&[("GD", 5), ("GZ", 2)])
    );
}

pub async fn deep_viewers_sum_the_live_nodes_and_expire_with_the_lease(store: Arc<dyn Store>, _: &str) {
    let id = new_campaign(&*store, "deep").await;
    let lease = Duration::from_secs(600);
    let nodes = codes(&["node-a", "node-b"]);
    let put = |node: &'static str, changes: &[(&str, u64)], full: bool, lease: Duration| {
        let (store, id) = (store.clone(), id.clone());
        let changes: Vec<(String, u64)> = changes.iter().map(|(c, n)| (c.to_string(), *n)).collect();
        async move { store.put_deep_viewers(&id, node, &changes, full, lease).await.unwrap() }
    };
    // A node's first write is whole; the answer says whether its hash was there before.
    assert!(!put("node-a", &[("TH", 3), ("XC", 1)], true, lease).await);
    assert!(!put("node-b", &[("TH", 2)], true, lease).await);
    let asked = codes(&["TH", "XC", "ZZ"]);
    assert_eq!(store.deep_viewers(&id, &nodes, &asked).await.unwrap(), vec![5, 1, 0]);
    // Only the nodes named count (a node missing from the stats read is dead).
    assert_eq!(
        store.deep_viewers(&id, &codes(&["node-b"]), &asked).await.unwrap(),
        vec![2, 0, 0]
    );
    // The same numbers read whole (a level at once), units with none left out.
    let all = |nodes: Vec<String>| {
        let (store, id) = (store.clone(), id.clone());
        async move { store.all_deep_viewers(&id, &nodes).await.unwrap() }
    };
    assert_eq!(
        all(nodes.clone()).await,
        [("TH".to_owned(), 5), ("XC".to_owned(), 1)].into()
    );
    assert_eq!(all(codes(&["node-b"])).await, [("TH".to_owned(), 2)].into());
    // A change replaces the node's number; 0 removes it.
    assert!(put("node-a", &[("TH", 1), ("XC", 0)], false, lease).await);
    assert_eq!(store.deep_viewers(&id, &nodes, &asked).await.unwrap(), vec![3, 0, 0]);
    assert_eq!(all(nodes.clone()).await, [("TH".to_owned(), 3)].into());
    // A whole write replaces the node's map: what it no longer names is gone.
    assert!(put("node-a", &[("XC", 4)], true, lease).await);
    assert_eq!(store.deep_viewers(&id, &nodes, &asked).await.unwrap(), vec![2, 4, 0]);

    // A node that stops writing is gone a lease after its last write, and its next write
    // is told so.
    assert!(put("node-b", &[], false, Duration::from_millis(300)).await);
    eventually("node-b's deep viewers expire", || {
        let (store, id, nodes, asked) = (store.clone(), id.clone(), nodes.clone(), asked.clone());
        async move { store.deep_viewers(&id, &nodes, &asked).await.unwrap() == vec![0, 4, 0] }
    })
    .await;
    assert_eq!(all(nodes.clone()).await, [("XC".to_owned(), 4)].into());
    assert!(!put("node-b", &[("TH", 1)], false, lease).await);
}

pub async fn registrations_count_in_their_unit_and_keep_its_code(store: Arc<dyn Store>, _: &str) {
    let org = org();
    let id = new_campaign(&*store, "ureg").await;
    assert!(store
        .register(&id, &reg("viewer-1", Some(path(&["GD", "SZ"]))))
        .await
        .unwrap());
    assert!(store
        .register(&id, &reg("viewer-2", Some(path(&[UNASSIGNED]))))
        .await
        .unwrap());
    assert!(store.register(&id, &reg("viewer-3", None)).await.unwrap());
    // The first registration wins: the same viewer again counts nowhere.
    assert!(!store
        .register(&id, &reg("viewer-1", Some(path(&["GD", "GZ"]))))
        .await
        .unwrap());
    store.fold_units(&id, &org, None).await.unwrap();
    let got = store
        .unit_totals(&id, &kinds(), &codes(&["GD", "SZ", "GZ", UNASSIGNED]))
        .await
        .unwrap();
    let regs: Vec<u64> = got.iter().map(|t| t.registrations).collect();
    assert_eq!(regs, [1, 1, 0, 1]);
    let page = store.registrations(&id, 0, 10).await.unwrap();
    let units: Vec<(&str, Option<&str>)> = page.iter().map(|(_, r)| (r.viewer.as_str(), r.unit_code())).collect();
    assert_eq!(
        units,
        [
            ("viewer-1", Some("SZ")),
            ("viewer-2", Some("unassigned")),
            ("viewer-3", None)
        ]
    );
}
