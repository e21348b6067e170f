//! Webhook deliveries the origin processed, per id (`webhook-id` or `Idempotency-Key`), so a
//! test can prove every unique delivery arrived exactly once.

use std::collections::HashMap;
use std::sync::Mutex;

use serde_json::{json, Value};

/// Most distinct ids remembered; later ones are counted in `untracked`.
pub const MAX_TRACKED_IDS: usize = 100_000;

#[derive(Debug, Default)]
pub struct Deliveries {
    counts: Mutex<(HashMap<String, u64>, u64)>,
}

impl Deliveries {
    pub fn record(&self, id: &str) {
        let mut guard = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let (counts, untracked) = &mut *guard;
        if let Some(count) = counts.get_mut(id) {
            *count += 1;
        } else if counts.len() < MAX_TRACKED_IDS {
            counts.insert(id.to_string(), 1);
        } else {
            *untracked += 1;
        }
    }

    pub fn clear(&self) {
        let mut guard = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        guard.0.clear();
        guard.1 = 0;
    }

    pub fn to_json(&self) -> Value {
        let guard = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        json!({ "ids": guard.0.len(), "untracked": guard.1, "deliveries": guard.0 })
    }
}
