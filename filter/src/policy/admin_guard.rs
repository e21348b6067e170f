//! Who may make a management request, including what a browser could be made to send: a page
//! on another site must not reach the endpoints through the operator's browser, neither by a
//! cross-site request (CSRF: refused by `Origin`, `Sec-Fetch-Site` and, for writes, a
//! `Content-Type` no HTML form or simple request can set) nor by DNS rebinding (the address
//! allow-list trusts a client's network, so it also needs a `Host` that is no site's name: an IP
//! literal, `localhost`, or an entry of `admin.allowed_hosts`). A token is something a foreign
//! page cannot have, so a request with the right token may name any host.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::AdminConfig;

/// What the guard looks at in a management request.
#[derive(Debug, Clone, Copy, Default)]
pub struct ManagementRequest<'a> {
    pub method: &'a str,
    /// `:scheme` (`http`, `https`).
    pub scheme: &'a str,
    /// `:authority` (`host[:port]`).
    pub authority: &'a str,
    pub origin: Option<&'a str>,
    pub sec_fetch_site: Option<&'a str>,
    pub content_type: Option<&'a str>,
    /// The token presented (`x-edge-admin-token` or `Authorization: Bearer`).
    pub token: Option<&'a str>,
    /// The downstream peer (`ip:port`).
    pub client_address: Option<&'a str>,
}

/// How a management request got in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Token,
    Address,
}

/// Why a management request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No token and no allowed address: `401`.
    NoToken,
    /// A wrong token (and no allowed address): `403`.
    BadToken,
    /// Sent by a page of another site (`Origin`, `Sec-Fetch-Site`): `403`.
    CrossSite,
    /// An allowed address, but a `Host` that could be a rebound name: `403`.
    ForeignHost,
    /// A write without `Content-Type: application/json`: `415`.
    NotJson,
}

impl Refusal {
    pub fn status(self) -> u16 {
        match self {
            Refusal::NoToken => 401,
            Refusal::BadToken | Refusal::CrossSite | Refusal::ForeignHost => 403,
            Refusal::NotJson => 415,
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Refusal::NoToken => "an admin token is required",
            Refusal::BadToken => "the admin token is not valid",
            Refusal::CrossSite => "cross-site requests are refused",
            Refusal::ForeignHost => {
                "this Host needs the admin token (an allowed address needs an IP, localhost or admin.allowed_hosts)"
            }
            Refusal::NotJson => "management writes need Content-Type: application/json",
        }
    }
}

/// Lets a management request in, or says why not. Cross-site first (a token does not make a
/// cross-site request safe), then the token, then the allowed address with its `Host`, then
/// the content type of writes.
pub fn admit(admin: &AdminConfig, request: &ManagementRequest<'_>) -> Result<Access, Refusal> {
    if is_cross_site(request) {
        return Err(Refusal::CrossSite);
    }
    let access = if admin.accepts(request.token) {
        Access::Token
    } else if !admin.allow_addresses.is_empty()
        && request
            .client_address
            .is_some_and(|address| admin.allows_address(address))
    {
        if !admin.allows_host(request.authority) {
            return Err(Refusal::ForeignHost);
        }
        Access::Address
    } else if request.token.is_some() {
        return Err(Refusal::BadToken);
    } else {
        return Err(Refusal::NoToken);
    };
    if request.method.eq_ignore_ascii_case("POST") && !is_json(request.content_type) {
        return Err(Refusal::NotJson);
    }
    Ok(access)
}

/// `Sec-Fetch-Site` other than `same-origin`/`none`, or an `Origin` that is not the request's
/// own scheme, host and port (`null` included).
fn is_cross_site(request: &ManagementRequest<'_>) -> bool {
    let fetch_site = request.sec_fetch_site.map(str::trim);
    if fetch_site.is_some_and(|site| {
        !site.eq_ignore_ascii_case("same-origin") && !site.eq_ignore_ascii_case("none")
    }) {
        return true;
    }
    match request.origin {
        None => false,
        Some(origin) => !same_origin(origin.trim(), request.scheme, request.authority),
    }
}

fn same_origin(origin: &str, request_scheme: &str, authority: &str) -> bool {
    let Some((scheme, rest)) = origin.split_once("://") else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case(request_scheme) {
        return false;
    }
    let default_port = match scheme.to_ascii_lowercase().as_str() {
        "http" => "80",
        "https" => "443",
        _ => return false,
    };
    if rest.contains(['/', '?', '#', '@']) {
        return false;
    }
    let (origin_host, origin_port) = split_host_port(rest);
    let (host, port) = split_host_port(authority);
    !host.is_empty()
        && origin_host.eq_ignore_ascii_case(host)
        && origin_port.unwrap_or(default_port) == port.unwrap_or(default_port)
}

/// `host[:port]` or `[v6][:port]` into host and port.
fn split_host_port(authority: &str) -> (&str, Option<&str>) {
    if authority.starts_with('[') {
        return match authority.split_once(']') {
            Some((host, rest)) => (
                authority.get(..host.len() + 1).unwrap_or(authority),
                rest.strip_prefix(':'),
            ),
            None => (authority, None),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (authority, None),
    }
}

/// `application/json`, optionally with parameters (`; charset=utf-8`).
fn is_json(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|value| value.split(';').next())
        .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
}

