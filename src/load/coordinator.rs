//! The coordinator: starts the workers, steps them through the run (connect, load, close)
//! and combines what they report with the server's totals into the report.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::api::{self, Totals};
use super::args::{LoadArgs, Target, WorkerId};
use super::events::{Cmd, Event, Progress};
use super::hist::Hist;
use super::report::{self, NodeUsage, Report};
use super::{http, procfs, worker};

/// Open files a process keeps for itself (stdio, the runtime, HTTP calls) besides sockets.
const FD_RESERVE: u64 = 200;

/// How long the tool waits for the server's totals to show what was acked: acks come
/// after the store took the counts, so this only covers share visits, which are flushed.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);
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

/// Starts `count` workers; their events arrive tagged with their index.
fn spawn_workers(
    args: &Arc<LoadArgs>,
    targets: &[Target],
    run_id: &str,
    count: usize,
    events: &mpsc::UnboundedSender<(usize, Event)>,
) -> anyhow::Result<Vec<Handle>> {
    let mut handles = Vec::new();
    for index in 0..count {
        let me = WorkerId { index, count };
        if count == 1 {
            let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
            let (ev_tx, mut ev_rx) = mpsc::unbounded_channel();
            let events = events.clone();
            tokio::spawn(async move {
                while let Some(ev) = ev_rx.recv().await {
                    let _ = events.send((index, ev));
                }
            });
            let task = tokio::spawn(worker::run(
                args.clone(),
                me,
                targets.to_vec(),
                run_id.to_owned(),
                ev_tx,
                cmd_rx,
            ));
            handles.push(Handle::Task(cmd_tx, task));
            continue;
        }
        let exe = std::env::current_exe().context("cannot find the livetally executable")?;
        let mut child = std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .args(["--worker", &format!("{index}/{count}"), "--run-id", run_id])
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
        handles.push(Handle::Child(child));
    }
    Ok(handles)
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

pub async fn coordinate(args: LoadArgs, targets: Vec<Target>, fd_limit: u64) -> anyhow::Result<i32> {
    let api = targets[0].addr;
    let load_before = procfs::loadavg();
    if args.create {
        let token = args
            .operator_token
            .as_deref()
            .context("--create needs --operator-token")?;
        let body = json!({"id": args.campaign, "title": "load rehearsal"});
        let r = http::call(api, "POST", "/api/v1/campaigns", Some(&body), Some(token)).await?;
        if r.status != 201 && r.status != 409 {
            bail!("creating campaign {}: HTTP {}", args.campaign, r.status);
        }
    }
    let before = api::totals(api, &args.campaign, &args.kind).await?;
    let per_process = fd_limit.saturating_sub(FD_RESERVE).max(1) as usize;
    let processes = args.processes.unwrap_or(args.viewers.div_ceil(per_process)).max(1);
    let run_id = format!("lt{:06x}", rand::random::<u32>() & 0xff_ffff);
    let args = Arc::new(args);
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let mut handles = spawn_workers(&args, &targets, &run_id, processes, &ev_tx)?;
    drop(ev_tx);
    let now = Instant::now();
    let mut board = Board {
        events: ev_rx,
        progress: vec![Default::default(); processes],
        started: now,
        viewers: args.viewers,
        last_print: now,
        last_acked: 0,
        last_frames: 0,
    };
    board.until(|e| matches!(e, Event::Ready).then_some(())).await?;
    let rss_before = args.node_pid.and_then(procfs::rss_kib);
    let connect_cpu_before = args.node_pid.and_then(procfs::cpu_ticks);
    let tool_cpu_before = procfs::cpu_ticks(std::process::id());
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
    let rss_after = args.node_pid.and_then(procfs::rss_kib);
    let cpu_before = args.node_pid.and_then(procfs::cpu_ticks);
    let tool_cpu_connected = procfs::cpu_ticks(std::process::id());
    let go = Instant::now();
    handles.iter_mut().for_each(|h| h.send(Cmd::Go));
    let side = tokio::spawn(api::side_traffic(
        api,
        args.campaign.clone(),
        run_id.clone(),
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
    let cpu_after = args.node_pid.and_then(procfs::cpu_ticks);
    let tool_cpu_after = procfs::cpu_ticks(std::process::id());
    let side = side.await.unwrap_or_default();
    let acked: u64 = done.iter().map(|d| d.acked).sum();
    let want = Totals {
        interactions: before.interactions + acked,
        registrations: before.registrations + side.registrations_created,
        share_visits: before.share_visits + side.share_visits_ok,
    };
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let after = loop {
        let t = api::totals(api, &args.campaign, &args.kind).await?;
        let settled = t.interactions == want.interactions
            && t.registrations == want.registrations
            && t.share_visits == want.share_visits;
        if settled || Instant::now() >= deadline {
            break t;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    handles.iter_mut().for_each(|h| h.send(Cmd::Close));
    for h in handles {
        h.finish().await;
    }

    let mut connect_latency = Hist::default();
    connected.iter().for_each(|c| connect_latency.merge_sparse(&c.latency));
    let mut ack_latency = Hist::default();
    let mut stats_lag = Hist::default();
    for d in &done {
        ack_latency.merge_sparse(&d.ack_latency);
        stats_lag.merge_sparse(&d.stats_lag);
    }
    let frames: u64 = done.iter().map(|d| d.frames).sum();
    let seconds = |a: Option<u64>, b: Option<u64>| match (a, b) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / procfs::CLOCK_TICKS as f64),
        _ => None,
    };
    let node = args.node_pid.map(|pid| NodeUsage {
        pid,
        rss_before_kib: rss_before,
        rss_after_kib: rss_after,
        connect_cpu_seconds: seconds(connect_cpu_before, cpu_before),
        cpu_seconds: seconds(cpu_before, cpu_after),
    });
    // The coordinator's own CPU: all of the tool in a one-process run.
    let tool_cpu = report::ToolCpu {
        connect_seconds: seconds(tool_cpu_before, tool_cpu_connected),
        load_seconds: seconds(tool_cpu_connected, tool_cpu_after),
        workers_load_seconds: done.iter().map(|d| d.cpu_seconds).sum(),
    };
    let report = Report::build(report::Inputs {
        args: &args,
        processes,
        load_before,
        connected: &connected,
        connect_latency: &connect_latency,
        done: &done,
        ack_latency: &ack_latency,
        stats_lag: &stats_lag,
        frames,
        window,
        before,
        after,
        side,
        node,
        tool_cpu,
    });
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", report.table());
    }
    Ok(if report.clean { 0 } else { 1 })
}
