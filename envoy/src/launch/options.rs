use std::net::SocketAddr;
use std::path::PathBuf;

use super::paths::{default_envoy_binary, default_plugin_config, default_wasm};
use super::render::check_bypass_prefix;

/// Where Envoy sends traffic.
#[derive(Debug, Clone, PartialEq)]
pub enum Upstream {
    /// Start the demo origin in-process on a free loopback port.
    Demo,
    /// An existing service, `HOST:PORT`.
    External { host: String, port: u16 },
}

/// Everything `edge-launch` can be told.
#[derive(Debug, Clone, PartialEq)]
pub struct LaunchOptions {
    pub upstream: Upstream,
    pub plugin_config: PathBuf,
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub workers: u32,
    pub wasm: PathBuf,
    pub envoy: PathBuf,
    pub log_level: String,
    /// Multiplies the demo origin's latencies (0 = instant).
    pub origin_latency_scale: f64,
    /// Print the rendered Envoy configuration and exit.
    pub print_config: bool,
    /// The plugin configuration inline in envoy.yaml (no live reload) instead of in a watched
    /// ECDS file.
    pub static_config: bool,
    /// Path prefixes whose routes skip the edge filter (`--bypass`, repeatable).
    pub bypass: Vec<String>,
    /// The fleet tier (Redis through webdis) the `fleet_bridge` cluster points at.
    pub fleet: FleetOption,
}

/// Where the `fleet_bridge` cluster points.
#[derive(Debug, Clone, Default, PartialEq)]
pub enum FleetOption {
    /// No fleet tier (no `fleet_bridge` cluster).
    #[default]
    Off,
    /// Start redis-server and webdis on free loopback ports.
    Start,
    /// An existing bridge, `HOST:PORT`.
    Bridge { host: String, port: u16 },
}

pub const USAGE: &str = "\
edge-launch: run Envoy with the edge filter in front of an origin (foreground; Ctrl-C stops all)

options:
  --upstream HOST:PORT       send traffic to this service (default: start the demo origin)
  --plugin-config FILE       plugin configuration JSON (default: envoy/plugin-config.json)
  --listen ADDR:PORT         Envoy listener (default: 127.0.0.1:10000)
  --admin ADDR:PORT          Envoy admin interface (default: 127.0.0.1:9901)
  --workers N                Envoy worker threads (default: 2)
  --wasm FILE                the filter module (default: target/wasm32-unknown-unknown/release/edge_filter.wasm, or $EDGE_WASM)
  --envoy FILE               Envoy binary (default: envoy/.venv/bin/envoy, or $EDGE_ENVOY_BIN)
  --log-level LEVEL          Envoy log level (default: info)
  --origin-latency-scale F   scale the demo origin's built-in latencies (default: 1)
  --fleet                    start redis-server + webdis (the fleet tier) on free loopback ports
  --fleet-bridge HOST:PORT   the fleet tier's bridge (webdis) runs there
  --run-dir DIR              keep each run's rendered configuration and logs under DIR (default:
                             $EDGE_RUN_DIR, else target/edge-runs of the checkout it was built in)
  --print-config             print the Envoy configuration (static form, as envoy/envoy.yaml), and exit
  --static-config            plugin configuration inline in envoy.yaml: no live reload (default:
                             from a watched ECDS file; edits of --plugin-config apply live)
  --bypass PREFIX            requests under this path prefix skip the edge filter entirely (Envoy
                             disables it on their route: no VM call); repeatable
  --help                     this text
";

impl Default for LaunchOptions {
    fn default() -> Self {
        Self {
            upstream: Upstream::Demo,
            plugin_config: default_plugin_config(),
            listen: SocketAddr::from(([127, 0, 0, 1], 10000)),
            admin: SocketAddr::from(([127, 0, 0, 1], 9901)),
            workers: 2,
            wasm: default_wasm(),
            envoy: default_envoy_binary(),
            log_level: "info".to_string(),
            origin_latency_scale: 1.0,
            print_config: false,
            static_config: false,
            bypass: Vec::new(),
            fleet: FleetOption::Off,
        }
    }
}

