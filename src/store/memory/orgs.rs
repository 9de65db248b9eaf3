//! The memory store's organisations: each version's tree held as it was uploaded (an
//! `Arc`, so a read shares it and a put stores it without a copy).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, MutexGuard};

use async_trait::async_trait;

use super::MemoryStore;
use crate::org::{OrgSummary, Tree};
use crate::store::{Orgs, StoreResult};

#[derive(Default)]
pub(super) struct OrgsData {
    orgs: HashMap<String, OrgEntry>,
}

#[derive(Default)]
struct OrgEntry {
    /// The newest version; `None` once the org is deleted (kept versions stay for the
    /// campaigns that use them).
    current: Option<u64>,
    /// The last version handed out: numbers are never reused.
    last: u64,
    versions: BTreeMap<u64, (OrgSummary, Arc<Tree>)>,
}

impl OrgEntry {
    fn prune(&mut self, keep: &[u64]) {
        let current = self.current;
        self.versions.retain(|v, _| Some(*v) == current || keep.contains(v));
    }
}

impl MemoryStore {
    fn orgs(&self) -> MutexGuard<'_, OrgsData> {
        // A panic while holding this lock would be a bug in this file; keep serving the data.
        self.orgs.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait]
impl Orgs for MemoryStore {
    async fn put_org(&self, org: &str, tree: Arc<Tree>) -> StoreResult<(OrgSummary, bool)> {
        let mut data = self.orgs();
        let entry = data.orgs.entry(org.to_owned()).or_default();
        entry.last += 1;
        let summary = OrgSummary::of(org, entry.last, &tree);
        entry.versions.insert(entry.last, (summary.clone(), tree));
        let replaced = entry.current.replace(entry.last).is_some();
        Ok((summary, replaced))
    }

    async fn org_summary(&self, org: &str, version: Option<u64>) -> StoreResult<Option<OrgSummary>> {
        let data = self.orgs();
        let Some(entry) = data.orgs.get(org) else {
            return Ok(None);
        };
        let Some(current) = entry.current else { return Ok(None) };
        Ok(entry.versions.get(&version.unwrap_or(current)).map(|(s, _)| s.clone()))
    }

    async fn list_orgs(&self) -> StoreResult<Vec<OrgSummary>> {
        let data = self.orgs();
        let mut all: Vec<OrgSummary> = data
            .orgs
            .values()
            .filter_map(|e| e.current.and_then(|v| e.versions.get(&v)).map(|(s, _)| s.clone()))
            .collect();
        all.sort_by(|a, b| a.org.cmp(&b.org));
        Ok(all)
    }

    async fn org_tree(&self, org: &str, version: u64) -> StoreResult<Option<Arc<Tree>>> {
        let data = self.orgs();
        Ok(data
            .orgs
            .get(org)
            .and_then(|e| e.versions.get(&version))
            .map(|(_, t)| t.clone()))
    }

    async fn prune_org(&self, org: &str, keep: &[u64]) -> StoreResult<()> {
        if let Some(entry) = self.orgs().orgs.get_mut(org) {
            entry.prune(keep);
        }
        Ok(())
    }

    async fn delete_org(&self, org: &str, keep: &[u64]) -> StoreResult<bool> {
        let mut data = self.orgs();
        let Some(entry) = data.orgs.get_mut(org) else {
            return Ok(false);
        };
        let was = entry.current.take().is_some();
        entry.prune(keep);
        Ok(was)
    }
}
