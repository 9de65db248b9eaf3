//! A small async load client for node tests: viewer sockets that send seq'd interactions
//! while a reader task records every ack, so a test knows exactly what the server has
//! confirmed, plus readers for `/metrics`, `/readyz` and Redis `INFO commandstats`.
//!
//! The counts are chosen so totals check more than message counts: seq `s` carries
//! [`count_of`]`(s)` likes (1, 2 or 3), and a client that has sent seq 1..=n has
//! contributed exactly [`total_upto`]`(n)`.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;

use super::node::{End, Node, Ws, PATIENCE};
use super::redis::RedisServer;

type Stream = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Most frames handed to a socket between two flushes of its sink.
pub const BURST: u64 = 100;

/// Most seqs a streaming client sends past its last ack.
pub const AHEAD: u64 = 400;

/// Likes carried by seq `s` (varies, so a lost or doubled message shifts the total).
pub fn count_of(seq: u64) -> u64 {
    seq % 3 + 1
}

/// Likes carried by seqs 1..=n (closed form of the sum of [`count_of`]: every 3 seqs
/// carry 2 + 3 + 1 likes).
pub fn total_upto(n: u64) -> u64 {
    let (q, r) = (n / 3, n % 3);
    6 * q + [0, 2, 5][r as usize]
}

/// The interaction frame for `seq`, with the likes of [`count_of`].
pub fn like(seq: u64) -> Message {
    Message::text(format!(
        r#"{{"type":"interact","kind":"like","count":{},"seq":{seq}}}"#,
        count_of(seq)
    ))
}

/// What the reader task saw.
#[derive(Default)]
pub struct Seen {
    /// `error` messages (rate limited, seq gap, ...): a correct run has none.
    pub errors: Vec<Value>,
    /// Acks in arrival order.
    pub acks: Vec<u64>,
}

/// One viewer socket with a session, split into a writer (this struct) and a reader task.
pub struct Client {
    pub session: String,
    /// The `welcome` message of this connection.
    pub welcome: Value,
    /// The next seq this client will send.
    pub next: u64,
    sink: SplitSink<Stream, Message>,
    /// Highest seq known acked: the welcome's `acked_seq`, then every `ack`.
    acked: watch::Receiver<u64>,
    /// `None` while the socket is open.
    end: watch::Receiver<Option<End>>,
    pub seen: Arc<Mutex<Seen>>,
    /// Frames handed to the socket so far.
    sent: Arc<AtomicU64>,
    reader: JoinHandle<()>,
}

impl Client {
    /// Opens a socket to `node` for `session` (its viewer id is derived from it), reads the
    /// welcome, and resumes after the welcome's `acked_seq`.
    pub async fn connect(node: &Node, campaign: &str, session: &str) -> Client {
        let url = node.ws_url(&format!(
            "/ws/v1/campaigns/{campaign}?viewer=v-{session}&session={session}"
        ));
        let mut ws = Ws::connect(&url)
            .await
            .unwrap_or_else(|status| panic!("socket for {session} refused with {status}"));
        let welcome = ws.next().await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        assert_eq!(welcome["session"], session);
        let acked_seq = welcome["acked_seq"].as_u64().expect("acked_seq");
        let (sink, stream) = ws.stream.split();
        let (acked_tx, acked) = watch::channel(acked_seq);
        let (end_tx, end) = watch::channel(None);
        let seen = Arc::new(Mutex::new(Seen::default()));
        let reader = tokio::spawn(read(stream, acked_tx, end_tx, seen.clone()));
        Client {
            session: session.to_owned(),
            welcome,
            next: acked_seq + 1,
            sink,
            acked,
            end,
            seen,
            sent: Arc::default(),
            reader,
        }
    }

    /// The welcome's `acked_seq`.
    pub fn welcome_acked(&self) -> u64 {
        self.welcome["acked_seq"].as_u64().unwrap_or(0)
    }

    /// Highest seq known acked.
    pub fn acked(&self) -> u64 {
        *self.acked.borrow()
    }

    /// How the socket ended, `None` while open.
    pub fn ended(&self) -> Option<End> {
        self.end.borrow().as_ref().map(|e| match e {
            End::Close(c) => End::Close(*c),
            End::NoCloseFrame => End::NoCloseFrame,
        })
    }

    /// Sends seqs `next..=last` in one burst (frames fed, one flush). Returns false when the
    /// socket is gone; `next` then points after the last frame handed to the socket.
    pub async fn send_upto(&mut self, last: u64) -> bool {
        while self.next <= last {
            if self.sink.feed(like(self.next)).await.is_err() {
                return false;
            }
            self.next += 1;
            self.sent.fetch_add(1, Ordering::Relaxed);
        }
        self.sink.flush().await.is_ok()
    }

