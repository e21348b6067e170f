#!/usr/bin/env bash
# Runs every test from a fresh clone: installs what is missing, builds the .wasm modules,
# checks formatting and lints (native and wasm32), then runs the policy unit tests, the
# wasmtime host tests, the benches in test mode and the end-to-end tests against real Envoy.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
started=$(date +%s)
step() { echo; echo "==> $*"; }

step "setup (toolchain, wasm32 target, Envoy ${ENVOY_VERSION:-1.40.0}, chromium)"
envoy/setup.sh --browser

step "build the filter, the host's probe guest and the benchmark floor guests for wasm32 (release)"
cargo build --release --target wasm32-unknown-unknown -p edge-filter -p host-probe \
    -p floor-local-reply -p floor-continue
ls -l target/wasm32-unknown-unknown/release/{edge_filter,floor_local_reply,floor_continue}.wasm

step "cargo fmt --check"
cargo fmt --all --check

step "clippy, native"
cargo clippy --workspace --all-targets -- -D warnings

step "clippy, wasm32"
cargo clippy --target wasm32-unknown-unknown -p edge-filter -p host-probe \
    -p floor-local-reply -p floor-continue --all-targets -- -D warnings

step "tests: policy, wasmtime host, benches (test mode), real Envoy"
cargo test --workspace --all-targets
cargo test --workspace --doc

echo
echo "All tests passed in $(( $(date +%s) - started )) s."
