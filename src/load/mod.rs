//! `livetally load`: the load rehearsal tool. It opens many viewer sockets against one or
//! more nodes, sends interactions at a target rate, and reports what a launch rehearsal
//! needs: connect rate and failures, ack latency, stats delivery lag, server totals against
//! what was acked, and (with `--node-pid`) the node's memory per socket and CPU per frame.
//!
//! Modules in the order a run uses them: [`worker`] (one process's share of the sockets,
//! in-process or as a child re-executed with `--worker i/n` when one process's open-file
//! limit is too small), [`viewer`] (one socket), [`hist`] (mergeable latency histograms),
//! [`report`] (the table and the JSON), [`http`] (the few API calls).

pub mod hist;
pub mod http;
pub mod report;
pub mod viewer;
pub mod worker;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use serde_json::json;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::util::duration::parse_duration;
use hist::Hist;
use report::{NodeUsage, Report};
use worker::{Cmd, Event, Target};

/// Open files a process keeps for itself (stdio, the runtime, HTTP calls) besides sockets.
const FD_RESERVE: u64 = 200;

/// How long the tool waits for the server's totals to show what was acked: acks come
/// after the store took the counts, so this only covers share visits, which are flushed.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Flags of `livetally load`.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Node base URL (ws://host:port); repeat for several nodes, used round-robin.
    #[arg(
        long = "url",
        env = "LIVETALLY_LOAD_URL",
        value_delimiter = ',',
        default_value = "ws://127.0.0.1:8080"
    )]
    pub urls: Vec<String>,

    /// Campaign the viewers watch.
    #[arg(long, env = "LIVETALLY_LOAD_CAMPAIGN")]
    pub campaign: String,

    /// Viewer sockets to open (over all processes).
    #[arg(long, env = "LIVETALLY_LOAD_VIEWERS", default_value_t = 100)]
    pub viewers: usize,

    /// Connects per second over all processes; 0 opens them as fast as the node accepts.
    #[arg(long, env = "LIVETALLY_LOAD_RAMP", default_value_t = 0.0)]
    pub ramp: f64,

    /// Most connects in flight per process (a bound, so a storm never exhausts the tool).
    #[arg(long, env = "LIVETALLY_LOAD_CONNECT_CONCURRENCY", default_value_t = 2048)]
    pub connect_concurrency: usize,

    /// First source address; sockets bind 127.0.0.2, 127.0.0.3, ... in turn.
    #[arg(long, env = "LIVETALLY_LOAD_SOURCE_IP", default_value = "127.0.0.2")]
    pub source_ip: Ipv4Addr,

    /// Sockets per source address. The ephemeral port range holds about 28,000 per
    /// address, and a previous run's closed sockets hold theirs in TIME_WAIT for 60 s:
    /// at 20,000 per address, a second 200,000-viewer run in a row stalled near 155,000
    /// while `connect` searched for free ports. 5,000 leaves room for both.
    #[arg(long, env = "LIVETALLY_LOAD_SOCKETS_PER_IP", default_value_t = 5_000)]
    pub sockets_per_ip: usize,

    /// Total interaction messages per second over all sockets, or `max` (as fast as acks
    /// allow); 0 sends none.
    #[arg(long, env = "LIVETALLY_LOAD_RATE", default_value = "0", value_parser = parse_rate)]
    pub rate: f64,

    /// Kind of the interactions sent (each carries count 1, so messages = counts).
    #[arg(long, env = "LIVETALLY_LOAD_KIND", default_value = "like")]
    pub kind: String,

    /// Most messages a socket sends past its last ack.
    #[arg(long, env = "LIVETALLY_LOAD_MAX_UNACKED", default_value_t = 1)]
    pub max_unacked: u64,

    /// Length of the load phase (after every socket connected): interactions are sent and
    /// stats frames timed for this long.
    #[arg(long, env = "LIVETALLY_LOAD_DURATION", default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,

    /// After the load phase, how long sockets wait for their last acks.
    #[arg(long, env = "LIVETALLY_LOAD_DRAIN_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub drain_timeout: Duration,

    /// Registrations (POST .../registrations, each a new viewer) spread over the load phase.
    #[arg(long, env = "LIVETALLY_LOAD_REGISTRATIONS", default_value_t = 0)]
    pub registrations: u64,

    /// Share-link visits (GET /s/{id}?via=load) spread over the load phase.
    #[arg(long, env = "LIVETALLY_LOAD_SHARE_VISITS", default_value_t = 0)]
    pub share_visits: u64,

    /// PID of a node on this host: its memory per socket (VmRSS before and after
    /// connecting) and CPU per delivered stats frame are reported.
    #[arg(long, env = "LIVETALLY_LOAD_NODE_PID")]
    pub node_pid: Option<u32>,

    /// Print the report as JSON on stdout instead of a table.
    #[arg(long, env = "LIVETALLY_LOAD_JSON", default_value_t = false)]
    pub json: bool,

    /// Create the campaign first (operator API; needs --operator-token). An existing one is used.
    #[arg(long, env = "LIVETALLY_LOAD_CREATE", default_value_t = false)]
    pub create: bool,

    /// Operator token, for --create.
    #[arg(long, env = "LIVETALLY_OPERATOR_TOKEN", hide_env_values = true)]
    pub operator_token: Option<String>,

    /// Processes to spread the sockets over (default: as many as the open-file limit needs).
    #[arg(long, env = "LIVETALLY_LOAD_PROCESSES")]
    pub processes: Option<usize>,

    /// Internal: run as worker i of n under a coordinator.
    #[arg(long, hide = true, value_parser = parse_worker)]
    pub worker: Option<WorkerId>,

    /// Internal: the run's id prefix for viewer and session ids.
    #[arg(long, hide = true)]
    pub run_id: Option<String>,
}

