//! The coordinator: starts the workers, steps them through the run (connect, load, close)
//! and combines what they report with the server's totals into the report.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::api::{self, SideTraffic, Totals};
use super::args::{LoadArgs, Target, WorkerId};
use super::events::{Cmd, Connected, Done, Event, Progress};
use super::procfs::{self, Snapshot};
use super::report::{self, Report};
use super::worker;

/// Open files a process keeps for itself (stdio, the runtime, HTTP calls) besides sockets.
const FD_RESERVE: u64 = 200;

/// How long the tool waits for the server's totals to show what was acked: acks come
/// after the store took the counts, so this only covers share visits, which are flushed.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Runs the whole rehearsal and prints the report; returns the exit code (0: clean).
pub async fn coordinate(args: LoadArgs, targets: Vec<Target>, fd_limit: u64) -> anyhow::Result<i32> {
    let api = &targets[0].clone();
    let load_before = procfs::loadavg();
    if args.create && !args.bare {
        let token = args
            .operator_token
            .as_deref()
            .context("--create needs --operator-token")?;
        api::create_campaign(api, &args.campaign, token).await?;
    }
    let before = if args.bare {
        Totals::default()
    } else {
        api::totals(api, &args.campaign, &args.kind).await?
    };
    let per_process = fd_limit.saturating_sub(FD_RESERVE).max(1) as usize;
    let processes = args.processes.unwrap_or(args.viewers.div_ceil(per_process)).max(1);
    let run_id = format!("lt{:06x}", rand::random::<u32>() & 0xff_ffff);
    let args = Arc::new(args);
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let mut handles = spawn_workers(&args, &targets, &run_id, processes, &ev_tx)?;
    drop(ev_tx);
    let mut board = Board::new(ev_rx, processes, args.viewers);
    let run = run_phases(&args, api, &run_id, &mut handles, &mut board).await?;
    let acked: u64 = run.done.iter().map(|d| d.acked).sum();
    let want = Totals {
        interactions: before.interactions + acked,
        registrations: before.registrations + run.side.registrations_created,
        share_visits: before.share_visits + run.side.share_visits_ok,
    };
    let after = if args.bare {
        want
    } else {
        settle(api, &args, want).await?
    };
    handles.iter_mut().for_each(|h| h.send(Cmd::Close));
    for h in handles {
        h.finish().await;
    }
    let report = run.report(&args, processes, load_before, before, after);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(if report.clean { 0 } else { 1 })
}

/// What the workers reported over a run, with the readings taken around its phases.
struct Run {
    connected: Vec<Connected>,
    done: Vec<Done>,
    /// From `go` to the last worker's `done`.
    window: Duration,
    side: SideTraffic,
    /// Before connecting, once connected (before `go`), after the load phase.
    readings: [Snapshot; 3],
}

/// Steps the workers through the connect and load phases, with the HTTP side traffic
/// spread over the load phase.
async fn run_phases(
    args: &Arc<LoadArgs>,
    api: &Target,
    run_id: &str,
    handles: &mut [Handle],
    board: &mut Board,
) -> anyhow::Result<Run> {
    board.until(|e| matches!(e, Event::Ready).then_some(())).await?;
    let start = Snapshot::take(args.node_pid);
    board.started = Instant::now();
    handles.iter_mut().for_each(|h| h.send(Cmd::Start));
    let connected = board
        .until(|e| match e {
            Event::Connected(c) => Some(c),
            _ => None,
        })
        .await?;
    // Let the node settle (welcome frames flushed, allocator caches warm) before reading RSS.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let connected_reading = Snapshot::take(args.node_pid);
    let go = Instant::now();
    handles.iter_mut().for_each(|h| h.send(Cmd::Go));
    let side = tokio::spawn(api::side_traffic(
        api.clone(),
        args.campaign.clone(),
        run_id.to_owned(),
        args.registrations,
        args.share_visits,
        args.duration,
    ));
    let done = board
        .until(|e| match e {
            Event::Done(d) => Some(d),
            _ => None,
        })
        .await?;
    let window = go.elapsed();
    let end = Snapshot::take(args.node_pid);
    Ok(Run {
        connected,
        done,
        window,
        side: side.await.unwrap_or_default(),
        readings: [start, connected_reading, end],
    })
}

