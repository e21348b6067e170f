use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

use wasmtime::{CallHook, Instance, Linker, Module, Store, Val};

use crate::abi::ACTION_CONTINUE;
use crate::flow::Flow;
use crate::headers::HeaderMap;
use crate::message::{Failure, Reply, Request, Response, UpstreamRequest};
use crate::metrics::Metric;
use crate::module::{cached_module, compile, engine, filter_module_path, probe_module_path};
use crate::shared_data::{CasError, SharedData};
use crate::trap::{GuestTrap, StartError};
use crate::vm_state::{CallResponse, Crossing, LogLine, Phase, Stream, VmState};
use crate::world::{EventKind, World};
use crate::{imports, Status};

/// A VM (worker) of a [`Host`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VmId(pub usize);

/// A stream started with [`Host::send`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamRef {
    pub vm: VmId,
    pub context_id: u32,
}

const ROOT_CONTEXT_ID: u32 = 1;
/// A paused stream that nothing resumes within this much host time is a test bug.
const MAX_WAIT: Duration = Duration::from_secs(600);

/// Envoy's response flags (`response.flags`), the ones the host produces.
const FLAG_UPSTREAM_TIMEOUT: u64 = 0x4;
const FLAG_UPSTREAM_CONNECTION_TERMINATION: u64 = 0x40;

struct VmSlot {
    store: Store<VmState>,
    instance: Instance,
    dead: Option<GuestTrap>,
    finished: BTreeMap<u32, Response>,
    next_context_id: u32,
    /// Whether a local reply was sent during the last callback (see `stop_next_iteration`).
    last_call_stopped: bool,
}

impl VmSlot {
    /// Calls an exported guest function with `context` as the effective context. A missing
    /// export is a no-op (as in Envoy); a trap kills the VM.
    fn call(&mut self, name: &str, context: u32, args: &[i32]) -> Result<Option<i32>, GuestTrap> {
        if let Some(trap) = &self.dead {
            return Err(trap.clone());
        }
        let Some(func) = self.instance.get_func(&mut self.store, name) else {
            return Ok(None);
        };
        self.store.data_mut().effective_context = context;
        let params: Vec<Val> = args.iter().map(|a| Val::I32(*a)).collect();
        let mut results = vec![Val::I32(0); func.ty(&self.store).results().len()];
        let called = func.call(&mut self.store, &params, &mut results);
        self.last_call_stopped = std::mem::take(&mut self.store.data_mut().stop_next_iteration);
        if let Err(err) = called {
            let trap = GuestTrap {
                function: name.to_string(),
                message: format!("{err:#}"),
                log: self.store.data().logs.clone(),
            };
            self.dead = Some(trap.clone());
            return Err(trap);
        }
        Ok(results.first().and_then(Val::i32))
    }
}

/// One Envoy process: VMs of one module sharing shared data, queues, stats, a clock and an origin.
pub struct Host {
    world: Rc<RefCell<World>>,
    module: Module,
    linker: Linker<VmState>,
    vms: Vec<VmSlot>,
    vm_id: String,
    vm_config: Vec<u8>,
    echo_logs: bool,
}

impl Default for Host {
    fn default() -> Self {
        Self::new()
    }
}

impl Host {
    /// A host running the edge filter built at [`filter_module_path`].
    pub fn new() -> Self {
        Self::with_module(cached_module(filter_module_path()))
    }

    /// A host running the host's own probe guest (for the host's self-tests).
    pub fn probe() -> Self {
        Self::with_module(cached_module(probe_module_path()))
    }

    /// A host running the module at `path` (a missing file fails the test with a clear message).
    pub fn from_file(path: impl AsRef<std::path::Path>) -> Self {
        Self::with_module(cached_module(path.as_ref().to_path_buf()))
    }

    /// A host running any module, given as wasm or WAT bytes.
    pub fn with_wasm(bytes: &[u8]) -> Self {
        Self::with_module(compile(bytes))
    }

