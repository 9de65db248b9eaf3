//! Connections and calls. Every Redis call goes through [`Conn::call`], so a hung or lost
//! Redis always surfaces as [`StoreError::Unavailable`] within [`CALL_TIMEOUT`], which the
//! node answers by keeping counts buffered and retrying.

use std::future::Future;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClient;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, RedisResult, Value};

use crate::store::{StoreError, StoreResult};

/// Upper bound on one store call, reconnects and retries included. A hung Redis (SIGSTOP,
/// a failover in progress) then reads as `Unavailable` after 2 s: long enough for a large
/// batch script on a busy server, short enough to keep well inside one flush retry cycle
/// and the 10 s presence lease.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(2);

/// Upper bound on one TCP/TLS connect attempt; half the call timeout so one attempt (and
/// a retry) fits inside a call.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);

/// First reconnect delay of the standalone manager; it doubles per attempt.
const RECONNECT_MIN_DELAY: Duration = Duration::from_millis(100);

/// Cap on the reconnect delay, so a Redis that comes back is used within ~2 s.
const RECONNECT_MAX_DELAY: Duration = Duration::from_secs(2);

/// Reconnect attempts per outage episode; the next failing call starts a new episode, so
/// the manager keeps trying for as long as the node keeps calling.
const RECONNECT_RETRIES: usize = 6;

/// The connection to either deployment; both are cheap to clone (shared multiplexed
/// connections), so every call clones one and drives it.
#[derive(Clone)]
pub(super) enum Conn {
    Standalone(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Conn {
    /// For [`super::RedisStore::connect_standalone`].
    pub(super) async fn standalone(url: &str) -> StoreResult<Conn> {
        let client = redis::Client::open(url).map_err(unavailable)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(CALL_TIMEOUT))
            .set_min_delay(RECONNECT_MIN_DELAY)
            .set_max_delay(RECONNECT_MAX_DELAY)
            .set_number_of_retries(RECONNECT_RETRIES);
        let manager = with_timeout(ConnectionManager::new_with_config(client, config)).await?;
        Ok(Conn::Standalone(manager))
    }

    /// For [`super::RedisStore::connect_cluster`].
    pub(super) async fn cluster(urls: &[String]) -> StoreResult<Conn> {
        let client = ClusterClient::builder(urls.iter().map(String::as_str))
            .connection_timeout(CONNECT_TIMEOUT)
            .response_timeout(CALL_TIMEOUT)
            .build()
            .map_err(unavailable)?;
        let conn = with_timeout(client.get_async_connection()).await?;
        Ok(Conn::Cluster(conn))
    }

    /// Runs one Redis call under [`CALL_TIMEOUT`] on a clone of the connection.
    pub(super) async fn call<T, F, Fut>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(Conn) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        with_timeout(f(self.clone())).await
    }
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Standalone(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Standalone(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Standalone(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

async fn with_timeout<T>(f: impl Future<Output = RedisResult<T>>) -> StoreResult<T> {
    match tokio::time::timeout(CALL_TIMEOUT, f).await {
        Ok(Ok(v)) => Ok(v),
        Ok(Err(e)) => Err(unavailable(e)),
        Err(_) => Err(StoreError::Unavailable(format!(
            "Redis did not answer within {CALL_TIMEOUT:?}"
        ))),
    }
}

/// Any failure on the way to or from Redis reads as `Unavailable`: the node keeps what it
/// was writing and retries, whatever the cause.
pub(super) fn unavailable(e: impl std::fmt::Display) -> StoreError {
    StoreError::Unavailable(e.to_string())
}
