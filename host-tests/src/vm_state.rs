use std::cell::RefCell;
use std::collections::BTreeMap;
use std::fmt;
use std::rc::Rc;

use crate::flow::Flow;
use crate::headers::HeaderMap;
use crate::world::World;

/// One line the guest logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    pub level: &'static str,
    pub message: String,
}

impl fmt::Display for LogLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.level, self.message)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Request,
    Upstream,
    Response,
    Done,
}

/// A local reply the guest asked for; the driver applies it after the callback returns.
#[derive(Debug, Clone)]
pub(crate) struct LocalReply {
    pub status: u16,
    pub details: String,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// One HTTP stream (one filter context) inside a VM.
#[derive(Debug)]
pub(crate) struct Stream {
    pub request: Flow,
    pub response: Flow,
    pub phase: Phase,
    pub pending_local: Option<LocalReply>,
    pub local_reply: bool,
    pub reset: bool,
    /// The client hangs up before this many more filter callbacks have run (`None`: never).
    pub hang_up_after: Option<u32>,
    /// Stream properties (`response.code_details`, `response.flags`, …), keyed with '.'.
    pub properties: BTreeMap<String, Vec<u8>>,
}

impl Stream {
    pub fn new(request: Flow) -> Self {
        Self {
            request,
            response: Flow::default(),
            phase: Phase::Request,
            pending_local: None,
            local_reply: false,
            reset: false,
            hang_up_after: None,
            properties: BTreeMap::new(),
        }
    }
}

/// The answer a `proxy_on_http_call_response` callback may read.
#[derive(Debug, Default)]
pub(crate) struct CallResponse {
    pub headers: HeaderMap,
    pub body: Vec<u8>,
    pub trailers: HeaderMap,
}

/// Everything one VM (one worker) owns; lives in its `Store`.
pub(crate) struct VmState {
    pub index: usize,
    pub vm_id: String,
    pub world: Rc<RefCell<World>>,
    pub plugin_config: Vec<u8>,
    pub vm_config: Vec<u8>,
    pub root_context_id: u32,
    pub effective_context: u32,
    pub logs: Vec<LogLine>,
    pub tick_period_ms: u32,
    pub next_tick_ns: Option<u64>,
    pub streams: BTreeMap<u32, Stream>,
    pub next_token: u32,
    pub call_response: Option<CallResponse>,
    /// VM-wide properties (`plugin_name`, `plugin_vm_id`, …), keyed with '.'.
    pub properties: BTreeMap<String, Vec<u8>>,
    pub echo_logs: bool,
    /// Set by `proxy_send_local_response`, cleared after every callback (cpp-host's
    /// `stopNextIteration`): a filter callback that ran while it was set stops iteration.
    pub stop_next_iteration: bool,
    /// Calls from the guest into the host so far (imports called).
    pub host_calls: u64,
    /// While on: the fuel used at every crossing between guest and host (see
    /// `Host::trace_crossings`).
    pub crossings: Option<Vec<Crossing>>,
}

/// A crossing between guest and host, and the fuel the VM had used by then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crossing {
    /// `true`: the guest calls the host (an import); `false`: any other crossing (the host
    /// calls the guest, or a call returns).
    pub calls_host: bool,
    pub fuel_used: u64,
}

impl VmState {
    pub fn stream_mut(&mut self) -> Option<&mut Stream> {
        self.streams.get_mut(&self.effective_context)
    }

    pub fn stream(&self) -> Option<&Stream> {
        self.streams.get(&self.effective_context)
    }
}
