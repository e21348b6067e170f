//! The stored cache entry (L2 slots in shared data): any bytes decode or are refused without a
//! panic; what decodes re-encodes to the same value; a byte more or less is never accepted;
//! every entry the encoder writes decodes to itself.

use edge_filter::policy::cache::encoding::Coding;
use edge_filter::policy::cache::entry::{DecodeError, Entry, MAX_GENERATIONS, MAX_HEADERS};

use super::input::Input;

pub fn check(data: &[u8]) {
    match data.split_first() {
        Some((mode, rest)) if mode & 1 == 1 => structured(rest),
        Some((_, rest)) => decoded(rest),
        None => decoded(data),
    }
}

/// Properties of whatever `bytes` decode to.
fn decoded(bytes: &[u8]) {
    let key = Entry::decode_key(bytes);
    let lengths = Entry::stored_body_len(bytes);
    let entry = match Entry::decode(bytes) {
        Ok(entry) => entry,
        Err(DecodeError::Empty) => {
            assert!(bytes.is_empty(), "only empty input is Empty");
            return;
        }
        Err(_) => return,
    };
    assert_eq!(key, Ok(entry.key.as_str()), "decode_key agrees with decode");
    assert_eq!(
        lengths.map(|(_, raw)| raw),
        Some(entry.body.len()),
        "stored_body_len gives the raw body length"
    );
    assert!(
        lengths.is_some_and(|(stored, _)| stored <= bytes.len()),
        "stored body inside the value"
    );

    let again = entry.encode();
    assert_eq!(
        Entry::decode(&again).as_ref(),
        Ok(&entry),
        "re-encoding keeps the value"
    );
    // Uncompressed both times: the encoding is canonical, so nothing else could have decoded.
    if bytes.get(1) == Some(&0) && again.get(1) == Some(&0) {
        assert_eq!(again, bytes, "one encoding per uncompressed entry");
    }

    let mut longer = bytes.to_vec();
    longer.push(0);
    assert!(Entry::decode(&longer).is_err(), "trailing byte accepted");
    if let Some((_, shorter)) = bytes.split_last() {
        assert!(Entry::decode(shorter).is_err(), "truncated value accepted");
    }
}

fn pairs(input: &mut Input<'_>) -> Vec<(String, String)> {
    (0..input.below(6))
        .map(|_| (input.string(12), input.string(24)))
        .collect()
}

/// A body of up to 8 KiB repeating a short pattern, so it often crosses the LZ4 threshold.
fn body(input: &mut Input<'_>) -> Vec<u8> {
    let len = usize::from(input.u16() % 8192);
    let pattern = input.bytes(24).to_vec();
    if pattern.is_empty() {
        return vec![0; len];
    }
    pattern.iter().copied().cycle().take(len).collect()
}

fn structured(data: &[u8]) {
    let mut input = Input::new(data);
    let entry = Entry {
        key: input.string(64),
        status: input.u16(),
        headers: pairs(&mut input),
        body: body(&mut input),
        request_time: input.u64(),
        response_time: input.u64(),
        date: input.option_u64(),
        age_header: input.option_u64(),
        freshness_lifetime: input.u64(),
        must_revalidate: input.bool(),
        stale_while_revalidate: input.option_u64(),
        stale_if_error: input.option_u64(),
        etag: input.bool().then(|| input.string(16)),
        last_modified: input.option_u64(),
        vary: pairs(&mut input),
        generations: (0..input.below(MAX_GENERATIONS + 4))
            .map(|_| input.u32())
            .collect(),
        hits: input.u32(),
        encoded: (0..input.below(3))
            .map(|_| {
                let coding = if input.bool() {
                    Coding::Br
                } else {
                    Coding::Gzip
                };
                (coding, input.bytes(32).to_vec())
            })
            .collect(),
        // Drawn last, so older corpus files keep meaning what they meant; now and then over 999.
        request_subsec_ms: input.u16() % 1024,
        response_subsec_ms: input.u16() % 1024,
        identity_reply: Default::default(),
    };
    let bytes = entry.encode();
    let in_bounds = entry.headers.len() <= MAX_HEADERS
        && entry.vary.len() <= MAX_HEADERS
        && entry.generations.len() <= MAX_GENERATIONS
        && entry.request_subsec_ms < 1000
        && entry.response_subsec_ms < 1000;
    if in_bounds {
        assert_eq!(Entry::decode(&bytes).as_ref(), Ok(&entry), "round trip");
    } else {
        assert!(Entry::decode(&bytes).is_err(), "over the bounds, refused");
    }
    assert_eq!(Entry::decode_key(&bytes), Ok(entry.key.as_str()));
    assert_eq!(
        Entry::stored_body_len(&bytes).map(|(_, raw)| raw),
        Some(entry.body.len())
    );
    decoded(&bytes);

    // One corrupted byte: refused, or a value with all the properties above.
    let mut corrupt = bytes.clone();
    let at = input.below(corrupt.len());
    let mask = input.byte().max(1);
    if let Some(byte) = corrupt.get_mut(at) {
        *byte ^= mask;
    }
    decoded(&corrupt);
}
