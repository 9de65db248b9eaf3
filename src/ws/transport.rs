//! The seam between a connection task and the WebSocket library. The task sees text frames
//! in, text frames out, pings and closes; nothing of tungstenite leaks past this file.
//!
//! Why tungstenite and not actix-ws: memory per idle socket is a headline number, and
//! actix-ws keeps every socket inside actix-http's HTTP/1 dispatcher with its fixed 8 KiB
//! read and 8 KiB write buffers plus a channel per socket (15.4 KiB per idle socket,
//! measured). Here the raw TCP stream is taken from actix-http at the upgrade (see
//! `handshake`) and owned by the connection task itself, with a [`READ_BUFFER_BYTES`] read
//! buffer and no write buffering: a frame is written straight to the kernel. Over plain TCP
//! the stream is an [`Outlet`], which the broadcaster also writes stats frames to (see
//! `broadcast::outlet`); any other stream (TLS, test pipes) gets stats frames from its task.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use actix_web::rt::net::TcpStream;
use bytestring::ByteString;
use futures_util::{FutureExt, SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::tungstenite::error::{CapacityError, Error as WsError};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tokio_tungstenite::WebSocketStream;

use crate::broadcast::outlet::{Outlet, OutletIo};
use crate::protocol::MAX_MESSAGE_BYTES;

/// Initial read buffer per socket. Protocol messages are ~60–120 bytes, so 1 KiB holds a
/// burst of a dozen; a larger message grows the buffer up to [`MAX_MESSAGE_BYTES`].
pub const READ_BUFFER_BYTES: usize = 1024;

/// Bytes a socket may have queued towards a client that is not reading before a send
/// fails. With no write buffering, frames queue only while the kernel's socket buffer is
/// full, so this bounds what a stalled viewer costs.
pub const MAX_QUEUED_BYTES: usize = 64 * 1024;

/// How long one outgoing frame may wait for the client to take it. A viewer that cannot
/// take a frame for this long is dropped: it never delays anyone else.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a server-initiated close waits for the client's close reply. Waiting (rather
/// than dropping the stream at once) lets the close frame arrive: closing a TCP stream
/// with unread input makes the kernel send a reset, and the client would see 1006.
pub const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// A text message the client sent (a string borrowed from the read buffer's bytes).
#[derive(Debug)]
pub struct Text(Utf8Bytes);

impl std::ops::Deref for Text {
    type Target = str;

    fn deref(&self) -> &str {
        self.0.as_str()
    }
}

/// A text message to send: shared bytes (a stats frame every socket sends) or owned.
pub enum Outgoing {
    Shared(ByteString),
    Owned(String),
}

impl From<ByteString> for Outgoing {
    fn from(b: ByteString) -> Self {
        Outgoing::Shared(b)
    }
}

impl From<String> for Outgoing {
    fn from(s: String) -> Self {
        Outgoing::Owned(s)
    }
}

impl From<Outgoing> for Utf8Bytes {
    fn from(o: Outgoing) -> Self {
        match o {
            // SAFETY: a ByteString is valid UTF-8 by construction, which is all
            // `from_bytes_unchecked` asks; checking again would cost a pass over every
            // stats frame for every socket.
            Outgoing::Shared(b) => unsafe { Utf8Bytes::from_bytes_unchecked(b.into_bytes()) },
            Outgoing::Owned(s) => Utf8Bytes::from(s),
        }
    }
}

/// What the client sent.
#[derive(Debug)]
pub enum Incoming {
    Text(Text),
    /// Binary frames are not part of the protocol.
    Binary,
    /// Ping, pong or anything else that only proves the peer is alive.
    Alive,
    /// The client sent a close frame (tungstenite echoes it, as RFC 6455 asks).
    ClientClosed,
    /// The connection failed or ended without a close frame.
    Closed,
    /// A message over [`MAX_MESSAGE_BYTES`].
    TooBig,
}

/// Why sending failed.
#[derive(Debug, PartialEq, Eq)]
pub enum SendError {
    /// The connection is gone.
    Closed,
    /// The client is too slow to take frames.
    Slow,
}

/// What a WebSocket runs over: a TCP stream in production, an in-memory pipe in tests.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send + 'static {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + 'static> Io for T {}

/// One accepted WebSocket.
pub struct Transport<S = OutletIo> {
    ws: WebSocketStream<S>,
    /// Over plain TCP: the socket the broadcaster writes stats frames to directly.
    outlet: Option<Arc<Outlet>>,
}

fn config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_write_buffer_size(MAX_QUEUED_BYTES)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

impl Transport<OutletIo> {
    /// Wraps a plain TCP stream whose `101 Switching Protocols` has been sent, shared with
    /// the broadcaster through an [`Outlet`] (register it in the campaign's outlets once
    /// the welcome is out).
    pub async fn direct(tcp: TcpStream, read_ahead: Vec<u8>) -> Self {
        let outlet = Outlet::new(tcp);
        let mut t = Transport::new(OutletIo(outlet.clone()), read_ahead).await;
        t.outlet = Some(outlet);
        t
    }
}

impl<S: Io> Transport<S> {
    /// Wraps a stream whose `101 Switching Protocols` has been sent. `read_ahead` holds
    /// bytes the client sent after its request that the HTTP layer already read.
    pub async fn new(io: S, read_ahead: Vec<u8>) -> Self {
        let ws = if read_ahead.is_empty() {
            WebSocketStream::from_raw_socket(io, Role::Server, Some(config())).await
        } else {
            WebSocketStream::from_partially_read(io, read_ahead, Role::Server, Some(config())).await
        };
        Self { ws, outlet: None }
    }

    /// The socket the broadcaster may write to directly, when this runs over plain TCP.
    pub fn outlet(&self) -> Option<&Arc<Outlet>> {
        self.outlet.as_ref()
    }

    /// Writes what the broadcaster left for this task (see `broadcast::outlet`), giving up on a
    /// client that cannot take it in [`SEND_TIMEOUT`]. A frame this task's writer is inside
    /// of (a pong, say) is finished first.
    pub async fn flush_queued(&mut self) -> Result<(), SendError> {
        let Some(outlet) = self.outlet.clone() else {
            return Ok(());
        };
        let flushed = tokio::time::timeout(SEND_TIMEOUT, async {
            self.ws.flush().await.map_err(|_| ())?;
            std::future::poll_fn(|cx| outlet.poll_drain(cx)).await.map_err(|_| ())
        });
        match flushed.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(())) => Err(SendError::Closed),
            Err(_) => Err(SendError::Slow),
        }
    }

    /// The next thing the client did. Pongs to its pings are written by tungstenite on the
    /// next read or write.
    pub async fn recv(&mut self) -> Incoming {
        match self.ws.next().await {
            None => Incoming::Closed,
            Some(Ok(Message::Text(t))) => Incoming::Text(Text(t)),
            Some(Ok(Message::Binary(_))) => Incoming::Binary,
            Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Incoming::Alive,
            Some(Ok(Message::Close(_))) => Incoming::ClientClosed,
            Some(Err(WsError::Capacity(CapacityError::MessageTooLong { .. }))) => Incoming::TooBig,
            Some(Err(_)) => Incoming::Closed,
        }
    }

    /// Sends a text frame, giving up on a client that cannot take it in [`SEND_TIMEOUT`].
    ///
    /// Plain functions returning a mapped future, not `async fn`s: an `async fn` keeps its
    /// argument twice in its future, and every socket's future is as large as its largest
    /// send.
    pub fn send(&mut self, text: impl Into<Outgoing>) -> impl Future<Output = Result<(), SendError>> + '_ {
        self.send_message(Message::Text(text.into().into()))
    }

    pub fn ping(&mut self) -> impl Future<Output = Result<(), SendError>> + '_ {
        self.send_message(Message::Ping(Default::default()))
    }

    fn send_message(&mut self, message: Message) -> impl Future<Output = Result<(), SendError>> + '_ {
        tokio::time::timeout(SEND_TIMEOUT, self.ws.send(message)).map(|sent| match sent {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(SendError::Closed),
            Err(_) => Err(SendError::Slow),
        })
    }

    /// Closes with `code` and a short reason, then waits (up to [`CLOSE_TIMEOUT`]) for the
    /// client's reply so the close frame is not lost to a reset.
    pub async fn close(&mut self, code: u16, reason: &str) {
        if let Some(outlet) = &self.outlet {
            outlet.close(); // the close frame is the last one
        }
        let frame = CloseFrame {
            code: CloseCode::from(code),
            reason: reason.into(),
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, async {
            if self.ws.close(Some(frame)).await.is_ok() {
                while let Some(Ok(_)) = self.ws.next().await {}
            }
        })
        .await;
    }
}
