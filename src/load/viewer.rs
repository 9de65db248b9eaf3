//! One simulated viewer: binds its source address, connects, reads the welcome, then holds
//! the socket, sending `interact` messages on its schedule and timing every ack and every
//! `stats` frame, until the worker tells it to close.

use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::hist::Hist;
use crate::protocol::{client, peek};

/// A connect (TCP + upgrade + welcome) slower than this counts as a failure.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// Samples a socket collects before merging them into the worker's histograms under the
/// lock: keeps the lock off the per-message path without a histogram per socket.
const SAMPLE_BATCH: usize = 256;

/// The socket's read buffer. Server messages are small (a stats frame is a few hundred
/// bytes); tungstenite's 128 KiB default would make the tool, not the node, run out of
/// memory at 19,000 sockets.
const READ_BUFFER: usize = 4096;

/// Where the worker is in its run; sockets follow it through a watch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// Connected, idle (answering pings, reading stats).
    Hold,
    /// The load phase began at this instant.
    Go,
    /// Close the sockets.
    Close,
}

/// What every socket of a worker shares: its plan and the counters it adds to.
pub struct Shared {
    pub campaign: String,
    pub kind: String,
    /// Seconds between two messages of one socket; `None`: as fast as acks allow; 0 rate:
    /// no messages at all (see [`Shared::sends`]).
    pub interval: Option<f64>,
    pub sends: bool,
    pub max_unacked: u64,
    pub duration: Duration,
    pub drain_timeout: Duration,
    pub counters: Counters,
    pub ack_latency: Mutex<Hist>,
    pub stats_lag: Mutex<Hist>,
    pub connect_latency: Mutex<Hist>,
    pub failures: Mutex<std::collections::BTreeMap<String, u64>>,
}

/// Counters of one worker, read by its progress reporter.
#[derive(Default)]
pub struct Counters {
    pub connected: AtomicU64,
    pub failed: AtomicU64,
    /// Sockets done with the load phase (drained or failed).
    pub finished: AtomicU64,
    pub sent: AtomicU64,
    pub acked: AtomicU64,
    /// `error` messages from the server.
    pub errors: AtomicU64,
    /// `stats` frames received after the load phase began.
    pub frames: AtomicU64,
    /// Sockets the server closed (or lost) before the tool did.
    pub dropped: AtomicU64,
    /// µs from the worker's start to the latest welcome.
    pub last_welcome_us: AtomicU64,
    /// The `viewers` of every socket's last stats frame: what each node told its viewers.
    pub viewers_seen: SeenRange,
    /// Unix ms of the latest welcome and of the latest stats frame, over all sockets (wall
    /// clock, so workers in other processes compare).
    pub last_welcome_ms: AtomicU64,
    pub last_frame_ms: AtomicU64,
}

/// Smallest and largest of a set of numbers gathered from many tasks.
pub struct SeenRange {
    min: AtomicU64,
    max: AtomicU64,
}

impl Default for SeenRange {
    fn default() -> Self {
        Self {
            min: AtomicU64::new(u64::MAX),
            max: AtomicU64::new(0),
        }
    }
}

impl SeenRange {
    pub fn add(&self, v: u64) {
        self.min.fetch_min(v, Ordering::Relaxed);
        self.max.fetch_max(v, Ordering::Relaxed);
    }

    /// `[min, max]`, or `None` when nothing was added.
    pub fn get(&self) -> Option<[u64; 2]> {
        let min = self.min.load(Ordering::Relaxed);
        (min != u64::MAX).then(|| [min, self.max.load(Ordering::Relaxed)])
    }
}

impl Shared {
    /// A connect that failed.
    pub fn fail(&self, reason: impl Into<String>) {
        self.counters.failed.fetch_add(1, Ordering::Relaxed);
        self.note(reason);
    }

    /// Counts a failure by reason (a connect failure, or a socket lost later).
    pub fn note(&self, reason: impl Into<String>) {
        *self
            .failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(reason.into())
            .or_default() += 1;
    }
}

type Ws = WebSocketStream<TcpStream>;

/// Who this viewer is and where it goes.
pub struct Plan {
    pub source: Ipv4Addr,
    pub target: SocketAddr,
    pub url: String,
    /// Offset of its first message within its interval (spreads sockets over time).
    pub phase: f64,
}

/// Sets IP_BIND_ADDRESS_NO_PORT: `bind(addr:0)` then picks no port; `connect` picks one
/// unique for the whole 4-tuple. Without it every bind searches the address's ephemeral
/// ports for a free one, a search that grows with the sockets already bound: at 19,000
/// sockets the binds alone blocked the tool's runtime threads for seconds, long enough
/// for the node to drop idle-looking sockets. Best effort: failure only costs speed.
fn bind_address_no_port(socket: &TcpSocket) {
    use std::os::fd::AsRawFd;
    /// From linux/in.h; std links libc, which exports `setsockopt`.
    const IPPROTO_IP: i32 = 0;
    const IP_BIND_ADDRESS_NO_PORT: i32 = 24;
    extern "C" {
        fn setsockopt(fd: i32, level: i32, name: i32, value: *const std::ffi::c_void, len: u32) -> i32;
    }
    let one: i32 = 1;
    // SAFETY: a valid open socket fd, and a pointer to an i32 of the stated length that
    // outlives the call.
    unsafe {
        setsockopt(
            socket.as_raw_fd(),
            IPPROTO_IP,
            IP_BIND_ADDRESS_NO_PORT,
            (&one as *const i32).cast(),
            std::mem::size_of::<i32>() as u32,
        );
    }
}

