//! The launcher's watch on the plugin configuration file (`--plugin-config`): when its content
//! changes, the new configuration is validated with the filter's own code and written to the
//! ECDS file (see [`super::live`]). An invalid one is written too — the filter refuses it, Envoy
//! rejects the update and keeps the old configuration, and `/health` says so — after the
//! launcher printed the refusal with its field path.

use std::path::PathBuf;
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

/// One look at the file: an event when its content differs from `last`.
fn poll(source: &std::path::Path, last: &mut String, live: &LiveConfig) -> Option<ReloadEvent> {
    // Missing or unreadable for a moment (editors replace files by rename): not a change.
    let text = std::fs::read_to_string(source).ok()?;
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
