use std::fs::File;
use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::error::LaunchError;
use super::http_client::http_request;

/// A running Envoy. Dropping it stops Envoy (SIGTERM, then SIGKILL), so a failing test leaves
/// no process behind; Envoy also dies with its parent (PR_SET_PDEATHSIG).
pub struct EnvoyProcess {
    child: Child,
    log_path: PathBuf,
    admin: SocketAddr,
}

impl EnvoyProcess {
    /// Starts Envoy on `config`, logging to `log_path`.
    pub fn spawn(
        envoy: &Path,
        config: &Path,
        workers: u32,
        log_level: &str,
        admin: SocketAddr,
        log_path: &Path,
    ) -> Result<Self, LaunchError> {
        if !envoy.exists() {
            return Err(LaunchError::NoEnvoyBinary(envoy.to_path_buf()));
        }
        let log = File::create(log_path)
            .map_err(|err| LaunchError::io(format!("create {}", log_path.display()), err))?;
        let log_err = log
            .try_clone()
            .map_err(|err| LaunchError::io(format!("reopen {}", log_path.display()), err))?;
        let mut command = Command::new(envoy);
        command
            .arg("-c")
            .arg(config)
            .args(["--concurrency", &workers.to_string()])
            .args(["--log-level", log_level])
            // Several Envoys (parallel tests) must not share hot-restart state.
            .arg("--disable-hot-restart")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err);
        // SAFETY: prctl is async-signal-safe and touches only the child being set up.
        unsafe {
            command.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = command
            .spawn()
            .map_err(|err| LaunchError::io(format!("start {}", envoy.display()), err))?;
        Ok(Self {
            child,
            log_path: log_path.to_path_buf(),
            admin,
        })
    }

    /// Waits until the admin interface reports LIVE; fails early if Envoy exits.
    pub fn wait_ready(&mut self, timeout: Duration) -> Result<(), LaunchError> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.exit_status() {
                return Err(LaunchError::exited(status, self.log()));
            }
            if let Ok(response) = http_request(self.admin, "GET", "/ready", &[], b"") {
                if response.status == 200 {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(LaunchError::NotReady {
            timeout,
            log: self.log(),
        })
    }

    /// Waits for Envoy to exit by itself (e.g. after refusing its configuration).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Some(status) = self.exit_status() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn exit_status(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Everything Envoy logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// SIGTERM, up to 5 s for a clean exit, then SIGKILL.
    pub fn stop(&mut self) {
        if self.exit_status().is_some() {
            return;
        }
        if let Ok(pid) = i32::try_from(self.child.id()) {
            // SAFETY: signalling our own child process by its pid.
            unsafe {
                libc::kill(pid, libc::SIGTERM);
            }
        }
        if self.wait_exit(Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Drop for EnvoyProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
