//! The launcher's watch on the plugin configuration file (`--plugin-config`): when its content
//! changes, the new configuration is validated with the filter's own code and written to the
//! ECDS file (see [`super::live`]). An invalid one is written too — the filter refuses it, Envoy
//! rejects the update and keeps the old configuration, and `/health` says so — after the
//! launcher printed the refusal with its field path.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::live::{validate_plugin_config, LiveConfig};

/// How often the file is looked at.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// What happened to one change of the watched file.
#[derive(Debug, Clone, PartialEq)]
pub enum ReloadEvent {
    /// Valid, written to the ECDS file as `version`.
    Applied { version: u64 },
    /// Refused by the filter's validation (`reason` names the field); passed on to Envoy as
    /// `version`, which rejects it and keeps the previous configuration.
    Refused { version: u64, reason: String },
    /// The ECDS file could not be written.
    Failed { reason: String },
}

/// A thread polling the plugin configuration file; dropping it stops the thread.
pub struct ConfigWatcher {
    stop: Arc<AtomicBool>,
    events: Arc<Mutex<Vec<(Instant, ReloadEvent)>>>,
    thread: Option<JoinHandle<()>>,
}

impl ConfigWatcher {
    /// Watches `source`, whose content `current` is already running, and writes changes
    /// through `live`. Each event is printed on stdout (prefixed `edge-launch:`) and kept.
    pub fn start(source: PathBuf, current: String, live: Arc<LiveConfig>) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let events = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let (stop, events) = (Arc::clone(&stop), Arc::clone(&events));
            std::thread::spawn(move || {
                let mut last = current;
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(POLL_INTERVAL);
                    let Some(event) = poll(&source, &mut last, &live) else {
                        continue;
                    };
                    println!("edge-launch: {}: {}", source.display(), describe(&event));
                    if let Ok(mut events) = events.lock() {
                        events.push((Instant::now(), event));
                    }
                }
            })
        };
        Self {
            stop,
            events,
            thread: Some(thread),
        }
    }

    /// Every change seen so far, with when it was handled.
    pub fn events(&self) -> Vec<(Instant, ReloadEvent)> {
        self.events.lock().map(|e| e.clone()).unwrap_or_default()
    }
}

impl Drop for ConfigWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Whether `source` can be watched: a regular file (after symlinks). A pipe or FIFO
/// (`--plugin-config <(…)`) is read once at start; reading it again would block or see it
/// drained, so it is not watched.
pub fn is_watchable(source: &Path) -> bool {
    std::fs::metadata(source).is_ok_and(|meta| meta.is_file())
}

/// The content of `source` if it is a regular file holding UTF-8. Opened without blocking (a
/// FIFO put at the path would block `open` until a writer comes) and checked on the open
/// handle, so a FIFO swapped in between is never read.
pub fn read_regular(source: &Path) -> Result<String, ReadError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(source)
        .map_err(|_| ReadError::Missing)?;
    match file.metadata() {
        Ok(meta) if meta.is_file() => {}
        _ => return Err(ReadError::NotRegular),
    }
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|_| ReadError::Missing)?;
    String::from_utf8(bytes).map_err(|_| ReadError::NotUtf8)
}

/// Why [`read_regular`] gave no content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadError {
    /// Missing or unreadable (for a moment, while an editor replaces it).
    Missing,
    /// Not a regular file (a FIFO, a directory, a device).
    NotRegular,
    /// Not UTF-8.
    NotUtf8,
}

/// One look at the file: an event when its content differs from `last`.
fn poll(source: &Path, last: &mut String, live: &LiveConfig) -> Option<ReloadEvent> {
    // Missing or unreadable for a moment (editors replace files by rename): not a change.
    let text = match read_regular(source) {
        Ok(text) => text,
        Err(ReadError::NotUtf8) => {
            // Said once per such content (`last` cannot hold it: a marker no UTF-8 file has).
            const NOT_UTF8: &str = "\u{0}not UTF-8";
            if last == NOT_UTF8 {
                return None;
            }
            NOT_UTF8.clone_into(last);
            return Some(ReloadEvent::Failed {
                reason: "not UTF-8; the previous configuration keeps serving".to_string(),
            });
        }
        Err(_) => return None,
    };
    if text == *last {
        return None;
    }
    last.clone_from(&text);
    let verdict = validate_plugin_config(&text);
    Some(match (live.write(&text), verdict) {
        (Ok(version), Ok(())) => ReloadEvent::Applied { version },
        (Ok(version), Err(err)) => ReloadEvent::Refused {
            version,
            reason: err.to_string(),
        },
        (Err(err), _) => ReloadEvent::Failed {
            reason: err.to_string(),
        },
    })
}

/// The line printed for an event.
pub fn describe(event: &ReloadEvent) -> String {
    match event {
        ReloadEvent::Applied { version } => {
            format!("changed; valid, written to Envoy (ECDS version {version})")
        }
        ReloadEvent::Refused { version, reason } => format!(
            "changed; INVALID ({reason}); Envoy will reject ECDS version {version} and keep \
             the previous configuration"
        ),
        ReloadEvent::Failed { reason } => format!("not applied: {reason}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn temp_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("edge-watch-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn a_fifo_is_neither_watched_nor_read_and_never_blocks() {
        let dir = temp_dir("fifo");
        let fifo = dir.join("cfg.json");
        let c_path = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        assert!(!is_watchable(&fifo));
        let (tx, rx) = mpsc::channel();
        let path = fifo.clone();
        std::thread::spawn(move || {
            let _ = tx.send(read_regular(&path));
        });
        let got = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("reading a FIFO without a writer blocked");
        assert_eq!(got, Err(ReadError::NotRegular));
        let file = dir.join("regular.json");
        std::fs::write(&file, "{}").unwrap();
        assert!(is_watchable(&file));
        assert_eq!(read_regular(&file).as_deref(), Ok("{}"));
        std::fs::write(&file, b"\xff{}").unwrap();
        assert_eq!(read_regular(&file), Err(ReadError::NotUtf8));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
