//! Several `Vary` variants per URL (RFC 9111 §4.1).
//!
//! A response that varies is stored under its own *variant key*: the request's cache key plus a
//! hash of the normalised values of the selecting request headers. The cache key itself then
//! holds a small *vary index*: the selecting header names and the variants stored, least
//! recently stored first, at most `max_variants` of them. A lookup finds the index under the
//! cache key, computes the request's variant key from it and looks that up; a response
//! without `Vary` is stored under the cache key itself (replacing an index), so its hits cost
//! what they always did.
//!
//! Selecting values are normalised so that spellings which mean the same select the same
//! variant: several field lines are combined, whitespace around commas and at the ends goes,
//! and the case is folded for fields whose values are case-insensitive. An absent header is not
//! an empty one.
//!
//! The index travels in the tiers as an [`Entry`] (so L1's bounds, L2's slots and their
//! accounting hold it like any entry; the entry codec is unchanged) with status
//! [`INDEX_STATUS`], which no response has, and a `vary` pair no request selects (so a build
//! that does not know indexes never answers with it); its body is the index in its own
//! versioned format:
//!
//! ```text
//! offset  size  field
//! 0       1     version (= INDEX_FORMAT_VERSION)
//! 1       4     name count (u32, <= MAX_HEADERS), then per name: str (u32 length + UTF-8)
//! ..      4     variant count (u32, <= MAX_VARIANTS), then per variant: id (u64 LE)
//! ```
//!
//! A body that does not decode is an absent index (the request is a miss).

use super::entry::{Entry, MAX_HEADERS};
use crate::policy::codec::{ReadError, Reader, Writer};
use crate::policy::hash::fnv1a;
use crate::policy::header_list::HeaderPair;

/// Status of the entry that carries a vary index (never a response's: those are 100–599).
pub const INDEX_STATUS: u16 = 0;

/// Version byte of an index body.
pub const INDEX_FORMAT_VERSION: u8 = 1;

/// Most variants one URL may keep (`cache.max_variants` is 1–64).
pub const MAX_VARIANTS: usize = 64;

/// `cache.max_variants` when the configuration does not say.
pub const DEFAULT_MAX_VARIANTS: u32 = 8;

/// How [`Entry::vary`] records a selecting header the request did not send: a field value never
/// holds a line feed, so no value a request sends reads as this.
pub const ABSENT: &str = "\n";

/// Fields whose values compare case-insensitively (RFC 9110 §12.5): their case is folded.
const CASE_INSENSITIVE: [&str; 4] = [
    "accept",
    "accept-charset",
    "accept-encoding",
    "accept-language",
];

/// The normalised value of the selecting header `name` in a request ([`ABSENT`] when it has
/// none): its field lines combined, whitespace around commas and at the ends removed, the case
/// folded where the field's values are case-insensitive.
pub fn selecting_value(headers: &[impl HeaderPair], name: &str) -> String {
    let mut out = String::new();
    push_selecting_value(&mut out, headers, name);
    out
}

/// [`selecting_value`], appended to `out`.
fn push_selecting_value(out: &mut String, headers: &[impl HeaderPair], name: &str) {
    let start = out.len();
    let mut present = false;
    let values = headers
        .iter()
        .filter(|pair| pair.name().eq_ignore_ascii_case(name));
    for value in values.map(HeaderPair::value) {
        for item in value.split(',') {
            if present {
                out.push(',');
            }
            present = true;
            out.push_str(item.trim_matches([' ', '\t']));
        }
    }
    if !present {
        out.push_str(ABSENT);
    } else if CASE_INSENSITIVE
        .iter()
        .any(|f| f.eq_ignore_ascii_case(name))
    {
        if let Some(value) = out.get_mut(start..) {
            value.make_ascii_lowercase();
        }
    }
}

/// Whether a request selects the variant an entry with these `vary` pairs was stored for.
pub fn selects(vary: &[(String, String)], request_headers: &[impl HeaderPair]) -> bool {
    let mut value = String::new();
    vary.iter().all(|(name, stored)| {
        value.clear();
        push_selecting_value(&mut value, request_headers, name);
        value == *stored
    })
}

