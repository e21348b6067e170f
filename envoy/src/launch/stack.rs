use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::envoy_process::EnvoyProcess;
use super::error::LaunchError;
use super::fleet::{render_fleet_cluster, FleetTier};
use super::live::{render_live_config, validate_plugin_config, LiveConfig, LiveInputs};
use super::options::{FleetOption, LaunchOptions, Upstream};
use super::paths::runs_root;
use super::watch::{is_watchable, ConfigWatcher};
use crate::origin::{OriginConfig, OriginHandle};

/// Envoy with the edge filter in front of an origin (the demo origin unless one was given).
/// Dropping it stops Envoy and the demo origin.
pub struct Stack {
    /// Declared first: Envoy stops before its origin.
    pub envoy: EnvoyProcess,
    pub origin: Option<OriginHandle>,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    /// `HOST:PORT` of the upstream.
    pub upstream: String,
    pub run_dir: PathBuf,
    /// The watched ECDS file the filter's configuration comes from (`None` with
    /// `--static-config`): [`LiveConfig::write`] applies a new one without a restart.
    pub live: Option<Arc<LiveConfig>>,
    /// The watch on `--plugin-config` ([`Stack::start`] in live mode only).
    pub watcher: Option<ConfigWatcher>,
    /// Redis and webdis when the options asked to start them (`--fleet`); stops after Envoy.
    pub fleet: Option<FleetTier>,
}

/// How long Envoy may take to load the filter and open its listener.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

impl Stack {
    /// Starts the origin (for [`Upstream::Demo`]) and Envoy, and waits until Envoy is ready.
    pub fn start(options: &LaunchOptions) -> Result<Self, LaunchError> {
        let plugin_config = std::fs::read_to_string(&options.plugin_config).map_err(|err| {
            LaunchError::io(
                format!(
                    "read the plugin configuration {}",
                    options.plugin_config.display()
                ),
                err,
            )
        })?;
        let mut stack = Self::start_with_plugin_config(options, &plugin_config)?;
        if stack.live.is_some() && !is_watchable(&options.plugin_config) {
            println!(
                "edge-launch: {} is not a regular file (a pipe?): read once at start, not \
                 watched for changes",
                options.plugin_config.display()
            );
        } else if let Some(live) = &stack.live {
            stack.watcher = Some(ConfigWatcher::start(
                options.plugin_config.clone(),
                plugin_config,
                Arc::clone(live),
            ));
        }
        Ok(stack)
    }

    /// [`Stack::start`] with the plugin configuration given as text.
    pub fn start_with_plugin_config(
        options: &LaunchOptions,
        plugin_config: &str,
    ) -> Result<Self, LaunchError> {
        if !options.wasm.exists() {
            return Err(LaunchError::NoFilterModule(options.wasm.clone()));
        }
        let (origin, host, port) = match &options.upstream {
            Upstream::Demo => {
                let config = OriginConfig {
                    latency_scale: options.origin_latency_scale,
                    ..OriginConfig::default()
                };
                let origin = OriginHandle::start(SocketAddr::from(([127, 0, 0, 1], 0)), config)
                    .map_err(|err| LaunchError::io("start the demo origin", err))?;
                let addr = origin.addr();
                (Some(origin), addr.ip().to_string(), addr.port())
            }
            Upstream::External { host, port } => (None, host.clone(), *port),
        };
        let fleet = match &options.fleet {
            FleetOption::Start => Some(FleetTier::start()?),
            _ => None,
        };
        let bridge = match (&options.fleet, &fleet) {
            (_, Some(tier)) => Some(("127.0.0.1".to_string(), tier.bridge.port())),
            (FleetOption::Bridge { host, port }, None) => Some((host.clone(), *port)),
            _ => None,
        };
        let run_dir = new_run_dir()?;
        let wasm = options.wasm.canonicalize().unwrap_or(options.wasm.clone());
        let inputs = LiveInputs {
            listen: options.listen,
            admin: options.admin,
            upstream_host: host.clone(),
            upstream_port: port,
            wasm: wasm.to_string_lossy().into_owned(),
            bypass: options.bypass.clone(),
        };
        let mut static_config = inputs.render_static(plugin_config);
        if let Some((bridge_host, bridge_port)) = &bridge {
            static_config.push_str(&render_fleet_cluster(bridge_host, *bridge_port));
        }
        let (config, live) = if options.static_config {
            (static_config, None)
        } else {
            // Envoy would wait for a valid ECDS resource instead of exiting: refuse at once.
            validate_plugin_config(plugin_config)
                .map_err(|err| LaunchError::InvalidPluginConfig(err.to_string()))?;
            let filter_dir = run_dir.join("filter");
            std::fs::create_dir_all(&filter_dir)
                .map_err(|err| LaunchError::io(format!("create {}", filter_dir.display()), err))?;
            let live = LiveConfig::new(filter_dir.join("edge-filter.yaml"), inputs);
            let config = render_live_config(&static_config, &live.file).ok_or_else(|| {
                LaunchError::io(
                    "render the live configuration",
                    std::io::Error::other("no wasm filter in the rendered configuration"),
                )
            })?;
            live.write(plugin_config)?;
            (config, Some(Arc::new(live)))
        };
        let config_path = run_dir.join("envoy.yaml");
        std::fs::write(&config_path, config)
            .map_err(|err| LaunchError::io(format!("write {}", config_path.display()), err))?;
        let mut envoy = EnvoyProcess::spawn(
            &options.envoy,
            &config_path,
            options.workers,
            &options.log_level,
            options.admin,
            &run_dir.join("envoy.log"),
        )?;
        envoy.wait_ready(READY_TIMEOUT)?;
        Ok(Self {
            envoy,
            origin,
            listen: options.listen,
            admin: options.admin,
            upstream: format!("{host}:{port}"),
            run_dir,
            live,
            watcher: None,
            fleet,
        })
    }
}

/// `<runs_root()>/<pid>-<n>` (default `target/edge-runs`): the rendered configuration and Envoy's log of one run.
fn new_run_dir() -> Result<PathBuf, LaunchError> {
    static RUNS: AtomicU32 = AtomicU32::new(0);
    let n = RUNS.fetch_add(1, Ordering::Relaxed);
    let dir = runs_root().join(format!("{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .map_err(|err| LaunchError::io(format!("create {}", dir.display()), err))?;
    Ok(dir)
}
