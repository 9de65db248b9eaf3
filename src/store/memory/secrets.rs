//! The memory store's secrets: made once per process, so what they signed dies with it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use super::MemoryStore;
use crate::store::secrets::{new_key, Secrets};
use crate::store::StoreResult;

/// This process's keys, and the nonces spent with when each may be forgotten.
pub(super) struct Keys {
    join: Vec<u8>,
    ticket: Vec<u8>,
    spent: Mutex<HashMap<String, Instant>>,
}

impl Default for Keys {
    fn default() -> Self {
        Self {
            join: new_key(),
            ticket: new_key(),
            spent: Mutex::default(),
        }
    }
}

#[async_trait]
impl Secrets for MemoryStore {
    async fn join_key(&self) -> StoreResult<Option<Vec<u8>>> {
        Ok(Some(self.keys.join.clone()))
    }

    async fn create_join_key(&self) -> StoreResult<Vec<u8>> {
        Ok(self.keys.join.clone())
    }

    async fn ticket_key(&self) -> StoreResult<Vec<u8>> {
        Ok(self.keys.ticket.clone())
    }

    async fn spend_once(&self, nonce: &str, ttl: Duration) -> StoreResult<bool> {
        let now = Instant::now();
        let mut spent = self.keys.spent.lock().unwrap_or_else(|e| e.into_inner());
        // Tickets are minted by operators, a few a minute: a sweep per spend stays small.
        spent.retain(|_, until| *until > now);
        if spent.contains_key(nonce) {
            return Ok(false);
        }
        spent.insert(nonce.to_owned(), now + ttl);
        Ok(true)
    }
}
