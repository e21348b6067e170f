//! The fleet tier for the demo and the tests: `redis-server` and `webdis` (its HTTP bridge) on
//! free loopback ports with a temporary directory, and the Envoy cluster the filter reaches
//! the bridge through. Dropping a [`FleetTier`] stops both.

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::error::LaunchError;
use super::http_client::http_request;
use super::paths::runs_root;
use super::ports::free_port;

/// How long redis-server and webdis may take to accept requests.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// `redis-server` and `webdis` on loopback ports. Dropping it stops both.
pub struct FleetTier {
    redis: Option<Child>,
    webdis: Option<Child>,
    /// Redis's port (a restarted Redis comes back on it).
    pub redis_port: u16,
    /// The bridge (webdis) the filter's `fleet_bridge` cluster points at.
    pub bridge: SocketAddr,
    pub dir: PathBuf,
}

fn binary(env: &str, name: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(env) {
        return PathBuf::from(path);
    }
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/sbin"] {
        let path = Path::new(dir).join(name);
        if path.exists() {
            return path;
        }
    }
    PathBuf::from(name)
}

/// Spawns `command` so that it dies with this process.
fn spawn(mut command: Command, what: &str) -> Result<Child, LaunchError> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    // SAFETY: prctl is async-signal-safe and touches only the child being set up.
    unsafe {
        command.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
            Ok(())
        });
    }
    command.spawn().map_err(|err| {
        LaunchError::io(
            format!("start {what} (Debian packages redis-server and webdis; envoy/setup.sh installs them)"),
            err,
        )
    })
}

