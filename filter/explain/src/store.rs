//! An empty shared-data store for the trace: the first request on a freshly started edge.

use std::cell::RefCell;
use std::collections::BTreeMap;

use edge_filter::policy::shared_store::{SetError, SharedStore};

/// Shared data with Envoy's CAS rules (`cas == 0` writes unconditionally), in memory.
#[derive(Default)]
pub(crate) struct FreshStore {
    map: RefCell<BTreeMap<String, (Vec<u8>, u32)>>,
    cas: RefCell<u32>,
}

impl SharedStore for FreshStore {
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.map.borrow().get(key).cloned()
    }

    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
        let mut map = self.map.borrow_mut();
        if let Some((_, current)) = map.get(key) {
            if cas != 0 && cas != *current {
                return Err(SetError::CasMismatch);
            }
        }
        let mut last = self.cas.borrow_mut();
        *last = last.wrapping_add(1);
        map.insert(key.to_string(), (value.to_vec(), *last));
        Ok(())
    }
}
