//! Variants in the tiers (see `policy::cache::variants`): a response that varies is stored under
//! its variant key and the URL's vary index is updated in L2 (with CAS) and L1, bounded by
//! `cache.max_variants`; a lookup follows the index to the request's variant. A response
//! without `Vary` is stored and found under the URL's key alone, as before.

use std::rc::Rc;

use super::{L2Read, Tiers};
use crate::plugin::env::Env;
use crate::plugin::host::{shared_update, HostStore};
use crate::plugin::metrics::Stat;
use crate::policy::cache::entry::Entry;
use crate::policy::cache::exchange::keep_until;
use crate::policy::cache::key::CacheKey;
use crate::policy::cache::l2::{slot_key, slot_of};
use crate::policy::cache::variants::{entry_variant, is_index, variant_key, VaryIndex};
use crate::policy::header_list::RequestHeaders;
use crate::policy::CacheSection;

/// How often an index update retries when other workers store variants of the URL at once.
const INDEX_ATTEMPTS: u32 = 8;

/// What a tier holds for a request.
pub enum Found {
    /// The URL's entry, or the variant the request selects.
    Entry(Rc<Entry>),
    /// Variants of the URL, none of them the one the request selects.
    OtherVariant,
    Absent,
    /// A value that does not decode.
    Corrupt,
}

/// The index a slot's bytes hold for `primary`, and until when it is kept.
fn stored_index(bytes: &[u8], primary: &str) -> Option<(VaryIndex, u64)> {
    if Entry::decode_key(bytes).ok()? != primary {
        return None;
    }
    let entry = Entry::decode(bytes).ok()?;
    VaryIndex::of(&entry).map(|index| (index, keep_until(&entry)))
}

/// What an index update left in the L2 slot.
struct Written {
    index: VaryIndex,
    dropped: Vec<u64>,
    keep: u64,
    previous_len: usize,
    len: usize,
    evicted: bool,
}

impl Tiers {
    /// L1's entry for a request (no shared data): the URL's own, or the variant its index
    /// points the request to.
    pub fn l1_find(
        &mut self,
        env: &Env,
        primary: &str,
        request: &RequestHeaders,
        now: u64,
    ) -> Found {
        let Some(entry) = self.l1_get(env, primary, now) else {
            return Found::Absent;
        };
        if !is_index(&entry) {
            return Found::Entry(entry);
        }
        let variant =
            VaryIndex::of(&entry).and_then(|index| index.variant_key_for(primary, request));
        match variant.and_then(|key| self.l1_get(env, &key, now)) {
            Some(entry) => Found::Entry(entry),
            None => Found::OtherVariant,
        }
    }

    /// L2's entry for a request: the URL's own, or the variant its index points the request
    /// to. An index found here is copied into L1, so the next lookup stays there.
    pub fn l2_find(&mut self, env: &Env, key: &CacheKey, request: &RequestHeaders) -> Found {
        let entry = match self.l2_get(env, &key.primary) {
            L2Read::Found(entry) => entry,
            L2Read::Absent => return Found::Absent,
            L2Read::Corrupt => return Found::Corrupt,
        };
        if !is_index(&entry) {
            return Found::Entry(Rc::new(entry));
        }
        let Some(index) = VaryIndex::of(&entry) else {
            return Found::Corrupt;
        };
        self.insert_index(env, entry, key.tenant.as_deref());
        let Some(variant) = index.variant_key_for(&key.primary, request) else {
            return Found::OtherVariant;
        };
        match self.l2_get(env, &variant) {
            L2Read::Found(entry) => Found::Entry(Rc::new(entry)),
            L2Read::Absent => Found::OtherVariant,
            L2Read::Corrupt => Found::Corrupt,
        }
    }

