//! The launcher's watch on the plugin configuration file (`--plugin-config`): when its content
//! changes, the new configuration is validated with the filter's own code and written to the
//! ECDS file (see [`super::live`]). An invalid one is not handed to Envoy: the launcher prints
//! the refusal with its field path and writes the configuration still serving with the reason
//! as its `update_refused` note, so `/health` (answered from the serving configuration) reports
//! it — and stops reporting it once a valid configuration is written, even one byte-identical
//! to the one serving (Envoy then reuses its plugin without configuring it again).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::live::{restart_only_change, validate_plugin_config, LiveConfig};

/// How often the file is looked at.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);

/// What happened to one change of the watched file.
#[derive(Debug, Clone, PartialEq)]
pub enum ReloadEvent {
    /// Valid, written to the ECDS file as `version`.
    Applied { version: u64 },
    /// Refused by the filter's validation (`reason` names the field); the previous
    /// configuration keeps serving, written again as `version` with the reason as its
    /// `update_refused` note.
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
                let mut seen = Seen {
                    last: current.clone(),
                    serving: current,
                };
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(POLL_INTERVAL);
                    let Some(event) = poll(&source, &mut seen, &live) else {
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

/// What the watcher has seen: the file's last content, and the valid configuration serving.
struct Seen {
    last: String,
    serving: String,
}

/// The configuration `serving` with `reason` as its `update_refused` note (what the launcher
/// writes instead of a refused configuration).
pub fn with_refusal_note(serving: &str, reason: &str) -> String {
    let Ok(serde_json::Value::Object(mut config)) = serde_json::from_str(serving) else {
        return serving.to_string();
    };
    let mut end = reason
        .len()
        .min(edge_filter::policy::MAX_UPDATE_REFUSED_LEN);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    config.insert(
        "update_refused".to_string(),
        serde_json::Value::String(reason.get(..end).unwrap_or_default().to_string()),
    );
    serde_json::to_string_pretty(&serde_json::Value::Object(config))
        .unwrap_or_else(|_| serving.to_string())
}

/// One look at the file: an event when its content differs from the last seen.
fn poll(source: &Path, seen: &mut Seen, live: &LiveConfig) -> Option<ReloadEvent> {
    let last = &mut seen.last;
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
    let verdict = validate_plugin_config(&text)
        .map_err(|err| err.to_string())
        .and_then(|()| match restart_only_change(&seen.serving, &text) {
            Some(reason) => Err(reason),
            None => Ok(()),
        });
    Some(match verdict {
        Ok(()) => match live.write(&text) {
            Ok(version) => {
                seen.serving = text;
                ReloadEvent::Applied { version }
            }
            Err(err) => ReloadEvent::Failed {
                reason: err.to_string(),
            },
        },
        Err(reason) => match live.write(&with_refusal_note(&seen.serving, &reason)) {
            Ok(version) => ReloadEvent::Refused { version, reason },
            Err(err) => ReloadEvent::Failed {
                reason: err.to_string(),
            },
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
            "changed; INVALID ({reason}); not applied: the previous configuration keeps serving \
             (written again as ECDS version {version} with this refusal, which /health reports)"
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

    #[test]
    fn a_refusal_is_noted_in_the_serving_configuration_which_the_filter_accepts() {
        let serving = r#"{"services": [{"name": "a", "match": {"path_prefix": "/a/"}}]}"#;
        let noted = with_refusal_note(serving, "limits.l2_slots: must be at least 1");
        let config = edge_filter::policy::Config::parse(noted.as_bytes()).unwrap();
        assert_eq!(
            config.update_refused.as_deref(),
            Some("limits.l2_slots: must be at least 1")
        );
        assert_eq!(config.services.len(), 1);
        // A second refusal replaces the note.
        let again = with_refusal_note(&noted, "config: empty (write {} for all defaults)");
        let config = edge_filter::policy::Config::parse(again.as_bytes()).unwrap();
        assert_eq!(
            config.update_refused.as_deref(),
            Some("config: empty (write {} for all defaults)")
        );
    }
}
