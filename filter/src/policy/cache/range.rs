//! Range requests (RFC 9110 §14): which bytes of a stored representation a request asks for
//! (`Range`, `If-Range`), and the answer that gives them — `206` with `Content-Range`, `416`
//! when no byte of the range exists, or the whole representation when the range is ignored.
//!
//! One `bytes` range (`a-b`, `a-`, `-n`) is answered with its bytes. Several ranges, another
//! unit, a malformed value, a method other than GET, a stored status other than 200 or an
//! `If-Range` that does not match: the whole representation, as RFC 9110 allows.

use super::entry::Entry;
use super::http_date::parse_http_date;
use crate::policy::header_list::{header, header_joined, HeaderPair, Headers};

/// One byte range as the client wrote it (RFC 9110 §14.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// `first-last` (`last` inclusive, at least `first`), or `first-` (`last` is `None`).
    From { first: u64, last: Option<u64> },
    /// `-n`: the last `n` bytes.
    Suffix(u64),
}

/// What a `Range` field value asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeSpec {
    /// Another unit, or a malformed value: the field is ignored.
    Ignored,
    /// One byte range.
    One(ByteRange),
    /// Several byte ranges: answered with the whole representation (no multipart).
    Several,
}

/// Parses a `Range` field value. Digits beyond `u64` saturate (a first position that large is
/// never satisfiable; a last position or suffix that large means "to the end").
pub fn parse_range(value: &str) -> RangeSpec {
    let Some((unit, set)) = value.trim().split_once('=') else {
        return RangeSpec::Ignored;
    };
    if !unit.eq_ignore_ascii_case("bytes") {
        return RangeSpec::Ignored;
    }
    let mut found = None;
    let mut count = 0usize;
    // Empty list elements are allowed (RFC 9110 §5.6.1).
    for spec in set.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let Some(range) = parse_byte_range(spec) else {
            // One invalid range-spec makes the whole field ignored (RFC 9110 §14.1.1).
            return RangeSpec::Ignored;
        };
        found = Some(range);
        count += 1;
    }
    match (count, found) {
        (1, Some(range)) => RangeSpec::One(range),
        (0, _) | (_, None) => RangeSpec::Ignored,
        _ => RangeSpec::Several,
    }
}

fn parse_byte_range(spec: &str) -> Option<ByteRange> {
    let (first, last) = spec.split_once('-')?;
    if first.is_empty() {
        return Some(ByteRange::Suffix(digits(last)?));
    }
    let first = digits(first)?;
    if last.is_empty() {
        return Some(ByteRange::From { first, last: None });
    }
    let last = digits(last)?;
    (last >= first).then_some(ByteRange::From {
        first,
        last: Some(last),
    })
}

/// A non-empty run of ASCII digits, saturating at `u64::MAX`.
fn digits(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// How a request is answered from a representation of `len` bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeDecision {
    /// The whole representation, with its own status.
    Whole,
    /// `206`: bytes `first..=last` of `len` (`first <= last < len`).
    Part { first: u64, last: u64, len: u64 },
    /// `416`: no byte of the range exists.
    Unsatisfiable { len: u64 },
}

impl ByteRange {
    /// The decision for a representation of `len` bytes (RFC 9110 §14.1.2). An empty
    /// representation satisfies only a suffix range, whose answer is then the whole (empty)
    /// representation (a `Content-Range` cannot name zero bytes).
    pub fn resolve(self, len: u64) -> RangeDecision {
        let Some(end) = len.checked_sub(1) else {
            return match self {
                ByteRange::Suffix(n) if n > 0 => RangeDecision::Whole,
                _ => RangeDecision::Unsatisfiable { len },
            };
        };
        match self {
            ByteRange::From { first, .. } if first >= len => RangeDecision::Unsatisfiable { len },
            ByteRange::From { first, last } => RangeDecision::Part {
                first,
                last: last.map_or(end, |last| last.min(end)),
                len,
            },
            ByteRange::Suffix(0) => RangeDecision::Unsatisfiable { len },
            ByteRange::Suffix(n) => RangeDecision::Part {
                first: len.saturating_sub(n),
                last: end,
                len,
            },
        }
    }
}

/// What a request asks of a stored representation's bytes, read once from its headers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeRequest {
    /// The one range asked for; `None`: the whole representation.
    range: Option<ByteRange>,
    /// The `If-Range` value, when there is one.
    if_range: Option<String>,
}

