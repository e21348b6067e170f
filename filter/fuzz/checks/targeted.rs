//! Targeted cache-control fields (`CDN-Cache-Control`, RFC 9213, from origins): parsing is total,
//! values stay within their clamp, surrounding spaces do not matter, and two valid field lines
//! joined with a comma are one valid field.

use edge_filter::policy::cache::cache_control::DELTA_SECONDS_MAX;
use edge_filter::policy::cache::targeted::parse;

pub fn check(data: &[u8]) {
    let (split, text) = match data.split_first() {
        Some((split, rest)) => (usize::from(*split), String::from_utf8_lossy(rest)),
        None => (0, String::from_utf8_lossy(data)),
    };
    let parsed = parse(&text);
    if let Some(cc) = &parsed {
        for value in [
            cc.max_age,
            cc.s_maxage,
            cc.stale_while_revalidate,
            cc.stale_if_error,
        ]
        .into_iter()
        .flatten()
        {
            assert!(value <= DELTA_SECONDS_MAX, "{value} above the clamp");
        }
    }
    assert_eq!(parse(&format!("  {text}  ")), parsed, "surrounding spaces");

    let mut at = (split * text.len() / 255).min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let (first, second) = text.split_at(at);
    if parse(first).is_some() && parse(second).is_some() {
        assert!(
            parse(&format!("{first}, {second}")).is_some(),
            "lines {first:?} and {second:?}"
        );
    }
}