/// Opens the socket and reads the welcome.
async fn connect(plan: &Plan) -> Result<Ws, String> {
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {}", e.kind()))?;
    bind_address_no_port(&socket);
    socket
        .bind(SocketAddr::V4(SocketAddrV4::new(plan.source, 0)))
        .map_err(|e| format!("bind: {}", e.kind()))?;
    let stream = socket
        .connect(plan.target)
        .await
        .map_err(|e| format!("connect: {}", e.kind()))?;
    let _ = stream.set_nodelay(true);
    let config = WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(plan.url.as_str(), stream, Some(config))
        .await
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(r) => format!("http {}", r.status().as_u16()),
            e => format!("handshake: {e}"),
        })?;
    match ws.next().await {
        Some(Ok(Message::Text(t))) if peek::kind_of(&t) == peek::Kind::Welcome => Ok(ws),
        Some(Ok(Message::Close(f))) => {
            // A close frame without a code reads as 1005, "no status received" (RFC 6455).
            let code = f.map_or(CloseCode::Status, |f| f.code);
            Err(format!("closed {}", u16::from(code)))
        }
        _ => Err("no welcome".into()),
    }
}

/// Per-socket samples, merged into the shared histograms in batches.
#[derive(Default)]
struct Samples {
    acks: Vec<u64>,
    lags: Vec<u64>,
}

impl Samples {
    fn flush(&mut self, shared: &Shared, force: bool) {
        if !self.acks.is_empty() && (force || self.acks.len() >= SAMPLE_BATCH) {
            let mut h = shared.ack_latency.lock().unwrap_or_else(|e| e.into_inner());
            self.acks.drain(..).for_each(|v| h.record(v));
        }
        if !self.lags.is_empty() && (force || self.lags.len() >= SAMPLE_BATCH) {
            let mut h = shared.stats_lag.lock().unwrap_or_else(|e| e.into_inner());
            self.lags.drain(..).for_each(|v| h.record(v));
        }
    }
}

/// Runs one viewer: connect, hold, load, drain, hold until closed.
pub async fn run(
    plan: Plan,
    shared: Arc<Shared>,
    started: Instant,
    mut phase: watch::Receiver<Phase>,
    permit: tokio::sync::OwnedSemaphorePermit,
) {
    let t0 = Instant::now();
    let connected = tokio::time::timeout(CONNECT_TIMEOUT, connect(&plan)).await;
    drop(permit);
    let ws = match connected {
        Ok(Ok(ws)) => ws,
        Ok(Err(reason)) => return shared.fail(reason),
        Err(_) => return shared.fail("timeout"),
    };
    shared
        .connect_latency
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .record(t0.elapsed().as_micros() as u64);
    let c = &shared.counters;
    c.connected.fetch_add(1, Ordering::Relaxed);
    c.last_welcome_us
        .fetch_max(started.elapsed().as_micros() as u64, Ordering::Relaxed);
    c.last_welcome_ms
        .fetch_max(crate::util::now_ms() as u64, Ordering::Relaxed);
    drive(ws, &plan, &shared, &mut phase).await;
}

/// What the socket is doing.
#[derive(PartialEq, Eq)]
enum State {
    Waiting,
    Sending,
    Draining,
    Finished,
}