/// Worker `index` of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkerId {
    pub index: usize,
    pub count: usize,
}

fn parse_worker(s: &str) -> Result<WorkerId, String> {
    let (i, n) = s.split_once('/').ok_or("expected i/n")?;
    let index: usize = i.parse().map_err(|_| "bad worker index")?;
    let count: usize = n.parse().map_err(|_| "bad worker count")?;
    if count == 0 || index >= count {
        return Err("need 0 <= i < n".into());
    }
    Ok(WorkerId { index, count })
}

/// A rate: messages per second, or `max`.
pub fn parse_rate(s: &str) -> Result<f64, String> {
    if s == "max" {
        return Ok(f64::INFINITY);
    }
    match s.parse::<f64>() {
        Ok(r) if r.is_finite() && r >= 0.0 => Ok(r),
        _ => Err(format!("{s:?} is not a rate (messages/s, or max)")),
    }
}

/// Entry point of `livetally load`: builds a runtime and runs the coordinator (or, with
/// `--worker`, one worker). Returns the process exit code: 0 when the run was clean
/// (no failures, totals equal), 1 otherwise.
pub fn main(args: LoadArgs) -> anyhow::Result<i32> {
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    rt.block_on(async move {
        let targets = resolve(&args.urls).await?;
        let fd_limit = crate::util::fd::raise_fd_limit();
        if let Some(me) = args.worker {
            let run_id = args.run_id.clone().context("--worker needs --run-id")?;
            worker::run_child(Arc::new(args), me, targets, run_id).await;
            return Ok(0);
        }
        coordinate(args, targets, fd_limit).await
    })
}

async fn resolve(urls: &[String]) -> anyhow::Result<Vec<Target>> {
    let mut out = Vec::new();
    for url in urls {
        let base = url.trim_end_matches('/');
        let Some(hostport) = base.strip_prefix("ws://") else {
            bail!("invalid --url {url:?}: expected ws://host:port");
        };
        let addr = tokio::net::lookup_host(hostport)
            .await
            .with_context(|| format!("invalid --url {url:?}"))?
            .find(SocketAddr::is_ipv4)
            .with_context(|| format!("invalid --url {url:?}: no IPv4 address"))?;
        out.push(Target {
            addr,
            base: base.to_owned(),
        });
    }
    if out.is_empty() {
        bail!("invalid --url: at least one is needed");
    }
    Ok(out)
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
    progress: Vec<worker::Progress>,
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
        let sum = |f: fn(&worker::Progress) -> u64| self.progress.iter().map(f).sum::<u64>();
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

/// Server-side totals the tool checks.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Totals {
    pub interactions: u64,
    pub registrations: u64,
    pub share_visits: u64,
}

async fn totals(addr: SocketAddr, campaign: &str, kind: &str) -> anyhow::Result<Totals> {
    let r = http::call(addr, "GET", &format!("/api/v1/campaigns/{campaign}/stats"), None, None)
        .await
        .context("GET stats")?;
    if r.status != 200 {
        bail!("GET /api/v1/campaigns/{campaign}/stats answered {}", r.status);
    }
    let v = r.json();
    Ok(Totals {
        interactions: v["interactions"][kind].as_u64().unwrap_or(0),
        registrations: v["registrations"].as_u64().unwrap_or(0),
        share_visits: v["share_visits"].as_u64().unwrap_or(0),
    })
}

async fn coordinate(args: LoadArgs, targets: Vec<Target>, fd_limit: u64) -> anyhow::Result<i32> {
    let api = targets[0].addr;
    let load_before = report::loadavg();
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
    let before = totals(api, &args.campaign, &args.kind).await?;
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
    let rss_before = args.node_pid.and_then(report::rss_kib);
    let connect_cpu_before = args.node_pid.and_then(report::cpu_ticks);
    let tool_cpu_before = report::cpu_ticks(std::process::id());
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
    let rss_after = args.node_pid.and_then(report::rss_kib);
    let cpu_before = args.node_pid.and_then(report::cpu_ticks);
    let tool_cpu_connected = report::cpu_ticks(std::process::id());
    let go = Instant::now();
    handles.iter_mut().for_each(|h| h.send(Cmd::Go));
    let side = tokio::spawn(report::side_traffic(
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
    let cpu_after = args.node_pid.and_then(report::cpu_ticks);
    let tool_cpu_after = report::cpu_ticks(std::process::id());
    let side = side.await.unwrap_or_default();
    let acked: u64 = done.iter().map(|d| d.acked).sum();
    let want = Totals {
        interactions: before.interactions + acked,
        registrations: before.registrations + side.registrations_created,
        share_visits: before.share_visits + side.share_visits_ok,
    };
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let after = loop {
        let t = totals(api, &args.campaign, &args.kind).await?;
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
        (Some(a), Some(b)) => Some(b.saturating_sub(a) as f64 / report::CLOCK_TICKS as f64),
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
