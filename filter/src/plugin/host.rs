//! Host access the glue needs, with the SDK's panicking paths avoided where the host could
//! refuse: header maps are read as bytes (non-UTF-8 values never panic), buffers that cannot be
//! read are empty, time errors read as 0. Also the one way the filter calls the origin itself.

use std::time::{Duration, UNIX_EPOCH};

use proxy_wasm::hostcalls;
use proxy_wasm::types::{BufferType, MapType, Status};

use std::cell::Cell;

use super::header_map::with_header_map;
use super::metrics::{Metrics, Stat};
use crate::policy::cache::reply_block::ReplyBlock;
use crate::policy::header_list::owned;
use crate::policy::shared_store::{update, SetError, SharedStore, UpdateError};

/// A header map as owned (name, value) text pairs: read like the request's (see
/// [`with_header_map`]: invalid UTF-8 in values replaced, a name that is not UTF-8 left out),
/// never through the SDK's reader, which panics on such a name.
pub fn headers(map: MapType) -> Vec<(String, String)> {
    with_header_map(map, |pairs, _| owned(pairs))
}

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
}

/// Sends a local reply on the current effective context: the headers of `stored` (without
/// those named in `skip`, case-insensitively) then `extra`. Unlike the SDK's
/// `send_http_response`, a refusal is an error, never a panic. `false` when the host refused it.
pub fn send_local_reply(
    status: u16,
    stored: &[(String, String)],
    skip: &[&str],
    extra: &[(&str, &str)],
    body: Option<&[u8]>,
) -> bool {
    send_local_reply_block(status, &ReplyBlock::new(stored, skip, false), extra, body)
}

/// [`send_local_reply`] with the stored headers already in the host's format.
pub fn send_local_reply_block(
    status: u16,
    block: &ReplyBlock,
    extra: &[(&str, &str)],
    body: Option<&[u8]>,
) -> bool {
    let map = block.with_extra(extra);
    let body = body.unwrap_or_default();
    // SAFETY: every pointer is valid for its length for the duration of the call, and the host
    // only reads them.
    let status = unsafe {
        proxy_send_local_response(
            u32::from(status),
            std::ptr::null(),
            0,
            body.as_ptr(),
            body.len(),
            map.as_ptr(),
            map.len(),
            -1,
        )
    };
    status == 0
}

/// Names the matched service on the upstream request (a client-sent value is replaced).
pub const SERVICE_HEADER: &str = "x-edge-service";

/// The first `size` bytes of a body buffer (empty when the host refuses).
pub fn body(buffer: BufferType, size: usize) -> Vec<u8> {
    hostcalls::get_buffer(buffer, 0, size)
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// The `:status` of a header list, if it is a number.
pub fn status_of(headers: &[(String, String)]) -> Option<u16> {
    headers
        .iter()
        .find(|(name, _)| name == ":status")
        .and_then(|(_, value)| value.parse().ok())
}

/// Sends a request to `cluster` as a call of the context running now (its answer comes to
/// that context's `on_http_call_response`); the call token, or why the host refused.
pub fn call(
    cluster: &str,
    headers: &[(String, String)],
    body: Option<&[u8]>,
    trailers: &[(String, String)],
    timeout: Duration,
) -> Result<u32, Status> {
    fn pairs(list: &[(String, String)]) -> Vec<(&str, &str)> {
        list.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect()
    }
    hostcalls::dispatch_http_call(cluster, pairs(headers), body, pairs(trailers), timeout)
}

/// Writes a placeholder into every slot of a table that does not exist yet. Shared data has
/// no atomic create (a write to a missing key ignores CAS), so two workers could both "create"
/// a record; with every slot present from the start, every claim is a real CAS. Envoy
/// configures the plugin on the main thread before workers take traffic, so that VM creates
/// the table; workers then find it complete.
pub fn precreate_slots(prefix: &str, slots: u64) {
    for slot in 0..slots {
        let key = format!("{prefix}{slot}");
        if HostStore.get(&key).is_none() {
            let _ = HostStore.set(&key, &[0], 0);
        }
    }
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

/// Counts an update that ran out of retries without going through [`shared_update`].
pub fn note_exhausted() {
    CAS_COUNTS.with(|c| c.set((c.get().0, c.get().1 + 1)));
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
