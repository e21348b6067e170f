//! A `Cache-Status` header (RFC 9211) copied from a real response, explained in words.

use serde::Serialize;

/// One cache's member of the list, in words.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusMember {
    pub cache: String,
    pub explanation: Vec<String>,
}

/// Splits on `sep` outside double quotes.
fn split_outside_quotes(text: &str, sep: char) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (at, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == sep && !quoted => {
                parts.push(text.get(start..at).unwrap_or(""));
                start = at + c.len_utf8();
            }
            _ => {}
        }
    }
    parts.push(text.get(start..).unwrap_or(""));
    parts
}

fn unquote(value: &str) -> String {
    let value = value.trim();
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => inner.replace("\\\"", "\"").replace("\\\\", "\\"),
        None => value.to_string(),
    }
}

/// Each member of `value` (the cache nearest the origin first, as the list is written).
pub fn explain_cache_status(value: &str) -> Vec<StatusMember> {
    let value = value
        .trim()
        .strip_prefix("cache-status:")
        .or_else(|| value.trim().strip_prefix("Cache-Status:"))
        .unwrap_or(value);
    split_outside_quotes(value, ',')
        .into_iter()
        .filter(|m| !m.trim().is_empty())
        .map(|member| {
            let mut parts = split_outside_quotes(member, ';').into_iter();
            let cache = unquote(parts.next().unwrap_or(""));
            let mut explanation = Vec::new();
            let mut hit = false;
            for param in parts {
                let (name, value) = match param.split_once('=') {
                    Some((n, v)) => (n.trim().to_ascii_lowercase(), Some(unquote(v))),
                    None => (param.trim().to_ascii_lowercase(), None),
                };
                let v = value.clone().unwrap_or_default();
                explanation.push(match name.as_str() {
                    "hit" => {
                        hit = true;
                        "hit: answered from the cache, the origin was not asked".to_string()
                    }
                    "fwd" => format!(
                        "fwd={v}: forwarded to the origin because {}",
                        match v.as_str() {
                            "uri-miss" => "nothing was stored for this key",
                            "vary-miss" => "what was stored is another variant (Vary)",
                            "miss" => "what was stored may not answer (purged or invalidated)",
                            "stale" => "what was stored is stale (or the request asked to revalidate)",
                            "bypass" => "the cache was told not to answer this request",
                            "method" => "the method is not cacheable",
                            "request" => "the request's directives asked so",
                            "partial" => "only part of the response was stored",
                            _ => "of a reason this explainer does not know",
                        }
                    ),
                    "fwd-status" => format!("fwd-status={v}: the origin answered the forwarded request with {v}"),
                    "stored" => "stored: the origin's response was stored for later requests".to_string(),
                    "collapsed" => "collapsed: answered with another request's response to the same key (coalescing)".to_string(),
                    "ttl" => explain_ttl(&v),
                    "detail" => format!(
                        "detail={v}: {}",
                        match v.as_str() {
                            "stale-while-revalidate" => "served stale within stale-while-revalidate; a refresh runs in the background",
                            "stale-if-error" => "served stale because the origin failed (stale-if-error)",
                            "rate-limited" => "the tenant was over its rate limit: answered from a stored response (rate_limit.serve_stale_when_limited)",
                            "circuit-open" => "the service's breaker is open: answered from a stored response instead of 503",
                            _ => "implementation-specific detail",
                        }
                    ),
                    "key" => match describe_key(&v) {
                        Some(key) => format!("key: service {key} (cache.debug is on for it)"),
                        None => format!(
                            "key={v:?}: not a key this filter writes (v2|service|tenant|URL|header=value…)"
                        ),
                    },
                    other => format!("{other}: a parameter this explainer does not know"),
                });
            }
            let fwd = explanation.iter().any(|e| e.starts_with("fwd="));
            if !hit && !fwd {
                explanation.insert(0, "neither hit nor fwd: the cache did not say how it answered".to_string());
            }
            if hit && fwd {
                explanation.insert(0, "hit and fwd together: contradictory (RFC 9211: a member has one or the other; hit says the origin was not asked, fwd that it was)".to_string());
            }
            StatusMember { cache, explanation }
        })
        .collect()
}

