//! One async fn per socket: `select!` over shutdown, campaign end, acks, incoming frames,
//! shared stats frames and the heartbeat. Step one of a like's path: a valid `interact`
//! goes straight into the session's slot (see `tally::session`), no lock, no channel.

use std::collections::VecDeque;
use std::num::NonZeroU32;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

use super::protocol::{self, BadMessage};
use super::transport::{Incoming, SendError, Transport};
use super::Admitted;
use crate::node::NodeCtx;
use crate::tally::session::SessionSlot;
use crate::tally::CampaignTally;

/// The server pings this often; browsers answer pings themselves. 25 s (as Centrifugo)
/// keeps proxies with a 60 s idle timeout open while an idle audience of 200,000 costs
/// 8,000 pings a second, not 20,000.
pub const PING_INTERVAL: Duration = Duration::from_secs(25);
/// A socket silent this long (three missed pings) is dropped.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(75);
/// Most messages handled per wake-up when they arrive in a burst, so one busy socket
/// cannot hold its worker thread for long.
pub const MAX_BURST: usize = 64;
/// More than this many bad messages within [`BAD_WINDOW`] closes the socket with 1008.
pub const MAX_BAD_MESSAGES: usize = 10;
pub const BAD_WINDOW: Duration = Duration::from_secs(10);
/// Being rate limited this long without a single accepted message closes with 1008.
pub const RATE_LIMITED_CLOSE_AFTER: Duration = Duration::from_secs(5);
/// A rate-limit streak ends after this long without a refusal.
pub const LIMIT_STREAK_GAP: Duration = Duration::from_secs(1);

/// Close codes of the protocol (docs/protocol.md).
pub mod close {
    pub const NORMAL: u16 = 1000;
    pub const GOING_AWAY: u16 = 1001;
    pub const POLICY: u16 = 1008;
    pub const TOO_BIG: u16 = 1009;
    pub const ENDED: u16 = 4000;
    pub const RESUMED_ELSEWHERE: u16 = 4001;
}

/// Who is on the other end.
pub enum Peer {
    Viewer { slot: Arc<SessionSlot>, region: usize },
    Operator,
}

impl Peer {
    /// The `role` label of the connection metrics.
    pub fn role(&self) -> &'static str {
        match self {
            Peer::Viewer { .. } => "viewer",
            Peer::Operator => "operator",
        }
    }
}

/// Runs one admitted socket until it closes.
pub async fn run(ctx: Arc<NodeCtx>, mut admitted: Admitted, mut transport: Transport) {
    let welcome = std::mem::take(&mut admitted.welcome);
    let tally = &admitted.tally;
    let mut frames = tally.frames.subscribe();
    frames.mark_unchanged();
    let reason = if transport.send(welcome).await.is_err() {
        Closing::Drop("client_closed")
    } else {
        let mut conn = Conn::new(&ctx, tally, &admitted.peer);
        conn.serve(&mut transport, &mut frames).await
    };
    match reason {
        Closing::Code(code, why) => {
            transport.close(code, why).await;
            ctx.metrics.closed(why_label(code));
        }
        Closing::Drop(why) => ctx.metrics.closed(why),
    }
    release(&ctx, &admitted);
}

/// Undoes what admission counted: the viewer (or watcher) and the connection.
pub fn release(ctx: &NodeCtx, admitted: &Admitted) {
    match admitted.peer {
        Peer::Viewer { region, .. } => admitted.tally.viewer_left(region),
        Peer::Operator => {
            admitted.tally.watchers.fetch_sub(1, Ordering::Relaxed);
        }
    }
    ctx.connections.fetch_sub(1, Ordering::Relaxed);
    ctx.metrics.connections.with_label_values(&[admitted.peer.role()]).dec();
}

fn why_label(code: u16) -> &'static str {
    match code {
        close::GOING_AWAY => "shutdown",
        close::POLICY => "policy",
        close::TOO_BIG => "too_big",
        close::ENDED => "campaign_ended",
        close::RESUMED_ELSEWHERE => "resumed_elsewhere",
        close::NORMAL => "client_closed",
        _ => "other",
    }
}

