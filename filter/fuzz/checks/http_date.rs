//! HTTP dates (`Date`, `Expires`, `Last-Modified`, `If-Modified-Since` from clients and
//! origins): parsing never panics, names are case-insensitive, every parsed instant formats to
//! an IMF-fixdate that parses back to it, and every instant formats and parses back.

use edge_filter::policy::cache::http_date::{format_http_date, parse_http_date};

/// 9999-12-31T23:59:59Z, the last instant an IMF-fixdate can show.
const LAST_FORMATTED: u64 = 253_402_300_799;

pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    if let Some(t) = parse_http_date(&text) {
        // A leap second on the last day reads as the second after.
        assert!(t <= LAST_FORMATTED + 1, "{t} past year 9999");
        assert_eq!(parse_http_date(&text.to_ascii_uppercase()), Some(t), "case");
        assert_eq!(parse_http_date(&text.to_ascii_lowercase()), Some(t), "case");
        let formatted = format_http_date(t);
        assert_eq!(
            parse_http_date(&formatted),
            Some(t.min(LAST_FORMATTED)),
            "{text:?} → {formatted:?}"
        );
    }

    let mut word = [0u8; 8];
    for (slot, byte) in word.iter_mut().zip(data) {
        *slot = *byte;
    }
    let t = u64::from_le_bytes(word);
    for t in [t, t % (LAST_FORMATTED + 1)] {
        let formatted = format_http_date(t);
        assert_eq!(formatted.len(), 29, "{formatted:?}");
        assert_eq!(parse_http_date(&formatted), Some(t.min(LAST_FORMATTED)));
    }
}