/// `ttl` (RFC 9211: an integer number of seconds, negative once stale; Structured Fields
/// integers have at most 15 digits and no fraction or exponent).
fn explain_ttl(v: &str) -> String {
    let digits = v.strip_prefix('-').unwrap_or(v);
    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
        if digits.len() > 15 {
            return format!(
                "ttl={v}: more than the 15 digits a Structured Fields integer may have"
            );
        }
        return match v.parse::<i64>() {
            Ok(ttl) if ttl >= 0 => format!("ttl={ttl}: fresh for {ttl} more seconds"),
            Ok(ttl) => format!("ttl={ttl}: stale for {} seconds", ttl.unsigned_abs()),
            Err(_) => format!("ttl={v}: not a number"),
        };
    }
    // A decimal or an exponent (`1.5`, `1e3`): a number, but not the integer RFC 9211 asks for
    // (told apart by its characters: parsing floats would add 20 KB to the page's .wasm).
    let numeric = digits.bytes().any(|b| b.is_ascii_digit())
        && digits
            .bytes()
            .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    if numeric {
        format!(
            "ttl={v}: a number but not an integer, as RFC 9211 requires (no fraction, no exponent)"
        )
    } else {
        format!("ttl={v}: not a number")
    }
}

/// The filter's key (`v2|service|tenant|url|header=value…`, newlines shown as `|`) in words;
/// `None` when it is not one.
fn describe_key(key: &str) -> Option<String> {
    let mut parts = key.split('|');
    if parts.next() != Some("v2") {
        return None;
    }
    let service = parts.next().filter(|s| !s.is_empty())?;
    let tenant = parts.next()?;
    let url = parts.next().filter(|u| u.contains("://"))?;
    let headers: Vec<&str> = parts.collect();
    let tenant = if tenant.is_empty() {
        "no tenant".to_string()
    } else {
        format!("tenant {tenant}")
    };
    let headers = if headers.is_empty() {
        String::new()
    } else {
        format!(", key headers {}", headers.join(", "))
    };
    Some(format!("{service}, {tenant}, URL {url}{headers}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn members_are_explained() {
        let members = explain_cache_status(
            r#"origin-cache; hit, edge; fwd=uri-miss; stored; key="v2|leads|loc-1|http://a/l/7""#,
        );
        assert_eq!(members.len(), 2);
        assert_eq!(members[1].cache, "edge");
        assert!(members[1].explanation[0].contains("nothing was stored"));
        assert!(members[1].explanation[1].starts_with("stored"));
        assert!(
            members[1].explanation[2].contains("tenant loc-1"),
            "{:?}",
            members[1]
        );
        let stale = explain_cache_status("edge; hit; ttl=-3; detail=stale-while-revalidate");
        assert!(stale[0].explanation[1].contains("stale for 3 seconds"));
    }

    #[test]
    fn odd_members_are_called_what_they_are() {
        let garbage = explain_cache_status(r#"edge; hit; key="garbage""#);
        assert!(
            garbage[0].explanation[1].contains("not a key this filter writes"),
            "{garbage:?}"
        );
        let exponent = explain_cache_status("edge; hit; ttl=1e3");
        assert!(
            exponent[0].explanation[1].contains("not an integer"),
            "{exponent:?}"
        );
        let huge = explain_cache_status("edge; hit; ttl=99999999999999999999");
        assert!(huge[0].explanation[1].contains("15 digits"), "{huge:?}");
        let both = explain_cache_status("edge; hit; fwd=miss");
        assert!(
            both[0].explanation[0].starts_with("hit and fwd together: contradictory"),
            "{both:?}"
        );
    }
}
