//! Headless Chromium for the browser tests (the dashboard, the explainer page): Debian's
//! `chromium`, installed by `envoy/setup.sh --browser`, or `$EDGE_CHROMIUM`.

use std::path::PathBuf;
use std::process::Command;

/// The Chromium binary; panics (these are tests) with how to get it when it is missing.
pub fn chromium() -> PathBuf {
    let path =
        std::env::var_os("EDGE_CHROMIUM").map_or_else(|| "/usr/bin/chromium".into(), PathBuf::from);
    assert!(
        path.exists(),
        "{} is missing: envoy/setup.sh installs Debian's chromium",
        path.display()
    );
    path
}

/// Runs headless Chromium on `url` for `budget_ms` of virtual time in a window of `size`
/// (width, height); `mode` is `--dump-dom` or `--screenshot=<file>`. Returns stdout.
pub fn chromium_run(url: &str, budget_ms: u64, mode: &str, (width, height): (u32, u32)) -> String {
    let profile = std::env::temp_dir().join(format!(
        "edge-chromium-{}-{}",
        std::process::id(),
        std::thread::current()
            .name()
            .unwrap_or("main")
            .replace(':', "_")
    ));
    let output = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--window-size={width},{height}"))
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .arg(mode)
        .arg(url)
        .output()
        .expect("chromium runs");
    let _ = std::fs::remove_dir_all(&profile);
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
