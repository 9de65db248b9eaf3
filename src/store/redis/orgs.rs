//! Organisations in Redis, laid out so that half a million units neither sit in one slot
//! nor cost a key each:
//!
//! | key | type | holds |
//! |-----|------|-------|
//! | `lt:{orgs}:current` | hash | org → its newest version's summary JSON |
//! | `lt:{orgs}:next` | hash | org → the last version handed out (never reused) |
//! | `lt:{orgs}:versions:<org>` | hash | version → `<chunks>\|<summary JSON>`, every stored version |
//! | `lt:{orgs}:staging` | zset | `<org>:<version>:<chunks>` being written, by start (ms) |
//! | `lt:{o:<org>:<version>:<n>}:units` | string | units `n·4096 ..` packed as `code\tparent index\tname\n` |
//!
//! Each chunk carries its own hash tag, so a version's chunks spread over the cluster's
//! slots; a unit costs its code, name and parent index plus three separators (~40 bytes for
//! the seed's org) and no per-key overhead. An upload writes the chunks, then
//! `org_switch.lua` makes the version the newest: that one step is the switch. A version is
//! immutable, so a node keeps the last few trees it read ([`CACHED_TREES`]).
//!
//! An upload cut short leaves its chunks listed in `staging`; the next upload of any org
//! removes those older than [`STALE_STAGING`].

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::stream::{self, StreamExt, TryStreamExt};

use super::codec::corrupt;
use super::conn::unavailable;
use super::RedisStore;
use crate::org::{OrgSummary, Tree};
use crate::store::StoreResult;

/// Units per chunk: ~150 KB of text for the seed's names, small enough for one `SET` well
/// inside the call timeout, large enough that 546,000 units are 134 keys.
const CHUNK_UNITS: usize = 4096;

/// A staged upload older than this was cut short (an upload of 1,000,000 units takes well
/// under a minute).
const STALE_STAGING: Duration = Duration::from_secs(600);

/// Chunk reads and writes in flight at once: enough to hide round trips, few enough not
/// to flood one master.
const PARALLEL: usize = 8;

/// Trees a node keeps: the versions its live campaigns use are few, and each is ~35 MB
/// at the seed's size.
const CACHED_TREES: usize = 4;

const CURRENT: &str = "lt:{orgs}:current";
const NEXT: &str = "lt:{orgs}:next";
const STAGING: &str = "lt:{orgs}:staging";

fn versions_key(org: &str) -> String {
    format!("lt:{{orgs}}:versions:{org}")
}

fn chunk_key(org: &str, version: u64, n: usize) -> String {
    format!("lt:{{o:{org}:{version}:{n}}}:units")
}

/// The trees this node read last, newest at the back.
#[derive(Default)]
pub(super) struct TreeCache(Mutex<VecDeque<(String, u64, Arc<Tree>)>>);

impl TreeCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(String, u64, Arc<Tree>)>> {
        // A panic while holding this lock would be a bug here; the cache stays usable.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, org: &str, version: u64) -> Option<Arc<Tree>> {
        let trees = self.lock();
        trees
            .iter()
            .find(|(o, v, _)| o == org && *v == version)
            .map(|(_, _, t)| t.clone())
    }

    fn put(&self, org: &str, version: u64, tree: Arc<Tree>) {
        let mut trees = self.lock();
        trees.retain(|(o, v, _)| !(o == org && *v == version));
        trees.push_back((org.to_owned(), version, tree));
        while trees.len() > CACHED_TREES {
            trees.pop_front();
        }
    }

    fn forget(&self, org: &str, version: u64) {
        self.lock().retain(|(o, v, _)| !(o == org && *v == version));
    }
}

/// `<chunks>|<summary JSON>` of a versions entry.
fn version_entry(entry: &str) -> StoreResult<(usize, OrgSummary)> {
    let bad = || corrupt("an org versions entry");
    let (chunks, json) = entry.split_once('|').ok_or_else(bad)?;
    Ok((
        chunks.parse().map_err(|_| bad())?,
        serde_json::from_str(json).map_err(|_| bad())?,
    ))
}

