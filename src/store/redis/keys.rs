//! The key layout: what the Redis store keeps, where. Changing a key here orphans the data
//! already stored under the old one, so the layout is part of the stored format.
//!
//! Every key of one campaign carries the hash tag `{c:<id>}`, so all of them live in one
//! Cluster slot and every per-campaign call is ONE round trip (one `EVALSHA`, or one
//! single-slot pipeline), on Cluster as on a single server. The campaign index lives in
//! its own slot, `{campaigns}`.
//!
//! Scripts are named by their file in `lua/`. What a campaign keeps for its report carries
//! no Redis TTL and stays until an operator deletes it; only per-session resume state and
//! per-process retry records expire, in *generations* (below).
//!
//! | key | type | holds | written by | expires / deleted |
//! |-----|------|-------|------------|-------------------|
//! | `lt:{campaigns}:index` | zset | member = campaign id, score = `created_at` | `create_campaign` (`index.lua`) | member: `delete_campaign` |
//! | `lt:{campaigns}:order` | hash | id → creation sequence, to order campaigns created in the same millisecond | `create_campaign` (`index.lua`) | field: `delete_campaign` |
//! | `lt:{campaigns}:next` | string | counter behind the creation sequence | `create_campaign` (`index.lua`) | never |
//! | `lt:{campaigns}:version` | string | the campaign index's version: moved by every create, end, delete, milestone or share-channel change, read by every node once per tick | `RedisStore::bump_index` after the change (read with `next`, which v1.1 nodes move too) | never |
//! | `lt:{campaigns}:schema` | string | the stored format's version (`schema.rs`): 1 while v1 nodes may run, 2 after `livetally upgrade-store` or on a store v2 started | `RedisStore::connect_*` (`SET NX`), `finish_upgrade` | never |
//! | `lt:{campaigns}:join-key` | string | the deployment's join key (32 random bytes, base64url): signs and verifies join tokens when no `--join-secret` is set | a node on an empty store, or `livetally upgrade-store` (`SET NX`) | never |
//! | `lt:{campaigns}:ticket-key` | string | the HMAC key of operator tickets (as above) | the first node that mints or checks a ticket (`SET NX`) | never |
//! | `lt:ticket:<nonce>` | string | a spent operator ticket | `spend_once` (`SET NX PX`, the ticket's life) | with the ticket's validity |
//! | `lt:{c:<id>}:meta` | hash | `campaign` (JSON as created), `state` (`live`/`ended`), `ended_at`, `peak`, `peak_at`, `peak_regions` (JSON), `regs_erased` (erasures so far, numbering `regs`' placeholders), `session_ttl` (ms, fixed by the first node that writes one), `epoch` (the last session epoch handed out), `share_channels` (the declared channels, comma-separated, absent or empty: none; what `apply.lua` counts by), `ugen` (the generation of its unit totals' shards, random, set by the first fold) | `create.lua`; `roll.lua` (ugen); `milestones.lua` (campaign, share_channels); `end.lua` (state, ended_at); `apply.lua` (`raise_peak`: `peak_regions` only while v2 nodes may run, else cleared for `peak-sum`), `tick.lua` (peak fields); `claim.lua` (epoch; session_ttl on a campaign created by v1); `erase.lua` (regs_erased) | never |
//! | `lt:{c:<id>}:counts` | hash | kind → interactions | `apply.lua` | never |
//! | `lt:{c:<id>}:sessions:0`, `:sessions:1` | hash | the generations of session resume state: session → `<epoch>\|<acked seq>\|<region>\|<node>` (where its socket is counted; region and node empty once it closed), and `_g` → the generation held | `claim.lua`, `apply.lua` (sessions that sent something, [`Batch::touch`](crate::store::Batch::touch), [`Batch::left`](crate::store::Batch::left)) | expires at the end of the generation after its own (`PEXPIREAT`); deleted when the campaign ends |
//! | `lt:{c:<id>}:moved` | hash | epoch of a socket whose session was claimed by another socket while a node with a live lease still counted it → `<region>\|<node>`; subtracted from that node's lease | `claim.lua` | field: when the node reports the socket closed (`apply.lua`), or its lease is gone (`stats.lua`); key: when the campaign ends |
//! | `lt:{c:<id>}:applied:0`, `:applied:1` | hash | the generations of retry records: origin (node id/run id) → `<batch number>\|<fenced indices JSON>` of its last numbered batch, so a retry is applied once | `apply.lua` | as `sessions:<p>` |
//! | `lt:{c:<id>}:epochs` | hash | v1 layout: session → ownership epoch | v1 nodes; `claim.lua` while v1 nodes may run | field: when v2 claims the session after the upgrade; key: two session TTLs after `upgrade-store`, or when the campaign ends |
//! | `lt:{c:<id>}:sessions` | hash | v1 layout: session → acked seq, read as a fallback by v2 | v1 nodes; `apply.lua` while v1 nodes may run | as `epochs` (and a field once v2 wrote the session after the upgrade) |
//! | `lt:{c:<id>}:applied` | hash | v1 layout: v1 origin → last batch | v1 nodes | as `epochs` |
//! | `lt:{c:<id>}:uniq` | HLL | viewers seen (`unique_viewers`) | `apply.lua` | never |
//! | `lt:{c:<id>}:actors` | HLL | viewers who interacted (`interactors`) | `apply.lua` | never |
//! | `lt:{c:<id>}:regs` | set | one member per registration ever taken (`SCARD` is the `registrations` count): the viewer id, or `~<n>` once that person's sign-up was erased | `register.lua`, `erase.lua` | never |
//! | `lt:{c:<id>}:reg-order` | zset | member = viewer, score = its registration's number (the size of `regs` after adding it): the export's order and cursor | `register.lua` | member: `erase.lua` |
//! | `lt:{c:<id>}:reg-data` | hash | viewer → `<registered_at ms>\|<fields JSON object>` | `register.lua` | field: `erase.lua` |
//! | `lt:{c:<id>}:shares` | hash | channel → share visits | `apply.lua` | never |
//! | `lt:{c:<id>}:presence` | hash | schema < 4: node → `<updated_at ms>\|<Presence JSON>` | `apply.lua` | field: when its lease has expired (`stats.lua`) or its node leaves (`drop_presence`); key: when the campaign ends (`end.lua`), or when its leases move to hashes |
//! | `lt:{c:<id>}:presence:<node>` | hash | schema 4: one node's lease, `_at` → updated_at ms, `viewers` and `r:<region or u:code>` → its open sockets (fields at 0 left out) | `presence.lua` (`pres_put`, from `apply`) | key: when its lease has expired or its node leaves; when the campaign ends (`end.lua`) |
//! | `lt:{c:<id>}:presence-exp` | hash | node → lease expiry (unix ms, Redis clock); a node's first claim starts its lease before its first presence write | `apply.lua`, `claim.lua` | as `presence` |
//! | `lt:{c:<id>}:presence-sum` | hash | schema 3: the live total, kept incrementally: `viewers`, `r:<region>` → counted viewers of the live leases; `_v` → the layout (`3`: JSON leases, `4`: lease hashes) once built | `presence.lua` (from `apply`, `claim`, `stats`, `leave`) | key: when the campaign ends |
//! | `lt:{c:<id>}:presence-eff` | hash | schema 3: node → its share inside `presence-sum`, JSON `{"v":n,"r":{region:n}}` (its lease less its moved marks) | `presence.lua` | field: with the node's lease; key: when the campaign ends |
//! | `lt:{c:<id>}:presence-nodes` | hash | schema 3: node → `<updated_at ms>\|<counted viewers>`, what stats lists per node | `presence.lua` | as `presence-eff` |
//! | `lt:{c:<id>}:presence-due` | zset | schema 3: node by lease expiry, so an expired lease is found without reading the others and subtracted once | `presence.lua` | as `presence-eff` |
//! | `lt:{c:<id>}:peak-sum` | hash | schema 3: `presence-sum` as it was at the peak (`COPY`), the regions at the peak unless `meta`'s `peak_regions` is set | `apply.lua` (`raise_peak`) | key: when the campaign is deleted |
//! | `lt:{c:<id>}:moved-n` | hash | schema 3: node → JSON `{"n":n,"r":{region:n}}`, its `moved` marks counted | `presence.lua` | field: when its marks go; key: when the campaign ends |
//! | `lt:{c:<id>}:events` | zset | schema 4: webhook events, member = the event's JSON body, score = its number (`<id>-<n>`) | `events.lua` (in `apply.lua`, `tick.lua`, `end.lua`, `register.lua`; the bound drops the oldest registration first) | an event once every receiver's cursor passed it (`settle.lua`, `retarget.lua`); a person's `registration.created` on erasure (`erase.lua`) or `delete_campaign` (`forget.lua`); the rest is kept after `delete_campaign`, so the last events still go out |
//! | `lt:{c:<id>}:event-regs` | zset | schema 4: member = viewer, score = the number of its queued `registration.created`, so erasure and the bound find them without reading bodies | `events.lua` | with its event |
//! | `lt:{c:<id>}:cursors` | hash | schema 4: receiver id → `<passed>\|<head>\|<lease until>\|<attempts>\|<first>\|<next try>\|<node>`: the last event it passed, and the delivery of the next one | `lease.lua`, `settle.lua`, `retarget.lua` (a new receiver starts at the tail) | field: when its receiver is removed (`retarget.lua`) |
//! | `lt:{c:<id>}:outbox-state` | hash | `seq` (events queued so far: ids are `<id>-<seq>`), `peak_event_at`, `dropped` (events the bound dropped, not yet counted in a node's metric) | `events.lua`; `count.lua` takes `dropped` | never (ids stay unique if the id is created again) |
//! | `lt:{c:<id>}:outbox` | list | schema 3: webhook events of v1.1 nodes, delivered to their `--webhook-url`s | v1.1 nodes | moved into `events` by `livetally upgrade-store` (`moveout.lua`); a person's `registration.created` on erasure |
//! | `lt:{webhooks}:due` | zset | member = campaign id with queued webhook events, score = when some receiver's next event is due (unix ms) | after a script queued events; `lease_event`, `settle_event`, `set_receivers`; the backlog sweep | member: when no receiver has an event left |
//! | `lt:{webhooks}:receivers` | string | schema 4: the receivers, JSON `[{"id","url","types"?,"secret"}]` (the deployment setting of `GET/PUT /api/v1/webhooks`) | `set_receivers`, `seed_receivers` (`SET NX`: `--webhook-url` seeds a store that never had the setting) | never |
//! | `lt:{c:<id>}:vseries:<p>` | hash | bucket ms → viewers, for the hour starting at `<p>` | `tick.lua` | never |
//! | `lt:{c:<id>}:vparts` | zset | the `<p>` that have a `vseries` hash (member = score) | `tick.lua` | never |
//! | `lt:{c:<id>}:iseries:<p>` | hash | `<bucket>` → all kinds, `<bucket>:<kind>` → count, for the hour starting at `<p>` | `apply.lua` | never |
//! | `lt:{c:<id>}:iparts` | zset | the `<p>` that have an `iseries` hash (member = score) | `apply.lua` | never |
//! | `lt:{c:<id>}:sunits:0`, `:sunits:1` | hash | generations (as `sessions:<p>`): session → `1` once it counted in a unit's `sessions` | `apply.lua` | as `sessions:<p>` |
//! | `lt:{c:<id>}:udelta` | list | per-unit deltas not yet folded into the totals: one JSON object `{"p": [codes], "c": [[unit, metric, n]]}` per batch or registration (counts by unit; the roller adds each to the unit's ancestors too, from the campaign's org version) | `apply.lua`, `register.lua` (`RPUSH`, atomic with the acks or the registration) | entries: `rolled.lua` once every totals shard took them |
//! | `lt:{c:<id>}:uroll` | hash | `head` (entries of `udelta` folded and trimmed so far), `plan` (the fold under way) | `roll.lua`, `rolled.lua` | never |
//! | `lt:{c:<id>}:uroll-lease` | string | the node folding deltas now (`SET NX PX`) | `roll.lua` | with its lease |
//! | `lt:{ct:<id>:<g>:<s>}:totals` | hash | shard `s` (`hash(code) mod 64`) of the unit totals of generation `g` (meta `ugen`): `<code>\|<metric>` → count, metric `s`, `h`, `r` or `i\|<kind>`; `#plan` → the last fold it took | `fold.lua` | `delete_campaign`, after `delete.lua` (one `DEL` per shard); a roller whose `rolled.lua` finds the generation gone |
//! | `lt:{c:<id>}:upeak` | hash | upper unit → `<peak>\|<at ms>` | `tick.lua` (the first node to tick in a bucket) | never |
//! | `lt:{c:<id>}:upeak-bucket` | string | the last bucket (ms) whose tick raised the upper units' peaks: the first node to tick in a bucket does, the others skip | `tick.lua` | never |
//! | `lt:{c:<id>}:uuniq:<code>` | HLL | an upper unit's viewers seen | `apply.lua` | never |
//! | `lt:{c:<id>}:uuniq-codes` | set | the codes that have a `uuniq` sketch | `apply.lua` | never |
//! | `lt:{cu:<id>:<node>}:viewers` | hash | one node's open sockets by deep unit (only units not at 0) | `put_deep_viewers` | with the node's presence lease (`PEXPIRE`) |
//!
//! Organisations keep keys of their own, outside every campaign's slot (`orgs.rs`): the
//! summaries under `lt:{orgs}:*`, each version's units in chunks of one slot each.
//!
//! "never" above means until `delete_campaign` (`delete.lua`): it removes every
//! `{c:<id>}` key of an ended campaign (the fixed ones of [`CampaignKeys::fixed`] and the
//! hour hashes its `vparts`/`iparts` list), then the id's index entries.
//!
//! `create_campaign` writes the index first and the meta second, so a create interrupted
//! between the two is completed by a retry, and listing skips index entries without meta.
//!
//! Series hashes are split by hour so that reading a window reads only the hours it
//! covers, not the whole two weeks of a festival.
//!
//! **Generations.** Redis 7.0 has no expiry per hash field, and a timer per session would
//! cost a key per session. So state that must be forgotten lives in two hashes per kind:
//! with `ttl` the campaign's `session_ttl` and `g = floor(TIME / ttl)` (Redis clock), the
//! hash of generation `g` is `<kind>:<g mod 2>`; its field `_g` says which generation it
//! holds (no session id or origin is that short), and it expires at the end of generation
//! `g + 1`. Reads look in `g`, then `g - 1`; writes go to `g`, copying an entry forward.
//! An entry therefore lives at least `ttl` and at most `2·ttl` after its last write, and a
//! campaign's sessions cost nothing once they are quiet for two TTLs. Both hash names are
//! fixed, so scripts declare them in KEYS as Cluster requires. Fencing survives
//! forgetting because epochs come from the campaign-wide `meta.epoch` counter: an epoch is
//! never handed out twice, and a delta whose session has no entry is fenced.
//!
//! **Presence totals** (schema 3). While v2 nodes may run, every node's lease is written to
//! `presence` and `presence-exp` as in schema 2 and readers sum them. Once the store is at
//! schema 3 the scripts keep the total beside them: each change to a node's lease or moved
//! marks moves `presence-sum` by the difference of that node's share, and an expired
//! lease, found through `presence-due`, is subtracted once, by whichever script meets it
//! first. A stats read costs O(regions + nodes' short values) instead of decoding every
//! node's lease on every write. The totals are built from the leases by the first script
//! to run once no v2 node may (`presence.lua`, `pres_build`).
//!
//! **Lease hashes** (schema 4). At schema 3 a lease is still one JSON value and each write
//! re-encodes it and its share (`presence-eff`) whole: with an org, ~400 upper units per
//! lease, that is ~0.4 ms of the campaign's master per flush. At schema 4 each node's lease
//! is its own hash `presence:<node>`, the node sends only the entries that changed since
//! its last acknowledged write (`leases.rs`), and the share moves field by field: a write
//! costs O(its changes). A campaign's leases move to it on the first script once no v1.1
//! node may run (`pres_build` again, from `presence`).
//!
//! Presence leases use the Redis server clock (`TIME`) for both `updated_at` and expiry, so
//! nodes with skewed clocks still agree on which leases are alive.

