//! `GET <prefix>/dashboard`: one self-contained page, compiled into the `.wasm`, that polls
//! `<prefix>/metrics` (relative URL, so any prefix works) and fetches nothing else.

pub const PAGE: &str = include_str!("dashboard.html");

/// What `/dashboard` answers without access (401/403): no data, a token form that loads the
/// page with the token (a browser cannot send one when it opens a URL) and keeps it for the
/// page's own requests in the tab's session storage.
pub const LOGIN: &str = include_str!("dashboard_login.html");

pub fn headers() -> [(String, String); 5] {
    [
        ("content-type".into(), "text/html; charset=utf-8".into()),
        ("cache-control".into(), "no-store".into()),
        // Inline script and style only; data from this origin only; never inside a frame
        // (clickjacking), also for browsers without frame-ancestors.
        (
            "content-security-policy".into(),
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src data:; frame-ancestors 'none'; base-uri 'none'; \
             form-action 'none'"
                .into(),
        ),
        ("x-frame-options".into(), "DENY".into()),
        ("x-content-type-options".into(), "nosniff".into()),
    ]
}
