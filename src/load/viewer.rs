//! One simulated viewer: binds its source address, connects and reads the welcome, then
//! hands the socket to [`super::socket`] until the worker tells it to close.

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use tokio::net::TcpSocket;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;

use super::shared::{Phase, Shared};
use super::socket::{self, Ws};
use crate::protocol::peek;

/// A connect (TCP + TLS + upgrade + welcome) slower than this counts as a failure.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(15);

/// The socket's read buffer. Server messages are small (a stats frame is a few hundred
/// bytes); tungstenite's 128 KiB default would make the tool, not the node, run out of
/// memory at 19,000 sockets.
const READ_BUFFER: usize = 4096;

/// Who this viewer is and where it goes.
pub struct Plan {
    pub source: Ipv4Addr,
    pub target: SocketAddr,
    /// `ws://…` or `wss://…` (then `tls` is set).
    pub url: String,
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// Offset of its first message within its interval (spreads sockets over time).
    pub phase: f64,
    /// `--bare`: no welcome to wait for.
    pub bare: bool,
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
    let connector = plan.tls.clone().map(tokio_tungstenite::Connector::Rustls);
    let (mut ws, _) =
        tokio_tungstenite::client_async_tls_with_config(plan.url.as_str(), stream, Some(config), connector)
            .await
            .map_err(|e| match e {
                tokio_tungstenite::tungstenite::Error::Http(r) => format!("http {}", r.status().as_u16()),
                e => format!("handshake: {e}"),
            })?;
    if plan.bare {
        return Ok(ws);
    }
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
    socket::drive(ws, plan.phase, &shared, &mut phase).await;
}
