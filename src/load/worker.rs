//! One load process: opens its share of the sockets, then follows the coordinator's
//! commands (`start`, `go`, `close`) and reports events. In a single-process run the
//! worker is a task talking over channels; with `--worker i/n` it is a child process
//! talking JSON lines over stdin/stdout, so the coordinator treats both the same way.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, watch, Semaphore};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use super::args::{LoadArgs, Target, WorkerId};
use super::events::{Cmd, Connected, Done, Event, Progress};
use super::hist::Hist;
use super::procfs;
use super::shared::{Phase, Shared};
use super::viewer::{self, Plan};

/// How often a worker reports its counters.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// The first source address of worker `me`: each worker gets its own addresses, so two
/// processes never compete for the ephemeral ports of one address.
fn first_source(args: &LoadArgs, me: WorkerId) -> Ipv4Addr {
    let per_worker = args.viewers.div_ceil(me.count);
    let ips_per_worker = per_worker.div_ceil(args.sockets_per_ip.max(1));
    let base = u32::from(args.source_ip);
    Ipv4Addr::from(base + (me.index * ips_per_worker) as u32)
}

/// Runs worker `me` until `Close`.
pub async fn run(
    args: Arc<LoadArgs>,
    me: WorkerId,
    targets: Vec<Target>,
    run_id: String,
    events: mpsc::UnboundedSender<Event>,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
) {
    let shared = Arc::new(shared_for(&args));
    let _ = events.send(Event::Ready);
    if !wait_for(&mut cmds, Cmd::Start).await {
        return;
    }
    let reporter = spawn_reporter(shared.clone(), events.clone());
    let (phase_tx, phase_rx) = watch::channel(Phase::Hold);
    let tracker = TaskTracker::new();
    let mine = open_sockets(&args, me, &targets, &run_id, &shared, &tracker, &phase_rx).await;
    let c = &shared.counters;
    wait_until(|| c.connected.load(Ordering::Relaxed) + c.failed.load(Ordering::Relaxed) >= mine).await;
    let _ = events.send(Event::Connected(connected(&shared)));
    if !wait_for(&mut cmds, Cmd::Go).await {
        return;
    }
    let cpu_go = procfs::cpu_ticks(std::process::id());
    phase_tx.send_replace(Phase::Go);
    let connected = c.connected.load(Ordering::Relaxed);
    wait_until(|| c.finished.load(Ordering::Relaxed) >= connected).await;
    let done = done(&shared, cpu_go);
    reporter.abort();
    let _ = events.send(Event::Progress(progress(&shared)));
    let _ = events.send(Event::Done(done));
    wait_for(&mut cmds, Cmd::Close).await;
    phase_tx.send_replace(Phase::Close);
    tracker.close();
    let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
}

/// What this worker's sockets share, from the flags.
fn shared_for(args: &LoadArgs) -> Shared {
    let rate = args.rate;
    Shared {
        campaign: args.campaign.clone(),
        kind: args.kind.clone(),
        interval: (rate.is_finite() && rate > 0.0).then(|| args.viewers as f64 / rate),
        sends: rate > 0.0,
        max_unacked: args.max_unacked.max(1),
        duration: args.duration,
        drain_timeout: args.drain_timeout,
        counters: Default::default(),
        ack_latency: Mutex::new(Hist::default()),
        stats_lag: Mutex::new(Hist::default()),
        connect_latency: Mutex::new(Hist::default()),
        failures: Mutex::new(BTreeMap::new()),
    }
}

/// Sends the counters every [`PROGRESS_EVERY`] until aborted (or the coordinator left).
fn spawn_reporter(shared: Arc<Shared>, events: mpsc::UnboundedSender<Event>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(PROGRESS_EVERY);
        loop {
            every.tick().await;
            if events.send(Event::Progress(progress(&shared))).is_err() {
                return;
            }
        }
    })
}

