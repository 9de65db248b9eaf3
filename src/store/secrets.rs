//! Deployment-wide secrets the nodes share, and single-use nonces: what the operator
//! tickets and the join tokens need from the store (`docs/operations.md`, "Secrets").
//!
//! A key is made by whichever node asks first (`SET NX`) and read by every other, so
//! nodes agree on it with no flag to distribute. The memory store makes its keys once
//! per process: what they signed dies with it.

use std::time::Duration;

use async_trait::async_trait;

use super::StoreResult;

/// Random bytes of a key the store makes: 256 bits, as HS256 wants.
pub const KEY_BYTES: usize = 32;

/// The stored join key, the ticket key, and the nonces of spent tickets.
#[async_trait]
pub trait Secrets: Send + Sync + 'static {
    /// The stored join key; `None` on a deployment upgraded from before it existed, until
    /// `livetally upgrade-store` makes it (older nodes may still verify with the derived
    /// key meanwhile).
    async fn join_key(&self) -> StoreResult<Option<Vec<u8>>>;

    /// Makes the join key unless one exists, and returns the stored one (`upgrade-store`).
    async fn create_join_key(&self) -> StoreResult<Vec<u8>>;

    /// The HMAC key of operator tickets, made by the first node that asks. Tickets are new
    /// with this key, so no older node needs it and it is made at once.
    async fn ticket_key(&self) -> StoreResult<Vec<u8>>;

    /// Spends `nonce`: true the first time, false for every later call while `ttl` (from
    /// the first) lasts. A ticket's nonce is spent for as long as the ticket is valid.
    async fn spend_once(&self, nonce: &str, ttl: Duration) -> StoreResult<bool>;
}

/// A fresh key: [`KEY_BYTES`] random bytes as URL-safe base64, whose UTF-8 bytes are the
/// key (a string stores and logs-redacts like any other setting).
pub fn new_key() -> Vec<u8> {
    use base64::Engine;
    use rand::Rng;
    let mut buf = [0u8; KEY_BYTES];
    rand::rng().fill(&mut buf[..]);
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(buf)
        .into_bytes()
}
