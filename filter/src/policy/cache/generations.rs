//! Purge without delete: generation counters in one shared-data value. An entry records the
//! counters of its service, tenant, URL and tags when it is stored, and is valid only while
//! they are unchanged; a purge bumps one counter, so purging a whole tenant or tag is O(1).
//!
//! Tenants, URLs and tags hash into fixed slot ranges (the key space is one key, whatever the
//! traffic); two names sharing a slot are purged together — more misses, never a stale hit.

use crate::policy::codec::{ReadError, Reader, Writer};
use crate::policy::hash::fnv1a;

/// The one shared-data key holding every generation counter.
pub const GENERATIONS_KEY: &str = "edge:gen";
const FORMAT_VERSION: u8 = 2;

const SERVICE_SLOTS: usize = 256;
const TENANT_SLOTS: usize = 1024;
const TAG_SLOTS: usize = 1024;
const URL_SLOTS: usize = 4096;
const TOTAL_SLOTS: usize = SERVICE_SLOTS + TENANT_SLOTS + TAG_SLOTS + URL_SLOTS;

/// Most tags one entry records (further tags are ignored for purging).
pub const MAX_TAGS_PER_ENTRY: usize = 5;

/// What a purge (or an entry) refers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dimension<'a> {
    /// A service by its index in the registry (the default service is index `services.len()`).
    Service(usize),
    Tenant(&'a str),
    Tag(&'a str),
    Url(&'a str),
}

impl Dimension<'_> {
    fn slot(&self) -> usize {
        match self {
            Dimension::Service(index) => index % SERVICE_SLOTS,
            Dimension::Tenant(name) => SERVICE_SLOTS + bucket(name, TENANT_SLOTS),
            Dimension::Tag(name) => SERVICE_SLOTS + TENANT_SLOTS + bucket(name, TAG_SLOTS),
            Dimension::Url(url) => {
                SERVICE_SLOTS + TENANT_SLOTS + TAG_SLOTS + bucket(url, URL_SLOTS)
            }
        }
    }
}

impl Dimension<'_> {
    /// The counter slot this dimension bumps (what the fleet tier's counters are keyed by).
    pub fn slot_index(&self) -> usize {
        self.slot()
    }
}

fn bucket(text: &str, slots: usize) -> usize {
    (fnv1a(text) % slots as u64) as usize
}

/// A worker's copy of the generation counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generations {
    counters: Vec<u32>,
    /// Counts every purge (kept in the encoded value; a response fetched across a purge is
    /// judged by its own dimensions, see the worker's `stamp_since`).
    epoch: u32,
}

impl Default for Generations {
    fn default() -> Self {
        Self {
            counters: vec![0; TOTAL_SLOTS],
            epoch: 0,
        }
    }
}

impl Generations {
    /// Decodes the shared value; a missing, corrupt or unknown-version value reads as all zero.
    pub fn decode(bytes: Option<&[u8]>) -> Self {
        bytes
            .and_then(|bytes| Self::read(Reader::new(bytes)).ok())
            .unwrap_or_default()
    }

    fn read(mut reader: Reader<'_>) -> Result<Self, ReadError> {
        reader.version(&[FORMAT_VERSION])?;
        if reader.remaining() != (TOTAL_SLOTS + 1) * 4 {
            return Err(ReadError::Invalid);
        }
        let epoch = reader.u32()?;
        let counters = (0..TOTAL_SLOTS)
            .map(|_| reader.u32())
            .collect::<Result<_, _>>()?;
        reader.finish(Self { counters, epoch })
    }

