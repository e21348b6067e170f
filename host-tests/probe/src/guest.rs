use std::time::Duration;

use log::info;
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType, LogLevel, MetricType, Status};

proxy_wasm::main! {{
    proxy_wasm::set_log_level(LogLevel::Trace);
    proxy_wasm::set_root_context(|_| Box::new(ProbeRoot::default()));
}}

#[derive(Default)]
struct ProbeRoot {
    queue: Option<u32>,
}

fn counter(name: &str) -> u32 {
    hostcalls::define_metric(MetricType::Counter, name).unwrap()
}

impl Context for ProbeRoot {}

impl RootContext for ProbeRoot {
    fn on_configure(&mut self, size: usize) -> bool {
        let config = self
            .get_plugin_configuration()
            .map(|b| String::from_utf8(b).unwrap())
            .unwrap_or_default();
        let _ = size;
        for setting in config.split(';').filter(|s| !s.is_empty()) {
            let (key, value) = setting.split_once('=').unwrap();
            match key {
                "queue" => self.queue = Some(hostcalls::register_shared_queue(value).unwrap()),
                "tick_ms" => self.set_tick_period(Duration::from_millis(value.parse().unwrap())),
                "reject" => {
                    log::error!("probe: configuration rejected on purpose");
                    return false;
                }
                _ => panic!("unknown probe setting {key}"),
            }
        }
        info!("probe: configured with {config:?}");
        true
    }

    fn on_tick(&mut self) {
        hostcalls::increment_metric(counter("probe.ticks"), 1).unwrap();
    }

    fn on_queue_ready(&mut self, queue_id: u32) {
        while let Some(item) = hostcalls::dequeue_shared_queue(queue_id).unwrap() {
            info!("probe: dequeued {}", String::from_utf8_lossy(&item));
            hostcalls::increment_metric(counter("probe.dequeued"), 1).unwrap();
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(ProbeHttp {
            action: String::new(),
        }))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

struct ProbeHttp {
    action: String,
}

impl ProbeHttp {
    fn reply(&self, status: u32, body: &str, headers: Vec<(&str, &str)>) -> Action {
        self.send_http_response(status, headers, Some(body.as_bytes()));
        Action::Pause
    }
}

impl Context for ProbeHttp {
    fn on_http_call_response(&mut self, _token: u32, _headers: usize, body_size: usize, _: usize) {
        match self.get_http_call_response_header(":status") {
            Some(status) => {
                let body = self
                    .get_http_call_response_body(0, body_size)
                    .unwrap_or_default();
                self.set_http_request_header("x-call-status", Some(&status));
                self.set_http_request_header("x-call-body", Some(&String::from_utf8_lossy(&body)));
                self.resume_http_request();
            }
            None => {
                self.send_http_response(502, vec![], Some(b"call failed"));
            }
        }
    }
}

impl HttpContext for ProbeHttp {
    fn on_http_request_headers(&mut self, _: usize, _: bool) -> Action {
        self.action = self.get_http_request_header("x-probe").unwrap_or_default();
        let parts: Vec<String> = self.action.split(':').map(str::to_string).collect();
        match parts.first().map(String::as_str).unwrap_or("") {
            "panic" => panic!("probe asked to panic"),
            "enqueue" => match hostcalls::resolve_shared_queue(&parts[1], &parts[2]).unwrap() {
                Some(id) => {
                    hostcalls::enqueue_shared_queue(id, Some(parts[3].as_bytes())).unwrap();
                    self.reply(200, &format!("enqueued {id}"), vec![])
                }
                None => self.reply(404, "no such queue", vec![]),
            },
            "shared-get" => match hostcalls::get_shared_data(&parts[1]).unwrap() {
                (Some(value), Some(cas)) => self.reply(
                    200,
                    &String::from_utf8_lossy(&value),
                    vec![("x-cas", &cas.to_string())],
                ),
                _ => self.reply(404, "absent", vec![]),
            },
            "shared-set" => {
                let cas: u32 = parts[3].parse().unwrap();
                let cas = (cas != 0).then_some(cas);
                match hostcalls::set_shared_data(&parts[1], Some(parts[2].as_bytes()), cas) {
                    Ok(()) => self.reply(200, "stored", vec![]),
                    Err(Status::CasMismatch) => self.reply(409, "cas mismatch", vec![]),
                    Err(status) => self.reply(500, &format!("{status:?}"), vec![]),
                }
            }
            "metric" => {
                let gauge = hostcalls::define_metric(MetricType::Gauge, "probe.gauge").unwrap();
                let histogram =
                    hostcalls::define_metric(MetricType::Histogram, "probe.latency").unwrap();
                hostcalls::record_metric(gauge, parts[1].parse().unwrap()).unwrap();
                hostcalls::record_metric(histogram, parts[2].parse().unwrap()).unwrap();
                hostcalls::increment_metric(counter("probe.requests"), 1).unwrap();
                let read_back = hostcalls::get_metric(gauge).unwrap();
                let histogram_read = hostcalls::get_metric(histogram).is_err();
                self.reply(
                    200,
                    &format!("gauge={read_back} histogram_unreadable={histogram_read}"),
                    vec![],
                )
            }
            "call" => {
                let timeout =
                    Duration::from_millis(parts.get(1).map_or(5000, |t| t.parse().unwrap()));
                self.dispatch_http_call(
                    "origin",
                    vec![
                        (":method", "GET"),
                        (":path", "/called"),
                        (":authority", "origin"),
                    ],
                    None,
                    vec![],
                    timeout,
                )
                .unwrap();
                Action::Pause
            }
            "local" => self.reply(parts[1].parse().unwrap(), "local", vec![("x-local", "yes")]),
            _ => Action::Continue,
        }
    }

    fn on_http_request_body(&mut self, body_size: usize, end_of_stream: bool) -> Action {
        hostcalls::increment_metric(counter("probe.body_calls"), 1).unwrap();
        if self.action != "upper-body" {
            return Action::Continue;
        }
        if !end_of_stream {
            return Action::Pause;
        }
        let body = self.get_http_request_body(0, body_size).unwrap_or_default();
        self.set_http_request_body(0, body_size, &body.to_ascii_uppercase());
        Action::Continue
    }

    fn on_http_response_headers(&mut self, _: usize, _: bool) -> Action {
        self.add_http_response_header("x-probe-response", "seen");
        Action::Continue
    }
}
