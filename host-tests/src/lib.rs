//! A proxy-wasm ABI 0.2.1 host on wasmtime, with Envoy's semantics, for scenario tests of the
//! edge filter's `.wasm`.
//!
//! One [`Host`] stands for one Envoy process: it owns several VMs of the same module (the
//! workers), one shared-data store and shared queues per vm_id, one stats store, one manual
//! clock and one scriptable origin. A test reads like a scenario:
//!
//! ```no_run
//! use proxy_wasm_host::{Host, Reply, Request};
//! let mut host = Host::new();
//! host.origin(|_| Reply::ok("hello"));
//! let vm = host.start_vm(r#"{"services": []}"#).unwrap();
//! let response = host.request(vm, Request::get("/api"));
//! assert_eq!(response.status, 200);
//! assert_eq!(host.origin_calls().len(), 1);
//! ```

mod abi;
mod flow;
mod headers;
mod host;
mod imports;
mod message;
mod metrics;
mod module;
mod shared_data;
mod shared_queues;
pub mod simulation;
pub mod test_support;
mod trap;
mod vm_state;
mod wire;
mod world;

pub use abi::{MetricType, Status};
pub use headers::HeaderMap;
pub use host::{Host, StreamRef, VmId};
pub use message::{Failure, Reply, Request, Response, UpstreamRequest};
pub use metrics::Metric;
pub use module::{filter_module_path, FILTER_WASM_ENV};
pub use shared_data::{CasError, SharedData};
pub use trap::{GuestTrap, StartError};
pub use vm_state::Crossing;
pub use vm_state::LogLine;
