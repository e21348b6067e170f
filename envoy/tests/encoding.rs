//! The shipped chain (compressors, then the edge filter) through real Envoy: a gzip client, a
//! br client and an identity client share one stored entry, each hit in the client's coding
//! with `Vary: Accept-Encoding`; the encoded answers carry weak validators an `If-None-Match`
//! matches, and the identity answer keeps the origin's strong `ETag`.

use std::io::Read;

use edge_envoy::launch::{
    cache_status, http_request, origin_requests, test_stack, HttpResponse, Stack,
};

fn get(stack: &Stack, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    http_request(stack.listen, "GET", path, headers, b"")
        .unwrap_or_else(|err| panic!("GET {path}: {err}"))
}

fn decoded(response: &HttpResponse) -> Vec<u8> {
    let mut out = Vec::new();
    match response.header("content-encoding") {
        Some("gzip") => {
            flate2::read::GzDecoder::new(&response.body[..])
                .read_to_end(&mut out)
                .unwrap();
        }
        Some("br") => brotli::BrotliDecompress(&mut &response.body[..], &mut out).unwrap(),
        None => out = response.body.clone(),
        Some(other) => panic!("unexpected coding {other}"),
    }
    out
}

#[test]
fn every_coding_is_served_from_one_entry_and_validators_survive() {
    let stack = test_stack(None, 0.0);
    let origin = stack.origin.as_ref().unwrap().addr();
    let path = "/api/v1/leads/77";
    let first = get(&stack, path, &[]);
    assert_eq!(first.status, 200);
    let strong = first.header("etag").expect("the origin's ETag").to_string();
    assert!(strong.starts_with('"'), "{strong}");
    // Two workers: repeat so both have answered from their own tiers.
    for _ in 0..3 {
        for (accept, coding) in [
            ("gzip", Some("gzip")),
            ("gzip, deflate, br", Some("br")),
            ("identity", None),
        ] {
            let hit = get(&stack, path, &[("accept-encoding", accept)]);
            assert_eq!(hit.status, 200, "{accept}");
            assert!(
                cache_status(&hit).contains("hit"),
                "{accept}: {}",
                cache_status(&hit)
            );
            assert_eq!(hit.header("content-encoding"), coding, "{accept}");
            assert_eq!(decoded(&hit), first.body, "{accept}");
            assert!(
                hit.header("vary")
                    .is_some_and(|v| v.to_ascii_lowercase().contains("accept-encoding")),
                "{accept}: {:?}",
                hit.header("vary")
            );
            let etag = hit
                .header("etag")
                .unwrap_or_else(|| panic!("{accept}: no validator: {:?}", hit.headers));
            match coding {
                Some(coding) => {
                    assert_eq!(
                        etag,
                        format!("W/{}-{coding}\"", strong.trim_end_matches('"'))
                    );
                    assert!(hit.body.len() < first.body.len() / 2, "{accept}");
                    let revalidated = get(
                        &stack,
                        path,
                        &[("accept-encoding", accept), ("if-none-match", etag)],
                    );
                    assert_eq!(revalidated.status, 304, "{accept}");
                }
                None => assert_eq!(etag, strong, "the strong validator is kept"),
            }
        }
    }
    let plain = get(&stack, path, &[("if-none-match", &strong)]);
    assert_eq!(plain.status, 304);
    assert_eq!(
        origin_requests(origin, "leads"),
        1,
        "one origin fetch for every coding"
    );
}
