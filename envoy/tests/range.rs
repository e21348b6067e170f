//! Range requests through real Envoy 1.40 with the shipped configuration: a cacheable miss with
//! a range fetches the whole representation and the client gets its bytes (`206`); later
//! ranges are answered from the stored entry (`206`, `416`), never compressed by the shipped
//! compressors, and `If-None-Match` wins (`304`).

use edge_envoy::launch::{cache_status, http_request, origin_requests, test_stack, HttpResponse};

fn get(listen: std::net::SocketAddr, path: &str, headers: &[(&str, &str)]) -> HttpResponse {
    http_request(listen, "GET", path, headers, b"")
        .unwrap_or_else(|err| panic!("GET {path}: {err}"))
}

#[test]
fn a_range_miss_then_range_hits_through_envoy() {
    let stack = test_stack(None, 0.0);
    let origin = stack.origin.as_ref().unwrap().addr();
    let path = "/api/v1/leads/314";
    let miss = get(stack.listen, path, &[("range", "bytes=0-9")]);
    assert_eq!(miss.status, 206, "{}", cache_status(&miss));
    assert!(
        cache_status(&miss).contains("fwd=uri-miss; stored"),
        "{}",
        cache_status(&miss)
    );
    assert_eq!(miss.body.len(), 10);
    assert_eq!(miss.header("content-length"), Some("10"));
    let range = miss
        .header("content-range")
        .expect("content-range")
        .to_string();
    let len: usize = range
        .strip_prefix("bytes 0-9/")
        .and_then(|l| l.parse().ok())
        .unwrap_or_else(|| panic!("{range}"));

    let whole = get(stack.listen, path, &[]);
    assert_eq!(whole.status, 200);
    assert!(
        cache_status(&whole).contains("hit"),
        "{}",
        cache_status(&whole)
    );
    assert_eq!(whole.body.len(), len);
    assert_eq!(whole.header("accept-ranges"), Some("bytes"));
    assert_eq!(&whole.body[..10], miss.body.as_slice());

    let suffix = get(stack.listen, path, &[("range", "bytes=-5")]);
    assert_eq!(suffix.status, 206);
    assert_eq!(
        suffix.header("content-range"),
        Some(format!("bytes {}-{}/{len}", len - 5, len - 1).as_str())
    );
    assert_eq!(suffix.header("content-length"), Some("5"));
    assert_eq!(suffix.body, whole.body[len - 5..].to_vec());

    let beyond = get(stack.listen, path, &[("range", &format!("bytes={len}-"))]);
    assert_eq!(beyond.status, 416);
    assert_eq!(
        beyond.header("content-range"),
        Some(format!("bytes */{len}").as_str())
    );
    assert!(beyond.body.is_empty());

    // The compressors never encode a 206: its Content-Range counts the stored bytes.
    for encoding in ["gzip", "br"] {
        let encoded = get(
            stack.listen,
            path,
            &[("range", "bytes=0-199"), ("accept-encoding", encoding)],
        );
        assert_eq!(encoded.status, 206);
        assert_eq!(encoded.header("content-encoding"), None, "{encoding}");
        assert_eq!(encoded.body, whole.body[..200].to_vec());
    }

    let etag = whole.header("etag").expect("the demo origin sends an ETag");
    let conditional = get(
        stack.listen,
        path,
        &[("range", "bytes=0-1"), ("if-none-match", etag)],
    );
    assert_eq!(conditional.status, 304, "If-None-Match wins over Range");
    assert_eq!(origin_requests(origin, "leads"), 1);
}
