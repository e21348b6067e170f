//! Structured values drawn from a fuzzer's bytes: each read takes what it needs from the front
//! and yields zeros once the input runs out, so every byte string is a valid input and a small
//! mutation of the bytes makes a small change to the values.

pub struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Self { data }
    }

    pub fn byte(&mut self) -> u8 {
        match self.data.split_first() {
            Some((first, rest)) => {
                self.data = rest;
                *first
            }
            None => 0,
        }
    }

    pub fn bool(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    fn word<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for slot in &mut out {
            *slot = self.byte();
        }
        out
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes(self.word())
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes(self.word())
    }

    pub fn u64(&mut self) -> u64 {
        u64::from_le_bytes(self.word())
    }

    /// A value in `low..=high` (`low` when the range is empty).
    pub fn range(&mut self, low: u64, high: u64) -> u64 {
        let span = high.saturating_sub(low);
        if span == 0 {
            return low;
        }
        let draw = if span <= u64::from(u8::MAX) {
            u64::from(self.byte())
        } else if span <= u64::from(u16::MAX) {
            u64::from(self.u16())
        } else if span <= u64::from(u32::MAX) {
            u64::from(self.u32())
        } else {
            self.u64()
        };
        low + draw % span.saturating_add(1).max(1)
    }

    /// A small count or index in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        let n64 = u64::try_from(n).unwrap_or(u64::MAX);
        usize::try_from(self.range(0, n64.saturating_sub(1))).unwrap_or(0)
    }

    /// `Some(u64)` or `None`.
    pub fn option_u64(&mut self) -> Option<u64> {
        self.bool().then(|| self.u64())
    }

    /// Up to `max` bytes (a length byte, or two when `max` > 255, then the bytes).
    pub fn bytes(&mut self, max: usize) -> &'a [u8] {
        let wanted = if max > 255 {
            usize::from(self.u16())
        } else {
            usize::from(self.byte())
        };
        let n = wanted.min(max).min(self.data.len());
        let (head, tail) = self.data.split_at(n);
        self.data = tail;
        head
    }

    /// Up to `max` bytes as text (invalid UTF-8 replaced).
    pub fn string(&mut self, max: usize) -> String {
        String::from_utf8_lossy(self.bytes(max)).into_owned()
    }

    /// One of `items` (the first when the input has run out).
    pub fn pick<T: Copy>(&mut self, items: &[T]) -> Option<T> {
        let index = self.below(items.len());
        items.get(index).copied()
    }

    /// Everything not read yet.
    pub fn rest(&mut self) -> &'a [u8] {
        std::mem::take(&mut self.data)
    }
}
