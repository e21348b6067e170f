//! The demo origin: a slow HTTP backend standing in for a real platform's services, with
//! fault injection, request counters and a request log for tests.

mod admin;
mod cache_override;
mod config;
mod conn;
mod content;
mod deliveries;
mod endpoint;
mod etag;
mod fault;
mod handle;
mod injector;
pub(crate) mod prng;
mod request_log;
mod response;
mod router;
mod routes;
mod state;
mod stats;
mod timestamp;

pub use cache_override::parse_cache_control_flag;
pub use config::{check_latency_scale, OriginConfig, MAX_LATENCY_SCALE};
pub use endpoint::Endpoint;
pub use etag::etag_for;
pub use fault::{parse_fault_flag, Fault, MAX_EXTRA_LATENCY_MS};
pub use handle::OriginHandle;
pub use request_log::{LoggedRequest, REQUEST_LOG_CAPACITY};
pub use response::ORIGIN_ENDPOINT_HEADER;