/// The text a variant id hashes: each selecting name and its normalised value, in order.
fn push_selection(text: &mut String, name: &str, value: &str) {
    text.push_str(name);
    text.push('\n');
    text.push_str(value);
    text.push('\n');
}

/// The key a variant is stored under. Two selections sharing an id share a key: the stored
/// entry's own `vary` pairs are checked on every hit, so that is a miss, never a wrong answer.
pub fn variant_key(primary: &str, id: u64) -> String {
    format!("{primary}\nvary:{id:016x}")
}

/// The id of the variant an entry was stored for (from its `vary` pairs).
pub fn entry_variant(vary: &[(String, String)]) -> u64 {
    let mut text = String::new();
    for (name, value) in vary {
        push_selection(&mut text, name, value);
    }
    fnv1a(&text)
}

/// Whether a stored entry is a vary index rather than a response.
pub fn is_index(entry: &Entry) -> bool {
    entry.status == INDEX_STATUS
}

/// The variants one URL holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VaryIndex {
    /// The selecting header names (lower-case, in the order the stored entries list them).
    pub names: Vec<String>,
    /// Variant ids, least recently stored first.
    pub variants: Vec<u64>,
}

impl VaryIndex {
    /// The id of the variant a request selects.
    pub fn request_variant(&self, request_headers: &[impl HeaderPair]) -> u64 {
        let mut text = String::new();
        for name in &self.names {
            text.push_str(name);
            text.push('\n');
            push_selecting_value(&mut text, request_headers, name);
            text.push('\n');
        }
        fnv1a(&text)
    }

    /// The key of the stored variant a request selects; `None` when the index holds none.
    pub fn variant_key_for(
        &self,
        primary: &str,
        request_headers: &[impl HeaderPair],
    ) -> Option<String> {
        let id = self.request_variant(request_headers);
        self.variants
            .contains(&id)
            .then(|| variant_key(primary, id))
    }

    /// The index after storing the variant `id` of an entry selected by `names`, at most `max`
    /// variants, and the ids that left it. Another list of names starts a new index (the
    /// stored variants were selected by other headers and cannot be found any more).
    pub fn with_variant(
        previous: Option<VaryIndex>,
        names: Vec<String>,
        id: u64,
        max: usize,
    ) -> (VaryIndex, Vec<u64>) {
        let max = max.clamp(1, MAX_VARIANTS);
        let (mut variants, mut dropped) = match previous {
            Some(index) if index.names == names => (index.variants, Vec::new()),
            Some(index) => (Vec::new(), index.variants),
            None => (Vec::new(), Vec::new()),
        };
        variants.retain(|v| *v != id);
        dropped.retain(|v| *v != id);
        variants.push(id);
        while variants.len() > max {
            dropped.push(variants.remove(0));
        }
        (VaryIndex { names, variants }, dropped)
    }

