//! The proxy-wasm ABI 0.2.1 host functions, with Envoy's semantics.

use std::time::Duration;

use wasmtime::{format_err as anyhow, Result};
use wasmtime::{Caller, Extern, Linker};

use crate::abi::{buffer_type, level_name, map_type, stream_type, MetricType, Status};
use crate::headers::HeaderMap;
use crate::message::{Reply, UpstreamRequest};
use crate::shared_queues::QueueOwner;
use crate::vm_state::{LocalReply, LogLine, VmState};
use crate::wire::{decode_map, encode_map};
use crate::world::EventKind;

type Ctx<'a> = Caller<'a, VmState>;

fn memory(caller: &mut Ctx<'_>) -> Result<wasmtime::Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(memory)) => Ok(memory),
        _ => Err(anyhow!("the guest exports no memory")),
    }
}

fn read(caller: &mut Ctx<'_>, ptr: i32, len: i32) -> Result<Vec<u8>> {
    let memory = memory(caller)?;
    let mut bytes = vec![0; len as u32 as usize];
    memory
        .read(&*caller, ptr as u32 as usize, &mut bytes)
        .map_err(|_| anyhow!("guest pointer {ptr:#x}+{len} is out of bounds"))?;
    Ok(bytes)
}

fn read_string(caller: &mut Ctx<'_>, ptr: i32, len: i32) -> Result<String> {
    Ok(String::from_utf8_lossy(&read(caller, ptr, len)?).into_owned())
}

fn write(caller: &mut Ctx<'_>, ptr: i32, bytes: &[u8]) -> Result<()> {
    let memory = memory(caller)?;
    memory
        .write(&mut *caller, ptr as u32 as usize, bytes)
        .map_err(|_| anyhow!("guest pointer {ptr:#x} is out of bounds"))
}

fn write_u32(caller: &mut Ctx<'_>, ptr: i32, value: u32) -> Result<()> {
    write(caller, ptr, &value.to_le_bytes())
}

fn write_u64(caller: &mut Ctx<'_>, ptr: i32, value: u64) -> Result<()> {
    write(caller, ptr, &value.to_le_bytes())
}

/// Copies `bytes` into guest memory it allocates itself, as Envoy does: an empty value comes
/// back as a null pointer with size 0.
fn return_bytes(caller: &mut Ctx<'_>, bytes: &[u8], ptr_ptr: i32, size_ptr: i32) -> Result<()> {
    let mut pointer = 0u32;
    if !bytes.is_empty() {
        let allocate = caller
            .get_export("proxy_on_memory_allocate")
            .or_else(|| caller.get_export("malloc"))
            .and_then(Extern::into_func)
            .ok_or_else(|| anyhow!("the guest exports no proxy_on_memory_allocate"))?
            .typed::<i32, i32>(&*caller)?;
        pointer = allocate.call(&mut *caller, bytes.len() as i32)? as u32;
        if pointer == 0 {
            return Err(anyhow!("guest allocation of {} bytes failed", bytes.len()));
        }
        write(caller, pointer as i32, bytes)?;
    }
    write_u32(caller, ptr_ptr, pointer)?;
    write_u32(caller, size_ptr, bytes.len() as u32)
}

fn ok() -> Result<i32> {
    Ok(Status::Ok.code())
}

fn status(status: Status) -> Result<i32> {
    Ok(status.code())
}

fn map_mut(state: &mut VmState, map: i32) -> Option<&mut HeaderMap> {
    match map {
        map_type::HTTP_CALL_RESPONSE_HEADERS => {
            state.call_response.as_mut().map(|r| &mut r.headers)
        }
        map_type::HTTP_CALL_RESPONSE_TRAILERS => {
            state.call_response.as_mut().map(|r| &mut r.trailers)
        }
        _ => {
            let stream = state.stream_mut()?;
            match map {
                map_type::REQUEST_HEADERS => Some(&mut stream.request.headers),
                map_type::REQUEST_TRAILERS => stream.request.trailers.as_mut(),
                map_type::RESPONSE_HEADERS => Some(&mut stream.response.headers),
                map_type::RESPONSE_TRAILERS => stream.response.trailers.as_mut(),
                _ => None,
            }
        }
    }
}

