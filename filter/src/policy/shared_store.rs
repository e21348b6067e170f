//! The only door to cross-worker state: Envoy shared data, seen through a small trait so the
//! policy can be tested natively, and one helper that applies a pure state change with CAS.

/// Envoy shared data as the policy needs it.
pub trait SharedStore {
    /// The value and its CAS token, or `None` if the key was never written.
    fn get(&self, key: &str) -> Option<(Vec<u8>, u32)>;
    /// Writes if `cas` is still current (`cas == 0`: unconditionally).
    fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetError {
    /// Another worker wrote the key since it was read.
    CasMismatch,
    /// The host refused the write for another reason.
    Failed,
}

/// Why [`update`] gave up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpdateError<E> {
    /// The change itself refused (its own error).
    Refused(E),
    /// Other workers kept winning the race for `attempts` tries.
    Contended {
        attempts: u32,
    },
    Failed,
}

/// Applies `change` (current value → outcome and new value) with compare-and-swap, retrying
/// up to `max_attempts` times when another worker writes in between. `change` must be pure: it
/// may run several times. (After governor's `StateStore::measure_and_replace`.)
pub fn update<O, E>(
    store: &dyn SharedStore,
    key: &str,
    max_attempts: u32,
    mut change: impl FnMut(Option<&[u8]>) -> Result<(O, Vec<u8>), E>,
) -> Result<O, UpdateError<E>> {
    for _ in 0..max_attempts.max(1) {
        let current = store.get(key);
        let (value, cas) = match &current {
            Some((bytes, cas)) => (Some(bytes.as_slice()), *cas),
            None => (None, 0),
        };
        let (outcome, next) = change(value).map_err(UpdateError::Refused)?;
        match store.set(key, &next, cas) {
            Ok(()) => return Ok(outcome),
            Err(SetError::CasMismatch) => continue,
            Err(SetError::Failed) => return Err(UpdateError::Failed),
        }
    }
    Err(UpdateError::Contended {
        attempts: max_attempts.max(1),
    })
}

#[cfg(test)]
pub(crate) mod memory {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    use super::{SetError, SharedStore};

    /// Shared data with Envoy's CAS rules, for unit tests.
    #[derive(Default)]
    pub struct MemoryStore {
        pub map: RefCell<BTreeMap<String, (Vec<u8>, u32)>>,
        pub last_cas: RefCell<u32>,
        /// Makes the next N writes fail with CasMismatch (simulated races).
        pub races: RefCell<u32>,
    }

    impl SharedStore for MemoryStore {
        fn get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
            self.map.borrow().get(key).cloned()
        }

        fn set(&self, key: &str, value: &[u8], cas: u32) -> Result<(), SetError> {
            if *self.races.borrow() > 0 {
                *self.races.borrow_mut() -= 1;
                return Err(SetError::CasMismatch);
            }
            let mut map = self.map.borrow_mut();
            if let Some((_, current)) = map.get(key) {
                if cas != 0 && cas != *current {
                    return Err(SetError::CasMismatch);
                }
            }
            let mut last = self.last_cas.borrow_mut();
            *last += 1;
            map.insert(key.to_string(), (value.to_vec(), *last));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::memory::MemoryStore;
    use super::*;

    fn increment(value: Option<&[u8]>) -> Result<(u8, Vec<u8>), ()> {
        let next = value.and_then(|v| v.first().copied()).unwrap_or(0) + 1;
        Ok((next, vec![next]))
    }

    #[test]
    fn applies_and_retries_on_races() {
        let store = MemoryStore::default();
        assert_eq!(update(&store, "k", 3, increment), Ok(1));
        *store.races.borrow_mut() = 2;
        assert_eq!(update(&store, "k", 3, increment), Ok(2));
        *store.races.borrow_mut() = 3;
        assert_eq!(
            update(&store, "k", 3, increment),
            Err(UpdateError::Contended { attempts: 3 })
        );
        assert_eq!(store.get("k").unwrap().0, vec![2]);
    }

    #[test]
    fn a_refused_change_writes_nothing() {
        let store = MemoryStore::default();
        let refused = update(&store, "k", 3, |_| Err::<((), Vec<u8>), _>("no"));
        assert_eq!(refused, Err(UpdateError::Refused("no")));
        assert!(store.get("k").is_none());
    }
}
