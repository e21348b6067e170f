//! A header map read in one host call and seen as borrowed text pairs: one buffer for the
//! whole map instead of two strings per header (the SDK's form).

use proxy_wasm::types::{MapType, Status};

use crate::policy::header_list::RequestHeaders;
use crate::policy::header_map::with_pairs;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_pairs(
        map_type: MapType,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> Status;
}

/// The serialized map (empty when the host has none or refuses).
fn map_bytes(map: MapType) -> Vec<u8> {
    let mut data: *mut u8 = std::ptr::null_mut();
    let mut size: usize = 0;
    // SAFETY: the host writes a pointer it allocated through the module's allocator (as a
    // `Vec<u8>` of `size` bytes) and its size; ownership passes to us.
    unsafe {
        match proxy_get_header_map_pairs(map, &mut data, &mut size) {
            Status::Ok if !data.is_null() => Vec::from_raw_parts(data, size, size),
            _ => Vec::new(),
        }
    }
}

/// Runs `f` on a header map as text pairs, and the names whose value was not UTF-8 (see
/// [`with_pairs`]).
pub fn with_header_map<R>(map: MapType, f: impl FnOnce(&RequestHeaders, &[&str]) -> R) -> R {
    with_pairs(&map_bytes(map), f)
}
