//! A message's headers as the policy sees them: (name, value) pairs in arrival order, names
//! compared case-insensitively.

pub type Headers = [(String, String)];

/// The first value of a header (names compare case-insensitively).
pub fn header<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Every value of a header joined with ", " (for list headers such as Cache-Control).
pub fn header_joined(headers: &Headers, name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// Owned pairs from borrowed ones (fixtures and tests).
pub fn owned(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn first_value_or_all_values_joined() {
        let list = headers(&[
            ("Cache-Control", "max-age=60"),
            ("x-other", "1"),
            ("cache-control", "public"),
        ]);
        assert_eq!(header(&list, "CACHE-CONTROL"), Some("max-age=60"));
        assert_eq!(
            header_joined(&list, "cache-control").as_deref(),
            Some("max-age=60, public")
        );
        assert_eq!(header(&list, "vary"), None);
        assert_eq!(header_joined(&list, "vary"), None);
    }
}