impl RedisStore {
    pub(super) async fn org_put(&self, org: &str, tree: Arc<Tree>) -> StoreResult<(OrgSummary, bool)> {
        self.sweep_staging().await?;
        let version: u64 = self
            .conn
            .call(|mut c| async move {
                redis::cmd("HINCRBY")
                    .arg(NEXT)
                    .arg(org)
                    .arg(1)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let chunks = tree.len().div_ceil(CHUNK_UNITS);
        let member = format!("{org}:{version}:{chunks}");
        let now = crate::util::now_ms();
        let m = member.clone();
        self.conn
            .call(|mut c| async move {
                redis::cmd("ZADD")
                    .arg(STAGING)
                    .arg(now)
                    .arg(m)
                    .query_async::<()>(&mut c)
                    .await
            })
            .await?;
        stream::iter(0..chunks)
            .map(|n| {
                let body = tree.pack(n * CHUNK_UNITS..((n + 1) * CHUNK_UNITS).min(tree.len()));
                let key = chunk_key(org, version, n);
                self.conn
                    .call(|mut c| async move { redis::cmd("SET").arg(key).arg(body).query_async::<()>(&mut c).await })
            })
            .buffer_unordered(PARALLEL)
            .try_collect::<()>()
            .await?;
        let summary = OrgSummary::of(org, version, &tree);
        let json = serde_json::to_string(&summary).map_err(unavailable)?;
        let replaced: i64 = self
            .scripts
            .org_switch
            .run(
                &self.conn,
                &[CURRENT.to_owned(), versions_key(org), STAGING.to_owned()],
                (org, version, json, chunks, member),
            )
            .await?;
        self.trees.put(org, version, tree);
        Ok((summary, replaced == 1))
    }

    /// Removes the chunks of uploads cut short (see the module doc).
    async fn sweep_staging(&self) -> StoreResult<()> {
        let before = crate::util::now_ms() - STALE_STAGING.as_millis() as i64;
        let stale: Vec<String> = self
            .conn
            .call(|mut c| async move {
                redis::cmd("ZRANGEBYSCORE")
                    .arg(STAGING)
                    .arg("-inf")
                    .arg(before)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        for member in stale {
            let mut parts = member.splitn(3, ':');
            if let (Some(org), Some(Ok(version)), Some(Ok(chunks))) =
                (parts.next(), parts.next().map(str::parse), parts.next().map(str::parse))
            {
                self.delete_chunks(org, version, chunks).await?;
            }
            self.conn
                .call(|mut c| async move {
                    redis::cmd("ZREM")
                        .arg(STAGING)
                        .arg(member)
                        .query_async::<()>(&mut c)
                        .await
                })
                .await?;
        }
        Ok(())
    }

    async fn delete_chunks(&self, org: &str, version: u64, chunks: usize) -> StoreResult<()> {
        self.trees.forget(org, version);
        stream::iter(0..chunks)
            .map(|n| {
                let key = chunk_key(org, version, n);
                self.conn
                    .call(|mut c| async move { redis::cmd("UNLINK").arg(key).query_async::<()>(&mut c).await })
            })
            .buffer_unordered(PARALLEL)
            .try_collect::<()>()
            .await
    }

    pub(super) async fn org_read(&self, org: &str, version: Option<u64>) -> StoreResult<Option<OrgSummary>> {
        let versions = versions_key(org);
        let (current, entry): (Option<String>, Option<String>) = self
            .conn
            .call(|mut c| async move {
                redis::pipe()
                    .hget(CURRENT, org)
                    .hget(versions, version.unwrap_or(0))
                    .query_async(&mut c)
                    .await
            })
            .await?;
        let Some(current) = current else { return Ok(None) };
        match (version, entry) {
            (None, _) => serde_json::from_str(&current)
                .map(Some)
                .map_err(|_| corrupt("an org summary")),
            (Some(_), Some(entry)) => Ok(Some(version_entry(&entry)?.1)),
            (Some(_), None) => Ok(None),
        }
    }

    pub(super) async fn org_list(&self) -> StoreResult<Vec<OrgSummary>> {
        let all: HashMap<String, String> = self
            .conn
            .call(|mut c| async move { redis::cmd("HGETALL").arg(CURRENT).query_async(&mut c).await })
            .await?;
        let mut list = all
            .values()
            .map(|json| serde_json::from_str(json).map_err(|_| corrupt("an org summary")))
            .collect::<StoreResult<Vec<OrgSummary>>>()?;
        list.sort_by(|a, b| a.org.cmp(&b.org));
        Ok(list)
    }

    pub(super) async fn org_load(&self, org: &str, version: u64) -> StoreResult<Option<Arc<Tree>>> {
        if let Some(tree) = self.trees.get(org, version) {
            return Ok(Some(tree));
        }
        let versions = versions_key(org);
        let entry: Option<String> = self
            .conn
            .call(|mut c| async move { redis::cmd("HGET").arg(versions).arg(version).query_async(&mut c).await })
            .await?;
        let Some(entry) = entry else { return Ok(None) };
        let (chunks, _) = version_entry(&entry)?;
        let texts: Vec<Option<String>> = stream::iter(0..chunks)
            .map(|n| {
                let key = chunk_key(org, version, n);
                self.conn
                    .call(|mut c| async move { redis::cmd("GET").arg(key).query_async(&mut c).await })
            })
            .buffered(PARALLEL)
            .try_collect()
            .await?;
        // A chunk missing: the version was pruned while this read ran.
        let Some(texts) = texts.into_iter().collect::<Option<Vec<String>>>() else {
            return Ok(None);
        };
        // Rebuilding half a million units takes a few hundred ms of CPU: off the runtime.
        let tree = tokio::task::spawn_blocking(move || Tree::unpack(texts.iter().map(String::as_str)))
            .await
            .map_err(unavailable)?
            .map_err(|e| corrupt(&format!("org {org} version {version}: {e}")))?;
        let tree = Arc::new(tree);
        self.trees.put(org, version, tree.clone());
        Ok(Some(tree))
    }

    pub(super) async fn org_prune(&self, org: &str, keep: &[u64]) -> StoreResult<()> {
        let versions = versions_key(org);
        let v = versions.clone();
        let (current, stored): (Option<String>, HashMap<u64, String>) = self
            .conn
            .call(|mut c| async move { redis::pipe().hget(CURRENT, org).hgetall(v).query_async(&mut c).await })
            .await?;
        let current = match current {
            Some(json) => Some(
                serde_json::from_str::<OrgSummary>(&json)
                    .map_err(|_| corrupt("an org summary"))?
                    .version,
            ),
            None => None,
        };
        for (version, entry) in stored {
            if Some(version) == current || keep.contains(&version) {
                continue;
            }
            let (chunks, _) = version_entry(&entry)?;
            // The entry first: no reader finds a version whose chunks are going.
            let v = versions.clone();
            self.conn
                .call(|mut c| async move { redis::cmd("HDEL").arg(v).arg(version).query_async::<()>(&mut c).await })
                .await?;
            self.delete_chunks(org, version, chunks).await?;
        }
        Ok(())
    }

    pub(super) async fn org_delete(&self, org: &str, keep: &[u64]) -> StoreResult<bool> {
        let removed: i64 = self
            .conn
            .call(|mut c| async move { redis::cmd("HDEL").arg(CURRENT).arg(org).query_async(&mut c).await })
            .await?;
        self.org_prune(org, keep).await?;
        Ok(removed == 1)
    }
}