    fn with_module(module: Module) -> Self {
        let mut linker = Linker::new(engine());
        imports::define(&mut linker)
            .unwrap_or_else(|err| panic!("defining the proxy-wasm imports: {err:#}"));
        Self {
            world: Rc::new(RefCell::new(World::new())),
            module,
            linker,
            vms: Vec::new(),
            vm_id: "edge".to_string(),
            vm_config: Vec::new(),
            echo_logs: true,
        }
    }

    /// The vm_id shared data and queues are scoped by (Envoy's `vm_config.vm_id`).
    pub fn set_vm_id(&mut self, vm_id: &str) {
        self.vm_id = vm_id.to_string();
    }

    /// Whether guest log lines are also printed (libtest shows them for failing tests).
    pub fn set_echo_logs(&mut self, echo: bool) {
        self.echo_logs = echo;
    }

    /// Scripts the origin: every upstream request (route or `dispatch_http_call`) is answered
    /// by `handler`.
    pub fn origin(&mut self, handler: impl FnMut(&UpstreamRequest) -> Reply + 'static) {
        self.world.borrow_mut().origin = Box::new(handler);
    }

    /// Makes a cluster name known to `dispatch_http_call` (`origin` is known from the start).
    pub fn add_cluster(&mut self, name: &str) {
        self.world.borrow_mut().clusters.insert(name.to_string());
    }

    pub fn set_route_timeout(&mut self, timeout: Duration) {
        self.world.borrow_mut().route_timeout = timeout;
    }

    /// Starts a VM (a worker) and configures the plugin, as Envoy does on load: `_initialize`,
    /// root context creation, `proxy_on_vm_start`, `proxy_on_configure`.
    pub fn start_vm(&mut self, plugin_config: &str) -> Result<VmId, StartError> {
        let index = self.vms.len();
        let mut properties = BTreeMap::new();
        properties.insert("plugin_name".to_string(), b"edge".to_vec());
        properties.insert("plugin_vm_id".to_string(), self.vm_id.as_bytes().to_vec());
        let state = VmState {
            index,
            vm_id: self.vm_id.clone(),
            world: Rc::clone(&self.world),
            plugin_config: plugin_config.as_bytes().to_vec(),
            vm_config: self.vm_config.clone(),
            root_context_id: ROOT_CONTEXT_ID,
            effective_context: ROOT_CONTEXT_ID,
            logs: Vec::new(),
            tick_period_ms: 0,
            next_tick_ns: None,
            streams: BTreeMap::new(),
            next_token: 0,
            call_response: None,
            properties,
            echo_logs: self.echo_logs,
            stop_next_iteration: false,
            host_calls: 0,
            crossings: None,
        };
        let mut store = Store::new(engine(), state);
        store
            .set_fuel(u64::MAX)
            .unwrap_or_else(|err| panic!("fuel: {err:#}"));
        store.call_hook(|mut ctx, hook| {
            let fuel_used = u64::MAX - ctx.get_fuel().unwrap_or(u64::MAX);
            let state = ctx.data_mut();
            let calls_host = matches!(hook, CallHook::CallingHost);
            if calls_host {
                state.host_calls += 1;
            }
            if let Some(crossings) = &mut state.crossings {
                crossings.push(Crossing {
                    calls_host,
                    fuel_used,
                });
            }
            Ok(())
        });
        let instance = self
            .linker
            .instantiate(&mut store, &self.module)
            .unwrap_or_else(|err| panic!("cannot instantiate the module: {err:#}"));
        if instance
            .get_func(&mut store, "proxy_abi_version_0_2_1")
            .is_none()
        {
            panic!("the module does not export proxy_abi_version_0_2_1");
        }
        let mut slot = VmSlot {
            store,
            instance,
            dead: None,
            finished: BTreeMap::new(),
            next_context_id: ROOT_CONTEXT_ID + 1,
            last_call_stopped: false,
        };
        let vm_config_len = self.vm_config.len() as i32;
        let started = (|| {
            slot.call("_initialize", 0, &[])?;
            slot.call("_start", 0, &[])?;
            slot.call(
                "proxy_on_context_create",
                ROOT_CONTEXT_ID,
                &[ROOT_CONTEXT_ID as i32, 0],
            )?;
            for (function, size) in [
                ("proxy_on_vm_start", vm_config_len),
                ("proxy_on_configure", plugin_config.len() as i32),
            ] {
                if slot.call(function, ROOT_CONTEXT_ID, &[ROOT_CONTEXT_ID as i32, size])? == Some(0)
                {
                    return Ok(Err(function.to_string()));
                }
            }
            Ok(Ok(()))
        })();
        match started {
            Err(trap) => Err(StartError::Trap(trap)),
            Ok(Err(function)) => Err(StartError::Rejected {
                function,
                log: slot.store.data().logs.clone(),
            }),
            Ok(Ok(())) => {
                self.vms.push(slot);
                Ok(VmId(index))
            }
        }
    }

