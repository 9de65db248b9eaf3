//! Redis store (standalone and Cluster): see issue 3. Not yet implemented.

use super::{StoreError, StoreResult};

/// Placeholder until the Redis store lands.
pub struct RedisStore;

impl RedisStore {
    pub async fn connect_standalone(_url: &str) -> StoreResult<super::memory::MemoryStore> {
        Err(StoreError::Unavailable("the Redis store is not built yet".into()))
    }
    pub async fn connect_cluster(_urls: &[String]) -> StoreResult<super::memory::MemoryStore> {
        Err(StoreError::Unavailable("the Redis store is not built yet".into()))
    }
}
