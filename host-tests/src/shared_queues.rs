use std::collections::{BTreeMap, VecDeque};

/// Who is told when a queue gets data: the last VM (and its root context) that registered it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QueueOwner {
    pub vm: usize,
    pub context_id: u32,
}

#[derive(Debug)]
struct Queue {
    owner: QueueOwner,
    items: VecDeque<Vec<u8>>,
}

/// Shared queues per (vm_id, name), with ids handed out from 1
/// (proxy-wasm-cpp-host `src/shared_queue.cc`).
#[derive(Debug, Default)]
pub(crate) struct SharedQueues {
    ids: BTreeMap<(String, String), u32>,
    queues: BTreeMap<u32, Queue>,
}

impl SharedQueues {
    /// Registering an existing name makes the caller its new owner and keeps its id.
    pub fn register(&mut self, vm_id: &str, name: &str, owner: QueueOwner) -> u32 {
        let key = (vm_id.to_string(), name.to_string());
        if let Some(&id) = self.ids.get(&key) {
            if let Some(queue) = self.queues.get_mut(&id) {
                queue.owner = owner;
            }
            return id;
        }
        let id = self.ids.len() as u32 + 1;
        self.ids.insert(key, id);
        self.queues.insert(
            id,
            Queue {
                owner,
                items: VecDeque::new(),
            },
        );
        id
    }

    pub fn resolve(&self, vm_id: &str, name: &str) -> Option<u32> {
        self.ids
            .get(&(vm_id.to_string(), name.to_string()))
            .copied()
    }

    /// Appends and returns whom to notify; `None` for an unknown id.
    pub fn enqueue(&mut self, id: u32, value: Vec<u8>) -> Option<QueueOwner> {
        let queue = self.queues.get_mut(&id)?;
        queue.items.push_back(value);
        Some(queue.owner)
    }

    /// `None` for an unknown id, `Some(None)` when empty.
    pub fn dequeue(&mut self, id: u32) -> Option<Option<Vec<u8>>> {
        self.queues
            .get_mut(&id)
            .map(|queue| queue.items.pop_front())
    }
}
