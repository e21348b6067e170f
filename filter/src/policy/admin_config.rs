//! Top-level `admin` section: who may call the management endpoints (purge, later metrics).

use std::fmt;
use std::net::{IpAddr, SocketAddr};

use serde::Deserialize;

use super::ConfigError;

#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Bearer token for management requests (`Authorization: Bearer <token>` or
    /// `x-edge-admin-token`). Absent: every management request is refused with 403.
    #[serde(default)]
    pub token: Option<String>,
    /// Where the management endpoints live.
    #[serde(default = "default_path_prefix")]
    pub path_prefix: String,
    /// Client addresses (`10.0.0.7`, `10.0.0.0/8`, `::1`) allowed to call the management
    /// endpoints without the token (Envoy's `source.address`, i.e. the downstream peer).
    #[serde(default)]
    pub allow_addresses: Vec<String>,
    /// Host names (besides IP literals and `localhost`) a request from an allowed address may
    /// name in `Host`; any other name needs the token (DNS rebinding).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

fn default_path_prefix() -> String {
    "/api/v1/performance".to_string()
}

impl Default for AdminConfig {
    fn default() -> Self {
        Self {
            token: None,
            path_prefix: default_path_prefix(),
            allow_addresses: Vec::new(),
            allowed_hosts: Vec::new(),
        }
    }
}

/// The token never reaches a log line, not even through `{:?}`.
impl fmt::Debug for AdminConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminConfig")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("path_prefix", &self.path_prefix)
            .field("allow_addresses", &self.allow_addresses)
            .field("allowed_hosts", &self.allowed_hosts)
            .finish()
    }
}

/// Most allow-list entries (each request to a management endpoint checks them all).
pub const MAX_ALLOWED_ADDRESSES: usize = 64;
/// Most `allowed_hosts` entries.
pub const MAX_ALLOWED_HOSTS: usize = 64;

/// A lower-case DNS name: letters, digits, `-` and `.`, at most 253 characters.
fn is_host_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && !name.starts_with('.')
        && !name.ends_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// `ip` or `ip/bits`.
fn parse_network(entry: &str) -> Option<(IpAddr, u32)> {
    let (address, bits) = match entry.split_once('/') {
        Some((address, bits)) => (address, Some(bits.parse::<u32>().ok()?)),
        None => (entry, None),
    };
    let address: IpAddr = address.parse().ok()?;
    let width = if address.is_ipv4() { 32 } else { 128 };
    let bits = bits.unwrap_or(width);
    (bits <= width).then_some((address, bits))
}

fn parse_client(address: &str) -> Option<IpAddr> {
    address
        .parse::<SocketAddr>()
        .map(|s| s.ip())
        .or_else(|_| address.parse::<IpAddr>())
        .ok()
        .map(|ip| match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        })
}

fn in_network(client: IpAddr, network: IpAddr, bits: u32) -> bool {
    match (client, network) {
        (IpAddr::V4(c), IpAddr::V4(n)) => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(c) & mask == u32::from(n) & mask
        }
        (IpAddr::V6(c), IpAddr::V6(n)) => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(c) & mask == u128::from(n) & mask
        }
        _ => false,
    }
}

/// Shortest token accepted: anything shorter is guessable.
pub const MIN_TOKEN_LEN: usize = 16;

