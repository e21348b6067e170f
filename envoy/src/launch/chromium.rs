//! Headless Chromium for the browser tests (the dashboard, the explainer page): Debian's
//! `chromium`, installed by `envoy/setup.sh --browser`, or `$EDGE_CHROMIUM`.

use std::path::PathBuf;
use std::process::Command;

/// Headless Chromium with nothing of its own on the network (no updates, sync, QUIC).
const HEADLESS_FLAGS: [&str; 9] = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--hide-scrollbars",
];

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
        .args(HEADLESS_FLAGS)
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

/// Headless Chromium driven over the DevTools protocol (`--remote-debugging-pipe`: commands on
/// the child's fd 3, answers and events on its fd 4, each a JSON text ended by a NUL byte), for
/// browser tests that act on a page — type into a form, click — instead of only loading it.
/// Real time runs (no virtual time): wait for what a step needs with [`Browser::wait_for`].
/// The browser is killed and its profile removed when this is dropped. Panics (these are tests)
/// with what went wrong.
pub struct Browser {
    child: std::process::Child,
    commands: std::io::PipeWriter,
    answers: std::sync::mpsc::Receiver<serde_json::Value>,
    session: String,
    next_id: u64,
    profile: PathBuf,
}

/// How long one protocol command may take.
const COMMAND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl Browser {
    /// Starts the browser with one blank page of `size` (width, height) and attaches to it.
    pub fn start((width, height): (u32, u32)) -> Self {
        use std::os::fd::AsRawFd;
        use std::os::unix::process::CommandExt;

        static STARTED: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let profile = std::env::temp_dir().join(format!(
            "edge-chromium-cdp-{}-{}",
            std::process::id(),
            STARTED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let (child_reads, commands) = std::io::pipe().expect("a pipe");
        let (answers_read, child_writes) = std::io::pipe().expect("a pipe");
        let (read_fd, write_fd) = (child_reads.as_raw_fd(), child_writes.as_raw_fd());
        let mut command = Command::new(chromium());
        command
            .args(HEADLESS_FLAGS)
            .arg("--remote-debugging-pipe")
            .arg(format!("--window-size={width},{height}"))
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null());
        // SAFETY: only async-signal-safe calls (fcntl, dup2, close, prctl) on descriptors of
        // the child being set up. The pipe ends are first copied above 10, so moving them to
        // 3 and 4 cannot overwrite one with the other; dup2 leaves the copies open on exec.
        unsafe {
            command.pre_exec(move || {
                let read = libc::fcntl(read_fd, libc::F_DUPFD, 10);
                let write = libc::fcntl(write_fd, libc::F_DUPFD, 10);
                if read < 0 || write < 0 || libc::dup2(read, 3) < 0 || libc::dup2(write, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                libc::close(read);
                libc::close(write);
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
        let child = command.spawn().expect("chromium starts");
        drop((child_reads, child_writes));
        let (sender, answers) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            let mut reader = std::io::BufReader::new(answers_read);
            let mut message = Vec::new();
            while reader.read_until(0, &mut message).is_ok_and(|n| n > 0) {
                if message.last() == Some(&0) {
                    message.pop();
                }
                if let Ok(value) = serde_json::from_slice(&message) {
                    if sender.send(value).is_err() {
                        return;
                    }
                }
                message.clear();
            }
        });
        let mut browser = Self {
            child,
            commands,
            answers,
            session: String::new(),
            next_id: 0,
            profile,
        };
        let targets = browser.command("Target.getTargets", serde_json::json!({}));
        let page = targets["targetInfos"]
            .as_array()
            .and_then(|targets| targets.iter().find(|t| t["type"] == "page"))
            .and_then(|t| t["targetId"].as_str())
            .expect("a page target")
            .to_string();
        let attached = browser.command(
            "Target.attachToTarget",
            serde_json::json!({ "targetId": page, "flatten": true }),
        );
        browser.session = attached["sessionId"]
            .as_str()
            .expect("a session")
            .to_string();
        browser
    }

    /// Sends one command (to the page once attached) and returns its result.
    pub fn command(&mut self, method: &str, params: serde_json::Value) -> serde_json::Value {
        use std::io::Write;
        self.next_id += 1;
        let id = self.next_id;
        let mut message = serde_json::json!({ "id": id, "method": method, "params": params });
        if !self.session.is_empty() {
            message["sessionId"] = serde_json::Value::from(self.session.clone());
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        self.commands
            .write_all(&bytes)
            .unwrap_or_else(|err| panic!("{method}: the browser is gone: {err}"));
        let deadline = std::time::Instant::now() + COMMAND_TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            let answer = self
                .answers
                .recv_timeout(left)
                .unwrap_or_else(|err| panic!("{method}: no answer from the browser ({err})"));
            if answer["id"] == id {
                assert!(
                    answer.get("error").is_none(),
                    "{method}: {}",
                    answer["error"]
                );
                return answer["result"].clone();
            }
        }
    }

    /// Opens `url` in the page (wait for what it loads with [`Browser::wait_for`]).
    pub fn navigate(&mut self, url: &str) {
        self.command("Page.navigate", serde_json::json!({ "url": url }));
    }

    /// The value of a JavaScript expression in the page (promises awaited); `null` when it
    /// throws (a page being replaced, say).
    pub fn eval(&mut self, expression: &str) -> serde_json::Value {
        let result = self.command(
            "Runtime.evaluate",
            serde_json::json!({
                "expression": expression,
                "returnByValue": true,
                "awaitPromise": true,
            }),
        );
        if result.get("exceptionDetails").is_some() {
            return serde_json::Value::Null;
        }
        result["result"]["value"].clone()
    }

    /// Polls `expression` until it is truthy (its value) or `timeout` passes (panics with
    /// `what` and the page's text).
    pub fn wait_for(
        &mut self,
        what: &str,
        expression: &str,
        timeout: std::time::Duration,
    ) -> serde_json::Value {
        let start = std::time::Instant::now();
        loop {
            let value = self.eval(expression);
            let truthy = match &value {
                serde_json::Value::Null => false,
                serde_json::Value::Bool(b) => *b,
                serde_json::Value::String(s) => !s.is_empty(),
                serde_json::Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            if truthy {
                return value;
            }
            if start.elapsed() > timeout {
                let text = self.eval("document.body ? document.body.innerText : ''");
                panic!("timed out waiting for {what}; the page shows: {text}");
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }

    /// Types `text` into the focused element, as a keyboard would.
    pub fn type_text(&mut self, text: &str) {
        self.command("Input.insertText", serde_json::json!({ "text": text }));
    }

    /// Presses Enter (submits the form the focused input is in).
    pub fn press_enter(&mut self) {
        for kind in ["keyDown", "keyUp"] {
            self.command(
                "Input.dispatchKeyEvent",
                serde_json::json!({
                    "type": kind, "key": "Enter", "code": "Enter",
                    "windowsVirtualKeyCode": 13, "text": "\r",
                }),
            );
        }
    }

    /// Saves a PNG of the page to `path`; its size in bytes.
    pub fn screenshot(&mut self, path: &std::path::Path) -> usize {
        use base64_decode::decode;
        let shot = self.command("Page.captureScreenshot", serde_json::json!({}));
        let png = decode(shot["data"].as_str().unwrap_or_default());
        std::fs::write(path, &png).expect("screenshot written");
        png.len()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Standard base64 (the protocol's screenshots), without a dependency.
mod base64_decode {
    pub fn decode(text: &str) -> Vec<u8> {
        let value = |c: u8| match c {
            b'A'..=b'Z' => Some(c - b'A'),
            b'a'..=b'z' => Some(c - b'a' + 26),
            b'0'..=b'9' => Some(c - b'0' + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        };
        let mut out = Vec::with_capacity(text.len() / 4 * 3);
        let (mut bits, mut count) = (0u32, 0);
        for sextet in text.bytes().filter_map(value) {
            bits = (bits << 6) | u32::from(sextet);
            count += 6;
            if count >= 8 {
                count -= 8;
                out.push((bits >> count) as u8);
            }
        }
        out
    }
}
