//! Purge generations (`edge:gen` in shared data): a value of any other length or version reads
//! as all zero, every full-length value is accepted exactly as written, and stamps taken now
//! stay current until a purge bumps one of their dimensions.

use edge_filter::policy::cache::generations::{Dimension, Generations};

use super::input::Input;

pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let zero = Generations::default();
    let template = zero.encode();

    let stored = input.bytes(512);
    let decoded = Generations::decode(Some(stored));
    if stored.len() != template.len() {
        assert_eq!(decoded, zero, "a value of another length reads as zero");
    }

    // A full-length value with fuzzed words: read exactly as written.
    let mut value = template.clone();
    for _ in 0..input.below(16) {
        let at = input.below(value.len());
        if let Some(byte) = value.get_mut(at) {
            *byte = input.byte();
        }
    }
    let generations = Generations::decode(Some(&value));
    if value.first() == template.first() {
        assert_eq!(generations.encode(), value, "accepted as written");
    } else {
        assert_eq!(generations, zero, "another version reads as zero");
    }
    let mut longer = value.clone();
    longer.push(0);
    assert_eq!(
        Generations::decode(Some(&longer)),
        zero,
        "trailing byte accepted"
    );

    let mut generations = generations;
    let names = ["", "a", "b", "tenant-1", "tag", "http://x/"];
    let dimension = |input: &mut Input<'_>| match input.range(0, 3) {
        0 => Dimension::Service(input.below(600)),
        1 => Dimension::Tenant(input.pick(&names).unwrap_or("")),
        2 => Dimension::Tag(input.pick(&names).unwrap_or("")),
        _ => Dimension::Url(input.pick(&names).unwrap_or("")),
    };
    let dimensions: Vec<Dimension<'_>> = (0..input.range(1, 6))
        .map(|_| dimension(&mut input))
        .collect();
    let stamp = generations.stamp(&dimensions);
    assert!(generations.is_current(&stamp), "a fresh stamp is current");
    let purged = dimension(&mut input);
    generations.bump(purged);
    if dimensions.contains(&purged) {
        assert!(
            !generations.is_current(&stamp),
            "a purged dimension invalidates"
        );
    }
    assert_eq!(
        Generations::decode(Some(&generations.encode())),
        generations,
        "round trip"
    );

    // Any stamp at all (an entry's stored words) is checked without a panic.
    let words: Vec<u32> = (0..input.below(20)).map(|_| input.u32()).collect();
    let _ = generations.is_current(&words);
}
