//! Compiles the explainer page into the filter, which serves it at `<admin prefix>/explain`:
//! the page `filter/explain/build-page.sh` built (`$EDGE_EXPLAIN_PAGE_DIR`, else
//! `<workspace>/target/explain-page`), with the wasm-bindgen glue inlined into the HTML (a
//! browser sends no token when it loads a `<script src>`) and both the HTML and the `.wasm`
//! gzip-compressed. Only for the `plugin` feature on wasm32: the explainer's own build (which
//! uses the filter without it) never depends on the page. Without a page the filter still
//! builds, and `<prefix>/explain` answers 404 saying how to build it.

use std::env;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The static page's glue tag; the served page gets the glue inline in its place.
const GLUE_TAG: &str = r#"<script id="glue" src="edge_explain.js"></script>"#;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let Some(out) = env::var_os("OUT_DIR").map(PathBuf::from) else {
        return;
    };
    let wanted = env::var_os("CARGO_FEATURE_PLUGIN").is_some()
        && env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32");
    let assets = if wanted {
        println!("cargo:rerun-if-env-changed=EDGE_EXPLAIN_PAGE_DIR");
        let (dir, default) = page_dir();
        if default {
            // Cargo counts a missing path as changed (the filter would be compiled again on
            // every build): the default directory is made, empty, so that only the page
            // written into it later makes this run again.
            let _ = fs::create_dir_all(&dir);
        }
        // The directory, not its files: a change to any file in it reruns this.
        println!("cargo:rerun-if-changed={}", dir.display());
        let built = compile(&dir, &out);
        if let Err(why) = &built {
            println!("cargo:warning=the explainer page is not compiled in ({why}); <admin prefix>/explain answers 404 until filter/explain/build-page.sh has run and the filter is built again");
        }
        built
    } else {
        Err("not the plugin build".to_string())
    };
    let source = match assets {
        Ok((page, wasm)) => format!(
            "/// The explainer page (HTML, glue inline), gzip.\n\
             pub const PAGE_GZ: &[u8] = include_bytes!({page:?});\n\
             /// The explainer's `.wasm`, gzip.\n\
             pub const WASM_GZ: &[u8] = include_bytes!({wasm:?});\n"
        ),
        Err(_) => "/// Not compiled in.\npub const PAGE_GZ: &[u8] = &[];\n\
                   /// Not compiled in.\npub const WASM_GZ: &[u8] = &[];\n"
            .to_string(),
    };
    if let Err(err) = fs::write(out.join("explain_assets.rs"), source) {
        println!("cargo:warning=cannot write explain_assets.rs: {err}");
    }
}

/// The page's directory, and whether it is the default one.
fn page_dir() -> (PathBuf, bool) {
    if let Some(dir) = env::var_os("EDGE_EXPLAIN_PAGE_DIR") {
        return (PathBuf::from(dir), false);
    }
    let manifest = env::var_os("CARGO_MANIFEST_DIR").map_or_else(PathBuf::new, PathBuf::from);
    (manifest.join("../target/explain-page"), true)
}

/// Writes the served page and the `.wasm`, gzip, into `out`; their paths.
fn compile(dir: &Path, out: &Path) -> Result<(String, String), String> {
    let read = |name: &str| {
        fs::read(dir.join(name)).map_err(|err| format!("{}: {err}", dir.join(name).display()))
    };
    let html = String::from_utf8(read("index.html")?).map_err(|_| "index.html is not UTF-8")?;
    let glue =
        String::from_utf8(read("edge_explain.js")?).map_err(|_| "edge_explain.js is not UTF-8")?;
    let wasm = read("edge_explain_bg.wasm")?;
    if !html.contains(GLUE_TAG) {
        return Err(format!(
            "index.html has no {GLUE_TAG}: built by an older build-page.sh"
        ));
    }
    if !glue.contains("let wasm_bindgen") || glue.contains("\nexport ") {
        return Err("edge_explain.js is not wasm-bindgen's no-modules glue: built by an older build-page.sh".into());
    }
    let lower = glue.to_ascii_lowercase();
    if lower.contains("</script") || lower.contains("<!--") {
        return Err("edge_explain.js cannot be inlined into a <script> element".into());
    }
    let served = html.replacen(
        GLUE_TAG,
        &format!("<script id=\"glue\" data-served=\"edge\">\n{glue}\n</script>"),
        1,
    );
    let page = out.join("explain.html.gz");
    let wasm_gz = out.join("edge_explain_bg.wasm.gz");
    fs::write(&page, gzip(served.as_bytes())?).map_err(|err| err.to_string())?;
    fs::write(&wasm_gz, gzip(&wasm)?).map_err(|err| err.to_string())?;
    Ok((page.display().to_string(), wasm_gz.display().to_string()))
}

fn gzip(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    encoder.write_all(bytes).map_err(|err| err.to_string())?;
    encoder.finish().map_err(|err| err.to_string())
}
