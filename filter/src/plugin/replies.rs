//! Replies a callback sends to streams other than its own (coalesced waiters, waiting
//! duplicates, relayed deliveries): which streams were answered that way, how many one
//! callback may still answer, and the worker's wake queue that lets the root context go on.

use std::collections::HashSet;

use proxy_wasm::hostcalls;

/// Most other streams one VM callback answers or resumes. Envoy runs each local reply's own
/// filter callbacks inside the after-call actions of the previous one, so the stack grows with
/// every reply sent in one callback (about 600 overflowed V8's stack); the rest go out from
/// the next root callback (the worker's wake queue, or the tick).
pub const REPLIES_PER_CALLBACK: usize = 32;

/// Most items drained from the wake queue at once (they carry nothing).
const WAKE_DRAIN: usize = 64;

pub struct Replies {
    /// Streams another context answered (their own response callbacks must stand back).
    answered: HashSet<u32>,
    /// Replies (and resumes) this VM callback may still send to other streams.
    budget: usize,
    /// This worker's own shared queue: an item in it wakes the root context (`on_queue_ready`).
    wake_queue: Option<u32>,
    /// A wake-up is queued and not yet handled.
    wake_pending: bool,
}

impl Default for Replies {
    fn default() -> Self {
        Self {
            answered: HashSet::new(),
            budget: REPLIES_PER_CALLBACK,
            wake_queue: None,
            wake_pending: false,
        }
    }
}

impl Replies {
    /// A VM callback that may answer other streams starts: its reply budget is whole.
    pub fn begin_callback(&mut self) {
        self.budget = REPLIES_PER_CALLBACK;
    }

    /// Takes one reply from the callback's budget; `false` (and the root is woken to go on)
    /// when it is spent.
    pub fn take(&mut self) -> bool {
        if self.budget == 0 {
            self.wake_root();
            return false;
        }
        self.budget -= 1;
        true
    }

    /// `context_id` was answered by another context.
    pub fn mark_answered(&mut self, context_id: u32) {
        self.answered.insert(context_id);
    }

    /// Whether `context_id` was answered by another context (forgotten once asked).
    pub fn take_answered(&mut self, context_id: u32) -> bool {
        self.answered.remove(&context_id)
    }

    /// Registers the queue that wakes this worker's root context. Names are per worker (only
    /// the last registrant of a name is woken); one name per VM ever started.
    pub fn register_wake_queue(&mut self, owner: u64) {
        let name = format!("edge:wake:{owner:016x}");
        self.wake_queue = hostcalls::register_shared_queue(&name).ok();
    }

    /// Whether the root context can be woken (else only the tick goes on).
    pub fn can_wake(&self) -> bool {
        self.wake_queue.is_some()
    }

    /// Asks for `on_queue_ready` on this worker's root context soon (once per wake-up).
    pub fn wake_root(&mut self) {
        if self.wake_pending {
            return;
        }
        if let Some(queue) = self.wake_queue {
            self.wake_pending = hostcalls::enqueue_shared_queue(queue, Some(&[1])).is_ok();
        }
    }

    /// The root context was woken: empties the queue.
    pub fn woken(&mut self) {
        self.wake_pending = false;
        if let Some(queue) = self.wake_queue {
            for _ in 0..WAKE_DRAIN {
                if !matches!(hostcalls::dequeue_shared_queue(queue), Ok(Some(_))) {
                    break;
                }
            }
        }
    }
}
