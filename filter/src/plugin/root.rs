use std::rc::Rc;

use log::{error, info};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};

use super::http::EdgeHttp;
use crate::policy::Config;
use crate::policy::Registry;

/// One per plugin per worker: owns the parsed configuration and creates the stream contexts.
#[derive(Default)]
pub struct EdgeRoot {
    registry: Option<Rc<Registry>>,
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
        match Config::parse_registry(&bytes) {
            Ok(registry) => {
                info!(
                    "configured {} service(s), default service {:?}",
                    registry.service_count(),
                    registry.default_service().name
                );
                self.registry = Some(Rc::new(registry));
                true
            }
            Err(err) => {
                // Envoy refuses the plugin on `false`; one line names the field and the reason.
                error!("configuration rejected: {err}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(EdgeHttp::new(self.registry.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
