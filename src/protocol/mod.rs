//! The wire format of the viewer socket, in one place and in the order of
//! docs/protocol.md: what clients send ([`client`]), what the server sends ([`server`] and
//! the per-tick [`stats`] message) and how a socket ends ([`close`]). The server, its
//! tests and the load tool all speak through this module; nothing here knows of sockets,
//! tallies or stores.

pub mod api;
pub mod client;
pub mod close;
pub mod limits;
pub mod peek;
pub mod server;
pub mod stats;
#[cfg(test)]
mod table;

pub use client::{parse, BadMessage, Interact};
pub use close::Close;
pub use limits::{Pattern, MAX_COUNT, MAX_MESSAGE_BYTES};
pub use server::{ack, error, ErrorCode, Welcome};
pub use stats::{push_text_frame, text_frame, Frames, NodeShare, Stats};