fn buffer_of(state: &mut VmState, buffer: i32) -> Option<&mut Vec<u8>> {
    match buffer {
        buffer_type::REQUEST_BODY => state.stream_mut().map(|s| &mut s.request.buffer),
        buffer_type::RESPONSE_BODY => state.stream_mut().map(|s| &mut s.response.buffer),
        buffer_type::HTTP_CALL_RESPONSE_BODY => state.call_response.as_mut().map(|r| &mut r.body),
        buffer_type::VM_CONFIGURATION => Some(&mut state.vm_config),
        buffer_type::PLUGIN_CONFIGURATION => Some(&mut state.plugin_config),
        _ => None,
    }
}

/// Envoy's rule for `proxy_set_buffer_bytes`: prepend (start 0, size 0), replace (start 0,
/// size ≥ length) or append (start ≥ length).
fn splice(buffer: &mut Vec<u8>, start: usize, size: usize, data: &[u8]) -> Status {
    if start == 0 && size == 0 {
        buffer.splice(0..0, data.iter().copied());
    } else if start == 0 && size >= buffer.len() {
        *buffer = data.to_vec();
    } else if start >= buffer.len() {
        buffer.extend_from_slice(data);
    } else {
        return Status::BadArgument;
    }
    Status::Ok
}

/// Property paths arrive as NUL-separated segments; we key them with '.'.
fn property_key(path: &[u8]) -> String {
    String::from_utf8_lossy(path).replace('\0', ".")
}

pub(crate) fn define(linker: &mut Linker<VmState>) -> Result<()> {
    linker.func_wrap(
        "env",
        "proxy_log",
        |mut c: Ctx<'_>, level: i32, ptr: i32, len: i32| {
            let message = read_string(&mut c, ptr, len)?;
            let state = c.data_mut();
            if state.echo_logs {
                eprintln!("[vm{} {}] {message}", state.index, level_name(level));
            }
            state.logs.push(LogLine {
                level: level_name(level),
                message,
            });
            ok()
        },
    )?;
    linker.func_wrap("env", "proxy_get_log_level", |mut c: Ctx<'_>, ret: i32| {
        write_u32(&mut c, ret, 2)?; // info, Envoy's default component level
        ok()
    })?;
    linker.func_wrap(
        "env",
        "proxy_get_current_time_nanoseconds",
        |mut c: Ctx<'_>, ret: i32| {
            let now = {
                let mut world = c.data().world.borrow_mut();
                let now = world.now_ns;
                world.now_ns = now.saturating_add(world.clock_step_per_read_ns);
                now
            };
            write_u64(&mut c, ret, now)?;
            ok()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_tick_period_milliseconds",
        |mut c: Ctx<'_>, period: i32| {
            let state = c.data_mut();
            let now = state.world.borrow().now_ns;
            state.tick_period_ms = period as u32;
            state.next_tick_ns = (period != 0).then(|| now + (period as u32 as u64) * 1_000_000);
            ok()
        },
    )?;
    define_buffers(linker)?;
    define_header_maps(linker)?;
    define_properties(linker)?;
    define_shared_data(linker)?;
    define_queues(linker)?;
    define_streams(linker)?;
    define_http_call(linker)?;
    define_metrics(linker)?;
    linker.func_wrap(
        "env",
        "proxy_set_effective_context",
        |mut c: Ctx<'_>, id: i32| {
            let state = c.data_mut();
            let id = id as u32;
            if id == state.root_context_id || state.streams.contains_key(&id) {
                state.effective_context = id;
                ok()
            } else {
                status(Status::BadArgument)
            }
        },
    )?;
    linker.func_wrap("env", "proxy_done", |_c: Ctx<'_>| ok())?;
    define_grpc(linker)?;
    linker.func_wrap(
        "env",
        "proxy_call_foreign_function",
        |_c: Ctx<'_>, _n: i32, _ns: i32, _a: i32, _as: i32, _rp: i32, _rs: i32| {
            status(Status::NotFound)
        },
    )?;
    Ok(())
}