impl AdminConfig {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        if let Some(token) = &self.token {
            if token.len() < MIN_TOKEN_LEN
                || token.contains(|c: char| c.is_whitespace() || c.is_control())
            {
                return Err(ConfigError::new(
                    "admin.token",
                    format!("must be at least {MIN_TOKEN_LEN} characters without spaces"),
                ));
            }
        }
        for (index, entry) in self.allow_addresses.iter().enumerate() {
            if parse_network(entry).is_none() {
                return Err(ConfigError::new(
                    format!("admin.allow_addresses[{index}]"),
                    format!("{entry:?} is not an IP address or CIDR block"),
                ));
            }
        }
        if self.allow_addresses.len() > MAX_ALLOWED_ADDRESSES {
            return Err(ConfigError::new(
                "admin.allow_addresses",
                format!("at most {MAX_ALLOWED_ADDRESSES} entries"),
            ));
        }
        for (index, host) in self.allowed_hosts.iter().enumerate() {
            if !is_host_name(host) {
                return Err(ConfigError::new(
                    format!("admin.allowed_hosts[{index}]"),
                    format!("{host:?} is not a lower-case host name (no port, no wildcard)"),
                ));
            }
        }
        if self.allowed_hosts.len() > MAX_ALLOWED_HOSTS {
            return Err(ConfigError::new(
                "admin.allowed_hosts",
                format!("at most {MAX_ALLOWED_HOSTS} entries"),
            ));
        }
        if !self.path_prefix.starts_with('/')
            || self.path_prefix.len() < 2
            || self.path_prefix.ends_with('/')
        {
            return Err(ConfigError::new(
                "admin.path_prefix",
                "must start with '/' and not end with '/'",
            ));
        }
        Ok(())
    }

    /// Whether a client address (`ip`, `ip:port` or `[ipv6]:port`) is on the allow-list.
    pub fn allows_address(&self, address: &str) -> bool {
        let Some(client) = parse_client(address) else {
            return false;
        };
        self.allow_addresses
            .iter()
            .filter_map(|entry| parse_network(entry))
            .any(|(network, bits)| in_network(client, network, bits))
    }

    /// Whether a request from an allowed address may name this `Host`/`:authority`: an IP
    /// literal, `localhost` or an `allowed_hosts` entry (any port).
    pub fn allows_host(&self, authority: &str) -> bool {
        super::admin_guard::host_is_local_or_listed(authority, &self.allowed_hosts)
    }

    /// Constant-time comparison of a presented token with the configured one.
    pub fn accepts(&self, presented: Option<&str>) -> bool {
        let (Some(expected), Some(presented)) = (&self.token, presented) else {
            return false;
        };
        let (a, b) = (expected.as_bytes(), presented.as_bytes());
        let mut difference = a.len() ^ b.len();
        for (index, byte) in a.iter().enumerate() {
            difference |= usize::from(byte ^ b.get(index).copied().unwrap_or(0));
        }
        difference == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admin(allow: &[&str]) -> AdminConfig {
        AdminConfig {
            allow_addresses: allow.iter().map(|s| s.to_string()).collect(),
            ..AdminConfig::default()
        }
    }

    #[test]
    fn allow_list_matches_addresses_and_blocks() {
        let config = admin(&["127.0.0.1", "10.1.0.0/16", "fd00::/8"]);
        assert!(config.validate().is_ok());
        assert!(config.allows_address("127.0.0.1:51234"));
        assert!(config.allows_address("10.1.200.3:80"));
        assert!(config.allows_address("[fd12::1]:443"));
        assert!(config.allows_address("[::ffff:127.0.0.1]:9"));
        assert!(!config.allows_address("127.0.0.2:51234"));
        assert!(!config.allows_address("10.2.0.1:80"));
        assert!(!config.allows_address("not an address"));
        assert!(admin(&["0.0.0.0/0"]).allows_address("192.0.2.1:1"));
        assert!(!admin(&[]).allows_address("127.0.0.1:1"));
    }

    #[test]
    fn allowed_hosts_are_plain_lower_case_names() {
        let with = |hosts: &[&str]| AdminConfig {
            allowed_hosts: hosts.iter().map(|s| s.to_string()).collect(),
            ..AdminConfig::default()
        };
        assert!(with(&["edge.internal", "ops-1"]).validate().is_ok());
        for bad in ["Edge.internal", "edge:80", "*.example", "", ".x", "a b"] {
            let err = with(&["ok", bad]).validate().unwrap_err();
            assert_eq!(
                err.to_string().split(':').next(),
                Some("admin.allowed_hosts[1]"),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn bad_entries_are_refused_with_their_index() {
        for bad in ["localhost", "10.0.0.0/33", "::1/129", "10.0.0.1/x"] {
            let err = admin(&["127.0.0.1", bad]).validate().unwrap_err();
            assert_eq!(
                err.to_string().split(':').next(),
                Some("admin.allow_addresses[1]")
            );
        }
    }
}
