//! One connected viewer socket through the run: it holds the socket, sends `interact`
//! messages on its schedule in the load phase, drains the last acks, and times every ack
//! and every `stats` frame, until the worker tells it to close.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{Error, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::shared::{Phase, Shared};
use crate::protocol::{client, peek};
use crate::util::now_ms;

/// A viewer socket, over TCP or TLS.
pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Samples a socket collects before merging them into the worker's histograms under the
/// lock: keeps the lock off the per-message path without a histogram per socket.
const SAMPLE_BATCH: usize = 256;

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

/// What the socket is doing.
#[derive(PartialEq, Eq)]
enum State {
    Waiting,
    Sending,
    Draining,
    Finished,
}

/// Holds a connected socket: follows `phase` (hold, load, close) and answers the server
/// until the worker closes the sockets. A socket the server closes or loses is counted as
/// dropped, and then waits for the close like the others.
/// `offset` places its first message within its interval (0..1, spreads sockets over time).
pub async fn drive(mut ws: Ws, offset: f64, shared: &Shared, phase: &mut watch::Receiver<Phase>) {
    let mut s = Socket::new(offset, shared);
    loop {
        let (wake, flood) = (s.wake(), s.flood());
        tokio::select! {
            biased;
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => s.on_text(&t),
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break,
            },
            changed = phase.changed() => {
                let p = *phase.borrow_and_update();
                if changed.is_err() || p == Phase::Close {
                    s.finish();
                    let _ = tokio::time::timeout(Duration::from_secs(2), ws.close(None)).await;
                    return;
                }
                if p == Phase::Go {
                    s.go();
                }
            }
            _ = tokio::time::sleep_until(wake), if wake < s.far => {
                if s.on_timer(&mut ws).await.is_err() {
                    break;
                }
            }
            _ = std::future::ready(()), if flood => {
                if s.fill_window(&mut ws).await.is_err() {
                    break;
                }
            }
        }
    }
    s.lost();
    let _ = phase.wait_for(|p| *p == Phase::Close).await;
}

/// The state of one socket between messages.
struct Socket<'a> {
    offset: f64,
    shared: &'a Shared,
    /// "Never": a year from the start, the deadline of a timer that is off.
    far: Instant,
    state: State,
    /// The last seq sent and the highest acked.
    seq: u64,
    acked: u64,
    /// Messages sent and not yet acked, with their send time.
    inflight: VecDeque<(u64, Instant)>,
    samples: Samples,
    next_due: Instant,
    /// The end of the load phase, then of the drain.
    stop_at: Instant,
    go_at: Instant,
    /// Messages sent on the timer: the next one is due at `go_at + (offset + k) * interval`.
    k: u64,
    /// `viewers` of the latest stats frame.
    last_viewers: Option<u64>,
}

impl<'a> Socket<'a> {
    fn new(offset: f64, shared: &'a Shared) -> Self {
        let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        Self {
            offset,
            shared,
            far,
            state: State::Waiting,
            seq: 0,
            acked: 0,
            inflight: VecDeque::new(),
            samples: Samples::default(),
            next_due: far,
            stop_at: far,
            go_at: far,
            k: 0,
            last_viewers: None,
        }
    }

    /// Room for another message under `--max-unacked`.
    fn room(&self) -> bool {
        self.seq - self.acked < self.shared.max_unacked
    }

    /// When the timer fires next: the next message, or the end of the phase.
    fn wake(&self) -> Instant {
        let timed = self.shared.interval.is_some();
        match self.state {
            State::Waiting | State::Finished => self.far,
            State::Sending if timed && self.room() => self.next_due.min(self.stop_at),
            _ => self.stop_at,
        }
    }

    /// Sending as fast as acks allow, with room in the window.
    fn flood(&self) -> bool {
        self.state == State::Sending && self.shared.interval.is_none() && self.room()
    }

    fn on_text(&mut self, text: &str) {
        match peek::kind_of(text) {
            peek::Kind::Ack => self.on_ack(text),
            peek::Kind::Stats => self.on_stats(text),
            // A refused message is not resent, so it stays unacked and the run is not
            // clean: raise the node's --max-interactions-per-sec for floods.
            peek::Kind::Error => {
                self.shared.counters.errors.fetch_add(1, Ordering::Relaxed);
            }
            peek::Kind::Welcome | peek::Kind::Other => {}
        }
    }

