use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use log::{error, info};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};

use super::http::EdgeHttp;
use super::worker::Worker;
use crate::policy::Config;

/// One per plugin per worker: owns the parsed configuration and the worker's cache state, and
/// creates the stream contexts.
#[derive(Default)]
pub struct EdgeRoot {
    worker: Option<Rc<RefCell<Worker>>>,
}

impl Context for EdgeRoot {}

impl RootContext for EdgeRoot {
    fn on_configure(&mut self, plugin_configuration_size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(
            BufferType::PluginConfiguration,
            0,
            plugin_configuration_size,
        ) {
            Ok(bytes) => bytes.unwrap_or_default(),
            Err(status) => {
                error!("configuration rejected: config: cannot be read ({status:?})");
                return false;
            }
        };
        let registry = match Config::parse_registry(&bytes) {
            Ok(registry) => Rc::new(registry),
            Err(err) => {
                // Envoy refuses the plugin on `false`; one line names the field and the reason.
                error!("configuration rejected: {err}");
                return false;
            }
        };
        info!(
            "configured {} service(s), default service {:?}",
            registry.service_count(),
            registry.default_service().name
        );
        let mut worker = Worker::new(Rc::clone(&registry));
        if registry.caches() {
            worker.ensure_generations();
            // Purges made on other workers reach this one on the next tick.
            let period = Duration::from_millis(registry.settings().generation_refresh_ms);
            let _ = hostcalls::set_tick_period(period);
        }
        self.worker = Some(Rc::new(RefCell::new(worker)));
        true
    }

    fn on_tick(&mut self) {
        if let Some(worker) = &self.worker {
            worker.borrow_mut().refresh_generations();
        }
    }

    fn create_http_context(&self, context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(EdgeHttp::new(context_id, self.worker.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