    /// Tears down `vm`'s plugin the way Envoy does when a configuration update replaces it
    /// (`proxy_on_done`, then `proxy_on_delete` on the root context). The VM serves nothing after.
    pub fn stop_vm(&mut self, vm: VmId) -> Result<(), GuestTrap> {
        let slot = self.slot(vm);
        slot.call("proxy_on_done", ROOT_CONTEXT_ID, &[ROOT_CONTEXT_ID as i32])?;
        slot.call(
            "proxy_on_delete",
            ROOT_CONTEXT_ID,
            &[ROOT_CONTEXT_ID as i32],
        )?;
        Ok(())
    }

    /// Starts `count` VMs with one configuration (workers of one Envoy).
    pub fn start_vms(&mut self, count: usize, plugin_config: &str) -> Vec<VmId> {
        (0..count)
            .map(|_| {
                self.start_vm(plugin_config)
                    .unwrap_or_else(|err| panic!("VM did not start: {err}"))
            })
            .collect()
    }

    /// Sends a request and runs the host (advancing the clock) until its response is complete.
    pub fn request(&mut self, vm: VmId, request: Request) -> Response {
        self.try_request(vm, request)
            .unwrap_or_else(|trap| panic!("{trap}"))
    }

    /// [`Host::request`], returning a guest trap instead of failing the test.
    pub fn try_request(&mut self, vm: VmId, request: Request) -> Result<Response, GuestTrap> {
        let stream = self.try_send(vm, request)?;
        self.try_wait(stream)
    }

    /// Starts a request and runs it as far as it goes without advancing the clock.
    pub fn send(&mut self, vm: VmId, request: Request) -> StreamRef {
        self.try_send(vm, request)
            .unwrap_or_else(|trap| panic!("{trap}"))
    }

    /// Starts a request whose client hangs up just before the filter's `callbacks + 1`-th
    /// callback on it (request or response headers, body chunk or trailers), wherever that
    /// falls; a stream that ends sooner is answered normally.
    pub fn send_hanging_up_after(
        &mut self,
        vm: VmId,
        request: Request,
        callbacks: u32,
    ) -> StreamRef {
        self.try_send_with(vm, request, Some(callbacks))
            .unwrap_or_else(|trap| panic!("{trap}"))
    }

    fn try_send(&mut self, vm: VmId, request: Request) -> Result<StreamRef, GuestTrap> {
        self.try_send_with(vm, request, None)
    }

    fn try_send_with(
        &mut self,
        vm: VmId,
        request: Request,
        hang_up_after: Option<u32>,
    ) -> Result<StreamRef, GuestTrap> {
        let slot = self.slot(vm);
        let context_id = slot.next_context_id;
        slot.next_context_id += 1;
        let flow = Flow::new(request.headers, request.chunks, request.trailers);
        let mut stream = Stream::new(flow);
        stream.hang_up_after = hang_up_after;
        slot.store.data_mut().streams.insert(context_id, stream);
        slot.call(
            "proxy_on_context_create",
            context_id,
            &[context_id as i32, ROOT_CONTEXT_ID as i32],
        )?;
        self.drive(vm.0, context_id)?;
        self.settle()?;
        Ok(StreamRef { vm, context_id })
    }

    /// The response of a stream, once it is complete.
    pub fn response(&self, stream: StreamRef) -> Option<Response> {
        self.vms
            .get(stream.vm.0)?
            .finished
            .get(&stream.context_id)
            .cloned()
    }

