#!/usr/bin/env bash
# Builds the explainer page into target/explain-page: index.html, the JS wasm-bindgen
# generates and the .wasm (the filter's policy, release build). Open it from any static file
# server (a module script does not load from file://), e.g.
#   python3 -m http.server -d target/explain-page 8000
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$root"
out="${1:-target/explain-page}"
cargo build --release --target wasm32-unknown-unknown -p edge-explain
mkdir -p "$out"
wasm-bindgen --target web --no-typescript --out-dir "$out" \
  target/wasm32-unknown-unknown/release/edge_explain.wasm
cp filter/explain/page/index.html "$out/index.html"
cp envoy/plugin-config.json "$out/demo-config.json"
ls -l "$out"
