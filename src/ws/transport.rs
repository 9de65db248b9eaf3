//! The seam between a connection task and the WebSocket library. The task sees text frames
//! in, text frames out, pings and closes; nothing of actix-ws leaks past this file, so the
//! socket layer can be swapped for a leaner one (memory per socket is a headline number)
//! without touching the protocol logic.

use std::time::Duration;

use actix_ws::{AggregatedMessage, AggregatedMessageStream, CloseCode, CloseReason, ProtocolError, Session};
use bytestring::ByteString;

/// Largest message a client may send; larger ones close the socket with 1009.
pub const MAX_MESSAGE_BYTES: usize = 4096;

/// How long one outgoing frame may wait for room in the socket's send queue. A viewer that
/// cannot take a frame for this long is dropped: it never delays anyone else, and its
/// queue never grows past actix-ws's bound.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// What the client sent.
#[derive(Debug)]
pub enum Incoming {
    Text(ByteString),
    /// Binary frames are not part of the protocol.
    Binary,
    /// Ping, pong or anything else that only proves the peer is alive.
    Alive,
    /// The client sent a close frame (answered with 1000 by the caller).
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

/// One accepted WebSocket.
pub struct Transport {
    session: Session,
    stream: AggregatedMessageStream,
}

impl Transport {
    pub fn new(session: Session, stream: actix_ws::MessageStream) -> Self {
        let stream = stream
            .max_frame_size(MAX_MESSAGE_BYTES)
            .aggregate_continuations()
            .max_continuation_size(MAX_MESSAGE_BYTES);
        Self { session, stream }
    }

    /// The next thing the client did. Pings are answered here.
    pub async fn recv(&mut self) -> Incoming {
        match self.stream.recv().await {
            None => Incoming::Closed,
            Some(Ok(AggregatedMessage::Text(t))) => Incoming::Text(t),
            Some(Ok(AggregatedMessage::Binary(_))) => Incoming::Binary,
            Some(Ok(AggregatedMessage::Ping(p))) => {
                let _ = self.session.pong(&p).await;
                Incoming::Alive
            }
            Some(Ok(AggregatedMessage::Pong(_))) => Incoming::Alive,
            Some(Ok(AggregatedMessage::Close(_))) => Incoming::ClientClosed,
            Some(Err(ProtocolError::Overflow)) => Incoming::TooBig,
            Some(Err(_)) => Incoming::Closed,
        }
    }

    /// Sends a text frame, giving up on a client that cannot take it in [`SEND_TIMEOUT`].
    pub async fn send(&mut self, text: impl Into<ByteString>) -> Result<(), SendError> {
        match tokio::time::timeout(SEND_TIMEOUT, self.session.text(text)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(SendError::Closed),
            Err(_) => Err(SendError::Slow),
        }
    }

    pub async fn ping(&mut self) -> Result<(), SendError> {
        match tokio::time::timeout(SEND_TIMEOUT, self.session.ping(b"")).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(SendError::Closed),
            Err(_) => Err(SendError::Slow),
        }
    }

    /// Closes with `code` and a short reason.
    pub async fn close(self, code: u16, reason: &str) {
        let reason = CloseReason {
            code: CloseCode::from(code),
            description: Some(reason.to_owned()),
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), self.session.close(Some(reason))).await;
    }
}