/// Starts a viewer task for each socket of worker `me` (at `--ramp`, at most
/// `--connect-concurrency` connecting at once); returns how many.
async fn open_sockets(
    args: &LoadArgs,
    me: WorkerId,
    targets: &[Target],
    run_id: &str,
    shared: &Arc<Shared>,
    tracker: &TaskTracker,
    phase: &watch::Receiver<Phase>,
) -> u64 {
    let lo = me.index * args.viewers / me.count;
    let hi = (me.index + 1) * args.viewers / me.count;
    let started = Instant::now();
    let gate = Arc::new(Semaphore::new(args.connect_concurrency.max(1)));
    let per_process_ramp = args.ramp / me.count as f64;
    let first = first_source(args, me);
    for (j, g) in (lo..hi).enumerate() {
        if per_process_ramp > 0.0 {
            tokio::time::sleep_until(started + Duration::from_secs_f64(j as f64 / per_process_ramp)).await;
        }
        // unwrap: the semaphore is never closed.
        let permit = gate.clone().acquire_owned().await.expect("semaphore open");
        let target = &targets[g % targets.len()];
        let source = Ipv4Addr::from(u32::from(first) + (j / args.sockets_per_ip.max(1)) as u32);
        let plan = Plan {
            source,
            target: target.addr,
            tls: target.tls.as_ref().map(|(config, _)| config.clone()),
            url: format!(
                "{}/ws/v1/campaigns/{}?viewer={run_id}v{g:08}&session={run_id}s{g:08}",
                target.base, shared.campaign
            ),
            phase: rand::random::<f64>(),
            bare: args.bare,
        };
        tracker.spawn(viewer::run(plan, shared.clone(), started, phase.clone(), permit));
    }
    (hi - lo) as u64
}

/// Checks `done` every 5 ms until it holds.
async fn wait_until(done: impl Fn() -> bool) {
    while !done() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The end of the connect phase, from the counters.
fn connected(shared: &Shared) -> Connected {
    let c = &shared.counters;
    let latency = shared
        .connect_latency
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .to_sparse();
    Connected {
        connected: c.connected.load(Ordering::Relaxed),
        failed: c.failed.load(Ordering::Relaxed),
        seconds: c.last_welcome_us.load(Ordering::Relaxed) as f64 / 1e6,
        latency,
    }
}

/// The end of the load phase, from the counters; `cpu_go` is this process's CPU at `go`.
fn done(shared: &Shared, cpu_go: Option<u64>) -> Done {
    let c = &shared.counters;
    Done {
        sent: c.sent.load(Ordering::Relaxed),
        acked: c.acked.load(Ordering::Relaxed),
        errors: c.errors.load(Ordering::Relaxed),
        frames: c.frames.load(Ordering::Relaxed),
        dropped: c.dropped.load(Ordering::Relaxed),
        failures: shared.failures.lock().unwrap_or_else(|e| e.into_inner()).clone(),
        ack_latency: shared.ack_latency.lock().unwrap_or_else(|e| e.into_inner()).to_sparse(),
        stats_lag: shared.stats_lag.lock().unwrap_or_else(|e| e.into_inner()).to_sparse(),
        viewers_seen: c.viewers_seen.get(),
        last_welcome_ms: c.last_welcome_ms.load(Ordering::Relaxed),
        last_frame_ms: c.last_frame_ms.load(Ordering::Relaxed),
        cpu_seconds: procfs::seconds_between(cpu_go, procfs::cpu_ticks(std::process::id())),
    }
}

fn progress(shared: &Shared) -> Progress {
    let c = &shared.counters;
    Progress {
        connected: c.connected.load(Ordering::Relaxed),
        failed: c.failed.load(Ordering::Relaxed),
        sent: c.sent.load(Ordering::Relaxed),
        acked: c.acked.load(Ordering::Relaxed),
        frames: c.frames.load(Ordering::Relaxed),
    }
}

/// Waits for `want`; false when the coordinator went away (or sent `Close` early).
async fn wait_for(cmds: &mut mpsc::UnboundedReceiver<Cmd>, want: Cmd) -> bool {
    while let Some(cmd) = cmds.recv().await {
        if cmd == want {
            return true;
        }
        if cmd == Cmd::Close {
            return false;
        }
    }
    false
}

/// A worker in a child process: commands from stdin, events to stdout, one JSON per line.
pub async fn run_child(args: Arc<LoadArgs>, me: WorkerId, targets: Vec<Target>, run_id: String) {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<Cmd>(&line) {
                Ok(cmd) => {
                    if cmd_tx.send(cmd).is_err() {
                        break;
                    }
                }
                Err(e) => eprintln!("worker {}: bad command {line:?}: {e}", me.index),
            }
        }
    });
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel::<Event>();
    let writer = tokio::spawn(async move {
        use std::io::Write;
        while let Some(ev) = ev_rx.recv().await {
            // unwrap: the events are plain structs of numbers, strings and maps.
            let line = serde_json::to_string(&ev).expect("event serialises");
            let mut out = std::io::stdout().lock();
            if writeln!(out, "{line}").and_then(|_| out.flush()).is_err() {
                break;
            }
        }
    });
    run(args, me, targets, run_id, ev_tx, cmd_rx).await;
    let _ = writer.await;
}
