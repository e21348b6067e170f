//! What `<admin prefix>/explain…` answers (after the access check): the explainer page and its
//! `.wasm`, both compiled into the filter gzip-compressed, or the running configuration.

use super::cache::encoding::accepts_coding;
use super::cache::encoding::Coding;

/// `<prefix>/explain` or anything under `<prefix>/explain/`: the explainer's endpoints.
pub fn is_explain_endpoint(endpoint: &str) -> bool {
    endpoint == "/explain" || endpoint.starts_with("/explain/")
}

/// `<prefix>/explain` (or with a trailing `/`): the page itself, which a browser opens (so a
/// refusal answers the login page that loads it with the token).
pub fn is_explain_page(endpoint: &str) -> bool {
    matches!(endpoint, "/explain" | "/explain/")
}

/// The name the page fetches its `.wasm` by (relative to `<prefix>/explain/`).
pub const WASM_ASSET: &str = "edge_explain_bg.wasm";

/// The answer to an explainer request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExplainAnswer {
    /// The page (HTML with the JavaScript glue inline), gzip.
    Page,
    /// The explainer's `.wasm`, gzip.
    Wasm,
    /// The running configuration, secrets redacted (JSON).
    Config,
    /// 404: no such asset.
    NotFound,
    /// 404: this filter was built without the page (`build-page.sh` was not run first).
    NotBuilt,
    /// 406: the assets exist only gzip-compressed and the client does not take gzip.
    NotAcceptable,
}

/// What `endpoint` (path after the admin prefix, query removed; [`is_explain_endpoint`])
/// answers for a client with this `Accept-Encoding`, given whether the page was compiled in.
pub fn explain_answer(endpoint: &str, accept_encoding: Option<&str>, built: bool) -> ExplainAnswer {
    let asset = match endpoint.strip_prefix("/explain") {
        _ if is_explain_page(endpoint) => ExplainAnswer::Page,
        Some("/config") => return ExplainAnswer::Config,
        Some(rest) if rest.strip_prefix('/') == Some(WASM_ASSET) => ExplainAnswer::Wasm,
        _ => return ExplainAnswer::NotFound,
    };
    if !built {
        ExplainAnswer::NotBuilt
    } else if !accepts_coding(accept_encoding, Coding::Gzip) {
        ExplainAnswer::NotAcceptable
    } else {
        asset
    }
}

/// The message of a 404 from a filter built without the page.
pub const NOT_BUILT: &str = "the explainer page was not compiled into this filter: run \
     filter/explain/build-page.sh (it writes target/explain-page), then build the filter again";

/// The message of a 406.
pub const GZIP_ONLY: &str = "the explainer page is served gzip-compressed only: send \
     Accept-Encoding: gzip (browsers always do; curl --compressed)";

#[cfg(test)]
mod tests {
    use super::*;
    use ExplainAnswer::*;

    #[test]
    fn endpoints_and_assets() {
        assert!(is_explain_endpoint("/explain"));
        assert!(is_explain_endpoint("/explain/config"));
        assert!(is_explain_endpoint("/explain/../metrics"));
        assert!(!is_explain_endpoint("/explainer"));
        assert!(!is_explain_endpoint("/explain%2Fconfig"));
        assert!(!is_explain_endpoint("//explain"));
        let gzip = Some("gzip, deflate, br");
        for (endpoint, answer) in [
            ("/explain", Page),
            ("/explain/", Page),
            ("/explain/edge_explain_bg.wasm", Wasm),
            ("/explain/config", Config),
            ("/explain/../metrics", NotFound),
            ("/explain/%2e%2e/metrics", NotFound),
            ("/explain//config", NotFound),
            ("/explain/edge_explain.js", NotFound),
            ("/explain/index.html", NotFound),
            ("/explain/config/", NotFound),
        ] {
            assert_eq!(explain_answer(endpoint, gzip, true), answer, "{endpoint}");
        }
    }

    #[test]
    fn the_assets_need_gzip_and_the_page_built() {
        for accept in [
            None,
            Some("identity"),
            Some("br"),
            Some("gzip;q=0"),
            Some(""),
        ] {
            assert_eq!(explain_answer("/explain", accept, true), NotAcceptable);
            assert_eq!(
                explain_answer("/explain/edge_explain_bg.wasm", accept, true),
                NotAcceptable
            );
            // The configuration is small JSON: no coding needed.
            assert_eq!(explain_answer("/explain/config", accept, true), Config);
        }
        for accept in [
            "gzip",
            "GZIP",
            "br;q=1, gzip;q=0.1",
            "*",
            "x-gzip",
            "identity, *;q=0.5",
        ] {
            assert_eq!(
                explain_answer("/explain", Some(accept), true),
                Page,
                "{accept}"
            );
        }
        assert_eq!(explain_answer("/explain", Some("gzip"), false), NotBuilt);
        assert_eq!(
            explain_answer("/explain/config", Some("gzip"), false),
            Config
        );
        assert_eq!(
            explain_answer("/explain/nothing", Some("gzip"), false),
            NotFound
        );
    }
}