/// The server's totals once they show `want`, or after [`SETTLE_TIMEOUT`] whatever they are.
async fn settle(api: &Target, args: &LoadArgs, want: Totals) -> anyhow::Result<Totals> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    loop {
        let t = api::totals(api, &args.campaign, &args.kind).await?;
        let settled = t.interactions == want.interactions
            && t.registrations == want.registrations
            && t.share_visits == want.share_visits;
        if settled || Instant::now() >= deadline {
            return Ok(t);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

impl Run {
    fn report(
        &self,
        args: &LoadArgs,
        processes: usize,
        load_before: [f64; 3],
        before: Totals,
        after: Totals,
    ) -> Report {
        Report::build(report::Inputs {
            args,
            processes,
            load_before,
            connected: &self.connected,
            done: &self.done,
            window: self.window,
            before,
            after,
            side: self.side,
            readings: &self.readings,
        })
    }
}

/// A running worker, seen from the coordinator.
enum Handle {
    Task(mpsc::UnboundedSender<Cmd>, tokio::task::JoinHandle<()>),
    Child(std::process::Child),
}

impl Handle {
    fn send(&mut self, cmd: Cmd) {
        match self {
            Handle::Task(tx, _) => {
                let _ = tx.send(cmd);
            }
            Handle::Child(child) => {
                use std::io::Write;
                if let Some(stdin) = child.stdin.as_mut() {
                    // unwrap: a unit enum always serialises.
                    let line = serde_json::to_string(&cmd).expect("command serialises");
                    let _ = writeln!(stdin, "{line}").and_then(|_| stdin.flush());
                }
            }
        }
    }

    async fn finish(self) {
        match self {
            Handle::Task(_, task) => {
                let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
            }
            Handle::Child(mut child) => {
                drop(child.stdin.take());
                let deadline = std::time::Instant::now() + Duration::from_secs(10);
                while matches!(child.try_wait(), Ok(None)) && std::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

/// Starts `count` workers; their events arrive tagged with their index. One worker runs
/// as a task in this process; more run as child processes.
fn spawn_workers(
    args: &Arc<LoadArgs>,
    targets: &[Target],
    run_id: &str,
    count: usize,
    events: &mpsc::UnboundedSender<(usize, Event)>,
) -> anyhow::Result<Vec<Handle>> {
    if count == 1 {
        return Ok(vec![spawn_task(args, targets, run_id, events)]);
    }
    (0..count)
        .map(|index| spawn_child(WorkerId { index, count }, run_id, events))
        .collect()
}

/// The one worker of a one-process run, as a task.
fn spawn_task(
    args: &Arc<LoadArgs>,
    targets: &[Target],
    run_id: &str,
    events: &mpsc::UnboundedSender<(usize, Event)>,
) -> Handle {
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
    let events = events.clone();
    tokio::spawn(async move {
        while let Some(ev) = ev_rx.recv().await {
            let _ = events.send((0, ev));
        }
    });
    let me = WorkerId { index: 0, count: 1 };
    let task = tokio::spawn(worker::run(
        args.clone(),
        me,
        targets.to_vec(),
        run_id.to_owned(),
        ev_tx,
        cmd_rx,
    ));
    Handle::Task(cmd_tx, task)
}

/// Worker `me` as this executable re-run with the same flags plus `--worker i/n`; a
/// thread reads its events from its stdout.
fn spawn_child(me: WorkerId, run_id: &str, events: &mpsc::UnboundedSender<(usize, Event)>) -> anyhow::Result<Handle> {
    let index = me.index;
    let exe = std::env::current_exe().context("cannot find the livetally executable")?;
    let mut child = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .args(["--worker", &format!("{index}/{}", me.count), "--run-id", run_id])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .context("cannot start a worker process")?;
    let stdout = child.stdout.take().context("worker stdout")?;
    let events = events.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            match serde_json::from_str::<Event>(&line) {
                Ok(ev) => {
                    if events.send((index, ev)).is_err() {
                        break;
                    }
                }
                Err(e) => eprintln!("worker {index}: unreadable event {line:?}: {e}"),
            }
        }
    });
    Ok(Handle::Child(child))
}

/// Collects events until every worker sent the kind `want` picks; prints progress.
struct Board {
    events: mpsc::UnboundedReceiver<(usize, Event)>,
    progress: Vec<Progress>,
    started: Instant,
    viewers: usize,
    last_print: Instant,
    last_acked: u64,
    last_frames: u64,
}

impl Board {
    fn new(events: mpsc::UnboundedReceiver<(usize, Event)>, workers: usize, viewers: usize) -> Self {
        let now = Instant::now();
        Board {
            events,
            progress: vec![Default::default(); workers],
            started: now,
            viewers,
            last_print: now,
            last_acked: 0,
            last_frames: 0,
        }
    }

    async fn until<T>(&mut self, want: impl Fn(Event) -> Option<T>) -> anyhow::Result<Vec<T>> {
        let n = self.progress.len();
        let mut got: Vec<Option<T>> = (0..n).map(|_| None).collect();
        while got.iter().any(Option::is_none) {
            let Some((i, ev)) = self.events.recv().await else {
                bail!("a worker exited early");
            };
            if let Event::Progress(p) = &ev {
                self.progress[i] = p.clone();
                self.print();
            }
            if let Some(t) = want(ev) {
                got[i] = Some(t);
            }
        }
        Ok(got.into_iter().flatten().collect())
    }

    /// The progress line, at most once a second, on stderr.
    fn print(&mut self) {
        let dt = self.last_print.elapsed().as_secs_f64();
        if dt < 0.9 {
            return;
        }
        let sum = |f: fn(&Progress) -> u64| self.progress.iter().map(f).sum::<u64>();
        let (acked, frames) = (sum(|p| p.acked), sum(|p| p.frames));
        eprintln!(
            "[{:6.1}s] connected {}/{} failed {} | sent {} acked {} ({:.0}/s) | frames {} ({:.0}/s)",
            self.started.elapsed().as_secs_f64(),
            sum(|p| p.connected),
            self.viewers,
            sum(|p| p.failed),
            sum(|p| p.sent),
            acked,
            (acked - self.last_acked.min(acked)) as f64 / dt,
            frames,
            (frames - self.last_frames.min(frames)) as f64 / dt,
        );
        self.last_print = Instant::now();
        self.last_acked = acked;
        self.last_frames = frames;
    }
}
