//! One async fn per socket: `select!` over shutdown, campaign end, acks, incoming frames,
//! shared stats frames (over plain TCP only those the broadcaster could not write itself)
//! and the heartbeat. Step one of a like's path: a valid `interact`
//! goes straight into the session's slot (see `tally::session`), no lock, no channel.
//! What the socket tolerates is decided in [`super::policy`].

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use governor::{Quota, RateLimiter};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::admission::{Admitted, Peer};
use super::policy::{self, BadWindow, Limiter, LimiterClock, RateStreak, PING_INTERVAL};
use super::stats_source::{NextStats, StatsSource};
use super::transport::{Incoming, Io, SendError, Transport};
use crate::broadcast::outlet::Audience;
use crate::broadcast::unit_views::UnitViews;
use crate::metrics::Metrics;
use crate::protocol::Frames;
use crate::protocol::{self, close, Close, ErrorCode};
use crate::tally::claim::PendingClaim;
use crate::tally::session::SessionSlot;
use crate::tally::units::UnitFrame;
use crate::tally::{CampaignTally, Pending};

/// Most messages handled per wake-up when they arrive in a burst, so one busy socket
/// cannot hold its worker thread for long.
pub const MAX_BURST: usize = 64;

/// What every socket task touches besides its own admitted state.
pub struct SocketEnv {
    pub metrics: Arc<Metrics>,
    /// Interactions taken and not yet in the store (bounded by `--max-pending`).
    pub pending: Arc<Pending>,
    /// `--max-interactions-per-sec` (burst is twice this).
    pub per_sec: NonZeroU32,
    /// `--drain-period`: at shutdown each socket closes at a random moment within it.
    pub drain_period: Duration,
    /// Cancelled at shutdown: every socket closes with 1001.
    pub shutdown: CancellationToken,
    /// The units reads an operator's `watch` sends (`None`: a node without them, the
    /// tests').
    pub units: Option<Arc<UnitViews>>,
}

/// Runs one admitted socket until it closes; dropping `admitted` at the end releases it.
///
/// A plain function returning an `async move` block, not an `async fn`: an `async fn`
/// keeps its arguments twice in its future (as captured and as moved-in locals, about
/// 400 bytes here), and this future is most of what an idle socket costs.
#[allow(clippy::manual_async_fn, reason = "an async fn's future keeps its arguments twice")]
pub fn run<S: Io>(
    env: Arc<SocketEnv>,
    mut admitted: Admitted,
    mut transport: Transport<S>,
) -> impl Future<Output = ()> {
    async move {
        let tally = &admitted.tally;
        let mut stats = StatsSource::of(&transport, tally);
        // The handshake wrote the welcome with its 101 (`ws::handshake`); a socket handed
        // over any other way (the tests' pipes) sends it first. In a block, and the claim's
        // result taken in a `let`, so neither stays in the future while `serve` runs: a
        // tokio task is allocated in steps of 128 bytes, and holding them (future 1,440
        // bytes, 1,384 without) took an idle socket's task from 1,536 to 1,664 bytes.
        let sent = {
            let welcome = std::mem::take(&mut admitted.welcome);
            if welcome.is_empty() {
                Ok(())
            } else {
                transport.send(welcome).await
            }
        };
        let mut conn = Conn::new(&env, tally, &admitted.peer);
        let reason = 'run: {
            if sent.is_err() {
                break 'run Closing::Drop("client_closed");
            }
            let late = match conn.welcome_when_claimed(&mut transport).await {
                Err(c) => break 'run c,
                Ok(late) => late,
            };
            // Over plain TCP the broadcaster writes stats frames into the socket itself
            // from now on (after the welcome); until this is dropped. A viewer in a unit
            // gets its unit's frame first, from its own task. Operators (few; a `watch`
            // answers after each frame) take every frame from the campaign's channel. In a
            // block, so `late` and the audience are not kept in the future while `serve`
            // runs (see above).
            let _direct = {
                let late = late;
                // A viewer admitted while its claim is pending (a store outage) is in its
                // unit already: the claim only decides when it counts.
                let unit = match &admitted.peer {
                    Peer::Viewer { slot, .. } => slot.unit.as_ref(),
                    Peer::Claiming(claim) => claim.unit.as_ref(),
                    Peer::Operator => None,
                };
                let audience = match unit {
                    Some(place) => {
                        conn.unit_sent = place.frame();
                        if let Some(f) = &conn.unit_sent {
                            // A failed send shows in the loop's next read or write.
                            let _ = transport.send(f.text.clone()).await;
                        }
                        Audience::Unit(place.id)
                    }
                    None if matches!(admitted.peer, Peer::Operator) => {
                        stats = StatsSource::watched(tally);
                        Audience::Operator
                    }
                    None => Audience::Viewer,
                };
                let direct = transport
                    .outlet()
                    .filter(|_| audience != Audience::Operator)
                    .map(|o| tally.outlets.register(o.clone(), audience));
                stats.catch_up(tally, late.as_ref().unwrap_or(&admitted.welcomed), audience);
                direct
            };
            conn.serve(&mut transport, &mut stats).await
        };
        match reason {
            Closing::Code(c) => {
                transport.close(c.code, c.reason).await;
                env.metrics.closed(why_label(c.code));
            }
            Closing::Drop(why) => env.metrics.closed(why),
        }
    }
}

