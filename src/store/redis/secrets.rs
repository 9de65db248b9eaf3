//! The Redis store's secrets: keys made by the first node that needs them (`SET NX`), and
//! spent ticket nonces that expire with their ticket.

use std::time::Duration;

use async_trait::async_trait;

use super::conn::Conn;
use super::keys::{spent_nonce, JOIN_KEY, TICKET_KEY};
use super::RedisStore;
use crate::store::secrets::{new_key, Secrets};
use crate::store::{StoreError, StoreResult};

/// The key stored under `name`, if any.
async fn read(conn: &Conn, name: &'static str) -> StoreResult<Option<Vec<u8>>> {
    let v: Option<Vec<u8>> = conn
        .call(|mut c| async move { redis::cmd("GET").arg(name).query_async(&mut c).await })
        .await?;
    Ok(v.filter(|v| !v.is_empty()))
}

/// The key under `name`, made now unless a node made it first (`SET NX`, then the winner's).
pub(super) async fn read_or_create(conn: &Conn, name: &'static str) -> StoreResult<Vec<u8>> {
    if let Some(key) = read(conn, name).await? {
        return Ok(key);
    }
    let key = new_key();
    let _: Option<String> = conn
        .call(|mut c| async move { redis::cmd("SET").arg(name).arg(key).arg("NX").query_async(&mut c).await })
        .await?;
    read(conn, name)
        .await?
        .ok_or_else(|| StoreError::Unavailable(format!("{name} vanished right after it was set")))
}

#[async_trait]
impl Secrets for RedisStore {
    async fn join_key(&self) -> StoreResult<Option<Vec<u8>>> {
        read(&self.conn, JOIN_KEY).await
    }

    async fn create_join_key(&self) -> StoreResult<Vec<u8>> {
        read_or_create(&self.conn, JOIN_KEY).await
    }

    async fn ticket_key(&self) -> StoreResult<Vec<u8>> {
        read_or_create(&self.conn, TICKET_KEY).await
    }

    async fn spend_once(&self, nonce: &str, ttl: Duration) -> StoreResult<bool> {
        let key = spent_nonce(nonce);
        let ms = ttl.as_millis().max(1) as u64;
        let set: Option<String> = self
            .conn
            .call(|mut c| async move {
                redis::cmd("SET")
                    .arg(key)
                    .arg(1)
                    .arg("NX")
                    .arg("PX")
                    .arg(ms)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(set.is_some())
    }
}