fn define_buffers(linker: &mut Linker<VmState>) -> Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_buffer_bytes",
        |mut c: Ctx<'_>, kind: i32, start: i32, max: i32, ret_ptr: i32, ret_size: i32| {
            let Some(buffer) = buffer_of(c.data_mut(), kind) else {
                return status(Status::NotFound);
            };
            let start = start as u32 as usize;
            if start > buffer.len() {
                return status(Status::BadArgument);
            }
            let end = start.saturating_add(max as u32 as usize).min(buffer.len());
            let bytes = buffer.get(start..end).unwrap_or_default().to_vec();
            return_bytes(&mut c, &bytes, ret_ptr, ret_size)?;
            ok()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_buffer_bytes",
        |mut c: Ctx<'_>, kind: i32, start: i32, size: i32, ptr: i32, len: i32| {
            let data = read(&mut c, ptr, len)?;
            match buffer_of(c.data_mut(), kind) {
                Some(buffer) => status(splice(
                    buffer,
                    start as u32 as usize,
                    size as u32 as usize,
                    &data,
                )),
                None => status(Status::NotFound),
            }
        },
    )?;
    Ok(())
}

fn define_header_maps(linker: &mut Linker<VmState>) -> Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_header_map_pairs",
        |mut c: Ctx<'_>, map: i32, ret_ptr: i32, ret_size: i32| {
            let Some(pairs) = map_mut(c.data_mut(), map).map(|m| encode_map(m)) else {
                return status(Status::NotFound);
            };
            return_bytes(&mut c, &pairs, ret_ptr, ret_size)?;
            ok()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_header_map_pairs",
        |mut c: Ctx<'_>, map: i32, ptr: i32, len: i32| {
            let bytes = read(&mut c, ptr, len)?;
            let Some(pairs) = decode_map(&bytes) else {
                return status(Status::SerializationFailure);
            };
            match map_mut(c.data_mut(), map) {
                Some(target) => {
                    *target = pairs;
                    ok()
                }
                None => status(Status::NotFound),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_header_map_value",
        |mut c: Ctx<'_>, map: i32, kp: i32, ks: i32, ret_ptr: i32, ret_size: i32| {
            let key = read_string(&mut c, kp, ks)?;
            let value = map_mut(c.data_mut(), map).and_then(|m| m.get(&key));
            match value {
                Some(value) => {
                    return_bytes(&mut c, value.as_bytes(), ret_ptr, ret_size)?;
                    ok()
                }
                None => status(Status::NotFound),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_replace_header_map_value",
        |mut c: Ctx<'_>, map: i32, kp: i32, ks: i32, vp: i32, vs: i32| {
            let key = read_string(&mut c, kp, ks)?;
            let value = read_string(&mut c, vp, vs)?;
            match map_mut(c.data_mut(), map) {
                Some(m) => {
                    m.replace(&key, &value);
                    ok()
                }
                None => status(Status::NotFound),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_add_header_map_value",
        |mut c: Ctx<'_>, map: i32, kp: i32, ks: i32, vp: i32, vs: i32| {
            let key = read_string(&mut c, kp, ks)?;
            let value = read_string(&mut c, vp, vs)?;
            match map_mut(c.data_mut(), map) {
                Some(m) => {
                    m.add(&key, &value);
                    ok()
                }
                None => status(Status::NotFound),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_remove_header_map_value",
        |mut c: Ctx<'_>, map: i32, kp: i32, ks: i32| {
            let key = read_string(&mut c, kp, ks)?;
            match map_mut(c.data_mut(), map) {
                Some(m) => {
                    m.remove(&key);
                    ok()
                }
                None => status(Status::NotFound),
            }
        },
    )?;
    Ok(())
}

fn define_properties(linker: &mut Linker<VmState>) -> Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_property",
        |mut c: Ctx<'_>, pp: i32, ps: i32, ret_ptr: i32, ret_size: i32| {
            let key = property_key(&read(&mut c, pp, ps)?);
            let state = c.data();
            let value = state
                .stream()
                .and_then(|s| s.properties.get(&key))
                .or_else(|| state.properties.get(&key))
                .cloned();
            match value {
                Some(value) => {
                    return_bytes(&mut c, &value, ret_ptr, ret_size)?;
                    ok()
                }
                None => status(Status::NotFound),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_property",
        |mut c: Ctx<'_>, pp: i32, ps: i32, vp: i32, vs: i32| {
            let key = property_key(&read(&mut c, pp, ps)?);
            let value = read(&mut c, vp, vs)?;
            let state = c.data_mut();
            match state.stream_mut() {
                Some(stream) => stream.properties.insert(key, value),
                None => state.properties.insert(key, value),
            };
            ok()
        },
    )?;
    Ok(())
}

