use std::collections::BTreeMap;

/// A write refused because the key changed since the caller read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CasError;

/// Envoy's shared data: one key space per vm_id, one global CAS counter, no delete.
/// (proxy-wasm-cpp-host `src/shared_data.cc`.)
#[derive(Debug, Default)]
pub struct SharedData {
    spaces: BTreeMap<String, BTreeMap<String, (Vec<u8>, u32)>>,
    last_cas: u32,
}

impl SharedData {
    /// The value and its cas, or `None` if the key was never written.
    pub fn get(&self, vm_id: &str, key: &str) -> Option<(Vec<u8>, u32)> {
        self.spaces.get(vm_id)?.get(key).cloned()
    }

    /// `cas == 0` writes unconditionally; a stale cas on an existing key is refused; a write to a
    /// missing key ignores `cas`. Every write takes a new cas.
    pub fn set(&mut self, vm_id: &str, key: &str, value: &[u8], cas: u32) -> Result<(), CasError> {
        let next = self.next_cas();
        let space = self.spaces.entry(vm_id.to_string()).or_default();
        match space.get_mut(key) {
            Some((_, current)) if cas != 0 && cas != *current => Err(CasError),
            Some(entry) => {
                *entry = (value.to_vec(), next);
                Ok(())
            }
            None => {
                space.insert(key.to_string(), (value.to_vec(), next));
                Ok(())
            }
        }
    }

    /// Every key of a vm_id, for tests that prove the key space stays bounded.
    pub fn keys(&self, vm_id: &str) -> Vec<String> {
        self.spaces
            .get(vm_id)
            .map(|space| space.keys().cloned().collect())
            .unwrap_or_default()
    }

    fn next_cas(&mut self) -> u32 {
        // Wraps like the host's 32-bit counter, never handing out 0 ("unconditional").
        self.last_cas = self.last_cas.wrapping_add(1).max(1);
        self.last_cas
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cas_semantics() {
        let mut data = SharedData::default();
        assert_eq!(data.get("vm", "k"), None);
        data.set("vm", "k", b"a", 12345).unwrap();
        let (value, cas) = data.get("vm", "k").unwrap();
        assert_eq!(value, b"a");
        assert_eq!(data.set("vm", "k", b"b", cas + 1), Err(CasError));
        data.set("vm", "k", b"b", cas).unwrap();
        let (_, cas2) = data.get("vm", "k").unwrap();
        assert_ne!(cas, cas2);
        assert_eq!(data.set("vm", "k", b"c", cas), Err(CasError));
        data.set("vm", "k", b"d", 0).unwrap();
        assert_eq!(data.get("vm", "k").unwrap().0, b"d");
        assert_eq!(data.get("other-vm", "k"), None);
    }
}
