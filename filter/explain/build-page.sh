#!/usr/bin/env bash
# Builds the explainer page into target/explain-page: index.html, the JS wasm-bindgen
# generates and the .wasm (the filter's policy, release build). Open it from any static file
# server (the page fetches its .wasm, which a browser does not do from file://), e.g.
#   python3 -m http.server -d target/explain-page 8000
# The filter's build (filter/build.rs) compiles this page into the filter, which serves it at
# <admin prefix>/explain: build the page first, then the filter. The glue is wasm-bindgen's
# `no-modules` output (a classic script defining `wasm_bindgen`), so the filter can inline it
# into the page it serves (a browser sends no token when it loads a <script src>).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
out="${1:-target/explain-page}"
cargo build --release --target wasm32-unknown-unknown -p edge-explain
mkdir -p "$out"
wasm-bindgen --target no-modules --no-typescript --out-dir "$out" \
  target/wasm32-unknown-unknown/release/edge_explain.wasm
cp filter/explain/page/index.html "$out/index.html"
cp envoy/plugin-config.json "$out/demo-config.json"
ls -l "$out"