fn define_shared_data(linker: &mut Linker<VmState>) -> Result<()> {
    linker.func_wrap(
        "env",
        "proxy_get_shared_data",
        |mut c: Ctx<'_>, kp: i32, ks: i32, ret_ptr: i32, ret_size: i32, ret_cas: i32| {
            let key = read_string(&mut c, kp, ks)?;
            let found = {
                let state = c.data();
                let mut world = state.world.borrow_mut();
                world.shared_reads += 1;
                world.shared_data.get(&state.vm_id, &key)
            };
            match found {
                Some((value, cas)) => {
                    return_bytes(&mut c, &value, ret_ptr, ret_size)?;
                    write_u32(&mut c, ret_cas, cas)?;
                    ok()
                }
                None => status(Status::NotFound),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_set_shared_data",
        |mut c: Ctx<'_>, kp: i32, ks: i32, vp: i32, vs: i32, cas: i32| {
            let key = read_string(&mut c, kp, ks)?;
            let value = read(&mut c, vp, vs)?;
            let state = c.data();
            {
                let mut world = state.world.borrow_mut();
                if cas != 0 && world.cas_failures > 0 {
                    world.cas_failures -= 1;
                    return status(Status::CasMismatch);
                }
            }
            let written =
                state
                    .world
                    .borrow_mut()
                    .shared_data
                    .set(&state.vm_id, &key, &value, cas as u32);
            match written {
                Ok(()) => ok(),
                Err(_) => status(Status::CasMismatch),
            }
        },
    )?;
    Ok(())
}