    /// The client hangs up: the stream ends where it is (Envoy resets it, runs the access log
    /// and destroys the filter context; the origin request and the context's calls are
    /// cancelled). A stream that already ended is left alone.
    pub fn hang_up(&mut self, stream: StreamRef) {
        self.try_hang_up(stream)
            .unwrap_or_else(|trap| panic!("{trap}"))
    }

    fn try_hang_up(&mut self, stream: StreamRef) -> Result<(), GuestTrap> {
        let slot = self.slot(stream.vm);
        match slot.store.data_mut().streams.get_mut(&stream.context_id) {
            Some(s) if s.phase != Phase::Done => s.reset = true,
            _ => return Ok(()),
        }
        self.finish(stream.vm.0, stream.context_id)?;
        self.drive_all(stream.vm.0)?;
        self.settle()
    }

    /// Bytes of the VM's linear memory (it only grows).
    pub fn memory_bytes(&mut self, vm: VmId) -> usize {
        let slot = self.slot(vm);
        slot.instance
            .get_memory(&mut slot.store, "memory")
            .map_or(0, |memory| memory.data_size(&slot.store))
    }

    /// Whether a stream is still open (neither answered completely nor reset).
    pub fn is_open(&self, stream: StreamRef) -> bool {
        self.vms
            .get(stream.vm.0)
            .is_some_and(|slot| slot.store.data().streams.contains_key(&stream.context_id))
    }

    /// Streams of a VM that are still open.
    pub fn open_streams(&self, vm: VmId) -> Vec<StreamRef> {
        self.vms.get(vm.0).map_or_else(Vec::new, |slot| {
            slot.store
                .data()
                .streams
                .keys()
                .map(|&context_id| StreamRef { vm, context_id })
                .collect()
        })
    }

    /// Runs the host until the stream's response is complete.
    pub fn wait(&mut self, stream: StreamRef) -> Response {
        self.try_wait(stream)
            .unwrap_or_else(|trap| panic!("{trap}"))
    }

    fn try_wait(&mut self, stream: StreamRef) -> Result<Response, GuestTrap> {
        let deadline = self.now_ns() + MAX_WAIT.as_nanos() as u64;
        loop {
            if let Some(response) = self.response(stream) {
                return Ok(response);
            }
            match self.next_wakeup() {
                Some(at) if at <= deadline => {
                    let now = self.now_ns();
                    self.try_advance(Duration::from_nanos(at.saturating_sub(now)))?;
                }
                _ => panic!(
                    "stream {} on vm{} is paused and nothing will resume it\n--- guest log ---\n{}",
                    stream.context_id,
                    stream.vm.0,
                    self.log_text(stream.vm)
                ),
            }
        }
    }

    /// Makes every clock read the guest does move the clock by `step` (time passing inside
    /// callbacks, as on a busy worker); ticks and replies due meanwhile wait for the next
    /// [`Host::advance`]. `Duration::ZERO` stops it.
    pub fn set_clock_step_per_read(&mut self, step: Duration) {
        self.world.borrow_mut().clock_step_per_read_ns = step.as_nanos() as u64;
    }

    /// Moves the clock forward, firing ticks and delivering replies and queue notifications
    /// in time order.
    pub fn advance(&mut self, by: Duration) {
        self.try_advance(by).unwrap_or_else(|trap| panic!("{trap}"))
    }

    fn try_advance(&mut self, by: Duration) -> Result<(), GuestTrap> {
        let target = self.now_ns().saturating_add(by.as_nanos() as u64);
        loop {
            self.settle()?;
            let Some(at) = self.next_wakeup().filter(|at| *at <= target) else {
                break;
            };
            {
                let mut world = self.world.borrow_mut();
                world.now_ns = world.now_ns.max(at);
            }
            self.fire_ticks()?;
        }
        self.world.borrow_mut().now_ns = target;
        self.settle()
    }

