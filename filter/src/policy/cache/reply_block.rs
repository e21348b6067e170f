//! Header lists in proxy-wasm's map format (what `proxy_send_local_response` takes), and the
//! one a stored entry's whole identity answers reuse: built on the entry's first such hit and
//! kept with it, so a hit copies two byte blocks instead of serializing every stored header.

use std::cell::OnceCell;

/// Bytes one pair adds to a map besides its name and value: two length words, two NULs.
pub const PAIR_OVERHEAD: usize = 10;

/// A header list in proxy-wasm's map format, split so more pairs can follow: the count, then
/// (name length, value length) per pair, then each name and value NUL-terminated.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReplyBlock {
    count: u32,
    lengths: Vec<u8>,
    text: Vec<u8>,
    /// A whole identity answer adds `Vary: Accept-Encoding` to these headers.
    pub adds_vary: bool,
}

impl ReplyBlock {
    /// `headers` without those named in `skip` (case-insensitively).
    pub fn new(headers: &[(String, String)], skip: &[&str], adds_vary: bool) -> Self {
        let kept = || {
            headers
                .iter()
                .filter(|(n, _)| !skip.iter().any(|s| n.eq_ignore_ascii_case(s)))
        };
        let text_len = kept().map(|(n, v)| n.len() + v.len() + 2).sum();
        let mut block = Self {
            count: 0,
            lengths: Vec::with_capacity(headers.len() * 8),
            text: Vec::with_capacity(text_len),
            adds_vary,
        };
        for (n, v) in kept() {
            block.push(n, v);
        }
        block
    }

    fn push(&mut self, name: &str, value: &str) {
        self.count = self.count.saturating_add(1);
        self.lengths.extend_from_slice(&word(name.len()));
        self.lengths.extend_from_slice(&word(value.len()));
        for field in [name, value] {
            self.text.extend_from_slice(field.as_bytes());
            self.text.push(0);
        }
    }

    /// The map of these pairs followed by `extra` (one allocation: this runs on every hit).
    pub fn with_extra(&self, extra: &[(&str, &str)]) -> Vec<u8> {
        let extra_text: usize = extra.iter().map(|(n, v)| n.len() + v.len() + 2).sum();
        let mut map = Vec::with_capacity(
            4 + self.lengths.len() + extra.len() * 8 + self.text.len() + extra_text,
        );
        let extra_count = u32::try_from(extra.len()).unwrap_or(u32::MAX);
        map.extend_from_slice(&self.count.saturating_add(extra_count).to_le_bytes());
        map.extend_from_slice(&self.lengths);
        for (n, v) in extra {
            map.extend_from_slice(&word(n.len()));
            map.extend_from_slice(&word(v.len()));
        }
        map.extend_from_slice(&self.text);
        for field in extra.iter().flat_map(|(n, v)| [n, v]) {
            map.extend_from_slice(field.as_bytes());
            map.push(0);
        }
        map
    }
}

/// A length word of the map format.
fn word(n: usize) -> [u8; 4] {
    u32::try_from(n).unwrap_or(u32::MAX).to_le_bytes()
}

/// A value worked out from an entry on first use and kept with it (stored entries do not
/// change). A clone starts without it, since a clone may be changed before it is used, and it
/// never makes two entries differ. Boxed: an entry without it stays a pointer larger.
#[derive(Default)]
pub struct Derived<T>(OnceCell<Box<T>>);

impl<T> Derived<T> {
    pub fn get_or_init(&self, make: impl FnOnce() -> T) -> &T {
        self.0.get_or_init(|| Box::new(make()))
    }
}

impl<T> Clone for Derived<T> {
    fn clone(&self) -> Self {
        Self(OnceCell::new())
    }
}

impl<T> PartialEq for Derived<T> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<T> Eq for Derived<T> {}

impl<T> std::fmt::Debug for Derived<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Derived")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(map: &[u8]) -> Vec<(String, String)> {
        let word = |at: usize| u32::from_le_bytes(map[at..at + 4].try_into().unwrap()) as usize;
        let count = word(0);
        let mut at = 4 + count * 8;
        (0..count)
            .map(|i| {
                let (n, v) = (word(4 + i * 8), word(8 + i * 8));
                let name = String::from_utf8(map[at..at + n].to_vec()).unwrap();
                assert_eq!(map[at + n], 0);
                let value = String::from_utf8(map[at + n + 1..at + n + 1 + v].to_vec()).unwrap();
                assert_eq!(map[at + n + 1 + v], 0);
                at += n + v + 2;
                (name, value)
            })
            .collect()
    }

    fn owned(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn stored_pairs_then_extra_minus_skipped() {
        let stored = owned(&[
            ("content-type", "application/json"),
            ("Accept-Ranges", "none"),
            ("etag", "\"a\""),
            ("x-empty", ""),
        ]);
        let block = ReplyBlock::new(&stored, &["accept-ranges"], true);
        assert!(block.adds_vary);
        let map = block.with_extra(&[("age", "3"), ("cache-status", "edge; hit")]);
        assert_eq!(
            pairs(&map),
            owned(&[
                ("content-type", "application/json"),
                ("etag", "\"a\""),
                ("x-empty", ""),
                ("age", "3"),
                ("cache-status", "edge; hit"),
            ])
        );
        // Nothing stored, nothing extra: a map of no pairs.
        assert_eq!(ReplyBlock::new(&[], &[], false).with_extra(&[]), vec![0; 4]);
        assert_eq!(
            map.len(),
            4 + [
                "content-type",
                "application/json",
                "etag",
                "\"a\"",
                "x-empty",
                "",
                "age",
                "3",
                "cache-status",
                "edge; hit"
            ]
            .iter()
            .map(|s| s.len())
            .sum::<usize>()
                + 5 * PAIR_OVERHEAD
        );
    }

    #[test]
    fn a_clone_forgets_what_was_derived_and_never_differs() {
        let derived: Derived<u32> = Derived::default();
        assert_eq!(*derived.get_or_init(|| 7), 7);
        assert_eq!(*derived.get_or_init(|| 8), 7);
        let copy = derived.clone();
        assert_eq!(*copy.get_or_init(|| 9), 9);
        assert_eq!(derived, copy);
    }
}