/// The `reason` label of `livetally_connections_closed_total` for a close code.
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
    Code(Close),
    /// Just drop it (the peer is gone or too slow); the label is for metrics.
    Drop(&'static str),
}

/// Per-socket state.
struct Conn<'a> {
    env: &'a SocketEnv,
    tally: &'a CampaignTally,
    /// The viewer's session (none for an operator, or while its claim is pending).
    slot: Option<Arc<SessionSlot>>,
    /// The viewer's pending claim, while it is (see `tally::claim`).
    claim: Option<&'a Arc<PendingClaim>>,
    limiter: Limiter,
    /// Highest seq accepted on this socket (starts at the welcome's `acked_seq`).
    last_seq: u64,
    /// Highest ack sent.
    last_ack: u64,
    bad: BadWindow,
    streak: RateStreak,
    last_seen: Instant,
    /// `seq` of the message being handled, echoed in its error reply.
    current_seq: Option<u64>,
    /// The last `unit` frame this viewer got from its own task (see `run`).
    unit_sent: Option<Arc<UnitFrame>>,
    /// An operator's `watch`: boxed, as only operators have one.
    watching: Option<Box<watch::Watching>>,
}

fn send_err(e: SendError) -> Closing {
    match e {
        SendError::Closed => Closing::Drop("client_closed"),
        SendError::Slow => Closing::Drop("slow_client"),
    }
}

impl<'a> Conn<'a> {
    fn new(env: &'a SocketEnv, tally: &'a CampaignTally, peer: &'a Peer) -> Self {
        let burst = env
            .per_sec
            .saturating_mul(NonZeroU32::new(2).unwrap_or(NonZeroU32::MIN));
        let (slot, claim) = match peer {
            Peer::Viewer { slot, .. } => (Some(slot.clone()), None),
            Peer::Claiming(claim) => (None, Some(claim)),
            Peer::Operator => (None, None),
        };
        let acked = slot.as_ref().map(|s| s.acked()).unwrap_or(0);
        Self {
            env,
            tally,
            slot,
            claim,
            limiter: RateLimiter::direct_with_clock(Quota::per_second(env.per_sec).allow_burst(burst), LimiterClock),
            last_seq: acked,
            last_ack: acked,
            bad: BadWindow::default(),
            streak: RateStreak::default(),
            last_seen: Instant::now(),
            current_seq: None,
            unit_sent: None,
            watching: None,
        }
    }