    /// The index's own bytes (layout in the module docs).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Writer::new(INDEX_FORMAT_VERSION);
        out.len32(self.names.len());
        for name in &self.names {
            out.str32(name);
        }
        out.len32(self.variants.len());
        for id in &self.variants {
            out.u64(*id);
        }
        out.finish()
    }

    /// Parses [`VaryIndex::encode`]'s bytes; any other version or inconsistency is an error.
    pub fn decode(bytes: &[u8]) -> Result<VaryIndex, ReadError> {
        let mut r = Reader::new(bytes);
        r.version(&[INDEX_FORMAT_VERSION])?;
        let count = r.len32()?;
        if count > MAX_HEADERS || count.saturating_mul(4) > r.remaining() {
            return Err(ReadError::Invalid);
        }
        let mut names = Vec::with_capacity(count);
        for _ in 0..count {
            names.push(r.str32()?.to_owned());
        }
        let count = r.len32()?;
        if count > MAX_VARIANTS || count.saturating_mul(8) > r.remaining() {
            return Err(ReadError::Invalid);
        }
        let mut variants = Vec::with_capacity(count);
        for _ in 0..count {
            variants.push(r.u64()?);
        }
        r.finish(VaryIndex { names, variants })
    }

    /// The index an entry carries; `None` for a response, or an index that does not decode.
    pub fn of(entry: &Entry) -> Option<VaryIndex> {
        if !is_index(entry) {
            return None;
        }
        Self::decode(&entry.body).ok()
    }

    /// The entry that carries this index under `primary`, kept (in L1) until `keep_until`
    /// (Unix seconds): the latest its variants are worth keeping.
    pub fn to_entry(&self, primary: &str, keep_until: u64) -> Entry {
        Entry {
            key: primary.to_string(),
            status: INDEX_STATUS,
            headers: Vec::new(),
            body: self.encode(),
            request_time: 0,
            response_time: 0,
            request_subsec_ms: 0,
            response_subsec_ms: 0,
            date: None,
            age_header: None,
            // `keep_until` of an entry without validators or stale windows: this.
            freshness_lifetime: keep_until,
            must_revalidate: true,
            stale_while_revalidate: None,
            stale_if_error: None,
            etag: None,
            last_modified: None,
            // A selecting header no request has: a build that does not know indexes (an older
            // VM during a reload shares L2) reads this entry as another variant, never as a
            // response to send.
            vary: vec![(ABSENT.to_string(), ABSENT.to_string())],
            generations: Vec::new(),
            hits: 0,
            encoded: Vec::new(),
            identity_reply: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::cache::exchange::keep_until;

    use crate::policy::header_list::owned as h;

    #[test]
    fn field_lines_whitespace_and_case() {
        let lines = h(&[
            ("Accept-Language", " en-US ,de;q=0.5"),
            ("accept-language", "FR\t"),
        ]);
        assert_eq!(
            selecting_value(&lines, "accept-language"),
            "en-us,de;q=0.5,fr"
        );
        assert_eq!(
            selecting_value(
                &h(&[("accept-language", "en-us, de;q=0.5, fr")]),
                "accept-language"
            ),
            "en-us,de;q=0.5,fr"
        );
        for name in ["accept", "accept-charset", "accept-encoding"] {
            assert_eq!(selecting_value(&h(&[(name, "A/B, C")]), name), "a/b,c");
        }
        // Other fields keep their case; inner whitespace is the value's own.
        assert_eq!(
            selecting_value(&h(&[("x-device", " Mobile  Phone , Tablet ")]), "x-device"),
            "Mobile  Phone,Tablet"
        );
        assert_eq!(selecting_value(&h(&[("x-device", "")]), "x-device"), "");
        assert_eq!(selecting_value(&h(&[("x-device", "  ")]), "x-device"), "");
        assert_eq!(selecting_value(&h(&[]), "x-device"), ABSENT);
        assert_ne!(ABSENT, "", "absent is not empty");
    }

    #[test]
    fn entries_select_by_normalised_values() {
        let vary = vec![
            ("accept-language".to_string(), "en,de".to_string()),
            ("x-device".to_string(), ABSENT.to_string()),
        ];
        assert!(selects(&vary, &h(&[("accept-language", "EN, De")])));
        assert!(!selects(&vary, &h(&[("accept-language", "en")])));
        assert!(!selects(
            &vary,
            &h(&[("accept-language", "en,de"), ("x-device", "")])
        ));
        assert!(selects(&[], &h(&[("x-device", "any")])));
    }

    #[test]
    fn a_request_finds_the_variant_an_entry_was_stored_for() {
        let names = vec!["accept-language".to_string(), "x-device".to_string()];
        let request = h(&[("accept-language", "de")]);
        let stored: Vec<(String, String)> = names
            .iter()
            .map(|n| (n.clone(), selecting_value(&request, n)))
            .collect();
        let id = entry_variant(&stored);
        let (index, dropped) = VaryIndex::with_variant(None, names, id, 8);
        assert!(dropped.is_empty());
        assert_eq!(
            index.variant_key_for("k", &h(&[("Accept-Language", " DE ")])),
            Some(variant_key("k", id))
        );
        assert_eq!(
            index.variant_key_for("k", &h(&[("accept-language", "en")])),
            None
        );
        assert_eq!(
            index.variant_key_for("k", &h(&[("accept-language", "de"), ("x-device", "")])),
            None,
            "an empty header is not an absent one"
        );
        assert!(variant_key("k", id).starts_with("k\nvary:"));
    }

    #[test]
    fn the_bound_drops_the_least_recently_stored() {
        let names = || vec!["accept-language".to_string()];
        let mut index = None;
        for id in [1, 2, 3] {
            let (next, dropped) = VaryIndex::with_variant(index, names(), id, 2);
            assert_eq!(dropped, if id == 3 { vec![1] } else { vec![] });
            index = Some(next);
        }
        // Storing 2 again makes it the most recent: 3 is the oldest now.
        let (next, dropped) = VaryIndex::with_variant(index, names(), 2, 2);
        assert_eq!((next.variants.clone(), dropped), (vec![3, 2], vec![]));
        let (next, dropped) = VaryIndex::with_variant(Some(next), names(), 4, 2);
        assert_eq!((next.variants.clone(), dropped), (vec![2, 4], vec![3]));
        // Other selecting headers: a new index; the old variants leave.
        let (next, dropped) =
            VaryIndex::with_variant(Some(next), vec!["x-device".to_string()], 5, 2);
        assert_eq!((next.variants, dropped), (vec![5], vec![2, 4]));
        // Out-of-range bounds are clamped.
        let (next, _) = VaryIndex::with_variant(None, names(), 1, 0);
        assert_eq!(next.variants, vec![1]);
    }

    #[test]
    fn index_codec_round_trips_and_rejects_corruption() {
        let index = VaryIndex {
            names: vec!["accept-language".into(), "x-device".into()],
            variants: vec![7, u64::MAX, 0],
        };
        let bytes = index.encode();
        assert_eq!(bytes.first(), Some(&INDEX_FORMAT_VERSION));
        assert_eq!(VaryIndex::decode(&bytes), Ok(index.clone()));
        for len in 0..bytes.len() {
            assert!(
                VaryIndex::decode(&bytes[..len]).is_err(),
                "truncated at {len}"
            );
        }
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert!(VaryIndex::decode(&trailing).is_err());
        let mut unknown = bytes.clone();
        unknown[0] = 99;
        assert!(VaryIndex::decode(&unknown).is_err());
        let mut absurd = bytes.clone();
        absurd[1..5].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(VaryIndex::decode(&absurd).is_err());
        let mut too_many = VaryIndex {
            names: vec![],
            variants: vec![1; MAX_VARIANTS + 1],
        }
        .encode();
        assert!(VaryIndex::decode(&too_many).is_err());
        too_many.truncate(5);
        assert!(VaryIndex::decode(&too_many).is_err());
        for at in 0..bytes.len() {
            let mut flipped = bytes.clone();
            flipped[at] ^= 0xff;
            let _ = VaryIndex::decode(&flipped);
        }
    }

    #[test]
    fn the_index_travels_as_an_entry() {
        let index = VaryIndex {
            names: vec!["accept-language".into()],
            variants: vec![1, 2],
        };
        let entry = index.to_entry("k", 5000);
        assert!(is_index(&entry));
        assert_eq!(keep_until(&entry), 5000);
        // How builds before variants compared `vary` (absent read as empty): never a match.
        let request = h(&[("accept-language", "en")]);
        assert!(!entry.vary.iter().all(|(name, stored)| {
            crate::policy::header_list::header_joined(&request, name).unwrap_or_default() == *stored
        }));
        let decoded = Entry::decode(&entry.encode()).unwrap();
        assert_eq!(VaryIndex::of(&decoded), Some(index));
        // A corrupt index body reads as no index.
        let mut corrupt = entry.clone();
        corrupt.body = vec![INDEX_FORMAT_VERSION, 1];
        assert_eq!(VaryIndex::of(&corrupt), None);
        corrupt.body = Vec::new();
        assert_eq!(VaryIndex::of(&corrupt), None);
        // A response is never an index.
        let response = Entry {
            status: 200,
            ..entry
        };
        assert!(!is_index(&response));
        assert_eq!(VaryIndex::of(&response), None);
    }
}