/// How a socket ends.
enum Closing {
    /// Send a close frame with this code and reason.
    Code(u16, &'static str),
    /// Just drop it (the peer is gone or too slow); the label is for metrics.
    Drop(&'static str),
}

/// Per-socket state.
struct Conn<'a> {
    ctx: &'a NodeCtx,
    tally: &'a CampaignTally,
    slot: Option<&'a Arc<SessionSlot>>,
    limiter: DefaultDirectRateLimiter,
    /// Highest seq accepted on this socket (starts at the welcome's `acked_seq`).
    last_seq: u64,
    /// Highest ack sent.
    last_ack: u64,
    bad: VecDeque<Instant>,
    /// Start and latest refusal of the current rate-limit streak.
    limited_since: Option<(Instant, Instant)>,
    last_seen: Instant,
    /// `seq` of the message being handled, echoed in its error reply.
    current_seq: Option<u64>,
}

fn send_err(e: SendError) -> Closing {
    match e {
        SendError::Closed => Closing::Drop("client_closed"),
        SendError::Slow => Closing::Drop("slow_client"),
    }
}

impl<'a> Conn<'a> {
    fn new(ctx: &'a NodeCtx, tally: &'a CampaignTally, peer: &'a Peer) -> Self {
        let per_sec = NonZeroU32::new(ctx.config.max_interactions_per_sec).unwrap_or(NonZeroU32::MIN);
        let burst = per_sec.saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
        let slot = match peer {
            Peer::Viewer { slot, .. } => Some(slot),
            Peer::Operator => None,
        };
        let acked = slot.map(|s| s.acked()).unwrap_or(0);
        Self {
            ctx,
            tally,
            slot,
            limiter: RateLimiter::direct_with_clock(Quota::per_second(per_sec).allow_burst(burst), ctx.clock.clone()),
            last_seq: acked,
            last_ack: acked,
            bad: VecDeque::with_capacity(MAX_BAD_MESSAGES + 1),
            limited_since: None,
            last_seen: Instant::now(),
            current_seq: None,
        }
    }

    async fn serve(
        &mut self,
        transport: &mut Transport,
        frames: &mut tokio::sync::watch::Receiver<Arc<crate::broadcast::Frames>>,
    ) -> Closing {
        let operator = self.slot.is_none();
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
        let never = tokio::sync::Notify::new();
        // At shutdown this socket waits for its own random moment within --drain-period
        // before closing, so viewers reconnect elsewhere gradually (0: at once). Pinned
        // outside the loop so the wait is not restarted by every frame.
        let ctx = self.ctx;
        let drain = ctx.config.drain_period;
        let delay = if drain.is_zero() {
            Duration::ZERO
        } else {
            drain.mul_f64(rand::random::<f64>())
        };
        let going_away = async move {
            ctx.shutdown.cancelled().await;
            if !delay.is_zero() {
                tokio::time::sleep(delay).await;
            }
        };
        tokio::pin!(going_away);
        // Also pinned: waiting on a token registers in a list shared by every socket, so
        // doing it once per socket (not once per frame) keeps the fan-out free of that lock.
        let ended = self.tally.ended.clone();
        let ended = ended.cancelled();
        tokio::pin!(ended);
        loop {
            let wake = match self.slot {
                Some(s) => &s.wake,
                None => &never,
            };
            tokio::select! {
                biased;
                // Acks first: at shutdown the last flush's acks go out before the 1001 close.
                _ = wake.notified() => {
                    if let Some(c) = self.send_ack(transport).await {
                        return c;
                    }
                }
                _ = &mut going_away => return Closing::Code(close::GOING_AWAY, "server shutting down"),
                _ = &mut ended => return Closing::Code(close::ENDED, "campaign ended"),
                incoming = transport.recv() => {
                    self.last_seen = Instant::now();
                    if let Some(c) = self.on_incoming(transport, incoming).await {
                        return c;
                    }
                    // Messages already read arrive in bursts (a like-storm pipelines up to
                    // 32): take them without another round through every branch above.
                    for _ in 1..MAX_BURST {
                        let Some(incoming) = transport.recv().now_or_never() else { break };
                        if let Some(c) = self.on_incoming(transport, incoming).await {
                            return c;
                        }
                    }
                }
                changed = frames.changed() => {
                    if changed.is_err() {
                        return Closing::Code(close::GOING_AWAY, "campaign closed on this node");
                    }
                    let f = frames.borrow_and_update().clone();
                    let frame = if operator { f.operator_frame.clone() } else { f.viewer_frame.clone() };
                    if let Err(e) = transport.send(frame).await {
                        return send_err(e);
                    }
                }
                _ = heartbeat.tick() => {
                    if self.last_seen.elapsed() >= IDLE_TIMEOUT {
                        return Closing::Drop("idle_timeout");
                    }
                    if let Err(e) = transport.ping().await {
                        return send_err(e);
                    }
                }
            }
        }
    }

