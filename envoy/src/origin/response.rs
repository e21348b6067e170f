//! Building the origin's JSON answers.

use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, ETAG, IF_NONE_MATCH};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

use super::endpoint::Endpoint;
use super::etag::{etag_for, if_none_match_matches};

/// The header naming the endpoint that answered.
pub const ORIGIN_ENDPOINT_HEADER: &str = "x-origin-endpoint";

/// A JSON answer with the given status and `Cache-Control`.
pub fn json_bytes(status: StatusCode, cache_control: &'static str, body: Vec<u8>) -> Response {
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static(cache_control));
    resp
}

/// A JSON answer from a value, `Cache-Control: no-store`.
pub fn json_value(status: StatusCode, value: &Value) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    json_bytes(status, "no-store", body)
}

/// `{"error": message}` with `status`, `Cache-Control: no-store`.
pub fn json_error(status: StatusCode, message: &str) -> Response {
    json_value(status, &json!({ "error": message }))
}

/// A cacheable body: `200` with `ETag` and `cache_control`, or `304` without a body (with
/// `cache_control` too) when `If-None-Match` matches the ETag.
pub fn cacheable(
    cache_control: HeaderValue,
    request_headers: &HeaderMap,
    body: Vec<u8>,
) -> Response {
    let etag = etag_for(&body);
    let not_modified = request_headers
        .get_all(IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| if_none_match_matches(v, &etag));
    let mut resp = if not_modified {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r.headers_mut().insert(CACHE_CONTROL, cache_control);
        r
    } else {
        let mut r = json_bytes(StatusCode::OK, "no-store", body);
        r.headers_mut().insert(CACHE_CONTROL, cache_control);
        r
    };
    if let Ok(v) = HeaderValue::from_str(&etag) {
        resp.headers_mut().insert(ETAG, v);
    }
    resp
}

/// Marks a response with `x-origin-endpoint: <name>`.
pub fn tag_endpoint(mut resp: Response, endpoint: Endpoint) -> Response {
    resp.headers_mut().insert(
        ORIGIN_ENDPOINT_HEADER,
        HeaderValue::from_static(endpoint.name()),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cacheable_answers_304_on_matching_etag() {
        let body = b"{\"x\":1}".to_vec();
        let etag = etag_for(&body);
        let policy = || HeaderValue::from_static(Endpoint::Leads.cache_control());
        let r = cacheable(policy(), &HeaderMap::new(), body.clone());
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[ETAG], etag.as_str());
        assert_eq!(r.headers()[CACHE_CONTROL], "public, max-age=60");

        let mut h = HeaderMap::new();
        h.insert(IF_NONE_MATCH, HeaderValue::from_str(&etag).unwrap());
        let r = cacheable(policy(), &h, body.clone());
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(r.headers()[ETAG], etag.as_str());
        assert!(r.headers().get(CONTENT_TYPE).is_none());
        assert_eq!(r.headers()[CACHE_CONTROL], "public, max-age=60");

        let mut h = HeaderMap::new();
        h.insert(IF_NONE_MATCH, HeaderValue::from_static("\"stale\""));
        let r = cacheable(policy(), &h, body);
        assert_eq!(r.status(), StatusCode::OK);
    }
}
