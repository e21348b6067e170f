//! `edge-launch --run-dir DIR` keeps its runs under DIR, not under the checkout it was built in
//! (a copied binary, a read-only checkout).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edge_envoy::launch::free_port;

fn runs_in(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn edge_launch_keeps_its_runs_under_run_dir() {
    let root = std::env::temp_dir().join(format!("edge-run-dir-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    let port = |what: &str| {
        free_port()
            .unwrap_or_else(|err| panic!("a port for {what}: {err}"))
            .to_string()
    };
    let (listen, admin, upstream) = (port("listen"), port("admin"), port("upstream"));
    let mut launcher = Command::new(env!("CARGO_BIN_EXE_edge-launch"))
        .args(["--run-dir", root.to_str().unwrap()])
        .args([
            "--listen",
            &listen,
            "--admin",
            &admin,
            "--upstream",
            &upstream,
        ])
        .arg("--static-config")
        .env_remove("EDGE_RUN_DIR")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("edge-launch starts");
    let started = Instant::now();
    let mut runs = Vec::new();
    while started.elapsed() < Duration::from_secs(60) && runs.is_empty() {
        std::thread::sleep(Duration::from_millis(100));
        runs = runs_in(&root);
    }
    // Ctrl-C stops the launcher and its Envoy.
    let _ = Command::new("kill")
        .args(["-INT", &launcher.id().to_string()])
        .status();
    let stopping = Instant::now();
    while launcher.try_wait().ok().flatten().is_none() {
        if stopping.elapsed() > Duration::from_secs(30) {
            let _ = launcher.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = launcher.wait();
    let _ = std::fs::remove_dir_all(&root);
    assert_eq!(runs.len(), 1, "one run under --run-dir: {runs:?}");
}