    /// Handles one thing the client did; `Some` to close.
    async fn on_incoming(&mut self, transport: &mut Transport, incoming: Incoming) -> Option<Closing> {
        let reply = match incoming {
            Incoming::Text(text) => self.on_text(&text),
            Incoming::Binary => self.on_bad(BadMessage::BadJson),
            Incoming::Alive => Ok(None),
            Incoming::TooBig => {
                self.ctx.metrics.rejected("too_big");
                return Some(Closing::Code(close::TOO_BIG, "message over 4096 bytes"));
            }
            Incoming::ClientClosed => return Some(Closing::Code(close::NORMAL, "bye")),
            Incoming::Closed => return Some(Closing::Drop("client_gone")),
        };
        match reply {
            Ok(Some(msg)) => transport.send(msg).await.err().map(send_err),
            Ok(None) => None,
            Err(c) => Some(c),
        }
    }

    /// Sends the cumulative ack if it moved; closes when the session was resumed elsewhere.
    async fn send_ack(&mut self, transport: &mut Transport) -> Option<Closing> {
        let slot = self.slot?;
        if slot.is_fenced() {
            return Some(Closing::Code(
                close::RESUMED_ELSEWHERE,
                "session resumed on another socket",
            ));
        }
        let acked = slot.acked();
        if acked > self.last_ack {
            self.last_ack = acked;
            if let Err(e) = transport.send(protocol::ack(acked)).await {
                return Some(send_err(e));
            }
        }
        None
    }

    /// Handles a text frame; `Ok(Some(reply))` to answer, `Err` to close.
    fn on_text(&mut self, text: &str) -> Result<Option<String>, Closing> {
        self.current_seq = None;
        let msg = match protocol::parse(text) {
            Ok(m) => m,
            Err(bad) => return self.on_bad(bad),
        };
        self.current_seq = msg.seq;
        let Some(slot) = self.slot else {
            return self.refuse("not_a_viewer", "operator watchers cannot interact");
        };
        let Some(kind) = self.tally.campaign.kind_index(&msg.kind) else {
            return self.on_bad_with("unknown_kind", "this campaign does not count that kind");
        };
        if let Some(seq) = msg.seq {
            if seq <= self.last_seq {
                // A resend of something already taken: never counted twice.
                return Ok(Some(protocol::ack(slot.acked())));
            }
            if seq != self.last_seq + 1 {
                return self.on_bad_with("seq_gap", "seq must be the previous seq + 1");
            }
        }
        if self.limiter.check().is_err() {
            self.ctx.metrics.rejected("rate_limited");
            // A streak of refusals survives the odd message that slips through on a refilled
            // token; it ends only after a quiet second without any refusal.
            let now = Instant::now();
            let since = match self.limited_since {
                Some((since, last)) if now.duration_since(last) <= LIMIT_STREAK_GAP => since,
                _ => now,
            };
            self.limited_since = Some((since, now));
            if now.duration_since(since) >= RATE_LIMITED_CLOSE_AFTER {
                return Err(Closing::Code(close::POLICY, "rate limited for too long"));
            }
            return Ok(Some(protocol::error(
                "rate_limited",
                "too many interactions; slow down",
                self.current_seq,
            )));
        }
        if self.ctx.pending.load(Ordering::Relaxed) >= self.ctx.config.max_pending {
            return self.refuse(
                "store_unavailable",
                "the store is unreachable and the buffer is full; retry later",
            );
        }
        self.ctx.pending.fetch_add(msg.count, Ordering::Relaxed);
        if slot.add(kind, msg.count, msg.seq) {
            self.tally.queue_dirty(slot);
        }
        if let Some(seq) = msg.seq {
            self.last_seq = seq;
        }
        Ok(None)
    }

    fn refuse(&mut self, code: &'static str, message: &str) -> Result<Option<String>, Closing> {
        self.ctx.metrics.rejected(code);
        Ok(Some(protocol::error(code, message, self.current_seq)))
    }

    fn on_bad(&mut self, bad: BadMessage) -> Result<Option<String>, Closing> {
        self.on_bad_with(bad.code(), bad.message())
    }

    /// A bad message: answered with an error, and counted towards the 1008 close.
    fn on_bad_with(&mut self, code: &'static str, message: &str) -> Result<Option<String>, Closing> {
        self.ctx.metrics.rejected(code);
        let now = Instant::now();
        while self.bad.front().is_some_and(|t| now.duration_since(*t) > BAD_WINDOW) {
            self.bad.pop_front();
        }
        self.bad.push_back(now);
        if self.bad.len() > MAX_BAD_MESSAGES {
            return Err(Closing::Code(close::POLICY, "too many bad messages"));
        }
        Ok(Some(protocol::error(code, message, self.current_seq)))
    }
}
