//! Process-wide bounds (`limits` in the configuration): every map, queue and buffer the filter
//! keeps, in the VM and in shared data, is sized from here, each within a checked range.

use serde::Deserialize;

use super::ConfigError;

/// Process-wide bounds. Every store the filter keeps is sized from here.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// L1 (per-worker LRU) maximum number of entries.
    pub l1_max_entries: u64,
    /// L1 maximum stored bytes per worker.
    pub l1_max_bytes: u64,
    /// Number of L2 slots in Envoy shared data (the L2 key space is exactly this many keys).
    pub l2_slots: u64,
    /// Largest response body the filter buffers and stores.
    pub max_entry_bytes: u64,
    /// Most of L1's entries one tenant may hold, in percent (absent: no per-tenant cap).
    pub l1_tenant_share_percent: Option<u64>,
    /// Requests one worker may hold waiting for another request's response (coalescing).
    pub max_waiting_requests: u64,
    /// Lease slots in shared data (cross-worker coalescing and background refresh).
    pub lease_slots: u64,
    /// Background refreshes (stale-while-revalidate, refresh-ahead) one worker queues at most,
    /// and starts per tick.
    pub refresh_queue: u64,
    pub refreshes_per_tick: u64,
    /// Webhook-dedup record slots in shared data.
    pub dedup_slots: u64,
    /// Token-bucket slots in shared data (tenants share slots by hash).
    pub rate_limit_slots: u64,
    /// Tenants' buckets one rate-limit slot holds at once.
    pub rate_limit_tenants_per_slot: u64,
    /// Most bytes L2 holds in shared data (Envoy's heap, never freed): each slot holds at most
    /// `l2_max_bytes / l2_slots` encoded bytes; larger entries stay in L1 only.
    pub l2_max_bytes: u64,
    /// Most request bytes (headers kept to answer them later) one worker holds for paused
    /// requests: coalesced waiters, deduplicated deliveries. Beyond it a request is not
    /// paused: a cache miss goes to the origin uncoalesced, a duplicate gets 409.
    pub max_paused_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            l1_max_entries: 10_000,
            l1_max_bytes: 64 * MIB,
            l2_slots: 65_536,
            max_entry_bytes: MIB,
            l1_tenant_share_percent: None,
            max_waiting_requests: 10_000,
            lease_slots: 4096,
            refresh_queue: 1024,
            refreshes_per_tick: 8,
            dedup_slots: 65_536,
            rate_limit_slots: 16_384,
            rate_limit_tenants_per_slot: 4,
            l2_max_bytes: 4 * GIB,
            max_paused_bytes: 64 * MIB,
        }
    }
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;
const GIB: u64 = 1024 * MIB;

impl Limits {
    /// Encoded bytes one L2 slot may hold.
    pub fn l2_slot_bytes(&self) -> u64 {
        self.l2_max_bytes / self.l2_slots.max(1)
    }

    /// (field, value, lowest, highest). A VM has at most 1 GiB of memory; shared data lives in
    /// Envoy's heap and can never shrink, so its slot count is capped too.
    fn ranges(&self) -> [(&'static str, u64, u64, u64); 13] {
        [
            ("l2_max_bytes", self.l2_max_bytes, MIB, 64 * GIB),
            (
                "max_paused_bytes",
                self.max_paused_bytes,
                64 * KIB,
                512 * MIB,
            ),
            ("rate_limit_slots", self.rate_limit_slots, 1, 262_144),
            (
                "rate_limit_tenants_per_slot",
                self.rate_limit_tenants_per_slot,
                1,
                16,
            ),
            ("dedup_slots", self.dedup_slots, 1, 262_144),
            (
                "max_waiting_requests",
                self.max_waiting_requests,
                1,
                1_000_000,
            ),
            ("lease_slots", self.lease_slots, 1, 65_536),
            ("refresh_queue", self.refresh_queue, 1, 100_000),
            ("refreshes_per_tick", self.refreshes_per_tick, 1, 1000),
            ("l1_max_entries", self.l1_max_entries, 1, 1_000_000),
            ("l1_max_bytes", self.l1_max_bytes, 64 * KIB, 512 * MIB),
            ("l2_slots", self.l2_slots, 1, 1_048_576),
            ("max_entry_bytes", self.max_entry_bytes, 1, 16 * MIB),
        ]
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        for (field, value, low, high) in self.ranges() {
            if value < low || value > high {
                return Err(ConfigError::new(
                    format!("limits.{field}"),
                    format!("{value} is out of range, must be between {low} and {high}"),
                ));
            }
        }
        if let Some(share) = self.l1_tenant_share_percent {
            if !(1..=100).contains(&share) {
                return Err(ConfigError::new(
                    "limits.l1_tenant_share_percent",
                    format!("{share} is out of range, must be between 1 and 100"),
                ));
            }
        }
        if self.max_entry_bytes > self.l1_max_bytes {
            return Err(ConfigError::new(
                "limits.max_entry_bytes",
                format!(
                    "{} is larger than limits.l1_max_bytes ({})",
                    self.max_entry_bytes, self.l1_max_bytes
                ),
            ));
        }
        Ok(())
    }
}
