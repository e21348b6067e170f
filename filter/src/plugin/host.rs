//! Host access the glue needs, with the SDK's panicking paths avoided where the host could
//! refuse: header maps are read as bytes (non-UTF-8 values never panic), time errors read as 0.

use std::time::UNIX_EPOCH;

use proxy_wasm::hostcalls;
use proxy_wasm::types::{MapType, Status};

use std::cell::Cell;

use super::metrics::{Metrics, Stat};
use crate::policy::shared_store::{update, SetError, SharedStore, UpdateError};

/// A header map as (name, value) text pairs; invalid UTF-8 in values is replaced.
pub fn headers(map: MapType) -> Vec<(String, String)> {
    headers_checked(map).0
}

/// A header map as (name, value) text pairs, and the names whose value was not valid UTF-8
/// (replaced in the text): whoever compares values as identities must refuse those.
pub fn headers_checked(map: MapType) -> (Vec<(String, String)>, Vec<String>) {
    let mut non_utf8 = Vec::new();
    let pairs = hostcalls::get_map_bytes(map)
        .map(|pairs| {
            pairs
                .into_iter()
                .map(|(name, value)| match String::from_utf8(value) {
                    Ok(value) => (name, value),
                    Err(err) => {
                        let value = String::from_utf8_lossy(err.as_bytes()).into_owned();
                        non_utf8.push(name.clone());
                        (name, value)
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    (pairs, non_utf8)
}

/// Wall-clock nanoseconds.
pub fn now_nanos() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Wall-clock milliseconds (leases are compared across workers, so they use the shared clock).
pub fn now_millis() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Wall-clock seconds (HTTP dates and ages are in wall time).
pub fn now_secs() -> u64 {
    hostcalls::get_current_time()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs())
}

thread_local! {
    /// CAS conflicts and updates that gave up after their retries, since the last flush.
    static CAS_COUNTS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// [`update`] on Envoy shared data, counting updates that ran out of retries.
pub fn shared_update<O, E>(
    _store: &HostStore,
    key: &str,
    max_attempts: u32,
    change: impl FnMut(Option<&[u8]>) -> Result<(O, Vec<u8>), E>,
) -> Result<O, UpdateError<E>> {
    let result = update(&HostStore, key, max_attempts, change);
    if matches!(result, Err(UpdateError::Contended { .. })) {
        CAS_COUNTS.with(|c| c.set((c.get().0, c.get().1 + 1)));
    }
    result
}

/// Adds the CAS counts gathered since the last call to the process-wide counters.
pub fn flush_cas_counts(metrics: &Metrics) {
    let (conflicts, exhausted) = CAS_COUNTS.with(|c| c.replace((0, 0)));
    metrics.add(Stat::CasConflicts, i64::try_from(conflicts).unwrap_or(0));
    metrics.add(Stat::CasExhausted, i64::try_from(exhausted).unwrap_or(0));
}

/// Envoy shared data behind the policy's [`SharedStore`].
pub struct HostStore;

impl SharedStore for HostStore {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        match hostcalls::get_shared_data(key) {
            // An empty value comes back without bytes but with its cas: the key exists.
            Ok((value, Some(cas))) => Some((value.unwrap_or_default(), cas)),
            _ => None,
        }
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
        let cas = (cas != 0).then_some(cas);
        match hostcalls::set_shared_data(key, Some(value), cas) {
            Ok(()) => Ok(()),
            Err(Status::CasMismatch) => {
                CAS_COUNTS.with(|c| c.set((c.get().0 + 1, c.get().1)));
                Err(SetError::CasMismatch)
            }
            Err(_) => Err(SetError::Failed),
        }
    }
}
