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
use crate::metrics::Metrics;
use crate::protocol::Frames;
use crate::protocol::{self, close, Close, ErrorCode};
use crate::tally::claim::PendingClaim;
use crate::tally::session::SessionSlot;
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
        // over any other way (the tests' pipes) sends it first.
        let welcome = std::mem::take(&mut admitted.welcome);
        let sent = if welcome.is_empty() {
            Ok(())
        } else {
            transport.send(welcome).await
        };
        let mut conn = Conn::new(&env, tally, &admitted.peer);
        let reason = if sent.is_err() {
            Closing::Drop("client_closed")
        } else {
            match conn.welcome_when_claimed(&mut transport).await {
                Err(c) => c,
                Ok(late) => {
                    // Over plain TCP the broadcaster writes stats frames into the socket
                    // itself from now on (after the welcome); until this is dropped.
                    let audience = match admitted.peer {
                        Peer::Viewer { .. } | Peer::Claiming(_) => Audience::Viewer,
                        Peer::Operator => Audience::Operator,
                    };
                    let _direct = transport.outlet().map(|o| tally.outlets.register(o.clone(), audience));
                    stats.catch_up(tally, late.as_ref().unwrap_or(&admitted.welcomed), audience);
                    conn.serve(&mut transport, &mut stats).await
                }
            }
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
                }
                due = stats.next() => {
                    let sent = match due {
                        NextStats::Queued => transport.flush_queued().await,
                        NextStats::Frame(f) => {
                            transport.send(if operator { f.operator_frame.clone() } else { f.viewer_frame.clone() }).await
                        }
                        NextStats::Gone => return Closing::Code(Close::CAMPAIGN_CLOSED_HERE),
                    };
                    if let Err(e) = sent {
                        return send_err(e);
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
            Err(bad) => return self.refuse(bad.into()),
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

#[cfg(test)]
mod tests {
    //! The socket loop over an in-memory pipe, against the memory store, under paused time:
    //! what a client sees for each way a socket can go.

    use futures_util::{SinkExt, StreamExt};
    use tokio::io::DuplexStream;
    use tokio_tungstenite::tungstenite::protocol::Role;
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::WebSocketStream;

    use super::*;
    use crate::store::{Campaigns, Reads};
    use crate::ws::testing::{next_json, rig, Rig};

    type Client = WebSocketStream<DuplexStream>;

    impl Rig {
        /// Admits a viewer with `query` and serves it; returns the client end.
        async fn connect(&self, query: &str) -> (Client, tokio::task::JoinHandle<()>) {
            let client = crate::clients::ClientKey::of([198, 51, 100, 1].into());
            let checked = self.admission.check("launch", query, None, None, client).await.unwrap();
            let admitted = self.admission.admit(checked).await.unwrap();
            let (server, client) = tokio::io::duplex(64 * 1024);
            let transport = Transport::new(server, vec![]).await;
            let task = tokio::spawn(run(self.env.clone(), admitted, transport));
            (WebSocketStream::from_raw_socket(client, Role::Client, None).await, task)
        }
    }

    /// Reads until the socket ends: the close code, or `None` when it ended without one.
    async fn close_code(c: &mut Client) -> Option<u16> {
        loop {
            match c.next().await {
                Some(Ok(Message::Close(f))) => return f.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                _ => return None,
            }
        }
    }

    async fn send(c: &mut Client, text: &str) {
        c.send(Message::text(text)).await.unwrap();
    }

    #[tokio::test(start_paused = true)]
    async fn a_like_is_acked_once_stored_and_a_resend_is_not_counted_again() {
        let rig = rig().await;
        let _flusher = rig.flusher().drop_guard();
        let (mut c, _) = rig.connect("session=session-0001").await;
        let welcome = next_json(&mut c).await;
        assert_eq!(
            (welcome["type"].as_str(), welcome["acked_seq"].as_u64()),
            (Some("welcome"), Some(0))
        );
        send(&mut c, &protocol::client::interact("like", 2, Some(1))).await;
        assert_eq!(next_json(&mut c).await, serde_json::json!({"type":"ack","seq":1}));
        send(&mut c, &protocol::client::interact("like", 2, Some(1))).await;
        assert_eq!(next_json(&mut c).await, serde_json::json!({"type":"ack","seq":1}));
        let s = rig
            .store
            .stats("launch", &["like".into()], crate::util::now_ms())
            .await
            .unwrap();
        assert_eq!(s.interactions["like"], 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_eleventh_bad_message_closes_with_1008() {
        let rig = rig().await;
        let (mut c, task) = rig.connect("").await;
        next_json(&mut c).await;
        for _ in 0..policy::MAX_BAD_MESSAGES {
            send(&mut c, "{").await;
            assert_eq!(next_json(&mut c).await["code"], "bad_json");
        }
        send(&mut c, r#"{"type":"interact","kind":"boo","seq":1}"#).await;
        assert_eq!(close_code(&mut c).await, Some(close::POLICY));
        task.await.unwrap();
        assert_eq!(rig.closed("policy"), 1);
        assert_eq!(rig.tallies.get("launch").unwrap().local_viewers(), 0, "released");
    }

    #[tokio::test(start_paused = true)]
    async fn a_silent_client_is_dropped_after_the_idle_timeout_without_a_close() {
        let rig = rig().await;
        let (mut c, task) = rig.connect("").await;
        next_json(&mut c).await;
        // The client reads nothing, so it answers no ping: after three pings it is gone.
        tokio::time::sleep(policy::IDLE_TIMEOUT + Duration::from_secs(1)).await;
        assert!(task.is_finished());
        assert_eq!(close_code(&mut c).await, None);
        assert_eq!(rig.closed("idle_timeout"), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_client_answering_pings_stays() {
        let rig = rig().await;
        let (mut c, task) = rig.connect("").await;
        next_json(&mut c).await;
        // Reading lets tungstenite answer each ping with a pong.
        let _ = tokio::time::timeout(policy::IDLE_TIMEOUT * 2, c.next()).await;
        assert!(!task.is_finished());
    }

    #[tokio::test(start_paused = true)]
    async fn shutdown_closes_with_1001_and_campaign_end_with_4000() {
        let rig = rig().await;
        let (mut a, _) = rig.connect("").await;
        next_json(&mut a).await;
        rig.tallies.get("launch").unwrap().ended.cancel();
        assert_eq!(close_code(&mut a).await, Some(close::ENDED));

        let rig = self::rig().await; // a fresh campaign: the first one ended
        let (mut b, _) = rig.connect("").await;
        next_json(&mut b).await;
        rig.env.shutdown.cancel();
        assert_eq!(close_code(&mut b).await, Some(close::GOING_AWAY));
    }

    #[tokio::test(start_paused = true)]
    async fn every_socket_gets_the_published_frame() {
        let rig = rig().await;
        let (mut a, _) = rig.connect("").await;
        let (mut b, _) = rig
            .connect(&format!("role=operator&token={}", crate::ws::testing::OPERATOR_TOKEN))
            .await;
        next_json(&mut a).await;
        assert_eq!(next_json(&mut b).await["role"], "operator");
        let stats = crate::store::Stats {
            viewers: 7,
            ..Default::default()
        };
        let tally = rig.tallies.get("launch").unwrap();
        tally
            .frames
            .send_replace(Arc::new(protocol::Frames::build("launch", 1, &stats)));
        let (va, vb) = (next_json(&mut a).await, next_json(&mut b).await);
        assert_eq!((va["type"].as_str(), va["viewers"].as_u64()), (Some("stats"), Some(7)));
        assert!(va.get("nodes").is_none(), "viewers get the viewer frame");
        assert_eq!(vb["nodes"], serde_json::json!([]), "operators the operator frame");
    }

    #[tokio::test(start_paused = true)]
    async fn a_resend_flood_meets_the_rate_limit_then_closes_with_1008() {
        let rig = rig().await; // 20 messages a second, a burst of 40
        let (mut c, task) = rig.connect("session=session-0001").await;
        next_json(&mut c).await;
        send(&mut c, &protocol::client::interact("like", 1, Some(1))).await;
        let resend = protocol::client::interact("like", 1, Some(1));
        let (mut acks, mut limited) = (0, 0);
        for _ in 0..300 {
            send(&mut c, &resend).await;
            let reply = next_json(&mut c).await;
            match reply["type"].as_str() {
                Some("ack") => acks += 1,
                _ if reply["code"] == "rate_limited" => limited += 1,
                _ => panic!("{reply}"),
            }
        }
        // The limiter runs on tokio's clock, paused here: the 300 came at one instant, so
        // the burst of 40 less the first message's token answered them, no more.
        assert_eq!((acks, limited), (39, 261));
        // Then a flood of 50 a second against a quota of 20: two of every five get a
        // refilled token, the rest are refused, and after 5 s of refusals (the streak
        // survives the odd token) the socket closes like any flood.
        'flood: for _ in 0..60 {
            tokio::time::advance(Duration::from_millis(100)).await;
            for _ in 0..5 {
                if c.send(Message::text(resend.clone())).await.is_err() {
                    break 'flood;
                }
            }
            if task.is_finished() {
                break;
            }
        }
        assert_eq!(close_code(&mut c).await, Some(close::POLICY));
        task.await.unwrap();
        assert_eq!(rig.closed("policy"), 1);
        assert_eq!(rig.tallies.pending().get(), 1, "the resends took nothing");
    }

    #[tokio::test(start_paused = true)]
    async fn what_the_store_refused_as_ended_is_never_acked_and_the_socket_closes_with_4000() {
        let rig = rig().await;
        let _flusher = rig.flusher().drop_guard();
        let (mut c, task) = rig.connect("session=session-0001").await;
        next_json(&mut c).await;
        send(&mut c, &protocol::client::interact("like", 1, Some(1))).await;
        assert_eq!(next_json(&mut c).await, serde_json::json!({"type":"ack","seq":1}));
        // Another node ends the campaign; this node learns it from its next batch.
        rig.store.end_campaign("launch", crate::util::now_ms()).await.unwrap();
        send(&mut c, &protocol::client::interact("like", 2, Some(2))).await;
        send(&mut c, &protocol::client::interact("like", 3, Some(3))).await;
        let code = loop {
            match c.next().await {
                Some(Ok(Message::Text(t))) => {
                    let m: serde_json::Value = serde_json::from_str(&t).unwrap();
                    assert_ne!(m["type"], "ack", "acked what was not counted: {m}");
                }
                Some(Ok(Message::Close(f))) => break f.map(|f| u16::from(f.code)),
                Some(Ok(_)) => continue,
                other => panic!("socket ended without a close: {other:?}"),
            }
        };
        assert_eq!(code, Some(close::ENDED));
        task.await.unwrap();
        let s = rig
            .store
            .stats("launch", &["like".into()], crate::util::now_ms())
            .await
            .unwrap();
        assert_eq!(s.interactions["like"], 1);
        assert_eq!(rig.tallies.pending().get(), 0);
    }

    // A store outage refuses no viewer (see `tally::claim`).

    /// The store's stats of `launch`: `(viewers, peak_viewers, likes)`.
    async fn counted(rig: &Rig) -> (u64, u64, u64) {
        let s = rig
            .store
            .stats("launch", &["like".into()], crate::util::now_ms())
            .await
            .unwrap();
        (s.viewers, s.peak_viewers, s.interactions["like"])
    }

    /// Nothing reaches the client for `period` (pings aside).
    async fn silent(c: &mut Client, period: Duration) {
        if let Ok(m) = tokio::time::timeout(period, next_json(c)).await {
            panic!("expected nothing, got {m}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_viewer_joining_during_an_outage_is_welcomed_and_acked_once_the_claim_lands() {
        let rig = rig().await;
        let _flusher = rig.flusher().drop_guard();
        let (mut a, _) = rig.connect("session=session-000a").await;
        next_json(&mut a).await;
        rig.store.set_down(true);
        let (mut b, _) = rig.connect("proto=2&session=session-000b").await;
        let welcome = next_json(&mut b).await;
        assert_eq!(welcome["type"], "welcome");
        assert!(welcome["acked_seq"].is_null(), "{welcome}");
        send(&mut b, &protocol::client::interact("like", 2, Some(1))).await;
        send(&mut b, &protocol::client::interact("like", 3, Some(2))).await;
        silent(&mut b, Duration::from_secs(3)).await;
        let tally = rig.tallies.get("launch").unwrap();
        assert_eq!(tally.local_viewers(), 1, "not in presence before its claim");
        assert_eq!(tally.claiming.load(std::sync::atomic::Ordering::Relaxed), 1);
        rig.store.set_down(false);
        assert_eq!(next_json(&mut b).await, serde_json::json!({"type":"ack","seq":0}));
        assert_eq!(next_json(&mut b).await, serde_json::json!({"type":"ack","seq":2}));
        assert_eq!(counted(&rig).await, (2, 2, 5));
        assert_eq!(tally.local_viewers(), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_protocol_1_client_waits_for_its_welcome_and_a_held_resend_counts_once() {
        let rig = rig().await;
        let _flusher = rig.flusher().drop_guard();
        let (mut keep, _) = rig.connect("session=session-keep").await;
        next_json(&mut keep).await;
        let (mut a, task) = rig.connect("session=session-0001").await;
        next_json(&mut a).await;
        for seq in 1..=3 {
            send(&mut a, &protocol::client::interact("like", 1, Some(seq))).await;
        }
        while next_json(&mut a).await["seq"] != 3 {}
        a.close(None).await.unwrap();
        task.await.unwrap();
        rig.store.set_down(true);
        let (mut b, _) = rig.connect("session=session-0001").await;
        // It resends from its own ledger: 3 (already counted) and 4, before any welcome.
        send(&mut b, &protocol::client::interact("like", 1, Some(3))).await;
        send(&mut b, &protocol::client::interact("like", 1, Some(4))).await;
        silent(&mut b, Duration::from_secs(3)).await;
        rig.store.set_down(false);
        let welcome = next_json(&mut b).await;
        assert_eq!(
            (welcome["type"].as_str(), welcome["acked_seq"].as_u64()),
            (Some("welcome"), Some(3))
        );
        assert_eq!(next_json(&mut b).await, serde_json::json!({"type":"ack","seq":4}));
        // `keep` and `b`: each session once; the peak was `keep` and `a`.
        assert_eq!(counted(&rig).await, (2, 2, 4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_socket_that_closes_before_its_claim_lands_is_never_counted() {
        let rig = rig().await;
        let _flusher = rig.flusher().drop_guard();
        let (mut keep, _) = rig.connect("session=session-keep").await;
        next_json(&mut keep).await;
        rig.store.set_down(true);
        let (mut b, task) = rig.connect("proto=2&session=session-000b").await;
        next_json(&mut b).await;
        send(&mut b, &protocol::client::interact("like", 1, Some(1))).await;
        b.close(None).await.unwrap();
        task.await.unwrap();
        let tally = rig.tallies.get("launch").unwrap();
        assert_eq!(tally.claiming.load(std::sync::atomic::Ordering::Relaxed), 0);
        rig.store.set_down(false);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert_eq!(counted(&rig).await, (1, 1, 0));
    }
}
