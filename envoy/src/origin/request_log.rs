//! The bounded log of recent requests behind `GET /__origin/requests`.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use axum::http::HeaderMap;
use serde::Serialize;

/// How many requests the log keeps (the oldest are dropped first).
pub const REQUEST_LOG_CAPACITY: usize = 1024;

/// One request as the origin saw it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LoggedRequest {
    /// `GET`, `POST`, ...
    pub method: String,
    /// The request target: path plus `?query` when there is one.
    pub path: String,
    /// The endpoint name (`leads`, ...).
    pub endpoint: String,
    /// Header names in lower case; repeated headers joined with `", "`.
    pub headers: BTreeMap<String, String>,
}

impl LoggedRequest {
    /// Builds an entry, folding the header map.
    pub fn new(method: &str, path: &str, endpoint: &str, headers: &HeaderMap) -> LoggedRequest {
        let mut folded: BTreeMap<String, String> = BTreeMap::new();
        for (name, value) in headers {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            folded
                .entry(name.as_str().to_ascii_lowercase())
                .and_modify(|v| {
                    v.push_str(", ");
                    v.push_str(&value);
                })
                .or_insert(value);
        }
        LoggedRequest {
            method: method.to_string(),
            path: path.to_string(),
            endpoint: endpoint.to_string(),
            headers: folded,
        }
    }
}

/// A ring buffer of the last [`REQUEST_LOG_CAPACITY`] requests, oldest first.
#[derive(Debug, Default)]
pub struct RequestLog {
    entries: Mutex<VecDeque<LoggedRequest>>,
}

impl RequestLog {
    /// Appends an entry, dropping the oldest once full.
    pub fn push(&self, entry: LoggedRequest) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        while entries.len() >= REQUEST_LOG_CAPACITY {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// The entries, oldest first.
    pub fn snapshot(&self) -> Vec<LoggedRequest> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.iter().cloned().collect()
    }

    /// Forgets every entry.
    pub fn clear(&self) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn folds_repeated_headers_lower_case() {
        let mut h = HeaderMap::new();
        h.append("X-Edge-Service", HeaderValue::from_static("leads"));
        h.append("accept", HeaderValue::from_static("a"));
        h.append("accept", HeaderValue::from_static("b"));
        let e = LoggedRequest::new("GET", "/api/v1/leads/1", "leads", &h);
        assert_eq!(e.headers["x-edge-service"], "leads");
        assert_eq!(e.headers["accept"], "a, b");
    }

    #[test]
    fn ring_buffer_is_bounded_and_ordered() {
        let log = RequestLog::default();
        let h = HeaderMap::new();
        for i in 0..REQUEST_LOG_CAPACITY + 10 {
            log.push(LoggedRequest::new("GET", &format!("/{i}"), "health", &h));
        }
        let snap = log.snapshot();
        assert_eq!(snap.len(), REQUEST_LOG_CAPACITY);
        assert_eq!(snap[0].path, "/10");
        assert_eq!(
            snap[REQUEST_LOG_CAPACITY - 1].path,
            format!("/{}", REQUEST_LOG_CAPACITY + 9)
        );
        log.clear();
        assert!(log.snapshot().is_empty());
    }
}
