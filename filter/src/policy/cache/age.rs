//! The `Age` response field (RFC 9111 §5.1), read strictly.
//!
//! `Age` is a singleton: only its first field line counts, and of a list on that line only the
//! first member (RFC 9111 §5.1). A value that is not `delta-seconds` (`old`, `abc`, `-5`,
//! `1.5`, empty) could hide any age, so it is read as the greatest age there is
//! ([`DELTA_SECONDS_MAX`]): the response is stale, never fresh because its age read as 0.

use super::cache_control::DELTA_SECONDS_MAX;

/// The age (seconds) an `Age` field's first line states; [`DELTA_SECONDS_MAX`] when invalid.
pub fn parse_age(first_line: &str) -> u64 {
    let first = first_line
        .split(',')
        .next()
        .unwrap_or("")
        .trim_matches([' ', '\t']);
    if first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
        return DELTA_SECONDS_MAX;
    }
    let mut v: u64 = 0;
    for b in first.bytes() {
        v = v
            .saturating_mul(10)
            .saturating_add(u64::from(b.saturating_sub(b'0')));
        if v > DELTA_SECONDS_MAX {
            return DELTA_SECONDS_MAX;
        }
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_values() {
        assert_eq!(parse_age("0"), 0);
        assert_eq!(parse_age(" 42\t"), 42);
        assert_eq!(parse_age("000042"), 42);
        assert_eq!(parse_age("99999999999999999999999"), DELTA_SECONDS_MAX);
    }

    #[test]
    fn first_member_only() {
        assert_eq!(parse_age("7200, 0"), 7200);
        assert_eq!(parse_age("10,7200"), 10);
    }

    #[test]
    fn invalid_is_very_old() {
        for bad in [
            "old, 0", "abc", "-5", "+5", "1.5", "7200.0", "", " ", "5s", ",0",
        ] {
            assert_eq!(parse_age(bad), DELTA_SECONDS_MAX, "{bad:?}");
        }
    }
}
