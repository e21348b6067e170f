#!/usr/bin/env bash
# Builds everything and runs the demo: Envoy + the edge filter + the demo origin, in the
# foreground. Extra arguments go to edge-launch (try --help).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
envoy/setup.sh
# The explainer page first: the filter compiles it in (<admin prefix>/explain), and the page's
# build writes a filter .wasm without the plugin that the filter's own build then replaces.
filter/explain/build-page.sh target/explain-page >/dev/null
cargo build --release --target wasm32-unknown-unknown -p edge-filter
cargo build -p edge-envoy --bin edge-launch
exec target/debug/edge-launch "$@"