impl RangeRequest {
    /// The range a request asks for. Only GET has ranges (RFC 9110 §14.2): a HEAD's `Range`
    /// is ignored. Several `Range` field lines are one list (several ranges).
    pub fn of(method: &str, headers: &[impl HeaderPair]) -> Self {
        if method != "GET" {
            return Self::default();
        }
        match header_joined(headers, "range").map(|value| parse_range(&value)) {
            Some(RangeSpec::One(range)) => Self {
                range: Some(range),
                if_range: header_joined(headers, "if-range"),
            },
            _ => Self::default(),
        }
    }

    /// Whether the request asks for one byte range.
    pub fn is_partial(&self) -> bool {
        self.range.is_some()
    }

    /// The range, unless its `If-Range` is a date and the stored representation comes in
    /// several codings: a date cannot tell them apart (a client resuming a gzip download would
    /// get identity bytes), so the whole representation answers then.
    /// (`varies_by_coding` is asked only for a dated `If-Range`.)
    pub fn for_codings(&self, varies_by_coding: impl FnOnce() -> bool) -> Self {
        let dated = self
            .if_range
            .as_deref()
            .is_some_and(|v| !v.trim_start().starts_with('"') && !v.trim_start().starts_with("W/"));
        if dated && varies_by_coding() {
            Self::default()
        } else {
            self.clone()
        }
    }

    /// How `entry` answers this request when its representation is `body`. Only a stored
    /// `200` is sliced; an `If-Range` that does not match asks for the whole representation.
    pub fn decide(&self, entry: &Entry, body: &[u8]) -> RangeDecision {
        self.decide_for(&Representation {
            status: entry.status,
            len: u64::try_from(body.len()).unwrap_or(u64::MAX),
            etag: entry.etag.as_deref(),
            last_modified: entry.last_modified,
            date: entry.date,
        })
    }

    /// How a representation answers this request (see [`Self::decide`]).
    pub fn decide_for(&self, representation: &Representation<'_>) -> RangeDecision {
        let Some(range) = self.range else {
            return RangeDecision::Whole;
        };
        if representation.status != 200 {
            return RangeDecision::Whole;
        }
        if let Some(if_range) = &self.if_range {
            if !if_range_holds(if_range, representation) {
                return RangeDecision::Whole;
            }
        }
        range.resolve(representation.len)
    }

    /// How the origin's response to a request whose `Range` the filter removed (see
    /// [`fetches_whole`]) is cut for the client: only a `200` whose `Content-Length` gives
    /// its length up front; `None`: it passes whole.
    pub fn decide_response(&self, status: u16, headers: &Headers) -> Option<RangeDecision> {
        if self.range.is_none() || status != 200 || header(headers, "content-range").is_some() {
            return None;
        }
        let len = header(headers, "content-length").and_then(|l| digits(l.trim()))?;
        let date = |name| header(headers, name).and_then(parse_http_date);
        Some(self.decide_for(&Representation {
            status,
            len,
            etag: header(headers, "etag"),
            last_modified: date("last-modified"),
            date: date("date"),
        }))
    }

    /// The answer `entry` gives this request; `headers` are those of its whole answer. A
    /// partial entry (a stored `206`) gives the bytes it holds; callers check
    /// [`Self::answerable_by`] first (otherwise it answers as it was stored).
    pub fn answer<'a>(&self, entry: &'a Entry, headers: Vec<(String, String)>) -> Answer<'a> {
        let body = entry.body.as_slice();
        if entry.status != 206 {
            return ranged_answer(entry.status, headers, body, self.decide(entry, body));
        }
        match stored_part(entry).map(|part| (part, self.decide_part(entry, part))) {
            Some((part, decision)) if part.answers(decision) => {
                answer_from(200, headers, body, part.first, decision)
            }
            _ => Answer {
                status: 206,
                headers,
                body,
            },
        }
    }

    /// Whether `entry` may answer this request: a complete entry always; a partial one (a
    /// stored `206`) only a range inside the bytes it holds (or one beyond the length it
    /// names: `416`), never a request for the whole representation.
    pub fn answerable_by(&self, entry: &Entry) -> bool {
        if entry.status != 206 {
            return true;
        }
        stored_part(entry).is_some_and(|part| part.answers(self.decide_part(entry, part)))
    }

    /// The decision against the whole representation a partial entry is part of.
    fn decide_part(&self, entry: &Entry, part: StoredPart) -> RangeDecision {
        self.decide_for(&Representation {
            status: 200,
            len: part.len,
            etag: entry.etag.as_deref(),
            last_modified: entry.last_modified,
            date: entry.date,
        })
    }
}

/// The bytes a `206` holds: `first..=last` of a `len`-byte representation (RFC 9110 §14.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredPart {
    pub first: u64,
    pub last: u64,
    pub len: u64,
}

