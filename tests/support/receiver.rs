//! A webhook receiver on a free port: just enough HTTP/1.1 to read one POST per
//! connection, verify both its signatures with a stock HMAC (the `hmac` and `base64`
//! crates, not the node's code): `Livetally-Signature`, and the Standard Webhooks headers
//! `webhook-id`, `webhook-timestamp`, `webhook-signature` as that specification defines
//! them, record it and answer with the status the test scripted. It can be
//! taken down (the port refuses connections) and brought back on the same port, or made to
//! hang without answering.

#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use super::wait::eventually;

/// One POST as received.
#[derive(Debug, Clone)]
pub struct Received {
    pub body: Value,
    /// Both signatures verified against the secret, with `t` within a minute of now, and
    /// `webhook-id` the body's `id`.
    pub signed: bool,
    /// `webhook-signature` alone verified, as a Standard Webhooks library would.
    pub standard_signed: bool,
    /// Every header, names lowercased, in order.
    pub headers: Vec<(String, String)>,
    /// The status it was answered with (`None`: left hanging).
    pub status: Option<u16>,
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    /// Statuses for the next requests, then `default`.
    script: VecDeque<u16>,
    default: u16,
    hang: bool,
}

pub struct Receiver {
    pub addr: SocketAddr,
    /// What the node is given as `--webhook-secret`.
    pub secret: String,
    state: Arc<Mutex<State>>,
    accept: Option<JoinHandle<()>>,
}

impl Receiver {
    /// Listening on a free port, answering 204.
    pub async fn start(secret: &str) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind receiver");
        let mut r = Receiver {
            addr: listener.local_addr().unwrap(),
            secret: secret.to_owned(),
            state: Arc::new(Mutex::new(State {
                default: 204,
                ..State::default()
            })),
            accept: None,
        };
        r.serve(listener);
        r
    }

    /// A port that refuses connections now (the receiver is started later with [`Receiver::up`]).
    pub async fn down_at_first(secret: &str) -> Receiver {
        let mut r = Self::start(secret).await;
        r.down();
        r
    }

    pub fn url(&self) -> String {
        format!("http://{}/hooks", self.addr)
    }

    fn serve(&mut self, listener: TcpListener) {
        let state = self.state.clone();
        let secret = self.secret.clone();
        self.accept = Some(tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                tokio::spawn(answer(tcp, state.clone(), secret.clone()));
            }
        }));
    }

    /// Stops listening: connections are refused until [`Receiver::up`].
    pub fn down(&mut self) {
        if let Some(a) = self.accept.take() {
            a.abort();
        }
    }

    /// Listens again on the same port.
    pub async fn up(&mut self) {
        let listener = eventually("the receiver's port to be free again", || async {
            TcpListener::bind(self.addr).await.ok()
        })
        .await;
        self.serve(listener);
    }

    /// The next requests get these statuses, in order (then the default).
    pub fn script(&self, statuses: &[u16]) {
        self.state.lock().unwrap().script.extend(statuses);
    }

    /// Requests are read and recorded but never answered (until set back).
    pub fn hang(&self, on: bool) {
        self.state.lock().unwrap().hang = on;
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().unwrap().received.clone()
    }

    /// Bodies answered 2xx, in arrival order.
    pub fn delivered(&self) -> Vec<Value> {
        self.received()
            .into_iter()
            .filter(|r| r.status.is_some_and(|s| (200..300).contains(&s)))
            .map(|r| r.body)
            .collect()
    }

    /// Waits until `pred` holds for the delivered bodies, and returns them.
    pub async fn await_delivered(&self, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        eventually(what, || async {
            let d = self.delivered();
            pred(&d).then_some(d)
        })
        .await
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.down();
    }
}

/// Reads one request (headers, then `content-length` bytes), records it and answers.
async fn answer(mut tcp: TcpStream, state: Arc<Mutex<State>>, secret: String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let (head_len, length) = loop {
        let Ok(n) = tcp.read(&mut chunk).await else { return };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..i]).to_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            break (i + 4, length);
        }
    };
    while buf.len() < head_len + length {
        let Ok(n) = tcp.read(&mut chunk).await else { return };
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
    let body = String::from_utf8_lossy(&buf[head_len..head_len + length]).into_owned();
    let headers: Vec<(String, String)> = head
        .lines()
        .skip(1)
        .filter_map(|l| {
            let (name, value) = l.split_once(':')?;
            Some((name.trim().to_lowercase(), value.trim().to_owned()))
        })
        .collect();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_default()
    };
    let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    let standard_signed = verify_standard(
        &secret,
        header("webhook-id"),
        header("webhook-timestamp"),
        header("webhook-signature"),
        &body,
    );
    let signed = verify(&secret, header("livetally-signature"), &body)
        && standard_signed
        && parsed["id"] == header("webhook-id")
        && header("livetally-signature").starts_with(&format!("t={},", header("webhook-timestamp")));
    let (status, hang) = {
        let mut s = state.lock().unwrap();
        let status = s.script.pop_front().unwrap_or(s.default);
        let hang = s.hang;
        s.received.push(Received {
            body: parsed,
            signed,
            standard_signed,
            headers,
            status: (!hang).then_some(status),
        });
        (status, hang)
    };
    if hang {
        // Hold the connection open without answering until the client gives up.
        let _ = tcp.read(&mut chunk).await;
        return;
    }
    let reply = format!("HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
    let _ = tcp.write_all(reply.as_bytes()).await;
    let _ = tcp.shutdown().await;
}

/// `t=<unix s>,v1=<hex>`: the HMAC-SHA256 of `"<t>.<body>"`, and `t` within a minute.
pub fn verify(secret: &str, header: &str, body: &str) -> bool {
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", x)) => t = x.parse::<i64>().ok(),
            Some(("v1", x)) => v1 = Some(x.to_owned()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{body}").as_bytes());
    let expected: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    (now_s() - t).abs() <= 60 && expected == v1
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// The Standard Webhooks check: the key is the base64 after `whsec_` (else the secret's
/// text), `webhook-signature` holds space-separated `v1,<base64>` entries of which one is
/// the HMAC-SHA256 of `"<id>.<timestamp>.<body>"`, and the timestamp is within a minute.
pub fn verify_standard(secret: &str, id: &str, timestamp: &str, signatures: &str, body: &str) -> bool {
    let b64 = base64::engine::general_purpose::STANDARD;
    let key = match secret.strip_prefix("whsec_") {
        Some(encoded) => b64.decode(encoded).expect("a whsec_ test secret is base64"),
        None => secret.as_bytes().to_vec(),
    };
    let Ok(t) = timestamp.parse::<i64>() else { return false };
    if id.is_empty() || (now_s() - t).abs() > 60 {
        return false;
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{id}.{timestamp}.{body}").as_bytes());
    let expected = b64.encode(mac.finalize().into_bytes());
    signatures
        .split(' ')
        .any(|s| s.strip_prefix("v1,") == Some(expected.as_str()))
}