    fn next_wakeup(&self) -> Option<u64> {
        let next_tick = self
            .vms
            .iter()
            .filter(|slot| slot.dead.is_none())
            .filter_map(|slot| slot.store.data().next_tick_ns)
            .min();
        let next_event = self.world.borrow().next_event_at();
        match (next_tick, next_event) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn fire_ticks(&mut self) -> Result<(), GuestTrap> {
        let now = self.now_ns();
        for vm in 0..self.vms.len() {
            let slot = self.slot(VmId(vm));
            if slot.dead.is_some() {
                continue;
            }
            let state = slot.store.data_mut();
            match state.next_tick_ns {
                Some(at) if at <= now => {
                    let period = u64::from(state.tick_period_ms) * 1_000_000;
                    state.next_tick_ns = Some(now + period.max(1));
                    slot.call("proxy_on_tick", ROOT_CONTEXT_ID, &[ROOT_CONTEXT_ID as i32])?;
                    self.drive_all(vm)?;
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Delivers every event due now.
    fn settle(&mut self) -> Result<(), GuestTrap> {
        loop {
            let now = self.now_ns();
            let Some(event) = self.world.borrow_mut().pop_due(now) else {
                return Ok(());
            };
            if self
                .vms
                .get(event.vm)
                .is_none_or(|slot| slot.dead.is_some())
            {
                continue;
            }
            match event.kind {
                EventKind::UpstreamReply { stream, reply } => {
                    self.deliver_upstream(event.vm, stream, reply);
                    self.drive(event.vm, stream)?;
                }
                EventKind::HttpCallReply {
                    context_id,
                    token,
                    reply,
                } => {
                    let slot = self.slot(VmId(event.vm));
                    // Envoy cancels the calls of a stream that ended: no callback.
                    if context_id != ROOT_CONTEXT_ID
                        && !slot.store.data().streams.contains_key(&context_id)
                    {
                        continue;
                    }
                    let response = call_response(reply);
                    let args = [
                        context_id as i32,
                        token as i32,
                        response.headers.len() as i32,
                        response.body.len() as i32,
                        response.trailers.len() as i32,
                    ];
                    slot.store.data_mut().call_response = Some(response);
                    let called = slot.call("proxy_on_http_call_response", context_id, &args);
                    slot.store.data_mut().call_response = None;
                    called?;
                    self.drive_all(event.vm)?;
                }
                EventKind::QueueReady {
                    context_id,
                    queue_id,
                } => {
                    self.slot(VmId(event.vm)).call(
                        "proxy_on_queue_ready",
                        context_id,
                        &[context_id as i32, queue_id as i32],
                    )?;
                    self.drive_all(event.vm)?;
                }
            }
        }
    }

    /// Drives every stream of a VM until none moves: a callback on one stream may answer or
    /// resume another (through `proxy_set_effective_context`).
    fn drive_all(&mut self, vm: usize) -> Result<(), GuestTrap> {
        loop {
            let contexts: Vec<u32> = self
                .slot(VmId(vm))
                .store
                .data()
                .streams
                .keys()
                .copied()
                .collect();
            let mut moved = false;
            for context_id in contexts {
                moved |= self.drive_one(vm, context_id)?;
            }
            if !moved {
                return Ok(());
            }
        }
    }

    /// Runs a stream's callbacks, then any other stream they woke.
    fn drive(&mut self, vm: usize, context_id: u32) -> Result<(), GuestTrap> {
        self.drive_one(vm, context_id)?;
        self.drive_all(vm)
    }

    /// Runs a stream's callbacks until it waits for something (the filter, the origin) or ends.
    fn drive_one(&mut self, vm: usize, context_id: u32) -> Result<bool, GuestTrap> {
        let mut moved = false;
        while self.step(vm, context_id)? {
            moved = true;
        }
        Ok(moved)
    }

    fn step(&mut self, vm: usize, ctx: u32) -> Result<bool, GuestTrap> {
        let slot = self.slot(VmId(vm));
        let Some(stream) = slot.store.data_mut().streams.get_mut(&ctx) else {
            return Ok(false);
        };
        if stream.phase == Phase::Done {
            return Ok(false);
        }
        if stream.reset {
            self.finish(vm, ctx)?;
            return Ok(true);
        }
        if let Some(local) = stream.pending_local.take() {
            if stream.response.headers_released {
                // Headers already went to the client: Envoy can only reset the stream.
                stream.reset = true;
                return Ok(true);
            }
            let mut headers = HeaderMap::default();
            headers.add(":status", &local.status.to_string());
            for (name, value) in local.headers.pairs() {
                headers.add(name, value);
            }
            if !local.body.is_empty() {
                headers.replace("content-length", &local.body.len().to_string());
                if headers.get("content-type").is_none() {
                    headers.add("content-type", "text/plain");
                }
            }
            stream.response = Flow::new(headers, vec![local.body], None);
            stream.phase = Phase::Response;
            stream.local_reply = true;
            stream
                .properties
                .insert("response.code_details".into(), local.details.into_bytes());
            return Ok(true);
        }
        let phase = stream.phase;
        let flow = match phase {
            Phase::Request => &mut stream.request,
            Phase::Response => &mut stream.response,
            Phase::Upstream | Phase::Done => return Ok(false),
        };
        let (headers_fn, body_fn, trailers_fn) = match phase {
            Phase::Request => (
                "proxy_on_request_headers",
                "proxy_on_request_body",
                "proxy_on_request_trailers",
            ),
            _ => (
                "proxy_on_response_headers",
                "proxy_on_response_body",
                "proxy_on_response_trailers",
            ),
        };
        let c = ctx as i32;
        let (function, args) = if !flow.headers_called {
            flow.headers_called = true;
            let eos = flow.end_of_stream_after_headers();
            (
                headers_fn,
                vec![c, flow.headers.len() as i32, i32::from(eos)],
            )
        } else if !flow.headers_released {
            // Envoy turns a paused `on_*_headers` into StopAllIteration: no body or trailers
            // reach the filter until it continues (proxy-wasm-cpp-host).
            return Ok(false);
        } else if let Some(chunk) = flow.chunks.pop_front() {
            flow.buffer.extend_from_slice(&chunk);
            let eos = flow.chunks.is_empty() && flow.trailers.is_none();
            (body_fn, vec![c, flow.buffer.len() as i32, i32::from(eos)])
        } else if flow.trailers.is_some() && !flow.trailers_called {
            flow.trailers_called = true;
            let count = flow.trailers.as_ref().map_or(0, HeaderMap::len);
            (trailers_fn, vec![c, count as i32])
        } else if flow.is_complete() {
            match phase {
                Phase::Request => self.forward_upstream(vm, ctx),
                _ => self.finish(vm, ctx)?,
            }
            return Ok(true);
        } else {
            return Ok(false);
        };
        if let Some(stream) = slot.store.data_mut().streams.get_mut(&ctx) {
            match stream.hang_up_after {
                Some(0) => {
                    // The client is gone before this callback: Envoy resets the stream.
                    stream.reset = true;
                    return Ok(true);
                }
                Some(left) => stream.hang_up_after = Some(left - 1),
                None => {}
            }
        }
        let action = slot.call(function, ctx, &args)?;
        // cpp-host converts a filter callback's result to Stop when a local reply (for any
        // stream) was sent during it.
        if action == Some(ACTION_CONTINUE) && !slot.last_call_stopped {
            if let Some(stream) = slot.store.data_mut().streams.get_mut(&ctx) {
                match phase {
                    Phase::Request => stream.request.release(),
                    _ => stream.response.release(),
                }
            }
        }
        Ok(true)
    }

    /// The request passed the filter: the router sends it to the origin.
    fn forward_upstream(&mut self, vm: usize, ctx: u32) {
        let now = self.now_ns();
        let slot = self.slot(VmId(vm));
        let Some(stream) = slot.store.data_mut().streams.get_mut(&ctx) else {
            return;
        };
        stream.phase = Phase::Upstream;
        let request = UpstreamRequest {
            cluster: None,
            headers: stream.request.headers.clone(),
            body: stream.request.forwarded.clone(),
            trailers: stream.request.trailers.clone().unwrap_or_default(),
            at_ns: now,
        };
        let mut world = self.world.borrow_mut();
        let reply = world.call_origin(request);
        let timeout = world.route_timeout;
        let (after, reply) = if reply.failure == Some(Failure::Timeout) || reply.delay > timeout {
            (timeout, Reply::timeout())
        } else {
            (reply.delay, reply)
        };
        world.schedule(after, vm, EventKind::UpstreamReply { stream: ctx, reply });
    }

    /// The origin answered (or failed): the response starts through the filter.
    fn deliver_upstream(&mut self, vm: usize, ctx: u32, reply: Reply) {
        let slot = self.slot(VmId(vm));
        let Some(stream) = slot.store.data_mut().streams.get_mut(&ctx) else {
            return;
        };
        if stream.phase != Phase::Upstream {
            return;
        }
        let (reply, details, flags) = match reply.failure {
            None => (reply, "via_upstream", 0),
            Some(Failure::Reset) => (
                Reply::status(503)
                    .header("content-type", "text/plain")
                    .body(
                        "upstream connect error or disconnect/reset before headers. \
                     reset reason: connection termination",
                    ),
                "upstream_reset_before_response_started{connection_termination}",
                FLAG_UPSTREAM_CONNECTION_TERMINATION,
            ),
            Some(Failure::Timeout) => (
                Reply::status(504)
                    .header("content-type", "text/plain")
                    .body("upstream request timeout"),
                "response_timeout",
                FLAG_UPSTREAM_TIMEOUT,
            ),
        };
        let mut headers = HeaderMap::default();
        headers.add(":status", &reply.status.to_string());
        for (name, value) in reply.headers.pairs() {
            headers.add(name, value);
        }
        // Like an HTTP/1.1 origin: a body sent in one piece has a length; a chunked one has not.
        if reply.chunk_size.is_none() && headers.get("content-length").is_none() {
            headers.add("content-length", &reply.body.len().to_string());
        }
        stream.response = Flow::new(headers, reply.body_chunks(), reply.trailers.clone());
        stream.phase = Phase::Response;
        let properties = &mut stream.properties;
        properties.insert("response.code_details".into(), details.as_bytes().to_vec());
        properties.insert("response.flags".into(), flags.to_le_bytes().to_vec());
        properties.insert(
            "response.code".into(),
            u64::from(reply.status).to_le_bytes().to_vec(),
        );
    }

    /// The stream ends: access log, done, delete; the client's response is kept.
    fn finish(&mut self, vm: usize, ctx: u32) -> Result<(), GuestTrap> {
        let slot = self.slot(VmId(vm));
        if let Some(stream) = slot.store.data_mut().streams.get_mut(&ctx) {
            stream.phase = Phase::Done;
        }
        slot.call("proxy_on_log", ctx, &[ctx as i32])?;
        slot.call("proxy_on_done", ctx, &[ctx as i32])?;
        slot.call("proxy_on_delete", ctx, &[ctx as i32])?;
        let Some(stream) = slot.store.data_mut().streams.remove(&ctx) else {
            return Ok(());
        };
        let response = client_response(&stream);
        slot.finished.insert(ctx, response);
        Ok(())
    }

    fn slot(&mut self, vm: VmId) -> &mut VmSlot {
        let count = self.vms.len();
        self.vms
            .get_mut(vm.0)
            .unwrap_or_else(|| panic!("no vm{} (the host has {count})", vm.0))
    }

    /// Host clock, nanoseconds since the epoch.
    pub fn now_ns(&self) -> u64 {
        self.world.borrow().now_ns
    }

    /// Every request the origin received, in order.
    pub fn origin_calls(&self) -> Vec<UpstreamRequest> {
        self.world.borrow().origin_calls.clone()
    }

    pub fn metric(&self, name: &str) -> Option<Metric> {
        self.world.borrow().metrics.by_name(name).cloned()
    }

    pub fn metrics(&self) -> Vec<Metric> {
        self.world.borrow().metrics.all().to_vec()
    }

    pub fn logs(&self, vm: VmId) -> Vec<LogLine> {
        self.vms
            .get(vm.0)
            .map(|slot| slot.store.data().logs.clone())
            .unwrap_or_default()
    }

    pub fn log_text(&self, vm: VmId) -> String {
        self.logs(vm)
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Reads shared data as the VMs see it (this host's vm_id).
    pub fn shared_get(&self, key: &str) -> Option<(Vec<u8>, u32)> {
        self.world.borrow().shared_data.get(&self.vm_id, key)
    }

    pub fn shared_set(&mut self, key: &str, value: &[u8], cas: u32) -> Result<(), CasError> {
        self.world
            .borrow_mut()
            .shared_data
            .set(&self.vm_id, key, value, cas)
    }

    /// Makes the next `count` conditional shared-data writes fail with CasMismatch, as if other
    /// workers kept winning the race.
    pub fn fail_next_cas_writes(&mut self, count: u32) {
        self.world.borrow_mut().cas_failures = count;
    }

    /// How many times any VM read shared data so far.
    pub fn shared_data_reads(&self) -> u64 {
        self.world.borrow().shared_reads
    }

    pub fn shared_keys(&self) -> Vec<String> {
        self.world.borrow().shared_data.keys(&self.vm_id)
    }

    /// A copy of the whole shared-data store.
    pub fn with_shared_data<R>(&self, read: impl FnOnce(&SharedData) -> R) -> R {
        read(&self.world.borrow().shared_data)
    }

    /// Sets a VM-wide property (`source.address`, …) the guest can read.
    pub fn set_property(&mut self, vm: VmId, path: &str, value: &[u8]) {
        self.slot(vm)
            .store
            .data_mut()
            .properties
            .insert(path.to_string(), value.to_vec());
    }

    pub fn tick_period_ms(&self, vm: VmId) -> u32 {
        self.vms
            .get(vm.0)
            .map_or(0, |slot| slot.store.data().tick_period_ms)
    }

    /// Imports the guest has called so far: each is a crossing into the host, which costs
    /// Envoy far more than its fuel says.
    pub fn host_calls(&self, vm: VmId) -> u64 {
        self.vms
            .get(vm.0)
            .map_or(0, |slot| slot.store.data().host_calls)
    }

    /// Records every crossing between `vm` and the host from now until
    /// [`Host::take_crossings`]: where a request's fuel goes, between host calls.
    pub fn trace_crossings(&mut self, vm: VmId) {
        self.slot(vm).store.data_mut().crossings = Some(Vec::new());
    }

    /// The crossings recorded since [`Host::trace_crossings`]; recording stops.
    pub fn take_crossings(&mut self, vm: VmId) -> Vec<Crossing> {
        self.slot(vm)
            .store
            .data_mut()
            .crossings
            .take()
            .unwrap_or_default()
    }

    /// Fuel (≈ wasm instructions) the VM has used so far: a deterministic cost measure.
    pub fn fuel_used(&self, vm: VmId) -> u64 {
        self.vms.get(vm.0).map_or(0, |slot| {
            u64::MAX - slot.store.get_fuel().unwrap_or(u64::MAX)
        })
    }

    /// The trap that killed the VM, if it died.
    pub fn trap(&self, vm: VmId) -> Option<GuestTrap> {
        self.vms.get(vm.0).and_then(|slot| slot.dead.clone())
    }

    /// Status a host function returns, for tests that check the ABI values.
    pub fn status_code(status: Status) -> i32 {
        status as i32
    }
}

fn call_response(reply: Reply) -> CallResponse {
    if reply.failure.is_some() {
        // Envoy reports a failed call with no headers, no body and no trailers.
        return CallResponse::default();
    }
    let mut headers = HeaderMap::default();
    headers.add(":status", &reply.status.to_string());
    for (name, value) in reply.headers.pairs() {
        headers.add(name, value);
    }
    CallResponse {
        headers,
        body: reply.body,
        trailers: reply.trailers.unwrap_or_default(),
    }
}

fn client_response(stream: &Stream) -> Response {
    if stream.reset {
        return Response {
            status: 0,
            headers: HeaderMap::default(),
            body: Vec::new(),
            trailers: HeaderMap::default(),
            local_reply: stream.local_reply,
            reset: true,
        };
    }
    let flow = &stream.response;
    let status = flow
        .headers
        .get(":status")
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut headers = HeaderMap::default();
    for (name, value) in flow.headers.pairs() {
        if !name.starts_with(':') {
            headers.add(name, value);
        }
    }
    Response {
        status,
        headers,
        body: flow.forwarded.clone(),
        trailers: flow.trailers.clone().unwrap_or_default(),
        local_reply: stream.local_reply,
        reset: false,
    }
}
