//! The stored format's version, `lt:{campaigns}:schema`, and the node-by-node upgrades
//! (`docs/operations.md`, "Upgrading").
//!
//! | version | layout | written by |
//! |---|---|---|
//! | 1 (or no key, with campaigns) | session state in `epochs` and `sessions` hashes kept forever | v1 nodes (which never write the key); newer nodes that find a v1 store |
//! | 2 | session state in generation hashes, campaign-wide epochs (`keys.rs`) | v2 nodes on an empty store; v2's `livetally upgrade-store` |
//! | 3 | version 2 plus the presence totals kept incrementally (`keys.rs`, "Presence totals") | v3 nodes on an empty store; `livetally upgrade-store` |
//! | 4 | version 3 plus webhook receivers in the store (`lt:{webhooks}:receivers`) and per-receiver cursors over a numbered queue (`events`, `event-regs`, `cursors`) in place of the `outbox` list; each presence lease a hash written from its node's changes (`keys.rs`, "Lease hashes") | v4 nodes on an empty store; `livetally upgrade-store`, which also seeds the receivers from its `--webhook-url` flags and moves every `outbox` list into `events` |
//!
//! A node on a store at an older version runs *mixed*: older nodes may still be running.
//! At version 1 its scripts keep the v1 session keys true as well (the v1 epoch moves with
//! every claim, the v1 acked seq with every delta, and a v1 claim fences newer sockets);
//! below version 3 they write presence leases only as v2 reads them and sum them on every
//! read, as v2 does, since a v2 node's writes would bypass the totals. Once no older node
//! is left, `livetally upgrade-store` sets this version; running nodes notice within
//! [`RECHECK`], stop writing the v1 keys, migrate what is left of them lazily, and build
//! the presence totals from the leases on their next script. Below version 4, v1.1 nodes
//! may still queue into their `outbox` lists and deliver them to their own flags; v4
//! nodes queue into the new layout only, so each event is in exactly one queue, and
//! `upgrade-store` moves what is left of the lists. Below version 4 every lease is also
//! written whole, as one JSON value v1.1 reads; from version 4 the scripts move each
//! campaign's leases to hashes on their next run, and nodes send only their changes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::conn::Conn;
use super::keys::{JOIN_KEY, NEXT, SCHEMA};
use crate::store::{StoreError, StoreResult};

/// The version this build writes.
pub const VERSION: u64 = 4;

/// The first version whose scripts keep the presence totals.
const PRESENCE_TOTALS: u64 = 3;

/// The first version whose leases are hashes written from each node's changes.
const LEASE_HASHES: u64 = 4;

/// The first version whose scripts keep no v1 session keys.
const SESSIONS_V2: u64 = 2;

/// How often a mixed node looks for the end of the upgrade: a round trip every few seconds
/// costs nothing, and the v1 keys are written for at most this long after it.
pub const RECHECK: Duration = Duration::from_secs(5);

/// What a node knows of the store's version.
pub(super) struct Schema {
    /// The store's version as last read (below [`VERSION`]: older nodes may run).
    version: AtomicU64,
    /// When `version` was last read from the store.
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
                // A deployment that starts here has no older node to agree with: its join key
                // is the stored one from the start, made BEFORE the mark, so a node that
                // finds the store marked by a new node finds the key too.
                if !has_v1_data {
                    super::secrets::read_or_create(conn, JOIN_KEY).await?;
                }
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
                "store written by an older version: running mixed (the older layout kept up to \
                 date); run `livetally upgrade-store` once no older node is left (docs/operations.md)"
            );
        }
        Ok(Schema {
            version: AtomicU64::new(version),
            checked: Mutex::new(Instant::now()),
        })
    }

    /// True while v1 nodes may run (the v1 session keys are kept true too).
    pub(super) async fn mixed(&self, conn: &Conn) -> bool {
        self.version(conn).await < SESSIONS_V2
    }

    /// The presence layout the oldest node that may run allows, as the scripts take it
    /// (`presence.lua`, `pres_ready`): `2` while v2 nodes may run (no totals; readers sum
    /// the leases), `3` while v1.1 nodes may (leases as JSON), else `4` (lease hashes).
    pub(super) async fn presence_layout(&self, conn: &Conn) -> &'static str {
        match self.version(conn).await {
            v if v < PRESENCE_TOTALS => "2",
            v if v < LEASE_HASHES => "3",
            _ => "4",
        }
    }

    /// The store's version. Looks at the store again every [`RECHECK`] until the upgrade is
    /// finished; a failed look keeps the last answer.
    async fn version(&self, conn: &Conn) -> u64 {
        let known = self.version.load(Ordering::Relaxed);
        if known >= VERSION {
            return known;
        }
        {
            let mut checked = self.checked.lock().unwrap_or_else(|e| e.into_inner());
            if checked.elapsed() < RECHECK {
                return known;
            }
            *checked = Instant::now();
        }
        if let Ok(Some(v)) = stored(conn).await {
            if v > known {
                tracing::info!(
                    schema = v,
                    "the store's version moved on: older layouts are no longer written"
                );
                self.version.store(v, Ordering::Relaxed);
            }
        }
        self.version.load(Ordering::Relaxed)
    }
}

/// Marks the upgrade finished (this version); refuses a newer version. Safe to run again.
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