fn wait_until(what: &str, mut ready: impl FnMut() -> bool) -> Result<(), LaunchError> {
    let start = Instant::now();
    while start.elapsed() < READY_TIMEOUT {
        if ready() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(LaunchError::io(
        format!("wait for {what}"),
        std::io::Error::new(std::io::ErrorKind::TimedOut, "not ready in time"),
    ))
}

fn stop(child: &mut Child) {
    // SAFETY: sending a signal to our own child's pid.
    unsafe {
        libc::kill(child.id() as libc::pid_t, libc::SIGKILL);
    }
    let _ = child.wait();
}

impl FleetTier {
    /// Starts Redis (no persistence, `maxmemory` 256 MB, LRU eviction) and webdis in front of
    /// it, and waits until a `PING` through the bridge answers. A port picked as free can be
    /// taken before the process binds it: then it starts again on other ports.
    pub fn start() -> Result<Self, LaunchError> {
        let mut last = None;
        for _ in 0..3 {
            match Self::start_once() {
                Ok(tier) => return Ok(tier),
                Err(err) => last = Some(err),
            }
        }
        Err(last.unwrap_or_else(|| {
            LaunchError::io("start the fleet tier", std::io::Error::other("no attempt"))
        }))
    }

    fn start_once() -> Result<Self, LaunchError> {
        static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = runs_root().join(format!("fleet-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|err| LaunchError::io(format!("create {}", dir.display()), err))?;
        let port = |what: &str| {
            free_port()
                .map(|a| a.port())
                .map_err(|err| LaunchError::io(format!("find a port for {what}"), err))
        };
        let redis_port = port("redis")?;
        let bridge_port = port("webdis")?;
        let bridge = SocketAddr::from(([127, 0, 0, 1], bridge_port));
        let config = serde_json::json!({
            "redis_host": "127.0.0.1",
            "redis_port": redis_port,
            "http_host": "127.0.0.1",
            "http_port": bridge_port,
            "threads": 2,
            "pool_size": 8,
            "daemonize": false,
            "database": 0,
            "verbosity": 1,
            "logfile": dir.join("webdis.log"),
            "acl": [{"disabled": ["DEBUG", "FLUSHDB", "FLUSHALL", "CONFIG", "SHUTDOWN", "KEYS"]}]
        });
        let config_path = dir.join("webdis.json");
        std::fs::write(&config_path, config.to_string())
            .map_err(|err| LaunchError::io(format!("write {}", config_path.display()), err))?;
        let mut tier = Self {
            redis: None,
            webdis: None,
            redis_port,
            bridge,
            dir,
        };
        // Redis first: webdis answers a request made while it reconnects to Redis late or
        // never (the filter's calls have their own timeout; a readiness check would hang).
        tier.start_redis()?;
        let mut command = Command::new(binary("EDGE_WEBDIS_BIN", "webdis"));
        command.arg(&config_path);
        tier.webdis = Some(spawn(command, "webdis")?);
        wait_until("webdis", || tier.ping())?;
        Ok(tier)
    }

    /// Starts Redis (again) on its port; returns once it accepts connections.
    pub fn start_redis(&mut self) -> Result<(), LaunchError> {
        if self.redis.is_some() {
            return Ok(());
        }
        let mut command = Command::new(binary("EDGE_REDIS_BIN", "redis-server"));
        command
            .args(["--port", &self.redis_port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--maxmemory", "256mb"])
            .args(["--maxmemory-policy", "allkeys-lru"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(self.dir.join("redis.log"));
        self.redis = Some(spawn(command, "redis-server")?);
        let addr = SocketAddr::from(([127, 0, 0, 1], self.redis_port));
        wait_until("redis-server", || {
            TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
        })
    }

    /// Kills Redis (webdis stays up and answers 503 meanwhile).
    pub fn stop_redis(&mut self) {
        if let Some(mut redis) = self.redis.take() {
            stop(&mut redis);
        }
    }

    /// Runs one Redis command through the bridge (`SET/k/v` form, arguments percent-encoded
    /// by the caller); the raw RESP answer, or why none came.
    pub fn command(&self, command: &str) -> Result<Vec<u8>, String> {
        let body = format!("{command}.raw");
        let response = http_request(self.bridge, "POST", "/", &[], body.as_bytes())
            .map_err(|err| err.to_string())?;
        if response.status != 200 {
            return Err(format!("bridge answered {}", response.status));
        }
        Ok(response.body)
    }

    /// Whether `PING` through the bridge answers `PONG` within half a second (webdis may
    /// leave a request unanswered that arrived while it was still connecting to Redis).
    pub fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut stream) = TcpStream::connect_timeout(&self.bridge, Duration::from_millis(500))
        else {
            return false;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
        let request = format!(
            "POST / HTTP/1.1\r\nhost: {}\r\nconnection: close\r\ncontent-length: 8\r\n\r\nPING.raw",
            self.bridge
        );
        if stream.write_all(request.as_bytes()).is_err() {
            return false;
        }
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer);
        answer.starts_with(b"HTTP/1.1 200") && answer.ends_with(b"+PONG\r\n")
    }
}

impl Drop for FleetTier {
    fn drop(&mut self) {
        self.stop_redis();
        if let Some(mut webdis) = self.webdis.take() {
            stop(&mut webdis);
        }
    }
}

/// The Envoy cluster of the fleet tier's bridge (appended to the rendered `clusters`): the
/// filter's `fleet_bridge.cluster` names it.
pub fn render_fleet_cluster(bridge_host: &str, bridge_port: u16) -> String {
    let cluster_type = if bridge_host.parse::<std::net::IpAddr>().is_ok() {
        "STATIC"
    } else {
        "STRICT_DNS"
    };
    format!(
        r#"  # The fleet tier: Redis behind its HTTP bridge (webdis). Every call from the filter has
  # its own short timeout (fleet_bridge.timeout_ms); a bridge that cannot be reached fails
  # fast (connect_timeout) and the filter carries on with its local tiers.
  - name: fleet_bridge
    type: {cluster_type}
    connect_timeout: 0.25s
    load_assignment:
      cluster_name: fleet_bridge
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: {{ address: {bridge_host}, port_value: {bridge_port} }}
"#
    )
}
