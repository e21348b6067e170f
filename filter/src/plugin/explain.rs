//! `GET <prefix>/explain`: the explainer page ("why was this (not) cached?"), compiled into
//! the `.wasm` by `build.rs` (gzip, the wasm-bindgen glue inline), its `.wasm` at
//! `<prefix>/explain/edge_explain_bg.wasm` and the running configuration, secrets redacted,
//! at `<prefix>/explain/config`, which the page preloads. Behind the same access check as the
//! dashboard (whose login page it shares); the page fetches the rest with the token itself.

use std::borrow::Cow;
use std::cell::OnceCell;

use serde_json::json;

use crate::policy::config_redact::redacted_config;
use crate::policy::explain_page::{explain_answer, ExplainAnswer, GZIP_ONLY, NOT_BUILT};
use crate::policy::header_list::{header_joined, RequestHeaders};

include!(concat!(env!("OUT_DIR"), "/explain_assets.rs"));

/// The configuration this worker runs, which `/explain/config` answers redacted (when asked:
/// redacting it at start-up would make every worker pay for a page seldom opened).
#[derive(Default)]
pub struct RunningConfig {
    bytes: Vec<u8>,
    /// The redacted JSON and the `x-edge-redacted` list, made by the first `/explain/config`
    /// of this configuration: a large configuration takes a worker ~100 ms to redact, and
    /// the page asks for it on every load.
    redacted: OnceCell<Option<(Vec<u8>, String)>>,
}

impl RunningConfig {
    /// The plugin configuration the filter accepted (kept as read, not copied).
    pub fn new(bytes: Vec<u8>) -> Self {
        Self {
            bytes,
            redacted: OnceCell::new(),
        }
    }

    fn redacted(&self) -> Option<&(Vec<u8>, String)> {
        self.redacted
            .get_or_init(|| {
                redacted_config(&self.bytes)
                    .map(|(json, redacted)| (json.into_bytes(), redacted.join(", ")))
            })
            .as_ref()
    }
}

/// Headers of the page and of the login page that loads it: inline script and style, the
/// `.wasm` compiled from bytes this origin sends, data from this origin only, never in a frame.
pub fn page_headers() -> Vec<(String, String)> {
    vec![
        ("content-type".into(), "text/html; charset=utf-8".into()),
        ("cache-control".into(), "no-store".into()),
        (
            "content-security-policy".into(),
            "default-src 'none'; script-src 'unsafe-inline' 'wasm-unsafe-eval'; \
             style-src 'unsafe-inline'; connect-src 'self'; img-src data:; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
                .into(),
        ),
        ("x-frame-options".into(), "DENY".into()),
        ("x-content-type-options".into(), "nosniff".into()),
    ]
}

fn common(content_type: &str) -> Vec<(String, String)> {
    vec![
        ("content-type".into(), content_type.into()),
        ("cache-control".into(), "no-store".into()),
        ("x-content-type-options".into(), "nosniff".into()),
    ]
}

fn gzip(mut headers: Vec<(String, String)>) -> Vec<(String, String)> {
    headers.push(("content-encoding".into(), "gzip".into()));
    headers.push(("vary".into(), "accept-encoding".into()));
    headers
}

/// What an explainer request is answered with. Nothing borrowed from the worker: the reply goes
/// out after its borrow ends.
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// `None` for `HEAD`.
    pub body: Option<Cow<'static, [u8]>>,
}

fn error(status: u16, message: &str) -> (u16, Vec<(String, String)>, Cow<'static, [u8]>) {
    let body = json!({ "error": message }).to_string().into_bytes();
    let mut headers = common("application/json");
    headers.push(("vary".into(), "accept-encoding".into()));
    (status, headers, Cow::Owned(body))
}

/// The answer to an authorised read of `endpoint` (`/explain…`, query removed; `head`: the
/// body is left out).
pub fn answer(
    endpoint: &str,
    headers: &RequestHeaders,
    head: bool,
    config: &RunningConfig,
) -> Answer {
    let accept = header_joined(headers, "accept-encoding");
    let (status, headers, body) = match explain_answer(endpoint, accept.as_deref(), built()) {
        ExplainAnswer::Page => (200, gzip(page_headers()), Cow::Borrowed(PAGE_GZ)),
        ExplainAnswer::Wasm => (
            200,
            gzip(common("application/wasm")),
            Cow::Borrowed(WASM_GZ),
        ),
        ExplainAnswer::Config => match config.redacted() {
            None => error(503, "the running configuration is not available"),
            Some((json, redacted)) => {
                let mut headers = common("application/json");
                if !redacted.is_empty() {
                    headers.push(("x-edge-redacted".into(), redacted.clone()));
                }
                (200, headers, Cow::Owned(json.clone()))
            }
        },
        ExplainAnswer::NotFound => error(404, "no such explainer resource"),
        ExplainAnswer::NotBuilt => error(404, NOT_BUILT),
        ExplainAnswer::NotAcceptable => error(406, GZIP_ONLY),
    };
    Answer {
        status,
        headers,
        body: (!head).then_some(body),
    }
}

fn built() -> bool {
    !PAGE_GZ.is_empty() && !WASM_GZ.is_empty()
}
