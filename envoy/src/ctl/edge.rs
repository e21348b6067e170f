//! A running edge as `edge-ctl` sees it: the listener (the filter's management endpoints under
//! the admin prefix, with the admin token) and Envoy's admin interface (stats, ECDS counters).

use std::collections::BTreeMap;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use serde_json::Value;

use super::exit::CtlError;
use crate::launch::{http_request_bounded, HttpResponse};

/// The longest one HTTP exchange with the edge or Envoy's admin may take.
pub const EXCHANGE_DEADLINE: Duration = Duration::from_secs(20);
/// The largest answer read from the edge or Envoy's admin.
pub const MAX_ANSWER_BYTES: usize = 16 << 20;

fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<HttpResponse> {
    http_request_bounded(
        addr,
        (method, path, headers, body),
        EXCHANGE_DEADLINE,
        MAX_ANSWER_BYTES,
    )
}

#[derive(Debug, Clone)]
pub struct Edge {
    pub listen: SocketAddr,
    pub admin: SocketAddr,
    pub token: Option<String>,
    /// `admin.path_prefix` of the filter (`/api/v1/performance`).
    pub prefix: String,
}

/// `HOST:PORT` or `http://HOST:PORT[/]` to a socket address (`https://` is refused: edge-ctl
/// speaks plain HTTP to a local edge).
pub fn parse_address(text: &str) -> Result<SocketAddr, String> {
    let trimmed = text.trim();
    if trimmed.starts_with("https://") {
        return Err(format!(
            "{text:?}: https is not supported (give http://HOST:PORT or HOST:PORT)"
        ));
    }
    let bare = trimmed.trim_start_matches("http://").trim_end_matches('/');
    bare.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            format!("{text:?} is not HOST:PORT or http://HOST:PORT (e.g. 127.0.0.1:10000)")
        })
}

impl Edge {
    fn unreachable(&self, what: &str, err: impl std::fmt::Display) -> CtlError {
        CtlError::Unreachable(format!("{what}: {err}"))
    }

    fn auth_headers(&self) -> Vec<(&str, &str)> {
        match &self.token {
            Some(token) => vec![("x-edge-admin-token", token.as_str())],
            None => Vec::new(),
        }
    }

    /// `GET <prefix><path>` on the listener, as JSON; a non-2xx answer is an error (health's
    /// 503 is still JSON: see [`Edge::health`]).
    pub fn management(&self, path: &str) -> Result<Value, CtlError> {
        let url = format!("{}{path}", self.prefix);
        let response = http_request(self.listen, "GET", &url, &self.auth_headers(), b"")
            .map_err(|err| self.unreachable(&format!("GET {url} on {}", self.listen), err))?;
        self.json(&url, &response, &[200])
    }

    /// `GET <prefix>/health` (200 or 503), with its `status`.
    pub fn health(&self) -> Result<Value, CtlError> {
        let url = format!("{}/health", self.prefix);
        let response = http_request(self.listen, "GET", &url, &[], b"")
            .map_err(|err| self.unreachable(&format!("GET {url} on {}", self.listen), err))?;
        let health = self.json(&url, &response, &[200, 503])?;
        shaped(health, &url, |h| h["status"].is_string(), "a `status`")
    }

    /// `GET <prefix>/metrics`, with its `services` list.
    pub fn metrics(&self) -> Result<Value, CtlError> {
        let url = format!("{}/metrics", self.prefix);
        shaped(
            self.management("/metrics")?,
            &url,
            |m| m["services"].is_array(),
            "a `services` list",
        )
    }

    /// `POST <prefix><path>` with a JSON body: the status and the JSON answer.
    pub fn post(&self, path: &str, body: &Value) -> Result<(u16, Value), CtlError> {
        let url = format!("{}{path}", self.prefix);
        let mut headers = self.auth_headers();
        headers.push(("content-type", "application/json"));
        let body = body.to_string();
        let response = http_request(self.listen, "POST", &url, &headers, body.as_bytes())
            .map_err(|err| self.unreachable(&format!("POST {url} on {}", self.listen), err))?;
        let value = serde_json::from_slice(&response.body).unwrap_or(Value::Null);
        Ok((response.status, value))
    }

    fn json(&self, url: &str, response: &HttpResponse, ok: &[u16]) -> Result<Value, CtlError> {
        if !ok.contains(&response.status) {
            let hint = match response.status {
                401 | 403 => " (give the admin token: --token or EDGE_ADMIN_TOKEN)",
                _ => "",
            };
            return Err(CtlError::Unreachable(format!(
                "GET {url}: status {}{hint}: {}",
                response.status,
                response.text().chars().take(200).collect::<String>()
            )));
        }
        match serde_json::from_slice(&response.body) {
            Ok(Value::Object(map)) => Ok(Value::Object(map)),
            Ok(_) => Err(CtlError::Unreachable(format!(
                "GET {url}: not a JSON object (is this the edge?)"
            ))),
            Err(err) => Err(self.unreachable(&format!("GET {url}: not JSON"), err)),
        }
    }

    /// Envoy's counters and gauges whose names match `filter` (a regular expression), by name.
    pub fn envoy_stats(&self, filter: &str) -> Result<BTreeMap<String, u64>, CtlError> {
        let url = format!("/stats?filter={filter}");
        let response = http_request(self.admin, "GET", &url, &[], b"")
            .map_err(|err| self.unreachable(&format!("Envoy admin {}", self.admin), err))?;
        if response.status != 200 {
            return Err(CtlError::Unreachable(format!(
                "Envoy admin {}{url}: status {}",
                self.admin, response.status
            )));
        }
        let text = response.text();
        // Envoy's text stats are `name: value` lines; anything else is not Envoy's admin.
        if text
            .lines()
            .any(|line| !line.trim().is_empty() && !line.contains(": "))
        {
            return Err(CtlError::Unreachable(format!(
                "Envoy admin {}{url}: not Envoy's stats (is this Envoy's admin address?)",
                self.admin
            )));
        }
        Ok(parse_stats(&text))
    }
}

/// `value` if `check` holds: an answer of another shape is not the edge's (exit 3, not a
/// failed check).
fn shaped(
    value: Value,
    url: &str,
    check: impl Fn(&Value) -> bool,
    what: &str,
) -> Result<Value, CtlError> {
    if check(&value) {
        Ok(value)
    } else {
        Err(CtlError::Unreachable(format!(
            "GET {url}: the answer has no {what} (is this the edge?)"
        )))
    }
}

/// `name: value` lines with integer values (histograms are left out).
pub fn parse_stats(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|line| line.split_once(": "))
        .filter_map(|(name, value)| Some((name.to_string(), value.trim().parse().ok()?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_stats() {
        assert_eq!(
            parse_address("http://127.0.0.1:10000/").unwrap().port(),
            10000
        );
        assert!(parse_address("nowhere").is_err());
        let stats = parse_stats("wasmcustom.edge.cache.l1.hit: 5\nx.hist: P0(nan,1)\nv: \"2\"\n");
        assert_eq!(stats.get("wasmcustom.edge.cache.l1.hit"), Some(&5));
        assert_eq!(stats.len(), 1);
    }
}