use crate::store::SeriesMetric;

/// Width of one series hash: an hour of 1 s ticks is 3,600 buckets (×kinds fields).
const SERIES_PARTITION_MS: i64 = 3_600_000;

pub(super) const INDEX: &str = "lt:{campaigns}:index";
pub(super) const ORDER: &str = "lt:{campaigns}:order";
pub(super) const NEXT: &str = "lt:{campaigns}:next";
/// Campaigns whose webhook queue may have an event due (score: when to look, unix ms).
/// A hint: `lease.lua` decides, and a sweep re-adds any queue missing from it.
pub(super) const DUE: &str = "lt:{webhooks}:due";
/// The campaign index's version (`Campaigns::index_version`): INCR after every write to a
/// campaign itself, so nodes re-read the index only when it moved.
pub(super) const VERSION: &str = "lt:{campaigns}:version";
/// The deployment's webhook receivers (JSON), in the same slot as [`DUE`].
pub(super) const RECEIVERS: &str = "lt:{webhooks}:receivers";
/// The stored format's version (`schema.rs`).
pub(super) const SCHEMA: &str = "lt:{campaigns}:schema";
/// The deployment's join key (`secrets.rs`).
pub(super) const JOIN_KEY: &str = "lt:{campaigns}:join-key";
/// The HMAC key of operator tickets (`secrets.rs`).
pub(super) const TICKET_KEY: &str = "lt:{campaigns}:ticket-key";
/// The key that marks a ticket's nonce spent. No hash tag: each is one command alone.
pub(super) fn spent_nonce(nonce: &str) -> String {
    format!("lt:ticket:{nonce}")
}

