use std::path::PathBuf;
use std::sync::OnceLock;

use wasmtime::{Config, Engine, Module};

/// Environment variable that points the host at another build of the filter.
pub const FILTER_WASM_ENV: &str = "EDGE_FILTER_WASM";

/// Where the test command leaves the release build of the filter.
pub fn filter_module_path() -> PathBuf {
    match std::env::var_os(FILTER_WASM_ENV) {
        Some(path) => PathBuf::from(path),
        None => workspace_root().join("target/wasm32-unknown-unknown/release/edge_filter.wasm"),
    }
}

/// Where the test command leaves the host's own probe guest.
pub(crate) fn probe_module_path() -> PathBuf {
    workspace_root().join("target/wasm32-unknown-unknown/release/host_probe.wasm")
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(PathBuf::from)
        .unwrap_or_default()
}

/// One engine per test binary; fuel metering on, so tests and benches can count guest work.
pub(crate) fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut config = Config::new();
        config.consume_fuel(true);
        Engine::new(&config).unwrap_or_else(|err| panic!("wasmtime engine: {err:#}"))
    })
}

/// Compiles a module once per test binary and path (compiling costs far more than instantiating).
pub(crate) fn cached_module(path: PathBuf) -> Module {
    static MODULES: OnceLock<std::sync::Mutex<Vec<(PathBuf, Module)>>> = OnceLock::new();
    let modules = MODULES.get_or_init(Default::default);
    let mut modules = modules
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, module)) = modules.iter().find(|(p, _)| *p == path) {
        return module.clone();
    }
    let bytes = std::fs::read(&path).unwrap_or_else(|err| {
        panic!(
            "cannot read the wasm module {}: {err}\nbuild it first: \
             cargo build --release --target wasm32-unknown-unknown -p edge-filter -p host-probe",
            path.display()
        )
    });
    let module = compile(&bytes);
    modules.push((path, module.clone()));
    module
}

/// Compiles wasm or WAT bytes.
pub(crate) fn compile(bytes: &[u8]) -> Module {
    Module::new(engine(), bytes).unwrap_or_else(|err| panic!("invalid wasm module: {err:#}"))
}