    async fn serve<S: Io>(&mut self, transport: &mut Transport<S>, stats: &mut StatsSource) -> Closing {
        let operator = self.slot.is_none() && self.claim.is_none();
        // A claim that landed before the loop (a protocol-1 client's, which waited for it).
        if let Some(c) = self.on_claimed(transport).await {
            return c;
        }
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + PING_INTERVAL, PING_INTERVAL);
        // At shutdown this socket waits for its own random moment within --drain-period
        // before closing, so viewers reconnect elsewhere gradually (0: at once). Pinned
        // outside the loop so the wait is not restarted by every frame.
        let env = self.env;
        let drain = env.drain_period;
        let delay = if drain.is_zero() {
            Duration::ZERO
        } else {
            drain.mul_f64(rand::random::<f64>())
        };
        let going_away = async move {
            env.shutdown.cancelled().await;
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
            tokio::select! {
                biased;
                // Acks first: at shutdown the last flush's acks go out before the 1001 close.
                // Before them, the pending claim's landing (only while there is no slot).
                _ = async {
                    match (&self.slot, self.claim) {
                        (Some(s), _) => s.wake.notified().await,
                        (None, Some(c)) => c.landed.notified().await,
                        (None, None) => std::future::pending().await,
                    }
                } => {
                    let done = if self.slot.is_none() {
                        self.on_claimed(transport).await
                    } else {
                        self.send_ack(transport).await
                    };
                    if let Some(c) = done {
                        return c;
                    }
                }
                _ = &mut going_away => return Closing::Code(Close::SHUTTING_DOWN),
                _ = &mut ended => return Closing::Code(Close::ENDED),
                incoming = transport.recv() => {
                    self.last_seen = Instant::now();
                    // Messages already read arrive in bursts (a like-storm pipelines up to
                    // 32): take them without another round through every branch above.
                    let mut next = Some(incoming);
                    let mut taken = 0;
                    while let Some(incoming) = next.take() {
                        match self.on_incoming(incoming) {
                            Err(c) => return c,
                            Ok(Some(reply)) => {
                                if let Err(e) = transport.send(reply).await {
                                    return send_err(e);
                                }
                            }
                            Ok(None) => {}
                        }
                        taken += 1;
                        if taken < MAX_BURST {
                            next = transport.recv().now_or_never();
                        }
                    }
                    // Boxed, as only an operator's `watch` gets here: every socket's future
                    // would otherwise hold the read's.
                    if self.watching.as_ref().is_some_and(|w| w.due) {
                        if let Some(c) = Box::pin(self.send_units(transport)).await {
                            return c;
                        }
                    }
                }
                due = stats.next() => {
                    if let Some(c) = self.on_stats(transport, due, operator).await {
                        return c;
                    }
                }
                _ = heartbeat.tick() => {
                    if policy::is_idle(self.last_seen, Instant::now()) {
                        return Closing::Drop("idle_timeout");
                    }
                    if let Err(e) = transport.ping().await {
                        return send_err(e);
                    }
                }
            }
        }
    }

    /// A stats frame is due: the frames the broadcaster left (plain TCP) or the campaign's
    /// newest (then what follows it here: [`Conn::after_frame`]). `Some` to close.
    async fn on_stats<S: Io>(
        &mut self,
        transport: &mut Transport<S>,
        due: NextStats,
        operator: bool,
    ) -> Option<Closing> {
        let sent = match due {
            NextStats::Queued => transport.flush_queued().await,
            NextStats::Frame(f) => {
                let frame = if operator {
                    f.operator_frame.clone()
                } else {
                    f.viewer_frame.clone()
                };
                let sent = transport.send(frame).await;
                // Boxed for the same reason: only operators and viewers in units get here.
                if self.watching.is_some() || self.slot.as_ref().is_some_and(|s| s.unit.is_some()) {
                    if let Some(c) = Box::pin(self.after_frame(transport)).await {
                        return Some(c);
                    }
                }
                sent
            }
            NextStats::Gone => return Some(Closing::Code(Close::CAMPAIGN_CLOSED_HERE)),
        };
        sent.err().map(send_err)
    }

    /// Decides what one thing the client did calls for: `Ok(Some(reply))` to answer,
    /// `Err` to close. Not async: the reply is sent by the caller, so the socket's future
    /// holds one send, not one per call site.
    fn on_incoming(&mut self, incoming: Incoming) -> Result<Option<String>, Closing> {
        match incoming {
            Incoming::Text(text) => self.on_text(&text),
            Incoming::Binary => self.refuse(ErrorCode::BadJson),
            Incoming::Alive => Ok(None),
            Incoming::TooBig => {
                self.env.metrics.rejected("too_big");
                Err(Closing::Code(Close::TOO_BIG))
            }
            Incoming::ClientClosed => Err(Closing::Code(Close::BYE)),
            Incoming::Closed => Err(Closing::Drop("client_gone")),
        }
    }

    /// Sends the cumulative ack if it moved; closes when the session was resumed elsewhere.
    async fn send_ack<S: Io>(&mut self, transport: &mut Transport<S>) -> Option<Closing> {
        let slot = self.slot.as_ref()?;
        if slot.is_fenced() {
            return Some(Closing::Code(Close::RESUMED_ELSEWHERE));
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
            Err(bad) => return self.on_other(text, bad),
        };
        self.current_seq = msg.seq;
        if self.slot.is_none() && self.claim.is_none() {
            return self.refuse(ErrorCode::NotAViewer);
        }
        let Some(kind) = self.tally.campaign.kind_index(&msg.kind) else {
            return self.refuse(ErrorCode::UnknownKind);
        };
        match self.claim {
            Some(claim) if self.slot.is_none() => self.hold(claim, kind, msg.count, msg.seq),
            _ => self.count(kind, msg.count, msg.seq, true),
        }
    }

    /// Counts one valid interaction into the session's slot (`paced`: through the rate
    /// limit, which a replay of held messages already passed).
    fn count(&mut self, kind: usize, count: u64, seq: Option<u64>, paced: bool) -> Result<Option<String>, Closing> {
        if let Some(seq) = seq {
            if seq <= self.last_seq {
                // A resend of something already taken: never counted twice, and paced like
                // any message, so resends cannot buy a busy socket for free.
                if let Some(refused) = self.rate_limited().filter(|_| paced) {
                    return refused;
                }
                return Ok(Some(protocol::ack(self.slot.as_ref().map_or(0, |s| s.acked()))));
            }
            if seq != self.last_seq + 1 {
                return self.refuse(ErrorCode::SeqGap);
            }
        }
        if let Some(refused) = self.rate_limited().filter(|_| paced) {
            return refused;
        }
        if !self.env.pending.try_take(count) {
            return self.refuse(ErrorCode::StoreUnavailable);
        }
        let Some(slot) = self.slot.as_ref() else {
            return self.refuse(ErrorCode::NotAViewer);
        };
        if slot.add(kind, count, seq) {
            self.tally.queue_dirty(slot);
        }
        if let Some(seq) = seq {
            self.last_seq = seq;
        }
        Ok(None)
    }

    /// While the claim is pending: holds one interaction (after the rate limit) until it
    /// lands. Its seq cannot be checked against the stored acked one yet, only against the
    /// messages held before it: a resend of one of those is dropped, a gap refused.
    fn hold(
        &mut self,
        claim: &PendingClaim,
        kind: usize,
        count: u64,
        seq: Option<u64>,
    ) -> Result<Option<String>, Closing> {
        if let (Some(seq), Some(last)) = (seq, claim.last_held_seq()) {
            if seq <= last {
                return self.rate_limited().unwrap_or(Ok(None));
            }
            if seq != last + 1 {
                return self.refuse(ErrorCode::SeqGap);
            }
        }
        if let Some(refused) = self.rate_limited() {
            return refused;
        }
        if !claim.hold((kind, count, seq)) {
            return self.refuse(ErrorCode::StoreUnavailable);
        }
        Ok(None)
    }

    /// When the pending claim has landed: takes the session's slot, tells a protocol-2
    /// client the stored acked seq, and counts what was held against it (a held resend at
    /// or below it is dropped, as any resend is).
    async fn on_claimed<S: Io>(&mut self, transport: &mut Transport<S>) -> Option<Closing> {
        let claim = self.claim.filter(|_| self.slot.is_none())?;
        let slot = claim.slot()?;
        let acked = slot.acked();
        (self.last_seq, self.last_ack) = (acked, acked);
        self.slot = Some(slot);
        if claim.proto2 {
            if let Err(e) = transport.send(protocol::ack(acked)).await {
                return Some(send_err(e));
            }
        }
        for (kind, count, seq) in claim.take_held() {
            if seq.is_some_and(|s| s <= self.last_seq) {
                continue;
            }
            self.current_seq = seq;
            match self.count(kind, count, seq, false) {
                Err(c) => return Some(c),
                Ok(Some(reply)) => {
                    if let Err(e) = transport.send(reply).await {
                        return Some(send_err(e));
                    }
                }
                Ok(None) => {}
            }
        }
        None
    }

    /// A protocol-1 client admitted with its claim pending gets its welcome (with the
    /// stored acked seq) only once the claim lands; until then the socket is held open:
    /// pinged, closed at shutdown or campaign end, and what it sends is held. Returns the
    /// frames of a welcome sent here (`None`: the welcome went out at admission).
    async fn welcome_when_claimed<S: Io>(
        &mut self,
        transport: &mut Transport<S>,
    ) -> Result<Option<Arc<Frames>>, Closing> {
        let Some(claim) = self.claim.filter(|c| !c.proto2) else {
            return Ok(None);
        };
        let env = self.env;
        let mut heartbeat = tokio::time::interval_at(Instant::now() + PING_INTERVAL, PING_INTERVAL);
        let slot = loop {
            if let Some(slot) = claim.slot() {
                break slot;
            }
            tokio::select! {
                _ = claim.landed.notified() => {}
                _ = env.shutdown.cancelled() => return Err(Closing::Code(Close::SHUTTING_DOWN)),
                _ = self.tally.ended.cancelled() => return Err(Closing::Code(Close::ENDED)),
                incoming = transport.recv() => {
                    self.last_seen = Instant::now();
                    if let Some(reply) = self.on_incoming(incoming)? {
                        transport.send(reply).await.map_err(send_err)?;
                    }
                }
                _ = heartbeat.tick() => {
                    if policy::is_idle(self.last_seen, Instant::now()) {
                        return Err(Closing::Drop("idle_timeout"));
                    }
                    transport.ping().await.map_err(send_err)?;
                }
            }
        };
        let frames = self.tally.frames.borrow().clone();
        let welcome = protocol::Welcome {
            campaign: &self.tally.campaign.id,
            role: "viewer",
            viewer: &claim.viewer,
            session: &claim.session,
            acked_seq: Some(slot.acked()),
            tick_ms: claim.tick_ms,
            stats: &frames.viewer_stats,
        }
        .to_text();
        transport.send(welcome).await.map_err(send_err)?;
        Ok(Some(frames))
    }

    /// Takes a token from the socket's rate limiter; without one, the refusal to answer
    /// (`rate_limited`, or the 1008 close after a 5 s streak).
    fn rate_limited(&mut self) -> Option<Result<Option<String>, Closing>> {
        if self.limiter.check().is_ok() {
            return None;
        }
        if self.streak.refused(Instant::now()) {
            self.env.metrics.rejected(ErrorCode::RateLimited.code());
            return Some(Err(Closing::Code(Close::RATE_LIMITED)));
        }
        Some(self.refuse(ErrorCode::RateLimited))
    }

    /// Refuses the current message with an `error` reply; bad input also counts towards
    /// the 1008 close.
    fn refuse(&mut self, code: ErrorCode) -> Result<Option<String>, Closing> {
        self.env.metrics.rejected(code.code());
        if code.is_bad_input() && self.bad.record(Instant::now()) {
            return Err(Closing::Code(Close::TOO_MANY_BAD));
        }
        Ok(Some(protocol::error(code, self.current_seq)))
    }
}

mod watch;

#[cfg(test)]
mod tests;