impl LaunchOptions {
    /// Parses command-line arguments (without the program name); `Ok(None)` means `--help`.
    pub fn parse<I: IntoIterator<Item = String>>(args: I) -> Result<Option<Self>, String> {
        let mut options = Self::default();
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            if flag == "--help" || flag == "-h" {
                return Ok(None);
            }
            if flag == "--fleet" {
                options.fleet = FleetOption::Start;
                continue;
            }
            if flag == "--print-config" {
                options.print_config = true;
                continue;
            }
            if flag == "--static-config" {
                options.static_config = true;
                continue;
            }
            let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--upstream" => options.upstream = parse_upstream(&value)?,
                "--plugin-config" => options.plugin_config = PathBuf::from(value),
                "--listen" => options.listen = parse_addr(&flag, &value)?,
                "--admin" => options.admin = parse_addr(&flag, &value)?,
                "--workers" => {
                    options.workers = value
                        .parse()
                        .ok()
                        .filter(|n| (1..=256).contains(n))
                        .ok_or_else(|| {
                            format!("--workers: {value:?} is not a number from 1 to 256")
                        })?
                }
                "--fleet-bridge" => {
                    let Upstream::External { host, port } = parse_upstream(&value)
                        .map_err(|_| format!("--fleet-bridge: {value:?} is not HOST:PORT"))?
                    else {
                        return Err(format!("--fleet-bridge: {value:?} is not HOST:PORT"));
                    };
                    options.fleet = FleetOption::Bridge { host, port };
                }
                "--wasm" => options.wasm = PathBuf::from(value),
                "--envoy" => options.envoy = PathBuf::from(value),
                "--log-level" => options.log_level = value,
                "--bypass" => {
                    check_bypass_prefix(&value)?;
                    options.bypass.push(value);
                }
                "--origin-latency-scale" => {
                    options.origin_latency_scale = value
                        .parse()
                        .ok()
                        .filter(|f: &f64| f.is_finite() && *f >= 0.0)
                        .ok_or_else(|| {
                            format!("--origin-latency-scale: {value:?} is not a number ≥ 0")
                        })?
                }
                _ => return Err(format!("unknown option {flag} (see --help)")),
            }
        }
        Ok(Some(options))
    }
}

fn parse_addr(flag: &str, value: &str) -> Result<SocketAddr, String> {
    value
        .parse()
        .map_err(|_| format!("{flag}: {value:?} is not ADDR:PORT (e.g. 127.0.0.1:10000)"))
}

fn parse_upstream(value: &str) -> Result<Upstream, String> {
    let invalid = || format!("--upstream: {value:?} is not HOST:PORT");
    let (host, port) = value.rsplit_once(':').ok_or_else(invalid)?;
    let port: u16 = port.parse().ok().filter(|p| *p != 0).ok_or_else(invalid)?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() || host.contains(['/', ' ']) {
        return Err(invalid());
    }
    Ok(Upstream::External {
        host: host.to_string(),
        port,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<LaunchOptions>, String> {
        LaunchOptions::parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn defaults() {
        let options = parse(&[]).unwrap().unwrap();
        assert_eq!(options.upstream, Upstream::Demo);
        assert_eq!(options.listen.to_string(), "127.0.0.1:10000");
        assert_eq!(options.admin.to_string(), "127.0.0.1:9901");
        assert_eq!(options.workers, 2);
    }

    #[test]
    fn all_flags() {
        let options = parse(&[
            "--upstream",
            "api.internal:8443",
            "--listen",
            "127.0.0.1:18000",
            "--admin",
            "127.0.0.1:19901",
            "--workers",
            "4",
            "--plugin-config",
            "/etc/edge.json",
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            options.upstream,
            Upstream::External {
                host: "api.internal".into(),
                port: 8443
            }
        );
        assert_eq!(options.listen.port(), 18000);
        assert_eq!(options.admin.port(), 19901);
        assert_eq!(options.workers, 4);
        assert_eq!(options.plugin_config, PathBuf::from("/etc/edge.json"));
    }

    #[test]
    fn errors_name_the_flag() {
        assert_eq!(
            parse(&["--workers", "0"]).unwrap_err(),
            "--workers: \"0\" is not a number from 1 to 256"
        );
        assert_eq!(
            parse(&["--upstream", "nohost"]).unwrap_err(),
            "--upstream: \"nohost\" is not HOST:PORT"
        );
        assert_eq!(parse(&["--listen"]).unwrap_err(), "--listen needs a value");
        assert_eq!(
            parse(&["--bogus", "1"]).unwrap_err(),
            "unknown option --bogus (see --help)"
        );
        assert!(parse(&["--help"]).unwrap().is_none());
    }

    #[test]
    fn fleet_flags() {
        assert_eq!(parse(&[]).unwrap().unwrap().fleet, FleetOption::Off);
        assert_eq!(
            parse(&["--fleet"]).unwrap().unwrap().fleet,
            FleetOption::Start
        );
        assert_eq!(
            parse(&["--fleet-bridge", "webdis.edge:7379"])
                .unwrap()
                .unwrap()
                .fleet,
            FleetOption::Bridge {
                host: "webdis.edge".into(),
                port: 7379
            }
        );
        assert_eq!(
            parse(&["--fleet-bridge", "nope"]).unwrap_err(),
            "--fleet-bridge: \"nope\" is not HOST:PORT"
        );
    }
}
