//! `livetally simulate`: one campaign's launch at national scale against a real Redis
//! (Cluster), without sockets. Hundreds of virtual nodes ([`node::VirtualNode`]) each run
//! the real tally, flusher and broadcaster; synthetic viewers are claimed and counted the
//! way admission counts a socket, and a like-storm goes into their sessions' slots the way
//! the socket loop puts it there. "Broadcast" is each node reading the stats and encoding
//! its frames once per tick; what every node's last frame shows is checked against what
//! was put in. `scripts/bench-seed-scale.sh` runs it against a 3-master Cluster.
//!
//! Unlike `livetally load` this is not a client: it uses the server's internals.

pub mod info;
pub mod node;
pub mod org;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;

use crate::campaign::{Access, Campaign, State};
use crate::config::defaults;
use crate::load::hist::Hist;
use crate::org::Tree;
use crate::store::redis::RedisStore;
use crate::store::{Store, StoreError};
use crate::tally::flusher::FlushTiming;
use crate::util::duration::parse_duration;
use info::{MasterRate, Masters, Sample};
use node::{Shown, TickHist, VirtualNode};

/// Flags of `livetally simulate`.
#[derive(Debug, clap::Args)]
pub struct SimArgs {
    /// Cluster nodes to connect through (`redis://host:port`), comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub redis_cluster: Vec<String>,
    /// Masters to read `INFO` from (`host:port`), comma-separated (default: --redis-cluster).
    #[arg(long, value_delimiter = ',')]
    pub masters: Vec<String>,
    /// Simulated viewers of the one campaign.
    #[arg(long, default_value_t = 4_500_000)]
    pub viewers: u64,
    /// Virtual nodes.
    #[arg(long, default_value_t = 300)]
    pub nodes: usize,
    /// Regions the viewers spread over.
    #[arg(long, default_value_t = 31)]
    pub regions: usize,
    #[arg(long, default_value = defaults::TICK.text, value_parser = parse_duration)]
    pub tick: Duration,
    #[arg(long, default_value = defaults::FLUSH_INTERVAL.text, value_parser = parse_duration)]
    pub flush_interval: Duration,
    #[arg(long, default_value = defaults::PRESENCE_TTL.text, value_parser = parse_duration)]
    pub presence_ttl: Duration,
    /// Session claims in flight at once during the ramp.
    #[arg(long, default_value_t = 64)]
    pub claim_concurrency: usize,
    /// Cluster connections the virtual nodes share (node i uses connection i mod this).
    #[arg(long, default_value_t = 4)]
    pub connections: usize,
    /// The like-storm's rate, over all nodes.
    #[arg(long, default_value_t = 200_000)]
    pub likes_per_sec: u64,
    /// How long the like-storm lasts.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub storm: Duration,
    /// Share of the nodes killed at the end, in percent.
    #[arg(long, default_value_t = 10)]
    pub kill_percent: usize,
    /// Longest wait for any count to converge.
    #[arg(long, default_value = "180s", value_parser = parse_duration)]
    pub wait: Duration,
    /// The campaign id (created by the run; must not exist).
    #[arg(long, default_value = "seed-launch")]
    pub campaign: String,
    /// Units of an org in the seed's six-level proportions (`sim::org`) the campaign counts
    /// by, every viewer attributed to a village (0: no org).
    #[arg(long, default_value_t = 0)]
    pub org_units: u64,
    /// The org's levels whose viewers ride in the leases (as the node's flag).
    #[arg(long, default_value_t = defaults::UNIT_PEAK_DEPTH, value_parser = clap::value_parser!(u8).range(1..=6))]
    pub unit_peak_depth: u8,
}

/// Runs the simulation; the exit code is 0 when every count was exact.
pub fn main(args: SimArgs) -> anyhow::Result<i32> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    anyhow::ensure!(args.nodes > 0 && args.viewers > 0, "--nodes and --viewers must be > 0");
    anyhow::ensure!((1..=60).contains(&args.regions), "--regions must be 1..60");
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let exact = rt.block_on(run(args))?;
    Ok(if exact { 0 } else { 1 })
}

/// What every node should show.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    viewers: u64,
    regions: BTreeMap<String, u64>,
    interactions: BTreeMap<String, u64>,
}