    fn on_ack(&mut self, text: &str) {
        if let Some(n) = peek::number_after(text, peek::SEQ) {
            if n > self.acked {
                self.shared.counters.acked.fetch_add(n - self.acked, Ordering::Relaxed);
                self.acked = n;
            }
            let now = Instant::now();
            while self.inflight.front().is_some_and(|(s, _)| *s <= n) {
                if let Some((_, at)) = self.inflight.pop_front() {
                    self.samples.acks.push(now.duration_since(at).as_micros() as u64);
                }
            }
            self.samples.flush(self.shared, false);
        }
        if self.state == State::Draining && self.acked == self.seq {
            self.finish();
        }
    }

    fn on_stats(&mut self, text: &str) {
        let c = &self.shared.counters;
        self.last_viewers = peek::number_after(text, peek::VIEWERS).or(self.last_viewers);
        c.last_frame_ms.fetch_max(now_ms() as u64, Ordering::Relaxed);
        if self.state != State::Waiting {
            c.frames.fetch_add(1, Ordering::Relaxed);
            if let Some(at) = peek::number_after(text, peek::AT) {
                let lag_ms = (now_ms() as u64).saturating_sub(at);
                self.samples.lags.push(lag_ms * 1000);
                self.samples.flush(self.shared, false);
            }
        }
    }

    /// The load phase began.
    fn go(&mut self) {
        if self.state != State::Waiting {
            return;
        }
        self.go_at = Instant::now();
        self.stop_at = self.go_at + self.shared.duration;
        if self.shared.sends {
            self.state = State::Sending;
            if let Some(iv) = self.shared.interval {
                self.next_due = self.go_at + Duration::from_secs_f64(self.offset * iv);
            }
        } else {
            // Nothing to send: hold the socket for the duration, reading stats.
            self.state = State::Draining;
        }
    }

    /// The timer fired: the phase ended, or the next message is due.
    async fn on_timer(&mut self, ws: &mut Ws) -> Result<(), Error> {
        let now = Instant::now();
        if now >= self.stop_at {
            match self.state {
                State::Sending => {
                    self.drain(now);
                    if self.acked == self.seq {
                        self.finish();
                    }
                }
                State::Draining => self.finish(),
                _ => {}
            }
            return Ok(());
        }
        self.seq += 1;
        self.k += 1;
        self.inflight.push_back((self.seq, now));
        ws.send(like(&self.shared.kind, self.seq)).await?;
        self.shared.counters.sent.fetch_add(1, Ordering::Relaxed);
        if let Some(iv) = self.shared.interval {
            self.next_due = self.go_at + Duration::from_secs_f64((self.offset + self.k as f64) * iv);
        }
        Ok(())
    }

    /// As fast as acks allow: fill the window in one write.
    async fn fill_window(&mut self, ws: &mut Ws) -> Result<(), Error> {
        let now = Instant::now();
        let upto = self.acked + self.shared.max_unacked;
        while self.seq < upto {
            self.seq += 1;
            self.inflight.push_back((self.seq, now));
            if ws.feed(like(&self.shared.kind, self.seq)).await.is_err() {
                break;
            }
            self.shared.counters.sent.fetch_add(1, Ordering::Relaxed);
        }
        ws.flush().await?;
        if now >= self.stop_at {
            self.drain(now);
        }
        Ok(())
    }

    /// Sending is over: wait up to `--drain-timeout` for the last acks.
    fn drain(&mut self, now: Instant) {
        self.state = State::Draining;
        self.stop_at = now + self.shared.drain_timeout;
    }

    /// Done with the load phase (drained, timed out, lost or closed): counted once.
    fn finish(&mut self) {
        if self.state == State::Finished {
            return;
        }
        self.state = State::Finished;
        self.samples.flush(self.shared, true);
        let c = &self.shared.counters;
        if let Some(v) = self.last_viewers {
            c.viewers_seen.add(v);
        }
        c.finished.fetch_add(1, Ordering::Relaxed);
    }

    /// The server closed the socket, or the connection failed.
    fn lost(&mut self) {
        self.shared.counters.dropped.fetch_add(1, Ordering::Relaxed);
        if self.state != State::Finished {
            self.shared.note("dropped");
        }
        self.finish();
    }
}

/// One interaction (count 1, so messages sent = counts taken).
fn like(kind: &str, seq: u64) -> Message {
    Message::text(client::interact(kind, 1, Some(seq)))
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