    /// Stores an entry fetched for `key`, and returns it as stored. A response that varies goes
    /// under its variant key, listed in the URL's index; one that does not goes under the
    /// URL's key (replacing an index there, whose variants leave L1).
    pub(super) fn store_keyed(
        &mut self,
        env: &Env,
        section: &CacheSection,
        key: &CacheKey,
        mut entry: Entry,
    ) -> Entry {
        let tenant = key.tenant.as_deref();
        if entry.vary.is_empty() {
            // `now` 0: whatever L1 holds, expired or not.
            let held = self.l1_get(env, &key.primary, 0);
            if let Some(index) = held.as_deref().and_then(VaryIndex::of) {
                for id in index.variants {
                    self.remove_l1(env, &variant_key(&key.primary, id));
                }
            }
            self.store(env, entry.clone(), tenant);
            return entry;
        }
        let id = entry_variant(&entry.vary);
        let names: Vec<String> = entry.vary.iter().map(|(name, _)| name.clone()).collect();
        entry.key = variant_key(&key.primary, id);
        // The variant first: whoever finds it in the index finds it stored.
        self.store(env, entry.clone(), tenant);
        let max = usize::try_from(section.max_variants).unwrap_or(usize::MAX);
        self.index_variant(env, key, names, id, keep_until(&entry), max);
        entry
    }

    /// Lists variant `id` in the URL's index, in L2 (when the slot can hold it) and in L1; the
    /// variants that leave the index leave L1 too.
    fn index_variant(
        &mut self,
        env: &Env,
        key: &CacheKey,
        names: Vec<String>,
        id: u64,
        keep: u64,
        max: usize,
    ) {
        let primary = key.primary.as_str();
        let limits = env.registry.limits();
        let slot = slot_key(slot_of(primary, limits.l2_slots));
        let slot_bytes = usize::try_from(limits.l2_slot_bytes()).unwrap_or(usize::MAX);
        // This worker's index: the base when L2 holds none for the URL (or cannot be written).
        let local = self
            .l1_get(env, primary, 0)
            .and_then(|entry| VaryIndex::of(&entry).map(|index| (index, keep_until(&entry))));
        let written = shared_update(&HostStore, &slot, INDEX_ATTEMPTS, |current| {
            let previous = current
                .and_then(|bytes| stored_index(bytes, primary))
                .or_else(|| local.clone());
            let previous_keep = previous.as_ref().map_or(0, |(_, keep)| *keep);
            let (index, dropped) =
                VaryIndex::with_variant(previous.map(|(index, _)| index), names.clone(), id, max);
            let keep = keep.max(previous_keep);
            let bytes = index.to_entry(primary, keep).encode();
            if bytes.len() > slot_bytes {
                return Err(());
            }
            let written = Written {
                index,
                dropped,
                keep,
                previous_len: current.map_or(0, <[u8]>::len),
                len: bytes.len(),
                evicted: current
                    .is_some_and(|b| Entry::decode_key(b).is_ok_and(|other| other != primary)),
            };
            Ok((written, bytes))
        });
        let (index, dropped, keep) = match written {
            Ok(written) => {
                let metrics = &env.metrics;
                if written.evicted {
                    metrics.inc(Stat::L2Eviction);
                }
                if written.previous_len <= 1 {
                    metrics.inc(Stat::L2Entries);
                }
                let grown = i64::try_from(written.len).unwrap_or(0)
                    - i64::try_from(written.previous_len).unwrap_or(0);
                metrics.add(Stat::L2Bytes, grown);
                (written.index, written.dropped, written.keep)
            }
            Err(_) => {
                let previous_keep = local.as_ref().map_or(0, |(_, keep)| *keep);
                let previous = local.map(|(index, _)| index);
                let (index, dropped) = VaryIndex::with_variant(previous, names, id, max);
                (index, dropped, keep.max(previous_keep))
            }
        };
        for gone in dropped {
            self.remove_l1(env, &variant_key(primary, gone));
        }
        self.insert_index(env, index.to_entry(primary, keep), key.tenant.as_deref());
    }

    /// Puts a URL's index into L1 (tracked like any entry, but no response is stored by it).
    fn insert_index(&mut self, env: &Env, index: Entry, tenant: Option<&str>) {
        let before = self.l1.stats();
        let keep = keep_until(&index);
        self.l1.insert(index, tenant, keep);
        self.track_l1(env, before);
    }
}