/// The keys of one campaign, all in its `{c:<id>}` slot.
#[derive(Clone, Copy)]
pub(super) struct CampaignKeys<'a>(pub(super) &'a str);

impl CampaignKeys<'_> {
    fn key(self, suffix: &str) -> String {
        format!("lt:{{c:{}}}:{suffix}", self.0)
    }

    pub(super) fn meta(self) -> String {
        self.key("meta")
    }

    pub(super) fn counts(self) -> String {
        self.key("counts")
    }

    pub(super) fn epochs(self) -> String {
        self.key("epochs")
    }

    pub(super) fn sessions(self) -> String {
        self.key("sessions")
    }

    pub(super) fn applied(self) -> String {
        self.key("applied")
    }

    /// The two generation hashes of session state, as a script's `generation()` takes them.
    pub(super) fn session_gens(self) -> [String; 2] {
        [self.key("sessions:0"), self.key("sessions:1")]
    }

    /// The two generation hashes of retry records.
    pub(super) fn applied_gens(self) -> [String; 2] {
        [self.key("applied:0"), self.key("applied:1")]
    }

    pub(super) fn uniq(self) -> String {
        self.key("uniq")
    }

    pub(super) fn actors(self) -> String {
        self.key("actors")
    }

    pub(super) fn regs(self) -> String {
        self.key("regs")
    }

    pub(super) fn reg_order(self) -> String {
        self.key("reg-order")
    }

    pub(super) fn reg_data(self) -> String {
        self.key("reg-data")
    }

    pub(super) fn shares(self) -> String {
        self.key("shares")
    }

    pub(super) fn presence(self) -> String {
        self.key("presence")
    }

    pub(super) fn presence_exp(self) -> String {
        self.key("presence-exp")
    }

    pub(super) fn moved(self) -> String {
        self.key("moved")
    }

    pub(super) fn outbox(self) -> String {
        self.key("outbox")
    }

    pub(super) fn outbox_state(self) -> String {
        self.key("outbox-state")
    }

    pub(super) fn events(self) -> String {
        self.key("events")
    }

    pub(super) fn event_regs(self) -> String {
        self.key("event-regs")
    }

    pub(super) fn cursors(self) -> String {
        self.key("cursors")
    }

    /// The unit deltas not folded yet: one JSON object per batch or registration,
    /// `{"p": [codes], "c": [[unit, metric, n]]}` (see `rollup.rs`), appended atomically with the
    /// acks and trimmed by the roller once folded.
    pub(super) fn udelta(self) -> String {
        self.key("udelta")
    }

    /// The roller's place in `udelta`: `head` (entries trimmed so far), `plan` (the fold
    /// under way).
    pub(super) fn uroll(self) -> String {
        self.key("uroll")
    }

    /// Held (`SET NX PX`) by the node folding this campaign's deltas for a while.
    pub(super) fn uroll_lease(self) -> String {
        self.key("uroll-lease")
    }

    /// The last bucket whose tick raised the upper units' peaks: the first node to tick in
    /// a bucket raises them, the others see its bucket here and skip.
    pub(super) fn upeak_bucket(self) -> String {
        self.key("upeak-bucket")
    }

    /// One of the [`super::rollup::UNIT_SHARDS`] hashes of the campaign's unit totals: `<code>|<metric>`
    /// → count, the metric `s` (sessions), `i|<kind>`, `r` (registrations) or `h` (share
    /// visits), `<code>` empty for unassigned; `#plan` the last fold it took. Each in a
    /// slot of its own, so the totals of half a million units spread over the cluster,
    /// away from the campaign's busy slot. Named by the campaign's totals generation
    /// `gen` (meta `ugen`): a roller still folding for a deleted campaign writes shards
    /// that a campaign created again under the same id never reads.
    pub(super) fn unit_totals(self, gen: &str, shard: usize) -> String {
        format!("lt:{{ct:{}:{gen}:{shard}}}:totals", self.0)
    }

    /// The generations of the sessions already counted in a unit (session → `1`).
    pub(super) fn sunit_gens(self) -> [String; 2] {
        [self.key("sunits:0"), self.key("sunits:1")]
    }

    /// The upper units that have a unique sketch (`uuniq:<code>`), for `delete_campaign`.
    pub(super) fn uuniq_codes(self) -> String {
        self.key("uuniq-codes")
    }

    /// The prefix of an upper unit's unique sketch: `uuniq:<code>` follows.
    pub(super) fn uuniq_prefix(self) -> String {
        self.key("uuniq:")
    }

    /// Upper unit → `<peak>|<at>`.
    pub(super) fn upeak(self) -> String {
        self.key("upeak")
    }

    /// One node's open sockets by deep unit: its own slot, so a campaign's deep viewers
    /// spread over the cluster with its nodes, outside the campaign's busy slot.
    pub(super) fn deep_viewers(self, node: &str) -> String {
        format!("lt:{{cu:{}:{node}}}:viewers", self.0)
    }

    /// The presence totals as they were at the peak (`raise_peak` in `apply.lua`).
    pub(super) fn peak_sum(self) -> String {
        self.key("peak-sum")
    }

    /// The presence totals' keys (schema 3), in the order the scripts take them: sum, eff,
    /// nodes, due, moved-n.
    pub(super) fn presence_totals(self) -> [String; 5] {
        [
            self.key("presence-sum"),
            self.key("presence-eff"),
            self.key("presence-nodes"),
            self.key("presence-due"),
            self.key("moved-n"),
        ]
    }

    /// Every key of the campaign except the hour hashes of its series (those are listed
    /// in `vparts` and `iparts`): what `delete_campaign` removes besides them. The v1
    /// session keys are included: a campaign written while v1 nodes ran may still have them.
    pub(super) fn fixed(self) -> [String; 34] {
        let [su0, su1] = self.sunit_gens();
        let [s0, s1] = self.session_gens();
        let [a0, a1] = self.applied_gens();
        let [sum, eff, nodes, due, moved_n] = self.presence_totals();
        [
            self.meta(),
            self.counts(),
            self.epochs(),
            self.sessions(),
            self.applied(),
            s0,
            s1,
            a0,
            a1,
            self.moved(),
            self.uniq(),
            self.actors(),
            self.regs(),
            self.reg_order(),
            self.reg_data(),
            self.shares(),
            self.presence(),
            self.presence_exp(),
            self.vparts(),
            self.iparts(),
            sum,
            eff,
            nodes,
            due,
            moved_n,
            self.peak_sum(),
            self.udelta(),
            self.uroll(),
            self.uroll_lease(),
            self.upeak_bucket(),
            su0,
            su1,
            self.uuniq_codes(),
            self.upeak(),
        ]
    }

    /// `part` is a [`partition`] start.
    pub(super) fn vseries(self, part: i64) -> String {
        self.key(&format!("vseries:{part}"))
    }

    pub(super) fn vparts(self) -> String {
        self.key("vparts")
    }

    /// `part` is a [`partition`] start.
    pub(super) fn iseries(self, part: i64) -> String {
        self.key(&format!("iseries:{part}"))
    }

    pub(super) fn iparts(self) -> String {
        self.key("iparts")
    }

    /// The hour hash holding `part` of a metric's series.
    pub(super) fn series(self, metric: &SeriesMetric, part: i64) -> String {
        match metric {
            SeriesMetric::Viewers => self.vseries(part),
            SeriesMetric::Interactions(_) => self.iseries(part),
        }
    }

    /// The zset listing which hours of a metric's series have a hash.
    pub(super) fn series_parts(self, metric: &SeriesMetric) -> String {
        match metric {
            SeriesMetric::Viewers => self.vparts(),
            SeriesMetric::Interactions(_) => self.iparts(),
        }
    }
}

