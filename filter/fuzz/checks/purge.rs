//! Purge request bodies (`POST <admin>/cache/purge`, from operators' tools): parsing never
//! panics, accepts exactly one non-empty target, and a URL target splits into parts that put
//! together give the URL back.

use edge_filter::policy::cache::purge_request::{parse_purge_request, split_url, PurgeTarget};

pub fn check(data: &[u8]) {
    match parse_purge_request(data) {
        Ok(PurgeTarget::Url(url)) => {
            assert!(!url.is_empty());
            split(&url);
        }
        Ok(PurgeTarget::Tenant(value) | PurgeTarget::Service(value) | PurgeTarget::Tag(value)) => {
            assert!(!value.is_empty())
        }
        Err(reason) => assert!(!reason.is_empty()),
    }
    split(&String::from_utf8_lossy(data));
}

fn split(url: &str) {
    let Some((scheme, authority, path)) = split_url(url) else {
        return;
    };
    assert!(scheme == "http" || scheme == "https");
    assert!(!authority.is_empty() && !authority.contains('/'));
    assert!(path.starts_with('/'));
    let joined = format!("{scheme}://{authority}{path}");
    assert!(
        joined == url || (path == "/" && format!("{url}/") == joined),
        "{url:?} split into {scheme:?} {authority:?} {path:?}"
    );
}
