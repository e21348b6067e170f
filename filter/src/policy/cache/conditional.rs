//! A client's conditional request against a stored entry (RFC 9110 §13.1, RFC 9111 §4.3.2).

use super::entry::Entry;
use super::freshness::conditional_matches;
use super::http_date::parse_http_date;
use crate::policy::header_list::{header, HeaderPair};

/// The time `If-Modified-Since` is compared with (RFC 9111 §4.3.2): the entry's
/// `Last-Modified`, else its `Date`, else the time its response was received.
pub fn modification_time(entry: &Entry) -> u64 {
    entry
        .last_modified
        .or(entry.date)
        .unwrap_or(entry.response_time)
}

/// Whether the request's conditionals (`If-None-Match`, else `If-Modified-Since`) match the
/// entry, so that the cache answers `304`.
pub fn not_modified(request_headers: &[impl HeaderPair], entry: &Entry) -> bool {
    conditional_matches(
        header(request_headers, "if-none-match"),
        header(request_headers, "if-modified-since").and_then(parse_http_date),
        entry.etag.as_deref(),
        Some(modification_time(entry)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::cache::http_date::format_http_date;

    fn entry(last_modified: Option<u64>, date: Option<u64>) -> Entry {
        Entry {
            key: "k".into(),
            status: 200,
            request_time: 3000,
            response_time: 3000,
            date,
            freshness_lifetime: 60,
            last_modified,
            ..Default::default()
        }
    }

    #[test]
    fn last_modified_then_date_then_received() {
        assert_eq!(modification_time(&entry(Some(1000), Some(2000))), 1000);
        assert_eq!(modification_time(&entry(None, Some(2000))), 2000);
        assert_eq!(modification_time(&entry(None, None)), 3000);
    }

    #[test]
    fn if_modified_since_without_last_modified() {
        let since = |t: u64| vec![("if-modified-since".to_string(), format_http_date(t))];
        let dated = entry(None, Some(2000));
        assert!(not_modified(&since(2000), &dated));
        assert!(not_modified(&since(2500), &dated));
        assert!(!not_modified(&since(1999), &dated));
        assert!(!not_modified(
            crate::policy::header_list::NO_HEADERS,
            &dated
        ));
    }
}