    /// Sends seqs up to `last` at about `per_sec` messages per second (`f64::INFINITY`:
    /// as fast as the node takes them), in bursts of at most [`BURST`] frames, never more
    /// than [`AHEAD`] seqs past the last ack (a client that floods a busy node only builds
    /// a backlog in socket buffers). Stops early when `stop` is set, or (returning false)
    /// when the socket goes away.
    pub async fn stream_upto(&mut self, last: u64, per_sec: f64, stop: &watch::Receiver<bool>) -> bool {
        // Each client starts at its own phase of the period, so many slow clients spread
        // their frames over time instead of all sending at the same instants.
        let phase = {
            use std::hash::{Hash, Hasher};
            // Fixed keys: the same session gets the same phase in every run.
            let mut h = std::collections::hash_map::DefaultHasher::new();
            self.session.hash(&mut h);
            h.finish() % 1000
        };
        let started = tokio::time::Instant::now() - Duration::from_secs_f64(phase as f64 / 1000.0 / per_sec);
        let first = self.next;
        while self.next <= last && !*stop.borrow() {
            if self.end.borrow().is_some() {
                return false;
            }
            let due = if per_sec.is_finite() {
                first.saturating_add((started.elapsed().as_secs_f64() * per_sec) as u64)
            } else {
                u64::MAX
            };
            if self.next > due {
                // Caught up: sleep until the next frame is due (at least 5 ms).
                let at = started + Duration::from_secs_f64((self.next - first) as f64 / per_sec);
                let floor = tokio::time::Instant::now() + Duration::from_millis(5);
                tokio::time::sleep_until(at.max(floor)).await;
                continue;
            }
            let room = self.acked().saturating_add(AHEAD);
            if self.next > room {
                // Wait for an ack (or look at `stop` again in a moment).
                let _ = tokio::time::timeout(Duration::from_millis(50), self.acked.changed()).await;
                continue;
            }
            let upto = due.min(last).min(self.next + BURST - 1).min(room);
            if !self.send_upto(upto).await {
                return false;
            }
            tokio::task::yield_now().await;
        }
        true
    }

    /// A watch on the highest acked seq, for observers while the client streams in a task.
    pub fn acks(&self) -> watch::Receiver<u64> {
        self.acked.clone()
    }

    /// Waits until `seq` is acked; panics after [`PATIENCE`].
    pub async fn await_ack(&mut self, seq: u64) {
        let session = self.session.clone();
        let ok = matches!(
            tokio::time::timeout(PATIENCE, self.acked.wait_for(|a| *a >= seq)).await,
            Ok(Ok(_))
        );
        assert!(
            ok,
            "{session}: seq {seq} not acked (acked {}, socket {:?}, errors {:?})",
            self.acked(),
            self.ended(),
            self.seen.lock().unwrap().errors
        );
    }

    /// Waits until the server ends the socket; returns how.
    pub async fn await_end(&mut self) -> End {
        let ok = tokio::time::timeout(PATIENCE, self.end.wait_for(Option::is_some))
            .await
            .is_ok();
        assert!(ok, "{}: socket not closed by the server", self.session);
        self.ended().expect("ended")
    }

    /// Closes the socket from the client side (close frame, then drop).
    pub async fn close(mut self) {
        let _ = self.sink.close().await;
        let _ = tokio::time::timeout(PATIENCE, self.end.wait_for(Option::is_some)).await;
        self.reader.abort();
    }