fn define_queues(linker: &mut Linker<VmState>) -> Result<()> {
    linker.func_wrap(
        "env",
        "proxy_register_shared_queue",
        |mut c: Ctx<'_>, np: i32, ns: i32, ret_id: i32| {
            let name = read_string(&mut c, np, ns)?;
            let state = c.data();
            let owner = QueueOwner {
                vm: state.index,
                context_id: state.effective_context,
            };
            let id = state
                .world
                .borrow_mut()
                .queues
                .register(&state.vm_id, &name, owner);
            write_u32(&mut c, ret_id, id)?;
            ok()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_resolve_shared_queue",
        |mut c: Ctx<'_>, vp: i32, vs: i32, np: i32, ns: i32, ret_id: i32| {
            let vm_id = read_string(&mut c, vp, vs)?;
            let name = read_string(&mut c, np, ns)?;
            let id = c.data().world.borrow().queues.resolve(&vm_id, &name);
            match id {
                Some(id) => {
                    write_u32(&mut c, ret_id, id)?;
                    ok()
                }
                None => status(Status::NotFound),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_enqueue_shared_queue",
        |mut c: Ctx<'_>, id: i32, vp: i32, vs: i32| {
            let value = read(&mut c, vp, vs)?;
            let mut world = c.data().world.borrow_mut();
            match world.queues.enqueue(id as u32, value) {
                Some(owner) => {
                    world.schedule(
                        Duration::ZERO,
                        owner.vm,
                        EventKind::QueueReady {
                            context_id: owner.context_id,
                            queue_id: id as u32,
                        },
                    );
                    ok()
                }
                None => status(Status::NotFound),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_dequeue_shared_queue",
        |mut c: Ctx<'_>, id: i32, ret_ptr: i32, ret_size: i32| {
            let item = c.data().world.borrow_mut().queues.dequeue(id as u32);
            match item {
                None => status(Status::NotFound),
                Some(None) => status(Status::Empty),
                Some(Some(value)) => {
                    return_bytes(&mut c, &value, ret_ptr, ret_size)?;
                    ok()
                }
            }
        },
    )?;
    Ok(())
}

fn define_streams(linker: &mut Linker<VmState>) -> Result<()> {
    linker.func_wrap(
        "env",
        "proxy_continue_stream",
        |mut c: Ctx<'_>, kind: i32| {
            let Some(stream) = c.data_mut().stream_mut() else {
                return status(Status::NotFound);
            };
            match kind {
                stream_type::REQUEST => stream.request.release(),
                stream_type::RESPONSE => stream.response.release(),
                _ => return status(Status::BadArgument),
            }
            ok()
        },
    )?;
    linker.func_wrap("env", "proxy_close_stream", |mut c: Ctx<'_>, _kind: i32| {
        let Some(stream) = c.data_mut().stream_mut() else {
            return status(Status::NotFound);
        };
        stream.reset = true;
        ok()
    })?;
    linker.func_wrap(
        "env",
        "proxy_send_local_response",
        |mut c: Ctx<'_>,
         code: i32,
         dp: i32,
         ds: i32,
         bp: i32,
         bs: i32,
         hp: i32,
         hs: i32,
         _grpc: i32| {
            let details = read_string(&mut c, dp, ds)?;
            let body = read(&mut c, bp, bs)?;
            let headers = read(&mut c, hp, hs)?;
            let Some(headers) = decode_map(&headers) else {
                return status(Status::SerializationFailure);
            };
            let Some(stream) = c.data_mut().stream_mut() else {
                return status(Status::NotFound);
            };
            stream.pending_local = Some(LocalReply {
                status: code as u16,
                details,
                headers,
                body,
            });
            // proxy-wasm-cpp-host raises a VM-wide flag: the filter callback running now (on
            // whatever stream) stops iteration, whatever it returns.
            c.data_mut().stop_next_iteration = true;
            ok()
        },
    )?;
    Ok(())
}

fn define_http_call(linker: &mut Linker<VmState>) -> Result<()> {
    linker.func_wrap(
        "env",
        "proxy_http_call",
        |mut c: Ctx<'_>,
         up: i32,
         us: i32,
         hp: i32,
         hs: i32,
         bp: i32,
         bs: i32,
         tp: i32,
         ts: i32,
         timeout_ms: i32,
         ret_token: i32| {
            let cluster = read_string(&mut c, up, us)?;
            let headers = read(&mut c, hp, hs)?;
            let body = read(&mut c, bp, bs)?;
            let trailers = read(&mut c, tp, ts)?;
            let (Some(headers), Some(trailers)) = (decode_map(&headers), decode_map(&trailers))
            else {
                return status(Status::SerializationFailure);
            };
            let required = [":method", ":path", ":authority"];
            let state = c.data_mut();
            let mut world = state.world.borrow_mut();
            if !world.clusters.contains(&cluster)
                || required.iter().any(|h| headers.get(h).is_none())
            {
                return status(Status::BadArgument);
            }
            state.next_token += 1;
            let token = state.next_token;
            let at_ns = world.now_ns;
            let reply = world.call_origin(UpstreamRequest {
                cluster: Some(cluster),
                headers,
                body,
                trailers,
                at_ns,
            });
            let timeout = Duration::from_millis(timeout_ms as u32 as u64);
            let (after, reply) =
                if reply.failure == Some(crate::Failure::Timeout) || reply.delay > timeout {
                    (timeout, Reply::timeout())
                } else {
                    (reply.delay, reply)
                };
            let context_id = state.effective_context;
            world.schedule(
                after,
                state.index,
                EventKind::HttpCallReply {
                    context_id,
                    token,
                    reply,
                },
            );
            drop(world);
            write_u32(&mut c, ret_token, token)?;
            ok()
        },
    )?;
    Ok(())
}