impl StoredPart {
    /// Whether these bytes give `decision`'s answer.
    fn answers(self, decision: RangeDecision) -> bool {
        match decision {
            RangeDecision::Part { first, last, .. } => self.first <= first && last <= self.last,
            RangeDecision::Unsatisfiable { .. } => true,
            RangeDecision::Whole => false,
        }
    }
}

/// The one byte range a `206` carries, from its `Content-Range: bytes first-last/len`; `None`
/// for another status, several ranges (multipart), an unknown length (`*`) or a malformed
/// value.
pub fn partial_content(status: u16, headers: &Headers) -> Option<StoredPart> {
    if status != 206 {
        return None;
    }
    let value = header_joined(headers, "content-range")?;
    let value = value.trim();
    let (unit, rest) = value.split_once(' ')?;
    if !unit.eq_ignore_ascii_case("bytes") {
        return None;
    }
    let (range, len) = rest.trim_start().split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let (first, last, len) = (digits(first)?, digits(last)?, digits(len)?);
    (first <= last && last < len).then_some(StoredPart { first, last, len })
}

/// A partial entry's bytes, when its body holds exactly what its `Content-Range` names.
pub fn stored_part(entry: &Entry) -> Option<StoredPart> {
    let part = partial_content(entry.status, &entry.headers)?;
    let held = u64::try_from(entry.body.len()).ok()?;
    (held == part.last - part.first + 1).then_some(part)
}

/// The status a response is judged by for storing: a `206` with one byte range is part of the
/// `200` it comes from and may be stored as a partial entry (RFC 9111 §3.3); any other
/// response, its own.
pub fn storable_status(status: u16, headers: &Headers) -> u16 {
    if partial_content(status, headers).is_some() {
        200
    } else {
        status
    }
}

/// What a range is decided against: a representation's status, length and validators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Representation<'a> {
    pub status: u16,
    pub len: u64,
    pub etag: Option<&'a str>,
    /// `Last-Modified` and `Date`, Unix seconds.
    pub last_modified: Option<u64>,
    pub date: Option<u64>,
}

/// Whether an `If-Range` value matches the representation (RFC 9110 §13.1.5): an entity-tag
/// only when it and the stored one are strong and equal; a date only when it equals the
/// stored `Last-Modified` and that is a strong validator (`Date` at least a second later).
pub fn if_range_holds(value: &str, representation: &Representation<'_>) -> bool {
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        let strong = |tag: &str| tag.len() >= 2 && tag.starts_with('"') && tag.ends_with('"');
        return strong(value)
            && representation
                .etag
                .map(str::trim)
                .is_some_and(|stored| strong(stored) && stored == value);
    }
    let Some(date) = parse_http_date(value) else {
        return false;
    };
    representation.last_modified == Some(date)
        && representation
            .date
            .is_some_and(|stored_date| stored_date >= date.saturating_add(1))
}

/// Whether a cacheable GET's `Range` is removed before it goes to the origin, so that the
/// whole representation comes back and can be stored: any `bytes` range (one or several).
/// Other units and malformed values pass untouched (the origin's answer to them, a `206`,
/// is not stored).
pub fn fetches_whole(method: &str, headers: &[impl HeaderPair]) -> bool {
    method == "GET"
        && header_joined(headers, "range")
            .is_some_and(|value| parse_range(&value) != RangeSpec::Ignored)
}

/// Response header edits that turn a whole `200` into `decision`'s answer: `(name, value)`,
/// `None` removes the header. Nothing for [`RangeDecision::Whole`].
pub fn cut_headers(decision: RangeDecision) -> Vec<(&'static str, Option<String>)> {
    match decision {
        RangeDecision::Whole => Vec::new(),
        RangeDecision::Part { first, last, len } => vec![
            (":status", Some("206".to_string())),
            ("content-range", Some(format!("bytes {first}-{last}/{len}"))),
            ("content-length", Some((last - first + 1).to_string())),
            ("accept-ranges", Some("bytes".to_string())),
        ],
        RangeDecision::Unsatisfiable { len } => vec![
            (":status", Some("416".to_string())),
            ("content-range", Some(format!("bytes */{len}"))),
            ("content-length", Some("0".to_string())),
            ("content-type", None),
            ("content-encoding", None),
            ("accept-ranges", Some("bytes".to_string())),
        ],
    }
}

/// Cuts a body that streams in chunks down to a decision's bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyCut {
    /// Bytes of the representation seen so far.
    seen: u64,
    /// The bytes kept: `first..end` of the representation.
    first: u64,
    end: u64,
}

