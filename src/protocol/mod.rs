//! The wire format of the viewer socket, in one place and in the order of
//! docs/protocol.md: what clients send ([`client`]), what the server sends ([`server`] and
//! the per-tick [`stats`] message) and how a socket ends ([`close`]). The server, its
//! tests and the load tool all speak through this module; nothing here knows of sockets,
//! tallies or stores.

pub mod client;
pub mod close;
pub mod peek;
pub mod server;
pub mod stats;

pub use client::{parse, BadMessage, Interact, MAX_COUNT};
pub use close::Close;
pub use server::{ack, error, ErrorCode, Welcome};
pub use stats::{push_text_frame, text_frame, Frames, NodeShare, Stats};

/// Largest message a client may send; larger ones close the socket with 1009.
pub const MAX_MESSAGE_BYTES: usize = 4096;