fn define_metrics(linker: &mut Linker<VmState>) -> Result<()> {
    linker.func_wrap(
        "env",
        "proxy_define_metric",
        |mut c: Ctx<'_>, kind: i32, np: i32, ns: i32, ret_id: i32| {
            let name = read_string(&mut c, np, ns)?;
            let Some(kind) = MetricType::from_abi(kind) else {
                return status(Status::BadArgument);
            };
            let id = c.data().world.borrow_mut().metrics.define(kind, &name);
            match id {
                Some(id) => {
                    write_u32(&mut c, ret_id, id)?;
                    ok()
                }
                None => status(Status::BadArgument),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_increment_metric",
        |c: Ctx<'_>, id: i32, offset: i64| {
            let mut world = c.data().world.borrow_mut();
            let Some(metric) = world.metrics.get_mut(id as u32) else {
                return status(Status::NotFound);
            };
            match metric.kind {
                MetricType::Counter if offset < 0 => status(Status::BadArgument),
                MetricType::Counter | MetricType::Gauge => {
                    metric.value = metric.value.saturating_add_signed(offset);
                    ok()
                }
                MetricType::Histogram => status(Status::BadArgument),
            }
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_record_metric",
        |c: Ctx<'_>, id: i32, value: i64| {
            let mut world = c.data().world.borrow_mut();
            let Some(metric) = world.metrics.get_mut(id as u32) else {
                return status(Status::NotFound);
            };
            let value = value as u64;
            match metric.kind {
                // Envoy moves a counter up to the recorded value, never down.
                MetricType::Counter => metric.value = metric.value.max(value),
                MetricType::Gauge => metric.value = value,
                MetricType::Histogram => metric.samples.push(value),
            }
            ok()
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_get_metric",
        |mut c: Ctx<'_>, id: i32, ret: i32| {
            let value = {
                let mut world = c.data().world.borrow_mut();
                match world.metrics.get_mut(id as u32) {
                    None => return status(Status::NotFound),
                    // Envoy cannot read histograms back.
                    Some(m) if m.kind == MetricType::Histogram => {
                        return status(Status::BadArgument)
                    }
                    Some(m) => m.value,
                }
            };
            write_u64(&mut c, ret, value)?;
            ok()
        },
    )?;
    Ok(())
}

/// gRPC calls: the SDK imports them; no cluster here speaks gRPC, so calls are refused the way
/// Envoy refuses an unknown cluster, and tokens are never found.
fn define_grpc(linker: &mut Linker<VmState>) -> Result<()> {
    linker.func_wrap(
        "env",
        "proxy_grpc_call",
        |_c: Ctx<'_>,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32,
         _: i32| status(Status::BadArgument),
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_stream",
        |_c: Ctx<'_>, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32, _: i32| {
            status(Status::BadArgument)
        },
    )?;
    linker.func_wrap(
        "env",
        "proxy_grpc_send",
        |_c: Ctx<'_>, _: i32, _: i32, _: i32, _: i32| status(Status::NotFound),
    )?;
    linker.func_wrap("env", "proxy_grpc_cancel", |_c: Ctx<'_>, _: i32| {
        status(Status::NotFound)
    })?;
    linker.func_wrap("env", "proxy_grpc_close", |_c: Ctx<'_>, _: i32| {
        status(Status::NotFound)
    })?;
    linker.func_wrap(
        "env",
        "proxy_get_status",
        |_c: Ctx<'_>, _: i32, _: i32, _: i32| status(Status::NotFound),
    )?;
    Ok(())
}