/// Start of the series partition holding `bucket_ms`.
pub(super) fn partition(bucket_ms: i64) -> i64 {
    bucket_ms
        .div_euclid(SERIES_PARTITION_MS)
        .saturating_mul(SERIES_PARTITION_MS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_of_one_campaign_share_a_slot_tag() {
        assert_eq!(CampaignKeys("launch").meta(), "lt:{c:launch}:meta");
        assert_eq!(CampaignKeys("launch").iseries(0), "lt:{c:launch}:iseries:0");
    }

    /// The table above, spelled out: data already in Redis is only found under these names.
    #[test]
    fn every_key_is_named_as_stored() {
        let k = CampaignKeys("x");
        for (key, stored) in [
            (k.meta(), "lt:{c:x}:meta"),
            (k.counts(), "lt:{c:x}:counts"),
            (k.epochs(), "lt:{c:x}:epochs"),
            (k.sessions(), "lt:{c:x}:sessions"),
            (k.applied(), "lt:{c:x}:applied"),
            (k.session_gens()[0].clone(), "lt:{c:x}:sessions:0"),
            (k.session_gens()[1].clone(), "lt:{c:x}:sessions:1"),
            (k.applied_gens()[0].clone(), "lt:{c:x}:applied:0"),
            (k.applied_gens()[1].clone(), "lt:{c:x}:applied:1"),
            (k.uniq(), "lt:{c:x}:uniq"),
            (k.actors(), "lt:{c:x}:actors"),
            (k.regs(), "lt:{c:x}:regs"),
            (k.reg_order(), "lt:{c:x}:reg-order"),
            (k.reg_data(), "lt:{c:x}:reg-data"),
            (k.shares(), "lt:{c:x}:shares"),
            (k.presence(), "lt:{c:x}:presence"),
            (k.presence_exp(), "lt:{c:x}:presence-exp"),
            (k.moved(), "lt:{c:x}:moved"),
            (k.outbox(), "lt:{c:x}:outbox"),
            (k.outbox_state(), "lt:{c:x}:outbox-state"),
            (k.events(), "lt:{c:x}:events"),
            (k.event_regs(), "lt:{c:x}:event-regs"),
            (k.cursors(), "lt:{c:x}:cursors"),
            (k.presence_totals()[0].clone(), "lt:{c:x}:presence-sum"),
            (k.presence_totals()[1].clone(), "lt:{c:x}:presence-eff"),
            (k.presence_totals()[2].clone(), "lt:{c:x}:presence-nodes"),
            (k.presence_totals()[3].clone(), "lt:{c:x}:presence-due"),
            (k.presence_totals()[4].clone(), "lt:{c:x}:moved-n"),
            (k.peak_sum(), "lt:{c:x}:peak-sum"),
            (k.vseries(3_600_000), "lt:{c:x}:vseries:3600000"),
            (k.vparts(), "lt:{c:x}:vparts"),
            (k.iseries(-3_600_000), "lt:{c:x}:iseries:-3600000"),
            (k.iparts(), "lt:{c:x}:iparts"),
            (k.udelta(), "lt:{c:x}:udelta"),
            (k.uroll(), "lt:{c:x}:uroll"),
            (k.uroll_lease(), "lt:{c:x}:uroll-lease"),
            (k.upeak_bucket(), "lt:{c:x}:upeak-bucket"),
            (k.unit_totals("9f2c", 7), "lt:{ct:x:9f2c:7}:totals"),
            (k.sunit_gens()[0].clone(), "lt:{c:x}:sunits:0"),
            (k.upeak(), "lt:{c:x}:upeak"),
            (k.uuniq_codes(), "lt:{c:x}:uuniq-codes"),
            (format!("{}P01", k.uuniq_prefix()), "lt:{c:x}:uuniq:P01"),
            (k.deep_viewers("n1"), "lt:{cu:x:n1}:viewers"),
        ] {
            assert_eq!(key, stored);
        }
    }

    #[test]
    fn partitions_are_hour_aligned_and_floor_negative_buckets() {
        assert_eq!(partition(0), 0);
        assert_eq!(partition(3_599_999), 0);
        assert_eq!(partition(3_600_000), 3_600_000);
        assert_eq!(partition(-1), -3_600_000);
        assert!(partition(i64::MIN) <= i64::MIN / 2);
    }
}
