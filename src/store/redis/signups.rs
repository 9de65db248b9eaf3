//! Sign-ups in Redis: `regs` (one member per registration ever taken, so `SCARD` is the
//! count), `reg-order` (viewer by number) and `reg-data` (viewer → time and fields); see
//! `keys.rs`. One script per call, so a registration or an erasure is never half done.

use super::codec::corrupt;
use super::keys::CampaignKeys;
use super::RedisStore;
use crate::store::{Registration, StoreError, StoreResult};

impl RedisStore {
    pub(super) async fn add_registration(&self, campaign: &str, r: &Registration) -> StoreResult<bool> {
        let k = CampaignKeys(campaign);
        let mut keys = vec![k.meta(), k.regs(), k.reg_order(), k.reg_data(), k.udelta()];
        keys.extend(self.outbox_keys(k));
        let unit: Vec<&str> = match (r.unit_code(), &r.unit) {
            (Some(code), Some(path)) => std::iter::once(code).chain(path.iter().map(String::as_str)).collect(),
            _ => vec![],
        };
        let reply: Option<i64> = self
            .scripts
            .register
            .run(
                &self.conn,
                &keys,
                (&r.viewer, &r.fields, r.registered_at, self.queue_max_arg(), unit),
            )
            .await?;
        let added = reply.ok_or(StoreError::NotFound)? == 1;
        // A new registration queued `registration.created` (while there are receivers).
        self.mark_due(campaign, u64::from(added && keys.len() > 5)).await;
        Ok(added)
    }

    pub(super) async fn registration_page(
        &self,
        campaign: &str,
        after: u64,
        limit: usize,
    ) -> StoreResult<Vec<(u64, Registration)>> {
        let k = CampaignKeys(campaign);
        let reply: Option<Vec<(u64, String, String)>> = self
            .scripts
            .signups
            .run(&self.conn, &[k.meta(), k.reg_order(), k.reg_data()], (after, limit))
            .await?;
        reply
            .ok_or(StoreError::NotFound)?
            .into_iter()
            .map(|(n, viewer, data)| {
                let (at, rest) = data.split_once('|').ok_or_else(|| corrupt("a reg-data entry"))?;
                let registered_at = at.parse().map_err(|_| corrupt("a reg-data entry"))?;
                // `unit|fields` with a unit (fields begin with `{`, a code never does).
                let (unit, fields) = match rest.starts_with('{') {
                    true => (None, rest),
                    false => {
                        let (u, f) = rest.split_once('|').ok_or_else(|| corrupt("a reg-data entry"))?;
                        (Some(vec![u.to_owned()].into()), f)
                    }
                };
                Ok((
                    n,
                    Registration {
                        viewer,
                        registered_at,
                        fields: fields.to_owned(),
                        unit,
                    },
                ))
            })
            .collect()
    }

    /// The queued `registration.created` go first: if the erasure itself then fails, a
    /// retry erases the rest (the person, registered already, queues nothing new).
    pub(super) async fn erase(&self, campaign: &str, viewer: &str) -> StoreResult<bool> {
        self.forget(campaign, viewer).await?;
        let k = CampaignKeys(campaign);
        let reply: Option<i64> = self
            .scripts
            .erase
            .run(&self.conn, &[k.meta(), k.regs(), k.reg_order(), k.reg_data()], viewer)
            .await?;
        Ok(reply.ok_or(StoreError::NotFound)? == 1)
    }
}
