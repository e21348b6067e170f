//! The proxy-wasm serialisation of header maps: a u32 count, then (name length, value length)
//! pairs, then each name and value followed by a NUL byte; all integers little-endian.

use crate::headers::HeaderMap;

pub(crate) fn encode_map(map: &HeaderMap) -> Vec<u8> {
    let pairs = map.pairs();
    let mut out = Vec::new();
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (name, value) in pairs {
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(&(value.len() as u32).to_le_bytes());
    }
    for (name, value) in pairs {
        out.extend_from_slice(name.as_bytes());
        out.push(0);
        out.extend_from_slice(value.as_bytes());
        out.push(0);
    }
    out
}

/// Decodes a serialised map; `None` when the bytes do not hold one.
pub(crate) fn decode_map(bytes: &[u8]) -> Option<HeaderMap> {
    let mut map = HeaderMap::default();
    if bytes.is_empty() {
        return Some(map);
    }
    let count = read_u32(bytes, 0)? as usize;
    let mut data = 4usize.checked_add(count.checked_mul(8)?)?;
    for index in 0..count {
        let name_len = read_u32(bytes, 4 + index * 8)? as usize;
        let value_len = read_u32(bytes, 8 + index * 8)? as usize;
        let name = bytes.get(data..data + name_len)?;
        data += name_len + 1;
        let value = bytes.get(data..data + value_len)?;
        data += value_len + 1;
        map.add(
            &String::from_utf8_lossy(name),
            &String::from_utf8_lossy(value),
        );
    }
    Some(map)
}

fn read_u32(bytes: &[u8], at: usize) -> Option<u32> {
    let raw: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
    Some(u32::from_le_bytes(raw))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let mut map = HeaderMap::default();
        map.add(":status", "200");
        map.add("x-a", "");
        map.add("x-b", "two words");
        assert_eq!(decode_map(&encode_map(&map)), Some(map));
    }

    #[test]
    fn truncated_is_refused() {
        let mut map = HeaderMap::default();
        map.add("name", "value");
        let bytes = encode_map(&map);
        assert_eq!(decode_map(&bytes[..bytes.len() - 3]), None);
    }
}