/// `name=n` pairs for a person reading the simulator's output (`CN=3, US=2`).
pub(crate) fn counts(m: &BTreeMap<String, u64>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    m.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

impl Expected {
    fn matches(&self, s: &Shown, peak: u64) -> bool {
        s.viewers == self.viewers
            && s.peak_viewers == peak
            && s.regions == self.regions
            && s.interactions == self.interactions
    }
}

struct Sim {
    nodes: Vec<VirtualNode>,
    /// The campaign's org, and `--unit-peak-depth`.
    org: Option<(Arc<Tree>, u8)>,
    /// Indices of nodes still running.
    alive: Vec<usize>,
    masters: Masters,
    /// The masters' addresses, as the phase reports name them.
    master_names: Vec<String>,
    ticks: TickHist,
    wait: Duration,
}

impl Sim {
    /// Waits until every live node's viewer frame shows `viewers`; returns the time taken.
    async fn until_viewers(&self, viewers: u64) -> Option<Duration> {
        let started = Instant::now();
        loop {
            if self
                .alive
                .iter()
                .all(|&i| self.nodes[i].shown_viewers() == Some(viewers))
            {
                return Some(started.elapsed());
            }
            if started.elapsed() > self.wait {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until every live node's operator frame shows exactly `want` (peak `peak`).
    async fn until_exact(&self, want: &Expected, peak: u64) -> (bool, usize) {
        let started = Instant::now();
        loop {
            let wrong = self
                .alive
                .iter()
                .filter(|&&i| !self.nodes[i].shown().is_some_and(|s| want.matches(&s, peak)))
                .count();
            if wrong == 0 {
                return (true, 0);
            }
            if started.elapsed() > self.wait {
                if let Some(&i) = self
                    .alive
                    .iter()
                    .find(|&&i| !self.nodes[i].shown().is_some_and(|s| want.matches(&s, peak)))
                {
                    let shown = self.nodes[i].shown();
                    eprintln!(
                        "node {} shows {}; expected {} viewers (peak {peak}), regions {}, interactions {}",
                        self.nodes[i].id,
                        shown.as_ref().map_or("no stats frame yet".into(), |s| s.to_string()),
                        want.viewers,
                        counts(&want.regions),
                        counts(&want.interactions),
                    );
                }
                return (false, wrong);
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    fn take_ticks(&self) -> Hist {
        std::mem::take(&mut *self.ticks.lock().unwrap_or_else(|e| e.into_inner()))
    }

    async fn sample(&mut self) -> anyhow::Result<Sample> {
        self.masters.sample().await
    }
}

fn ms(us: u64) -> f64 {
    us as f64 / 1000.0
}

/// Prints one phase's per-master figures and its tick latencies; returns the busiest master.
fn report_phase(name: &str, masters: &[String], rates: &[MasterRate], ticks: &Hist) -> MasterRate {
    println!(
        "{name}: ticks={} tick p50={:.1}ms p99={:.1}ms (stats read + tick record + frames encoded, per node)",
        ticks.count(),
        ms(ticks.quantile(0.5)),
        ms(ticks.quantile(0.99)),
    );
    for (m, r) in masters.iter().zip(rates) {
        println!(
            "  master {m}: {:.0} cmds/s ({:.0} scripts/s), cpu {:.0}% of a core, used_memory {:.0} MiB",
            r.calls_per_s,
            r.scripts_per_s,
            r.cpu * 100.0,
            r.memory as f64 / 1048576.0
        );
    }
    rates
        .iter()
        .cloned()
        .max_by(|a, b| a.cpu.total_cmp(&b.cpu))
        .unwrap_or_default()
}

async fn run(args: SimArgs) -> anyhow::Result<bool> {
    let master_names = if args.masters.is_empty() {
        args.redis_cluster.clone()
    } else {
        args.masters.clone()
    };
    let (stores, campaign, tree) = connect(&args).await?;
    let org = tree.map(|t| (t, args.unit_peak_depth));
    let ticks: TickHist = Arc::default();
    let nodes = start_nodes(&args, &campaign, &stores, &ticks, &org);
    let n = args.nodes;
    let mut sim = Sim {
        nodes,
        org,
        alive: (0..n).collect(),
        masters: Masters::connect(&master_names).await?,
        master_names,
        ticks,
        wait: args.wait,
    };
    println!(
        "seed scale: {} viewers of one campaign on {n} virtual nodes, {} regions, tick {:?}, flush {:?}, lease {:?}",
        args.viewers, args.regions, args.tick, args.flush_interval, args.presence_ttl
    );
    let ramp = sim.ramp(&args).await?;

    // Convergence: every node's frame shows every viewer.
    let converge = sim.until_viewers(args.viewers).await;
    match converge {
        Some(d) => println!(
            "converged: every node shows {} viewers {:.2}s after the ramp",
            args.viewers,
            d.as_secs_f64()
        ),
        None => println!("NOT converged within {:?} after the ramp", args.wait),
    }
    let units_ramp = sim.check_units(&stores[0], &campaign, "after the ramp").await?;

    let storm = sim.storm(&args).await?;
    let (before, exact_before) = sim.before_kill(&args, &campaign, storm.sent).await;
    let units_storm = sim.check_units(&stores[0], &campaign, "after the storm").await?;
    let kill = sim.kill(&args, &campaign, &before).await?;
    let units_kill = sim.check_units(&stores[0], &campaign, "after the kill").await?;
    sim.stop_survivors().await;

    let units_exact = units_ramp && units_storm && units_kill;
    let exact = converge.is_some() && exact_before && kill.left.is_some() && kill.exact && units_exact;
    println!(
        "seed scale: viewers={} nodes={n} exact={exact} ramp_s={:.1} claims_per_s={:.0} converge_s={} \
         storm_per_s={:.0} tick_p50_ms={:.1} tick_p99_ms={:.1} busiest_master_cpu={:.0}% busiest_master_cmds_per_s={:.0} \
         killed={} leave_s={} units={}",
        args.viewers,
        ramp.as_secs_f64(),
        args.viewers as f64 / ramp.as_secs_f64(),
        converge.map_or("none".into(), |d| format!("{:.2}", d.as_secs_f64())),
        (storm.sent[0] + storm.sent[1]) as f64 / storm.took.as_secs_f64(),
        ms(storm.ticks.quantile(0.5)),
        ms(storm.ticks.quantile(0.99)),
        storm.busiest.cpu * 100.0,
        storm.busiest.calls_per_s,
        kill.killed,
        kill.left.map_or("none".into(), |d| format!("{:.2}", d.as_secs_f64())),
        args.org_units,
    );
    Ok(exact)
}

/// The store connections the virtual nodes share, and the campaign, created on the first
/// (with `--org-units`, by an org uploaded first).
async fn connect(args: &SimArgs) -> anyhow::Result<(Vec<Arc<dyn Store>>, Campaign, Option<Arc<Tree>>)> {
    let mut stores: Vec<Arc<dyn Store>> = Vec::new();
    for _ in 0..args.connections.max(1) {
        let s = RedisStore::connect_cluster(&args.redis_cluster)
            .await
            .context("connecting --redis-cluster")?;
        stores.push(Arc::new(s));
    }
    let tree = (args.org_units > 0).then(|| Arc::new(org::tree(args.org_units)));
    let mut org_version = None;
    if let Some(t) = &tree {
        let started = Instant::now();
        let (summary, _) = stores[0].put_org("seed-org", t.clone()).await?;
        println!(
            "org: {} units over levels {:?} stored as version {} in {:.1}s",
            summary.units,
            summary.levels,
            summary.version,
            started.elapsed().as_secs_f64()
        );
        org_version = Some(summary.version);
    }
    let campaign = Campaign {
        id: args.campaign.clone(),
        title: "The seed's launch".into(),
        stream_url: None,
        kinds: vec!["like".to_owned(), "heart".to_owned()],
        regions: (0..args.regions).map(|i| format!("r{i:02}")).collect(),
        access: Access::Public,
        state: State::Live,
        created_at: crate::util::now_ms(),
        ended_at: None,
        milestones: Default::default(),
        registration_fields: vec![],
        share_channels: vec![],
        org: tree.as_ref().map(|_| "seed-org".to_owned()),
        org_version,
    };
    match stores[0].create_campaign(&campaign).await {
        Err(StoreError::Conflict) => anyhow::bail!("campaign {} exists: use a fresh store", campaign.id),
        r => r?,
    }
    Ok((stores, campaign, tree))
}

/// `--nodes` virtual nodes, node i on connection i mod `--connections`, their first ticks
/// spread over one tick.
fn start_nodes(
    args: &SimArgs,
    campaign: &Campaign,
    stores: &[Arc<dyn Store>],
    ticks: &TickHist,
    org: &Option<(Arc<Tree>, u8)>,
) -> Vec<VirtualNode> {
    let timing = FlushTiming {
        flush_interval: args.flush_interval,
        tick: args.tick,
        presence_ttl: args.presence_ttl,
        session_ttl: defaults::SESSION_TTL.value,
    };
    let n = args.nodes;
    (0..n)
        .map(|i| {
            VirtualNode::start(
                format!("sim-{i:04}"),
                campaign,
                stores[i % stores.len()].clone(),
                timing,
                args.tick * i as u32 / n as u32,
                ticks.clone(),
                org.clone(),
            )
        })
        .collect()
}

/// What the like-storm sent and measured.
struct Storm {
    /// Likes and hearts counted by the nodes.
    sent: [u64; 2],
    took: Duration,
    ticks: Hist,
    busiest: MasterRate,
}

/// What the kill left.
struct Kill {
    killed: usize,
    /// How long until every survivor showed the survivors' viewers, if they did.
    left: Option<Duration>,
    /// Every survivor then showed exactly what the survivors hold.
    exact: bool,
}

impl Sim {
    /// The ramp: every viewer claims its session and joins a node, as fast as the store
    /// takes it. Returns how long it took.
    async fn ramp(&mut self, args: &SimArgs) -> anyhow::Result<Duration> {
        let s0 = self.sample().await?;
        let started = Instant::now();
        let nodes = &self.nodes;
        let (n, regions_n) = (args.nodes as u64, args.regions as u64);
        // Villages are the org's last level, pushed last: tree indices from `first` on.
        let villages = self.org.as_ref().map(|(t, _)| {
            let v = *t.levels().last().unwrap_or(&1);
            (t.len() as u64 - v, v)
        });
        let failures = futures_util::stream::iter(0..args.viewers)
            .map(|i| async move {
                let node = &nodes[(i % n) as usize];
                let region = (i % regions_n) as usize;
                // A viewer whose connect failed (the store did not answer in time) tries
                // again, as the SDK does; a claim that timed out but landed is marked moved
                // and released by the node's next flush, as for any reconnect.
                for attempt in 0..50u64 {
                    let unit = villages.map(|(first, v)| (first + org::village_of(i, v)) as u32);
                    match node.join(format!("s{i}"), format!("v{i}"), region, unit).await {
                        Ok(()) => return 0u64,
                        Err(e) => {
                            tracing::warn!(error = %e, attempt, "claim failed; retrying");
                            tokio::time::sleep(Duration::from_millis(100 * (attempt + 1).min(10))).await;
                        }
                    }
                }
                1
            })
            .buffer_unordered(args.claim_concurrency.max(1))
            .fold(0u64, |a, b| async move { a + b })
            .await;
        anyhow::ensure!(failures == 0, "{failures} claims failed");
        let ramp = started.elapsed();
        let s1 = self.sample().await?;
        let ramp_ticks = self.take_ticks();
        println!(
            "ramp: {} viewers claimed and joined in {:.1}s ({:.0} claims/s)",
            args.viewers,
            ramp.as_secs_f64(),
            args.viewers as f64 / ramp.as_secs_f64()
        );
        report_phase("ramp", &self.master_names, &info::rates(&s0, &s1), &ramp_ticks);
        Ok(ramp)
    }

    /// The like-storm: `--likes-per-sec` over random nodes and sessions for `--storm`, one
    /// heart for four likes.
    async fn storm(&mut self, args: &SimArgs) -> anyhow::Result<Storm> {
        let s2 = self.sample().await?;
        self.take_ticks();
        let mut sent = [0u64; 2];
        let mut refused = 0u64;
        let step = Duration::from_millis(10);
        let per_step = (args.likes_per_sec / 100).max(1);
        let storm_started = Instant::now();
        let mut rng = 0x9e37_79b9_7f4a_7c15u64;
        let mut interval = tokio::time::interval(step);
        while storm_started.elapsed() < args.storm {
            interval.tick().await;
            for j in 0..per_step {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let node = &self.nodes[(rng % args.nodes as u64) as usize];
                let kind = (j % 5 == 0) as usize; // one heart for four likes
                if node.interact((rng >> 20) as usize, kind) {
                    sent[kind] += 1;
                } else {
                    refused += 1;
                }
            }
        }
        let took = storm_started.elapsed();
        let s3 = self.sample().await?;
        let ticks = self.take_ticks();
        println!(
            "like-storm: {} likes + {} hearts in {:.1}s ({:.0}/s), {refused} refused at --max-pending",
            sent[0],
            sent[1],
            took.as_secs_f64(),
            (sent[0] + sent[1]) as f64 / took.as_secs_f64()
        );
        let busiest = report_phase("like-storm", &self.master_names, &info::rates(&s2, &s3), &ticks);
        Ok(Storm {
            sent,
            took,
            ticks,
            busiest,
        })
    }

    /// Before the kill: every node shows every viewer, region and interaction. Returns
    /// what they should show, and whether they all did.
    async fn before_kill(&self, args: &SimArgs, campaign: &Campaign, sent: [u64; 2]) -> (Expected, bool) {
        let mut region_total: BTreeMap<String, u64> = BTreeMap::new();
        for node in &self.nodes {
            for (r, name) in campaign.regions.iter().enumerate() {
                let c = node.joined[r].load(Ordering::Relaxed);
                if c > 0 {
                    *region_total.entry(name.clone()).or_default() += c;
                }
            }
        }
        let before = Expected {
            viewers: args.viewers,
            regions: region_total,
            interactions: campaign.kinds.iter().cloned().zip(sent).collect(),
        };
        let settle = Instant::now();
        let (exact, wrong) = self.until_exact(&before, args.viewers).await;
        let pending: u64 = self.nodes.iter().map(|x| x.pending()).sum();
        println!(
            "before the kill: {} of {} nodes show exactly {} viewers, {} regions and interactions {} ({:.2}s after the storm; {pending} unflushed)",
            args.nodes - wrong,
            args.nodes,
            args.viewers,
            before.regions.len(),
            counts(&before.interactions),
            settle.elapsed().as_secs_f64()
        );
        (before, exact)
    }

    /// The kill: `--kill-percent` of the nodes die without a word; their viewers leave at
    /// lease expiry, and every survivor must show exactly what the survivors hold.
    async fn kill(&mut self, args: &SimArgs, campaign: &Campaign, before: &Expected) -> anyhow::Result<Kill> {
        let n = args.nodes;
        let killed = (n * args.kill_percent / 100).max(usize::from(args.kill_percent > 0));
        let victims: Vec<usize> = (0..killed).map(|k| k * n / killed.max(1)).collect();
        let mut after = before.clone();
        for &v in &victims {
            let node = &self.nodes[v];
            node.kill();
            for (r, name) in campaign.regions.iter().enumerate() {
                let c = node.joined[r].load(Ordering::Relaxed);
                after.viewers -= c;
                if let Some(total) = after.regions.get_mut(name) {
                    *total -= c;
                }
            }
        }
        after.regions.retain(|_, c| *c > 0);
        self.alive.retain(|i| !victims.contains(i));
        let s4 = self.sample().await?;
        self.take_ticks();
        let killed_at = Instant::now();
        let left = self.until_viewers(after.viewers).await;
        let (exact, wrong) = self.until_exact(&after, args.viewers).await;
        let s5 = self.sample().await?;
        let kill_ticks = self.take_ticks();
        match left {
            Some(d) => println!(
                "kill: {killed} nodes killed ({} viewers); every survivor shows {} viewers {:.2}s later (lease {:?}, tick {:?})",
                args.viewers - after.viewers,
                after.viewers,
                d.as_secs_f64(),
                args.presence_ttl,
                args.tick
            ),
            None => println!("kill: the killed nodes' viewers did not leave within {:?}", args.wait),
        }
        println!(
            "after the kill: {} of {} surviving nodes show exactly what the survivors hold ({:.1}s after the kill)",
            self.alive.len() - wrong,
            self.alive.len(),
            killed_at.elapsed().as_secs_f64()
        );
        report_phase("kill", &self.master_names, &info::rates(&s4, &s5), &kill_ticks);
        Ok(Kill { killed, left, exact })
    }

    /// With an org: every unit at every level shows exactly what was put in
    /// ([`org::check_nodes`]).
    async fn check_units(&self, store: &Arc<dyn Store>, campaign: &Campaign, when: &str) -> anyhow::Result<bool> {
        match &self.org {
            None => Ok(true),
            Some((tree, depth)) => {
                let at = org::At {
                    nodes: &self.nodes,
                    alive: &self.alive,
                    wait: self.wait,
                    when,
                };
                org::check_nodes(&at, &**store, campaign, tree, *depth).await
            }
        }
    }

    /// Graceful stop of the survivors (their last flush and leave).
    async fn stop_survivors(self) {
        let Sim { nodes, alive, .. } = self;
        let mut stops = Vec::new();
        for (i, node) in nodes.into_iter().enumerate() {
            if alive.contains(&i) {
                stops.push(node.stop());
            }
        }
        futures_util::future::join_all(stops).await;
    }
}