/// Whether `authority` names no site a page could be served from: an IP literal, `localhost`,
/// or one of `allowed` (lower-case host names).
pub fn host_is_local_or_listed(authority: &str, allowed: &[String]) -> bool {
    let (host, _) = split_host_port(authority);
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    if host.is_empty() {
        return false;
    }
    if host.parse::<Ipv4Addr>().is_ok()
        || host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .is_some_and(|h| h.parse::<Ipv6Addr>().is_ok())
    {
        return true;
    }
    host == "localhost" || allowed.contains(&host)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "a-token-of-16-chars";

    fn admin(allowed_hosts: &[&str]) -> AdminConfig {
        AdminConfig {
            token: Some(TOKEN.into()),
            allow_addresses: vec!["127.0.0.1".into()],
            allowed_hosts: allowed_hosts.iter().map(|h| h.to_string()).collect(),
            ..AdminConfig::default()
        }
    }

    fn loopback<'a>(method: &'a str, authority: &'a str) -> ManagementRequest<'a> {
        ManagementRequest {
            method,
            scheme: "http",
            authority,
            client_address: Some("127.0.0.1:50000"),
            ..ManagementRequest::default()
        }
    }

    #[test]
    fn the_allow_list_needs_a_host_that_is_no_site() {
        let config = admin(&["edge.internal"]);
        for host in [
            "127.0.0.1:10000",
            "127.0.0.1",
            "[::1]:8080",
            "localhost:10000",
            "LOCALHOST",
            "edge.internal:9901",
            "Edge.Internal.",
        ] {
            assert_eq!(
                admit(&config, &loopback("GET", host)),
                Ok(Access::Address),
                "{host}"
            );
        }
        for host in [
            "evil.example",
            "evil.example:10000",
            "127.0.0.1.evil.example",
            "",
            "[::1",
        ] {
            assert_eq!(
                admit(&config, &loopback("GET", host)),
                Err(Refusal::ForeignHost),
                "{host}"
            );
        }
        // With the token, any host (a rebinding page cannot have it).
        let with_token = ManagementRequest {
            token: Some(TOKEN),
            ..loopback("GET", "evil.example")
        };
        assert_eq!(admit(&config, &with_token), Ok(Access::Token));
    }

    #[test]
    fn cross_site_requests_are_refused_even_with_the_token() {
        let config = admin(&[]);
        let from = |origin: &'static str, fetch_site: Option<&'static str>| ManagementRequest {
            origin: Some(origin),
            sec_fetch_site: fetch_site,
            token: Some(TOKEN),
            content_type: Some("application/json"),
            ..loopback("POST", "127.0.0.1:10000")
        };
        for (origin, site) in [
            ("http://evil.example", None),
            ("null", None),
            ("http://127.0.0.1:10001", None),
            ("https://127.0.0.1:10000", None),
            ("http://127.0.0.1:10000", Some("cross-site")),
            ("http://127.0.0.1:10000", Some("same-site")),
        ] {
            assert_eq!(
                admit(&config, &from(origin, site)),
                Err(Refusal::CrossSite),
                "{origin} {site:?}"
            );
        }
        assert_eq!(
            admit(
                &config,
                &from("http://127.0.0.1:10000", Some("same-origin"))
            ),
            Ok(Access::Token)
        );
        let default_port = ManagementRequest {
            origin: Some("http://localhost"),
            ..loopback("GET", "localhost:80")
        };
        assert_eq!(admit(&config, &default_port), Ok(Access::Address));
        let typed = ManagementRequest {
            sec_fetch_site: Some("none"),
            ..loopback("GET", "127.0.0.1:10000")
        };
        assert_eq!(admit(&config, &typed), Ok(Access::Address));
    }

    #[test]
    fn writes_need_json() {
        let config = admin(&[]);
        for content_type in [
            None,
            Some("text/plain"),
            Some("application/x-www-form-urlencoded"),
        ] {
            let write = ManagementRequest {
                content_type,
                ..loopback("POST", "127.0.0.1")
            };
            assert_eq!(admit(&config, &write), Err(Refusal::NotJson));
        }
        let json = ManagementRequest {
            content_type: Some("Application/JSON; charset=utf-8"),
            ..loopback("POST", "127.0.0.1")
        };
        assert_eq!(admit(&config, &json), Ok(Access::Address));
        assert_eq!(
            admit(&config, &loopback("PURGE", "127.0.0.1")),
            Ok(Access::Address)
        );
    }

    #[test]
    fn without_access_401_or_403() {
        let config = admin(&[]);
        let stranger = ManagementRequest {
            client_address: Some("10.0.0.1:1"),
            ..loopback("GET", "127.0.0.1")
        };
        assert_eq!(admit(&config, &stranger), Err(Refusal::NoToken));
        let wrong = ManagementRequest {
            token: Some("wrong-token-wrong-token"),
            ..stranger
        };
        assert_eq!(admit(&config, &wrong), Err(Refusal::BadToken));
        // The token from a non-browser client (no Origin) on any host.
        let right = ManagementRequest {
            token: Some(TOKEN),
            ..stranger
        };
        assert_eq!(admit(&config, &right), Ok(Access::Token));
    }
}
