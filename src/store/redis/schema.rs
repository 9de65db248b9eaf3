//! The stored format's version, `lt:{campaigns}:schema`, and the node-by-node upgrade from
//! the v1 layout (`docs/operations.md`, "Upgrading").
//!
//! | version | layout | written by |
//! |---|---|---|
//! | 1 (or no key, with campaigns) | session state in `epochs` and `sessions` hashes kept forever | v1 nodes (which never write the key); v2 nodes that find a v1 store |
//! | 2 | session state in generation hashes, campaign-wide epochs (`keys.rs`) | v2 nodes on an empty store; `livetally upgrade-store` |
//!
//! A v2 node on a store at version 1 runs *mixed*: v1 nodes may still be running, so its
//! scripts keep the v1 session keys true as well (the v1 epoch moves with every claim, the
//! v1 acked seq with every delta, and a v1 claim fences v2 sockets). Once no v1 node is
//! left, `livetally upgrade-store` sets version 2; running nodes notice within
//! [`RECHECK`], stop writing the v1 keys and migrate what is left of them lazily.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::conn::Conn;
use super::keys::{NEXT, SCHEMA};
use crate::store::{StoreError, StoreResult};

/// The version this build writes.
pub const VERSION: u64 = 2;

/// How often a mixed node looks for the end of the upgrade: a round trip every few seconds
/// costs nothing, and the v1 keys are written for at most this long after it.
pub const RECHECK: Duration = Duration::from_secs(5);

/// What a node knows of the store's version.
pub(super) struct Schema {
    /// True while the store is at version 1 (v1 nodes may run).
    mixed: AtomicBool,
    /// When `mixed` was last read from the store.
    checked: Mutex<Instant>,
}

/// The version stored, `None` when the key is absent.
async fn stored(conn: &Conn) -> StoreResult<Option<u64>> {
    let v: Option<String> = conn
        .call(|mut c| async move { redis::cmd("GET").arg(SCHEMA).query_async(&mut c).await })
        .await?;
    v.map(|v| {
        v.parse()
            .map_err(|_| StoreError::Unavailable(format!("unexpected {SCHEMA}: {v:?}")))
    })
    .transpose()
}

/// `SET NX`: the first node to decide the version of an unmarked store wins.
async fn mark(conn: &Conn, version: u64) -> StoreResult<()> {
    let _: Option<String> = conn
        .call(|mut c| async move {
            redis::cmd("SET")
                .arg(SCHEMA)
                .arg(version)
                .arg("NX")
                .query_async(&mut c)
                .await
        })
        .await?;
    Ok(())
}

impl Schema {
    /// Reads the store's version at connect, marking an unmarked store: version 1 when v1
    /// nodes have written campaigns there, else this build's. Refuses a newer version.
    pub(super) async fn open(conn: &Conn) -> StoreResult<Schema> {
        let version = match stored(conn).await? {
            Some(v) => v,
            None => {
                let has_v1_data: bool = conn
                    .call(|mut c| async move { redis::cmd("EXISTS").arg(NEXT).query_async(&mut c).await })
                    .await?;
                mark(conn, if has_v1_data { 1 } else { VERSION }).await?;
                stored(conn).await?.unwrap_or(VERSION)
            }
        };
        if version > VERSION {
            return Err(StoreError::NewerSchema {
                found: version,
                supported: VERSION,
            });
        }
        if version < VERSION {
            tracing::warn!(
                schema = version,
                "store written by v1: running mixed (v1 session keys kept up to date); run \
                 `livetally upgrade-store` once no v1 node is left (docs/operations.md)"
            );
        }
        Ok(Schema {
            mixed: AtomicBool::new(version < VERSION),
            checked: Mutex::new(Instant::now()),
        })
    }

    /// True while v1 nodes may run. Looks at the store again every [`RECHECK`] until the
    /// upgrade is finished; a failed look keeps the last answer.
    pub(super) async fn mixed(&self, conn: &Conn) -> bool {
        if !self.mixed.load(Ordering::Relaxed) {
            return false;
        }
        {
            let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
            if checked.elapsed() < RECHECK {
                return true;
            }
            *checked = Instant::now();
        }
        if let Ok(Some(v)) = stored(conn).await {
            if v >= VERSION {
                tracing::info!(
                    schema = v,
                    "the upgrade is finished: v1 session keys are no longer written"
                );
                self.mixed.store(false, Ordering::Relaxed);
            }
        }
        self.mixed.load(Ordering::Relaxed)
    }
}

/// Marks the upgrade finished (version 2); refuses a newer version. Safe to run again.
pub(super) async fn finish(conn: &Conn) -> StoreResult<()> {
    if let Some(v) = stored(conn).await? {
        if v > VERSION {
            return Err(StoreError::NewerSchema {
                found: v,
                supported: VERSION,
            });
        }
    }
    let _: () = conn
        .call(|mut c| async move { redis::cmd("SET").arg(SCHEMA).arg(VERSION).query_async(&mut c).await })
        .await?;
    Ok(())
}
