//! A message's headers as the policy sees them: (name, value) pairs in arrival order, names
//! compared case-insensitively.

pub type Headers = [(String, String)];

/// A request's headers as the filter reads them: borrowed from the one buffer the host
/// filled (no string per header on the hit path).
pub type RequestHeaders<'a> = [(&'a str, &'a str)];

/// No request headers.
pub const NO_HEADERS: &RequestHeaders<'static> = &[];

/// One (name, value) pair, owned or borrowed.
pub trait HeaderPair {
    fn name(&self) -> &str;
    fn value(&self) -> &str;
}

impl HeaderPair for (String, String) {
    fn name(&self) -> &str {
        &self.0
    }
    fn value(&self) -> &str {
        &self.1
    }
}

impl HeaderPair for (&str, &str) {
    fn name(&self) -> &str {
        self.0
    }
    fn value(&self) -> &str {
        self.1
    }
}

/// The first value of a header (names compare case-insensitively).
pub fn header<'a, P: HeaderPair>(headers: &'a [P], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|pair| pair.name().eq_ignore_ascii_case(name))
        .map(HeaderPair::value)
}

/// The members of a list header over all its field lines, trimmed (what splitting
/// [`header_joined`] on commas gives, without building the joined string).
pub fn header_members<'a, P: HeaderPair>(
    headers: &'a [P],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |pair| pair.name().eq_ignore_ascii_case(name))
        .flat_map(|pair| pair.value().split(','))
        .map(str::trim)
}

/// Every value of a header joined with ", " (for list headers such as Cache-Control).
pub fn header_joined<P: HeaderPair>(headers: &[P], name: &str) -> Option<String> {
    let values: Vec<&str> = headers
        .iter()
        .filter(|pair| pair.name().eq_ignore_ascii_case(name))
        .map(HeaderPair::value)
        .collect();
    (!values.is_empty()).then(|| values.join(", "))
}

/// Borrowed pairs of owned ones (for request headers kept past their callback).
pub fn borrowed(pairs: &Headers) -> Vec<(&str, &str)> {
    pairs
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_str()))
        .collect()
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

    #[test]
    fn members_span_every_field_line_trimmed() {
        let h = headers(&[
            ("Vary", " origin ,accept-encoding"),
            ("x", "y"),
            ("vary", "cookie"),
        ]);
        let members: Vec<&str> = header_members(&h, "vary").collect();
        assert_eq!(members, ["origin", "accept-encoding", "cookie"]);
        assert_eq!(header_members(&h, "absent").count(), 0);
    }

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
