//! The upgrade itself. actix-http calls [`accept`] for every request that asks to switch
//! protocols, before any routing, with the request and its connection. Here the connection
//! leaves actix-http for good: its 8 KiB HTTP buffers are dropped and the bare stream (TCP,
//! or TLS over TCP with `--tls-cert`) goes to the connection task (see `transport` for why).

use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;

use actix_codec::Framed;
use actix_http::{h1, Request};
use actix_tls::accept::rustls_0_23::TlsStream;
use actix_web::rt::net::TcpStream;
use actix_web::ResponseError;
use tokio::io::AsyncWriteExt;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use super::admission::{reject_reason, Admitted};
use super::connection;
use super::transport::{Io, Transport};
use super::{not_websocket, Sockets};
use crate::broadcast::outlet::OutletIo;
use crate::error::ApiError;
use crate::protocol;

/// The only path that upgrades; the campaign id follows it.
const PATH: &str = "/ws/v1/campaigns/";

/// A connection that can be upgraded: plain TCP, or TLS over TCP. The socket task owns it
/// after the upgrade; the TCP stream underneath gives the peer and takes the socket options.
pub trait Upgraded: Io + Sized {
    /// What the socket task reads and writes.
    type Io: Io;

    fn tcp(&self) -> &TcpStream;

    /// The WebSocket over this connection. `read_ahead`: bytes the client sent behind its
    /// request. Awaited here, before the task is spawned, so the task's future holds only
    /// the socket loop (its size is memory per idle socket).
    fn into_transport(self, read_ahead: Vec<u8>) -> impl Future<Output = Transport<Self::Io>>;
}

/// Plain TCP goes through an outlet the broadcaster writes stats frames to directly.
impl Upgraded for TcpStream {
    type Io = OutletIo;

    fn tcp(&self) -> &TcpStream {
        self
    }

    async fn into_transport(self, read_ahead: Vec<u8>) -> Transport<OutletIo> {
        Transport::direct(self, read_ahead).await
    }
}

/// TLS keeps the per-task path: the broadcaster cannot write plaintext into it.
impl Upgraded for TlsStream<TcpStream> {
    type Io = Self;

    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }

    async fn into_transport(self, read_ahead: Vec<u8>) -> Transport<Self> {
        Transport::new(self, read_ahead).await
    }
}

/// Answers one upgrade request: refused with a JSON error and closed, or switched to a
/// WebSocket served by its own task.
///
/// Never fails: a refusal the client cannot receive needs nothing more. (The error type is
/// what actix-http requires of an upgrade service.)
pub async fn accept<T: Upgraded>(
    sockets: Arc<Sockets>,
    req: Request,
    framed: Framed<T, h1::Codec>,
) -> Result<(), actix_web::Error> {
    let parts = framed.into_parts();
    let mut io = parts.io;
    // actix-http read the peer's address when it accepted the connection (a second
    // `getpeername` here was 1.4% of a connect storm's CPU).
    let Some(peer) = req.peer_addr().or_else(|| io.tcp().peer_addr().ok()) else {
        return Ok(()); // the client is already gone: nobody to answer
    };
    let (key, mut admitted) = match admission(&sockets, &req, peer.ip()).await {
        Ok(a) => a,
        Err(e) => {
            let _ = refuse(&mut io, &e).await;
            return Ok(());
        }
    };
    // Frames are small and each one should leave at once: with Nagle's algorithm a frame
    // written while the previous one is unacknowledged waits for the peer's (possibly
    // delayed) ACK. Go's net package (Centrifugo) and Node's `ws` turn it off too.
    let _ = io.tcp().set_nodelay(true);
    // The welcome goes out with the 101, in one write: one syscall, one segment and one
    // wake-up of the client fewer per connect than writing them apart.
    let mut out = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    )
    .into_bytes();
    // (None yet when a protocol-1 client waits for its session's claim: the socket loop
    // sends it when the claim lands.)
    let welcome = std::mem::take(&mut admitted.welcome);
    if !welcome.is_empty() {
        protocol::push_text_frame(&mut out, welcome.as_bytes());
    }
    if io.write_all(&out).await.is_err() {
        sockets.env.metrics.closed("client_gone");
        return Ok(()); // dropping `admitted` releases it
    }
    // Bytes the client sent right behind its request (a first message may share the
    // packet) are already in actix's read buffer: tungstenite starts with them.
    let transport = io.into_transport(parts.read_buf.to_vec()).await;
    let task = connection::run(sockets.env.clone(), admitted, transport);
    actix_web::rt::spawn(sockets.tracker.track_future(task));
    Ok(())
}

/// The handshake key of a well-formed upgrade to a live campaign, and the admitted socket.
/// `peer`: the TCP peer (the client, or the proxy that names it).
async fn admission(sockets: &Sockets, req: &Request, peer: IpAddr) -> Result<(String, Admitted), ApiError> {
    let admission = &sockets.admission;
    let metrics = &admission.metrics;
    let id = match req.path().strip_prefix(PATH) {
        Some(id) if !id.contains('/') && req.method() == actix_http::Method::GET => id,
        _ => return Err(ApiError::NotFound("route")),
    };
    let headers = &req.head().headers;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let websocket = header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"))
        && header("sec-websocket-version") == Some("13");
    let key = match header("sec-websocket-key") {
        Some(k) if websocket => k.to_owned(),
        _ => {
            metrics.rejected("not_websocket");
            return Err(not_websocket());
        }
    };
    let query = req.uri().query().unwrap_or("");
    let client = admission.trusted_proxies.client(Some(peer), headers);
    let edge_region = admission.edge_region(Some(peer), headers);
    let admitted = match admission
        .check(id, query, headers.get("origin"), edge_region, client)
        .await
    {
        Ok(checked) => admission.admit(checked).await,
        Err(e) => Err(e),
    };
    let admitted = admitted.inspect_err(|e| metrics.rejected(reject_reason(e)))?;
    Ok((key, admitted))
}

/// Writes `e` as a complete HTTP response and closes the connection.
async fn refuse(io: &mut impl Io, e: &ApiError) -> std::io::Result<()> {
    let body = e.body().to_string();
    let status = e.status_code();
    let response = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        body.len()
    );
    io.write_all(response.as_bytes()).await?;
    io.shutdown().await
}
