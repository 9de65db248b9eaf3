//! Counting people, not requests: who a request comes from ([`address`]: the peer, or the
//! client a trusted proxy names, IPv6 by /64) and the per-client limits of a node — open
//! viewer sockets ([`sockets`]), socket upgrades ([`connects`]), public writes ([`writes`])
//! and failed operator authentications ([`auth_failures`]). Each limit is node-local and keeps memory only for
//! clients it has seen recently. `ws` and `http` turn their answers into 429s.

pub mod address;
pub mod auth_failures;
pub mod connects;
pub mod sockets;
pub mod writes;

pub use address::{ClientKey, TrustedProxies};

/// The key of an address written out, for tests.
#[cfg(test)]
fn key(ip: &str) -> ClientKey {
    ClientKey::of(ip.parse().unwrap())
}