    /// `[2][epoch u32]` then every counter (`u32`), little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Writer::with_capacity(FORMAT_VERSION, (self.counters.len() + 1) * 4);
        out.u32(self.epoch);
        for counter in &self.counters {
            out.u32(*counter);
        }
        out.finish()
    }

    fn current(&self, slot: usize) -> u32 {
        self.counters.get(slot).copied().unwrap_or(0)
    }

    /// Invalidates everything stored under `dimension`.
    pub fn bump(&mut self, dimension: Dimension<'_>) {
        self.epoch = self.epoch.wrapping_add(1);
        if let Some(counter) = self.counters.get_mut(dimension.slot()) {
            *counter = counter.wrapping_add(1);
        }
    }

    /// Raises each listed counter to at least the given value (the fleet's counters, read from
    /// Redis): a purge made on another replica takes effect here. Slots out of range are
    /// ignored. Whether any counter changed (then the epoch moves too).
    pub fn merge_max(&mut self, counters: &[(usize, u32)]) -> bool {
        let mut changed = false;
        for (slot, value) in counters {
            if let Some(counter) = self.counters.get_mut(*slot) {
                if *value > *counter {
                    *counter = *value;
                    changed = true;
                }
            }
        }
        if changed {
            self.epoch = self.epoch.wrapping_add(1);
        }
        changed
    }

    /// The (slot, counter) pairs an entry stored now records, flattened for the entry codec.
    pub fn stamp(&self, dimensions: &[Dimension<'_>]) -> Vec<u32> {
        dimensions
            .iter()
            .flat_map(|d| {
                let slot = d.slot();
                [slot as u32, self.current(slot)]
            })
            .collect()
    }

    /// Whether every counter an entry recorded is still current.
    pub fn is_current(&self, stamp: &[u32]) -> bool {
        stamp.len().is_multiple_of(2)
            && stamp.chunks_exact(2).all(|pair| match pair {
                [slot, counter] => self.current(*slot as usize) == *counter,
                _ => false,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Bytes written by the format-2 encoder (version, epoch, then every counter, u32 LE):
    /// still read, and written, exactly so.
    #[test]
    fn reads_and_writes_stored_format_2_bytes() {
        let mut stored = vec![2, 3, 0, 0, 0];
        stored.extend(std::iter::repeat_n(0, TOTAL_SLOTS * 4));
        stored[5 + 4 * 4] = 2; // service 4
        stored[5 + 4 * (SERVICE_SLOTS + 1) + 1] = 1; // tenant slot 1: 256
        let mut generations = Generations::default();
        generations.counters[4] = 2;
        generations.counters[SERVICE_SLOTS + 1] = 256;
        generations.epoch = 3;
        assert_eq!(Generations::decode(Some(&stored)), generations);
        assert_eq!(generations.encode(), stored);
    }

    #[test]
    fn a_bump_invalidates_only_entries_stamped_with_that_dimension() {
        let mut generations = Generations::default();
        let a = generations.stamp(&[
            Dimension::Service(0),
            Dimension::Tenant("t1"),
            Dimension::Url("u1"),
        ]);
        let b = generations.stamp(&[
            Dimension::Service(0),
            Dimension::Tenant("t2"),
            Dimension::Url("u2"),
        ]);
        generations.bump(Dimension::Tenant("t1"));
        assert!(!generations.is_current(&a));
        assert!(generations.is_current(&b));
        generations.bump(Dimension::Service(0));
        assert!(!generations.is_current(&b));
    }

    #[test]
    fn merging_the_fleets_counters_invalidates_what_they_purged() {
        let mut generations = Generations::default();
        let stamp = generations.stamp(&[Dimension::Tenant("t1"), Dimension::Url("u1")]);
        let tenant = Dimension::Tenant("t1").slot_index();
        assert!(!generations.merge_max(&[(tenant, 0), (TOTAL_SLOTS + 5, 9)]));
        assert!(generations.is_current(&stamp));
        assert!(generations.merge_max(&[(tenant, 2)]));
        assert!(!generations.is_current(&stamp));
        assert_eq!(generations.epoch, 1);
        // Never lowered: a local purge the fleet has not seen yet stays.
        generations.bump(Dimension::Url("u1"));
        let url = Dimension::Url("u1").slot_index();
        assert!(!generations.merge_max(&[(url, 0), (tenant, 1)]));
    }

    #[test]
    fn round_trip_and_corrupt_values_read_as_zero() {
        let mut generations = Generations::default();
        generations.bump(Dimension::Tag("product-7"));
        let bytes = generations.encode();
        assert_eq!(Generations::decode(Some(&bytes)), generations);
        assert_eq!(
            Generations::decode(Some(&bytes[..10])),
            Generations::default()
        );
        assert_eq!(
            Generations::decode(Some(&[9, 1, 2])),
            Generations::default()
        );
        assert_eq!(Generations::decode(None), Generations::default());
        assert!(!Generations::default().is_current(&[1]));
    }
}
