//! `edge-oci`: writes the filter as a Wasm OCI image layout (a directory; no push).

use std::path::PathBuf;
use std::process::ExitCode;

use edge_envoy::launch::default_wasm;
use edge_envoy::oci::write_wasm_image;

const USAGE: &str = "\
edge-oci: package the filter as a Wasm OCI image layout in a directory (no push)

options:
  --out DIR      the image layout directory (required; created if missing; an existing layout
                 keeps its other tags)
  --wasm FILE    the filter module (default: target/wasm32-unknown-unknown/release/edge_filter.wasm,
                 or $EDGE_WASM)
  --tag TAG      the tag in index.json (default: the crate version)
  --help         this text

Push it with e.g. `oras cp --from-oci-layout DIR:TAG REGISTRY/edge-filter:TAG`.
";

struct Options {
    out: PathBuf,
    wasm: PathBuf,
    tag: String,
}

fn parse(args: impl Iterator<Item = String>) -> Result<Option<Options>, String> {
    let mut out = None;
    let mut wasm = default_wasm();
    let mut tag = env!("CARGO_PKG_VERSION").to_string();
    let mut args = args;
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--out" => out = Some(PathBuf::from(value("--out")?)),
            "--wasm" => wasm = PathBuf::from(value("--wasm")?),
            "--tag" => tag = value("--tag")?,
            "--help" | "-h" => return Ok(None),
            other => return Err(format!("unknown option {other:?} (see --help)")),
        }
    }
    let out = out.ok_or("--out DIR is required (see --help)")?;
    Ok(Some(Options { out, wasm, tag }))
}

fn main() -> ExitCode {
    let options = match parse(std::env::args().skip(1)) {
        Ok(Some(options)) => options,
        Ok(None) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            eprintln!("edge-oci: {err}");
            return ExitCode::from(2);
        }
    };
    let wasm = match std::fs::read(&options.wasm) {
        Ok(bytes) => bytes,
        Err(err) => {
            eprintln!(
                "edge-oci: cannot read {}: {err} — build it with: cargo build --release \
                 --target wasm32-unknown-unknown -p edge-filter",
                options.wasm.display()
            );
            return ExitCode::FAILURE;
        }
    };
    match write_wasm_image(&options.out, &wasm, &options.tag) {
        Ok(image) => {
            println!(
                "wrote {dir} (tag {tag})\n\
                 manifest    {manifest}  ({manifest_size} bytes)\n\
                 wasm layer  {layer}  ({layer_size} bytes, sha256 of {wasm})\n\
                 \n\
                 pin it by digest: WasmPlugin spec.sha256 / EnvoyExtensionPolicy image.sha256: {hex}\n\
                 push it: oras cp --from-oci-layout {dir}:{tag} REGISTRY/edge-filter:{tag}",
                dir = image.dir.display(),
                tag = image.tag,
                manifest = image.manifest.digest,
                manifest_size = image.manifest.size,
                layer = image.wasm_layer.digest,
                layer_size = image.wasm_layer.size,
                wasm = options.wasm.display(),
                hex = image.manifest.hex(),
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("edge-oci: {err}");
            ExitCode::FAILURE
        }
    }
}