impl BodyCut {
    /// The cut for `decision`; `None` for [`RangeDecision::Whole`] (nothing to cut).
    pub fn new(decision: RangeDecision) -> Option<Self> {
        match decision {
            RangeDecision::Whole => None,
            RangeDecision::Part { first, last, .. } => Some(Self {
                seen: 0,
                first,
                end: last.saturating_add(1),
            }),
            RangeDecision::Unsatisfiable { .. } => Some(Self {
                seen: 0,
                first: 0,
                end: 0,
            }),
        }
    }

    /// The part of the next chunk (`len` bytes) to pass on, as a range inside the chunk.
    pub fn next(&mut self, len: usize) -> std::ops::Range<usize> {
        let start = self.seen;
        let len64 = u64::try_from(len).unwrap_or(u64::MAX);
        self.seen = self.seen.saturating_add(len64);
        let from = self.first.max(start);
        let to = self.end.min(self.seen);
        if from >= to {
            return 0..0;
        }
        let inside = |at: u64| usize::try_from(at - start).unwrap_or(len).min(len);
        inside(from)..inside(to)
    }
}

/// A reply from a representation: status, headers, and the body bytes to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer<'a> {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: &'a [u8],
}

/// Headers a `416` keeps from the whole answer (it has no body to describe).
const KEPT_BY_416: [&str; 8] = [
    "cache-control",
    "content-location",
    "date",
    "etag",
    "expires",
    "last-modified",
    "vary",
    "age",
];

/// The answer for `decision` from a representation answered with `status`, `headers` and
/// `body` as a whole. A `200` says it accepts byte ranges; a range that does not fit `body`
/// (it cannot, from [`RangeRequest::decide`]) answers the whole representation.
pub fn ranged_answer<'a>(
    status: u16,
    headers: Vec<(String, String)>,
    body: &'a [u8],
    decision: RangeDecision,
) -> Answer<'a> {
    answer_from(status, headers, body, 0, decision)
}