async fn drive(mut ws: Ws, plan: &Plan, shared: &Shared, phase: &mut watch::Receiver<Phase>) {
    let c = &shared.counters;
    let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
    let mut state = State::Waiting;
    let mut seq = 0u64;
    let mut acked = 0u64;
    let mut inflight: VecDeque<(u64, Instant)> = VecDeque::new();
    let mut samples = Samples::default();
    let mut next_due = far;
    let mut stop_at = far;
    let mut go_at = far;
    let mut k = 0u64;
    let mut last_viewers = None;
    let finish = |state: &mut State, samples: &mut Samples, last_viewers: Option<u64>| {
        if *state != State::Finished {
            *state = State::Finished;
            samples.flush(shared, true);
            if let Some(v) = last_viewers {
                c.viewers_seen.add(v);
            }
            c.finished.fetch_add(1, Ordering::Relaxed);
        }
    };
    loop {
        let room = seq - acked < shared.max_unacked;
        let timed = shared.interval.is_some();
        let wake = match state {
            State::Waiting | State::Finished => far,
            State::Sending if timed && room => next_due.min(stop_at),
            _ => stop_at,
        };
        let flood = state == State::Sending && !timed && room;
        tokio::select! {
            biased;
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    let kind = peek::kind_of(&t);
                    if kind == peek::Kind::Ack {
                        if let Some(n) = peek::number_after(&t, peek::SEQ) {
                            if n > acked {
                                c.acked.fetch_add(n - acked, Ordering::Relaxed);
                                acked = n;
                            }
                            let now = Instant::now();
                            while inflight.front().is_some_and(|(s, _)| *s <= n) {
                                if let Some((_, at)) = inflight.pop_front() {
                                    samples.acks.push(now.duration_since(at).as_micros() as u64);
                                }
                            }
                            samples.flush(shared, false);
                        }
                        if state == State::Draining && acked == seq {
                            finish(&mut state, &mut samples, last_viewers);
                        }
                    } else if kind == peek::Kind::Stats {
                        last_viewers = peek::number_after(&t, peek::VIEWERS).or(last_viewers);
                        c.last_frame_ms.fetch_max(crate::util::now_ms() as u64, Ordering::Relaxed);
                        if state != State::Waiting {
                            c.frames.fetch_add(1, Ordering::Relaxed);
                            if let Some(at) = peek::number_after(&t, peek::AT) {
                                let lag_ms = (crate::util::now_ms() as u64).saturating_sub(at);
                                samples.lags.push(lag_ms * 1000);
                                samples.flush(shared, false);
                            }
                        }
                    } else if kind == peek::Kind::Error {
                        // Error messages put `type` last (keys in order); a refused
                        // message is not resent, so it stays unacked and the run is not
                        // clean: raise the node's --max-interactions-per-sec for floods.
                        c.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
            changed = phase.changed() => {
                let p = *phase.borrow_and_update();
                if changed.is_err() || p == Phase::Close {
                    finish(&mut state, &mut samples, last_viewers);
                    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                    return;
                }
                if p == Phase::Go && state == State::Waiting {
                    go_at = Instant::now();
                    stop_at = go_at + shared.duration;
                    if shared.sends {
                        state = State::Sending;
                        if let Some(iv) = shared.interval {
                            next_due = go_at + Duration::from_secs_f64(plan.phase * iv);
                        }
                    } else {
                        // Nothing to send: hold the socket for the duration, reading stats.
                        state = State::Draining;
                    }
                }
            }
            _ = tokio::time::sleep_until(wake), if wake < far => {
                let now = Instant::now();
                if now >= stop_at {
                    match state {
                        State::Sending => {
                            state = State::Draining;
                            stop_at = now + shared.drain_timeout;
                            if acked == seq {
                                finish(&mut state, &mut samples, last_viewers);
                            }
                        }
                        State::Draining => finish(&mut state, &mut samples, last_viewers),
                        _ => {}
                    }
                    continue;
                }
                seq += 1;
                k += 1;
                inflight.push_back((seq, now));
                if send(&mut ws, &shared.kind, seq).await.is_err() {
                    break;
                }
                c.sent.fetch_add(1, Ordering::Relaxed);
                if let Some(iv) = shared.interval {
                    next_due = go_at + Duration::from_secs_f64((plan.phase + k as f64) * iv);
                }
            }
            _ = std::future::ready(()), if flood => {
                // As fast as acks allow: fill the window in one write.
                let now = Instant::now();
                let upto = acked + shared.max_unacked;
                while seq < upto {
                    seq += 1;
                    inflight.push_back((seq, now));
                    if ws.feed(like(&shared.kind, seq)).await.is_err() {
                        break;
                    }
                    c.sent.fetch_add(1, Ordering::Relaxed);
                }
                if ws.flush().await.is_err() {
                    break;
                }
                if now >= stop_at {
                    state = State::Draining;
                    stop_at = now + shared.drain_timeout;
                }
            }
        }
    }
    // The server closed the socket, or the connection failed.
    c.dropped.fetch_add(1, Ordering::Relaxed);
    if state != State::Finished {
        shared.note("dropped");
    }
    finish(&mut state, &mut samples, last_viewers);
    let _ = phase.wait_for(|p| *p == Phase::Close).await;
}

/// One interaction (count 1, so messages sent = counts taken).
fn like(kind: &str, seq: u64) -> Message {
    Message::text(client::interact(kind, 1, Some(seq)))
}

async fn send(ws: &mut Ws, kind: &str, seq: u64) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    ws.send(like(kind, seq)).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interactions_are_the_canonical_message_and_fit_the_limit() {
        assert_eq!(
            like("like", 7).into_text().unwrap().as_str(),
            r#"{"type":"interact","kind":"like","count":1,"seq":7}"#
        );
        // The longest kind a campaign allows (32 characters) with the largest seq.
        let longest = like(&"k".repeat(32), u64::MAX).into_text().unwrap();
        assert!(longest.len() <= crate::protocol::MAX_MESSAGE_BYTES);
    }
}