    /// `error` messages seen so far.
    pub fn errors(&self) -> Vec<Value> {
        self.seen.lock().unwrap().errors.clone()
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// The reader task: records acks (checking they only grow), errors and the end.
async fn read(
    mut stream: SplitStream<Stream>,
    acked: watch::Sender<u64>,
    end: watch::Sender<Option<End>>,
    seen: Arc<Mutex<Seen>>,
) {
    let how = loop {
        match stream.next().await {
            Some(Ok(Message::Text(t))) => {
                let v: Value = serde_json::from_str(&t).expect("server sent JSON");
                match v["type"].as_str() {
                    Some("ack") => {
                        let seq = v["seq"].as_u64().expect("ack seq");
                        seen.lock().unwrap().acks.push(seq);
                        // A resend below the ack is answered with the current ack, so
                        // equal acks are fine; a lower one would be a server bug.
                        let before = *acked.borrow();
                        assert!(seq >= before, "ack went back from {before} to {seq}");
                        acked.send_replace(seq);
                    }
                    Some("error") => seen.lock().unwrap().errors.push(v),
                    _ => {}
                }
            }
            Some(Ok(Message::Close(frame))) => {
                break End::Close(frame.map(|f| u16::from(f.code)).unwrap_or(1005));
            }
            Some(Ok(_)) => {}
            Some(Err(_)) | None => break End::NoCloseFrame,
        }
    };
    end.send_replace(Some(how));
}

/// A client streaming in its own task; [`finish`](Streaming::finish) hands it back.
pub struct Streaming {
    pub session: String,
    acked: watch::Receiver<u64>,
    sent: Arc<AtomicU64>,
    task: JoinHandle<(Client, bool)>,
}

impl Streaming {
    /// Starts `client` streaming up to `last` at `per_sec` (see [`Client::stream_upto`]).
    pub fn start(mut client: Client, last: u64, per_sec: f64, stop: watch::Receiver<bool>) -> Streaming {
        Streaming {
            session: client.session.clone(),
            acked: client.acks(),
            sent: client.sent.clone(),
            task: tokio::spawn(async move {
                let ok = client.stream_upto(last, per_sec, &stop).await;
                (client, ok)
            }),
        }
    }

    /// Highest seq known acked so far.
    pub fn acked(&self) -> u64 {
        *self.acked.borrow()
    }

    /// Frames this client has handed to its socket (over its whole life).
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Waits until the stream is done (all sent, stopped, or socket gone); returns the
    /// client and whether its socket was still taking frames.
    pub async fn finish(self) -> (Client, bool) {
        tokio::time::timeout(PATIENCE, self.task)
            .await
            .expect("stream did not finish")
            .expect("stream task")
    }
}

/// Opens `n` clients with sessions `<prefix>-0000`... concurrently.
pub async fn clients(node: &Node, campaign: &str, prefix: &str, n: usize) -> Vec<Client> {
    let sessions: Vec<String> = (0..n).map(|i| format!("{prefix}-{i:04}")).collect();
    futures_util::future::join_all(sessions.iter().map(|s| Client::connect(node, campaign, s))).await
}

/// Total likes of a stats object.
pub fn likes(stats: &Value) -> u64 {
    stats["interactions"]["like"]
        .as_u64()
        .unwrap_or_else(|| panic!("no like count in {stats}"))
}

/// Reads one sample from a node's `/metrics`: `series` is the name with its labels as
/// rendered (`livetally_store_pending`, `livetally_connections{role="viewer"}`). Absent: 0.
pub async fn metric(node: &Node, series: &str) -> f64 {
    let text = get_text(node, "/metrics").await;
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == series).then(|| value.parse().expect("metric value"))
        })
        .unwrap_or(0.0)
}

/// GET `path` as text. A pooled keep-alive connection the node closed meanwhile can fail
/// the first attempt (a busy node answers slowly, so the race is likelier under load);
/// such an attempt is retried on a fresh connection.
async fn get_text(node: &Node, path: &str) -> String {
    let mut last = None;
    for _ in 0..3 {
        match node.http.get(node.url(path)).send().await {
            Ok(resp) => return resp.text().await.expect("response body"),
            Err(e) => last = Some(e),
        }
    }
    panic!("GET {path}: {last:?}");
}

/// `GET /readyz`: status and body.
pub async fn readyz(node: &Node) -> (u16, Value) {
    node.call("GET", "/readyz", None, None).await
}

/// Calls per command from `INFO commandstats` (scripts' inner commands included), less
/// the ones a test's own probes cause: `INFO` itself and the `CLIENT SETINFO`/`HELLO` a
/// new connection sends.
pub fn redis_command_calls(redis: &RedisServer) -> std::collections::BTreeMap<String, u64> {
    let info: String = redis.query(&["INFO", "commandstats"]);
    info.lines()
        .filter_map(|l| l.strip_prefix("cmdstat_"))
        .filter(|l| !(l.starts_with("info:") || l.starts_with("client|") || l.starts_with("hello:")))
        .filter_map(|l| {
            let (name, rest) = l.split_once(':')?;
            let calls = rest.split_once("calls=")?.1.split(',').next()?.parse().ok()?;
            Some((name.to_owned(), calls))
        })
        .collect()
}

/// Sum of [`redis_command_calls`].
pub fn redis_commands(redis: &RedisServer) -> u64 {
    redis_command_calls(redis).values().sum()
}