/// [`ranged_answer`] from a body that holds the representation's bytes from `offset` on.
fn answer_from<'a>(
    status: u16,
    mut headers: Vec<(String, String)>,
    body: &'a [u8],
    offset: u64,
    decision: RangeDecision,
) -> Answer<'a> {
    if status != 200 {
        return Answer {
            status,
            headers,
            body,
        };
    }
    let drop = |headers: &mut Vec<(String, String)>, names: &[&str]| {
        headers.retain(|(n, _)| !names.iter().any(|d| n.eq_ignore_ascii_case(d)));
    };
    drop(&mut headers, &["accept-ranges", "content-range"]);
    headers.push(("accept-ranges".to_string(), "bytes".to_string()));
    let whole = |headers| Answer {
        status,
        headers,
        body,
    };
    match decision {
        RangeDecision::Whole => whole(headers),
        RangeDecision::Part { first, last, len } => {
            let held = u64::try_from(body.len()).unwrap_or(u64::MAX);
            let inside = |at: u64| {
                at.checked_sub(offset)
                    .and_then(|at| usize::try_from(at).ok())
            };
            let slice = inside(first)
                .zip(inside(last))
                .filter(|_| offset.saturating_add(held) <= len)
                .and_then(|(first, last)| body.get(first..=last));
            let Some(slice) = slice else {
                return whole(headers);
            };
            drop(&mut headers, &["content-length"]);
            headers.push((
                "content-range".to_string(),
                format!("bytes {first}-{last}/{len}"),
            ));
            Answer {
                status: 206,
                headers,
                body: slice,
            }
        }
        RangeDecision::Unsatisfiable { len } => {
            headers.retain(|(n, _)| {
                KEPT_BY_416.iter().any(|k| n.eq_ignore_ascii_case(k))
                    || n.eq_ignore_ascii_case("cache-status")
                    || n.eq_ignore_ascii_case("accept-ranges")
            });
            headers.push(("content-range".to_string(), format!("bytes */{len}")));
            Answer {
                status: 416,
                headers,
                body: &[],
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::cache::http_date::format_http_date;
    use crate::policy::header_list::header;

    use crate::policy::header_list::owned as h;

    fn entry(body: &[u8]) -> Entry {
        Entry {
            key: "k".into(),
            status: 200,
            headers: h(&[("content-type", "text/plain"), ("etag", "\"v1\"")]),
            body: body.to_vec(),
            request_time: 1000,
            response_time: 1000,
            date: Some(1000),
            freshness_lifetime: 60,
            etag: Some("\"v1\"".into()),
            last_modified: Some(900),
            ..Default::default()
        }
    }

    fn from(first: u64, last: Option<u64>) -> RangeSpec {
        RangeSpec::One(ByteRange::From { first, last })
    }

    #[test]
    fn parses_single_open_and_suffix_ranges() {
        assert_eq!(parse_range("bytes=0-4"), from(0, Some(4)));
        assert_eq!(parse_range("bytes=5-"), from(5, None));
        assert_eq!(
            parse_range("bytes=-3"),
            RangeSpec::One(ByteRange::Suffix(3))
        );
        assert_eq!(parse_range("Bytes=1-1"), from(1, Some(1)));
        assert_eq!(parse_range(" bytes=2-3 , "), from(2, Some(3)));
        assert_eq!(
            parse_range("bytes=99999999999999999999999-"),
            from(u64::MAX, None)
        );
    }

    #[test]
    fn several_ranges_other_units_and_garbage() {
        assert_eq!(parse_range("bytes=0-1,3-4"), RangeSpec::Several);
        assert_eq!(parse_range("bytes=0-1, -2"), RangeSpec::Several);
        for ignored in [
            "items=0-1",
            "bytes=",
            "bytes=,",
            "bytes",
            "bytes=4-2",
            "bytes=a-b",
            "bytes=-",
            "bytes=0-1,x",
            "bytes=+1-2",
            "bytes=1-2-3",
            "bytes = 0-1",
            "",
        ] {
            assert_eq!(parse_range(ignored), RangeSpec::Ignored, "{ignored:?}");
        }
    }

    #[test]
    fn resolves_against_the_length() {
        let part = |first, last, len| RangeDecision::Part { first, last, len };
        assert_eq!(
            ByteRange::From {
                first: 0,
                last: Some(4)
            }
            .resolve(10),
            part(0, 4, 10)
        );
        assert_eq!(
            ByteRange::From {
                first: 5,
                last: Some(99)
            }
            .resolve(10),
            part(5, 9, 10)
        );
        assert_eq!(
            ByteRange::From {
                first: 9,
                last: None
            }
            .resolve(10),
            part(9, 9, 10)
        );
        assert_eq!(
            ByteRange::From {
                first: 10,
                last: None
            }
            .resolve(10),
            RangeDecision::Unsatisfiable { len: 10 }
        );
        assert_eq!(ByteRange::Suffix(3).resolve(10), part(7, 9, 10));
        assert_eq!(ByteRange::Suffix(30).resolve(10), part(0, 9, 10));
        assert_eq!(
            ByteRange::Suffix(0).resolve(10),
            RangeDecision::Unsatisfiable { len: 10 }
        );
        // One byte, and none.
        assert_eq!(
            ByteRange::From {
                first: 0,
                last: None
            }
            .resolve(1),
            part(0, 0, 1)
        );
        assert_eq!(ByteRange::Suffix(1).resolve(1), part(0, 0, 1));
        assert_eq!(
            ByteRange::From {
                first: 1,
                last: None
            }
            .resolve(1),
            RangeDecision::Unsatisfiable { len: 1 }
        );
        assert_eq!(
            ByteRange::From {
                first: 0,
                last: None
            }
            .resolve(0),
            RangeDecision::Unsatisfiable { len: 0 }
        );
        assert_eq!(ByteRange::Suffix(5).resolve(0), RangeDecision::Whole);
        assert_eq!(
            ByteRange::Suffix(0).resolve(0),
            RangeDecision::Unsatisfiable { len: 0 }
        );
    }

    #[test]
    fn only_get_has_ranges() {
        let headers = h(&[("range", "bytes=0-1")]);
        assert!(RangeRequest::of("GET", &headers).is_partial());
        assert!(!RangeRequest::of("HEAD", &headers).is_partial());
        assert!(!RangeRequest::of("GET", &h(&[("range", "bytes=0-1,4-5")])).is_partial());
        // Two field lines are one list: two ranges.
        let two_lines = h(&[("range", "bytes=0-1"), ("range", "bytes=4-5")]);
        assert!(!RangeRequest::of("GET", &two_lines).is_partial());
    }

    #[test]
    fn answers_206_with_content_range_and_the_slice() {
        let e = entry(b"0123456789");
        let request = RangeRequest::of("GET", &h(&[("range", "bytes=2-4")]));
        let answer = request.answer(&e, e.headers.clone());
        assert_eq!(answer.status, 206);
        assert_eq!(answer.body, b"234");
        assert_eq!(
            header(&answer.headers, "content-range"),
            Some("bytes 2-4/10")
        );
        assert_eq!(header(&answer.headers, "accept-ranges"), Some("bytes"));
        assert_eq!(header(&answer.headers, "content-type"), Some("text/plain"));

        let whole = RangeRequest::default().answer(&e, e.headers.clone());
        assert_eq!((whole.status, whole.body), (200, &b"0123456789"[..]));
        assert_eq!(header(&whole.headers, "accept-ranges"), Some("bytes"));
        assert_eq!(header(&whole.headers, "content-range"), None);
    }

    #[test]
    fn answers_416_without_a_body() {
        let e = entry(b"abc");
        let request = RangeRequest::of("GET", &h(&[("range", "bytes=3-")]));
        let answer = request.answer(&e, e.headers.clone());
        assert_eq!(answer.status, 416);
        assert!(answer.body.is_empty());
        assert_eq!(header(&answer.headers, "content-range"), Some("bytes */3"));
        assert_eq!(header(&answer.headers, "content-type"), None);
        assert_eq!(header(&answer.headers, "etag"), Some("\"v1\""));
    }

    #[test]
    fn other_statuses_are_answered_whole() {
        let mut e = entry(b"not here");
        e.status = 404;
        let request = RangeRequest::of("GET", &h(&[("range", "bytes=0-1")]));
        let answer = request.answer(&e, e.headers.clone());
        assert_eq!((answer.status, answer.body), (404, &b"not here"[..]));
        assert_eq!(header(&answer.headers, "accept-ranges"), None);
    }

    #[test]
    fn if_range_needs_a_strong_equal_validator() {
        let e = entry(b"0123456789");
        let ask = |if_range: &str| {
            RangeRequest::of("GET", &h(&[("range", "bytes=0-0"), ("if-range", if_range)]))
                .decide(&e, &e.body)
        };
        let part = RangeDecision::Part {
            first: 0,
            last: 0,
            len: 10,
        };
        assert_eq!(ask("\"v1\""), part);
        assert_eq!(ask("\"v2\""), RangeDecision::Whole);
        assert_eq!(ask("W/\"v1\""), RangeDecision::Whole, "weak tag");
        assert_eq!(
            ask(&format_http_date(900)),
            part,
            "Last-Modified, 100 s before Date"
        );
        assert_eq!(ask(&format_http_date(901)), RangeDecision::Whole);
        assert_eq!(ask("not a date"), RangeDecision::Whole);
        let weak = Representation {
            status: 200,
            len: 10,
            etag: Some("W/\"v1\""),
            last_modified: Some(900),
            date: Some(1000),
        };
        assert!(!if_range_holds("\"v1\"", &weak));
        assert!(!if_range_holds("W/\"v1\"", &weak));
        let same_second = Representation {
            last_modified: Some(1000),
            ..weak
        };
        assert!(
            !if_range_holds(&format_http_date(1000), &same_second),
            "Last-Modified equal to Date is weak"
        );
    }

    #[test]
    fn only_bytes_ranges_of_a_get_are_removed_upstream() {
        assert!(fetches_whole("GET", &h(&[("range", "bytes=0-1")])));
        assert!(fetches_whole("GET", &h(&[("range", "bytes=0-1,5-6")])));
        assert!(!fetches_whole("GET", &h(&[("range", "items=0-1")])));
        assert!(!fetches_whole("GET", &h(&[("range", "bytes=x")])));
        assert!(!fetches_whole("HEAD", &h(&[("range", "bytes=0-1")])));
        assert!(!fetches_whole("GET", &h(&[])));
    }

    #[test]
    fn a_whole_response_is_cut_when_its_length_is_known() {
        let request = RangeRequest::of("GET", &h(&[("range", "bytes=-2")]));
        let response = h(&[("content-length", "10"), ("etag", "\"a\"")]);
        let part = RangeDecision::Part {
            first: 8,
            last: 9,
            len: 10,
        };
        assert_eq!(request.decide_response(200, &response), Some(part));
        assert_eq!(request.decide_response(206, &response), None);
        assert_eq!(request.decide_response(200, &h(&[])), None, "chunked");
        assert_eq!(
            RangeRequest::default().decide_response(200, &response),
            None
        );
        let if_range = h(&[("range", "bytes=-2"), ("if-range", "\"b\"")]);
        assert_eq!(
            RangeRequest::of("GET", &if_range).decide_response(200, &response),
            Some(RangeDecision::Whole)
        );
        let edits = cut_headers(part);
        assert!(edits.contains(&(":status", Some("206".into()))));
        assert!(edits.contains(&("content-range", Some("bytes 8-9/10".into()))));
        assert!(edits.contains(&("content-length", Some("2".into()))));
        let edits = cut_headers(RangeDecision::Unsatisfiable { len: 10 });
        assert!(edits.contains(&(":status", Some("416".into()))));
        assert!(edits.contains(&("content-range", Some("bytes */10".into()))));
        assert!(cut_headers(RangeDecision::Whole).is_empty());
    }

    #[test]
    fn a_cut_keeps_the_range_across_chunks() {
        let part = RangeDecision::Part {
            first: 3,
            last: 6,
            len: 10,
        };
        let mut cut = BodyCut::new(part).unwrap();
        assert_eq!(cut.next(2), 0..0);
        assert_eq!(cut.next(3), 1..3);
        assert_eq!(cut.next(0), 0..0);
        assert_eq!(cut.next(4), 0..2);
        assert_eq!(cut.next(1), 0..0);
        let mut none = BodyCut::new(RangeDecision::Unsatisfiable { len: 10 }).unwrap();
        assert_eq!(none.next(10), 0..0);
        assert_eq!(BodyCut::new(RangeDecision::Whole), None);
    }

    fn partial(first: u64, last: u64, len: u64) -> Entry {
        let mut e = entry(&body_bytes(len)[first as usize..=last as usize]);
        e.status = 206;
        e.headers.push((
            "content-range".into(),
            format!("bytes {first}-{last}/{len}"),
        ));
        e
    }

    fn body_bytes(len: u64) -> Vec<u8> {
        (0..len).map(|i| b'0' + (i % 10) as u8).collect()
    }

    #[test]
    fn a_206_with_one_byte_range_is_a_storable_part() {
        let with = |value: &str| h(&[("content-range", value)]);
        let part = |first, last, len| Some(StoredPart { first, last, len });
        assert_eq!(partial_content(206, &with("bytes 2-6/10")), part(2, 6, 10));
        assert_eq!(partial_content(206, &with("Bytes  0-0/1")), part(0, 0, 1));
        for bad in [
            "bytes 2-6/*",
            "bytes */10",
            "bytes 6-2/10",
            "bytes 2-10/10",
            "items 0-1/2",
            "x",
        ] {
            assert_eq!(partial_content(206, &with(bad)), None, "{bad}");
        }
        assert_eq!(partial_content(200, &with("bytes 2-6/10")), None);
        assert_eq!(partial_content(206, &h(&[])), None, "multipart");
        assert_eq!(storable_status(206, &with("bytes 2-6/10")), 200);
        assert_eq!(storable_status(206, &h(&[])), 206);
        assert_eq!(storable_status(404, &h(&[])), 404);
        let mut truncated = partial(2, 6, 10);
        truncated.body.pop();
        assert_eq!(
            stored_part(&truncated),
            None,
            "the body must hold the range"
        );
    }

    #[test]
    fn a_partial_entry_answers_only_the_ranges_it_holds() {
        let e = partial(2, 6, 10);
        let ask = |range: &str| RangeRequest::of("GET", &h(&[("range", range)]));
        for held in ["bytes=2-6", "bytes=3-4", "bytes=6-6"] {
            assert!(ask(held).answerable_by(&e), "{held}");
        }
        let answer = ask("bytes=3-4").answer(&e, e.headers.clone());
        assert_eq!((answer.status, answer.body), (206, &b"34"[..]));
        assert_eq!(
            header(&answer.headers, "content-range"),
            Some("bytes 3-4/10")
        );
        let exact = ask("bytes=2-6").answer(&e, e.headers.clone());
        assert_eq!((exact.status, exact.body), (206, &b"23456"[..]));
        assert_eq!(
            header(&exact.headers, "content-range"),
            Some("bytes 2-6/10")
        );
        let beyond = ask("bytes=10-").answer(&e, e.headers.clone());
        assert!(ask("bytes=10-").answerable_by(&e));
        assert_eq!(beyond.status, 416);
        assert_eq!(header(&beyond.headers, "content-range"), Some("bytes */10"));
        for not_held in ["bytes=0-2", "bytes=6-", "bytes=-3", "bytes=0-1,3-4"] {
            assert!(!ask(not_held).answerable_by(&e), "{not_held}");
        }
        assert!(!RangeRequest::default().answerable_by(&e), "the whole");
        assert!(!RangeRequest::of("HEAD", &h(&[("range", "bytes=2-6")])).answerable_by(&e));
        let stale_validator =
            RangeRequest::of("GET", &h(&[("range", "bytes=2-6"), ("if-range", "\"v0\"")]));
        assert!(!stale_validator.answerable_by(&e));
        assert!(
            RangeRequest::default().answerable_by(&entry(b"x")),
            "a complete entry"
        );
    }

    /// Property tests (native only: proptest is not built for wasm32).
    #[cfg(not(target_arch = "wasm32"))]
    mod props {
        use super::*;
        use proptest::prelude::*;

        fn any_range_value() -> impl Strategy<Value = String> {
            let spec = prop_oneof![
                (any::<u16>(), any::<u16>()).prop_map(|(a, b)| format!("{a}-{b}")),
                any::<u16>().prop_map(|a| format!("{a}-")),
                any::<u16>().prop_map(|n| format!("-{n}")),
                "[0-9a-z, =-]{0,12}",
            ];
            (
                prop_oneof![Just("bytes="), Just("BYTES="), Just("items="), Just("")],
                prop::collection::vec(spec, 0..3),
            )
                .prop_map(|(unit, specs)| format!("{unit}{}", specs.join(",")))
        }

        proptest! {
            #[test]
            fn parsing_never_panics(value in "\\PC{0,40}") {
                let _ = parse_range(&value);
            }

            #[test]
            fn answers_stay_inside_the_body(
                value in any_range_value(),
                body in prop::collection::vec(any::<u8>(), 0..64),
            ) {
                let e = entry(&body);
                let request = RangeRequest::of("GET", &h(&[("range", &value)]));
                let decision = request.decide(&e, &e.body);
                let answer = request.answer(&e, e.headers.clone());
                match decision {
                    RangeDecision::Whole => {
                        prop_assert_eq!(answer.status, 200);
                        prop_assert_eq!(answer.body, body.as_slice());
                    }
                    RangeDecision::Part { first, last, len } => {
                        prop_assert!(first <= last && last < len);
                        prop_assert_eq!(len, body.len() as u64);
                        prop_assert_eq!(answer.status, 206);
                        prop_assert_eq!(answer.body.len() as u64, last - first + 1);
                        prop_assert_eq!(answer.body, &body[first as usize..=last as usize]);
                    }
                    RangeDecision::Unsatisfiable { len } => {
                        prop_assert_eq!(len, body.len() as u64);
                        prop_assert_eq!(answer.status, 416);
                        prop_assert!(answer.body.is_empty());
                    }
                }
            }

            #[test]
            fn cutting_chunks_of_any_size_gives_the_answer_body(
                value in any_range_value(),
                body in prop::collection::vec(any::<u8>(), 0..64),
                chunks in prop::collection::vec(0usize..20, 0..12),
            ) {
                let e = entry(&body);
                let request = RangeRequest::of("GET", &h(&[("range", &value)]));
                let decision = request.decide(&e, &e.body);
                let expected = request.answer(&e, Vec::new()).body.to_vec();
                let Some(mut cut) = BodyCut::new(decision) else {
                    prop_assert_eq!(expected, body);
                    return Ok(());
                };
                let mut kept = Vec::new();
                let mut rest = body.as_slice();
                for size in chunks.into_iter().chain([usize::MAX]) {
                    let (chunk, after) = rest.split_at(size.min(rest.len()));
                    rest = after;
                    let range = cut.next(chunk.len());
                    prop_assert!(range.start <= range.end && range.end <= chunk.len());
                    kept.extend_from_slice(&chunk[range]);
                }
                prop_assert_eq!(kept, expected);
            }

            #[test]
            fn a_partial_entry_answers_inside_what_it_holds(
                value in any_range_value(),
                (len, first, last) in (1u64..40).prop_flat_map(|len| (Just(len), 0..len))
                    .prop_flat_map(|(len, first)| (Just(len), Just(first), first..len)),
            ) {
                let e = partial(first, last, len);
                let request = RangeRequest::of("GET", &h(&[("range", &value)]));
                let answer = request.answer(&e, e.headers.clone());
                if request.answerable_by(&e) && answer.status == 206 {
                    let range = header(&answer.headers, "content-range").unwrap_or_default();
                    let (f, l) = range
                        .strip_prefix("bytes ")
                        .and_then(|r| r.split_once('/'))
                        .and_then(|(r, _)| r.split_once('-'))
                        .map(|(f, l)| (f.parse::<u64>().unwrap(), l.parse::<u64>().unwrap()))
                        .unwrap();
                    prop_assert!(first <= f && l <= last);
                    prop_assert_eq!(answer.body, &body_bytes(len)[f as usize..=l as usize]);
                }
            }

            #[test]
            fn any_byte_range_resolves_inside_any_length(
                first in any::<u64>(),
                last in proptest::option::of(any::<u64>()),
                suffix in any::<u64>(),
                len in prop_oneof![0u64..4, any::<u64>()],
            ) {
                let last = last.map(|l| l.max(first));
                for range in [ByteRange::From { first, last }, ByteRange::Suffix(suffix)] {
                    if let RangeDecision::Part { first, last, len: l } = range.resolve(len) {
                        prop_assert!(first <= last && last < len && l == len);
                    }
                }
            }
        }
    }
}
