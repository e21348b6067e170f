#!/usr/bin/env bash
# Shared by the wrk comparisons (sourced, not run): settings, the processes they start (stopped
# on exit), tool checks and builds, the demo origin, Envoys with named listeners, and the
# helpers the measurements use. The sourcing script sets BENCH (its name, e.g. "compare"),
# TEMPLATE and BENCH_PATH before sourcing.

# SMOKE=1: a 1-second run of one round, against dev-profile builds the test command has made
# already, only to prove the script still works end to end (its figures mean nothing).
SMOKE="${SMOKE:-0}"
if [[ "$SMOKE" == 1 ]]; then
    DURATION=1
    ROUNDS=1
fi
DURATION="${DURATION:-5}"
ROUNDS="${ROUNDS:-3}"
CONNECTIONS="${CONNECTIONS:-16}"
ENVOY_CPU="${ENVOY_CPU:-0}"
WRK_CPU="${WRK_CPU:-1}"
# Envoy worker threads (start_envoy) and the demo origin's flags (the sourcing script may set
# ORIGIN_ARGS as an array before sourcing).
ENVOY_CONCURRENCY="${ENVOY_CONCURRENCY:-1}"
if ! declare -p ORIGIN_ARGS >/dev/null 2>&1; then
    ORIGIN_ARGS=(--latency-scale 0)
fi

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
OUT="$ROOT/target/wrk-$BENCH"
ENVOY="$ROOT/envoy/.venv/bin/envoy"
WASM="$ROOT/target/wasm32-unknown-unknown/release/edge_filter.wasm"
if [[ "$SMOKE" == 1 ]]; then
    PROFILE_DIR=debug
else
    PROFILE_DIR=release
fi
ORIGIN_BIN="$ROOT/target/$PROFILE_DIR/demo-origin"

die() { echo "$BENCH.sh: ERROR: $*" >&2; exit 1; }
log() { echo "== $*" >&2; }

mkdir -p "$OUT"
rm -f "$OUT"/*.log "$OUT"/wrk-*.txt "$OUT"/check-*

# --- processes we start, stopped on exit --------------------------------------------------
PIDS=()
PEER_DIRS=() # temporary directories, removed after the processes stopped
cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    for dir in "${PEER_DIRS[@]}"; do
        rm -rf "$dir"
    done
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- 1. tools and builds ------------------------------------------------------------------
if ! command -v wrk >/dev/null; then
    log "installing wrk"
    apt-get install -y wrk >"$OUT/apt.log" 2>&1 \
        || { apt-get update >>"$OUT/apt.log" 2>&1 && apt-get install -y wrk >>"$OUT/apt.log" 2>&1; } \
        || die "apt-get install wrk failed (see $OUT/apt.log)"
fi
command -v taskset >/dev/null || die "taskset missing (util-linux)"
command -v curl >/dev/null || die "curl missing"
command -v python3 >/dev/null || die "python3 missing"
if [[ ! -x "$ENVOY" ]]; then
    log "envoy missing: running envoy/setup.sh"
    (cd "$ROOT" && envoy/setup.sh) >"$OUT/setup.log" 2>&1 || die "envoy/setup.sh failed (see $OUT/setup.log)"
fi

cd "$ROOT"
# native_build NAME CARGO-ARGS...: a release build of what the bench runs. In SMOKE mode, one dev
# build of every binary and example of the workspace instead: the test command has built them
# already with the same (workspace-wide) features, so nothing compiles again — a `-p` build
# would resolve other features and rebuild half the dependency tree.
native_build() {
    local name="$1"
    shift
    if [[ "$SMOKE" == 1 ]]; then
        [[ -z "${SMOKE_BUILT:-}" ]] || return 0
        log "building the workspace's binaries and examples (dev profile, smoke mode)"
        cargo build --workspace --bins --examples >"$OUT/build-native.log" 2>&1 \
            || die "workspace build failed (see $OUT/build-native.log)"
        SMOKE_BUILT=1
    else
        log "building $name (release)"
        cargo build --release "$@" >"$OUT/build-$name.log" 2>&1 \
            || die "$name build failed (see $OUT/build-$name.log)"
    fi
}
native_build demo-origin -p edge-envoy --bin demo-origin
log "building edge filter wasm (release)"
WASM_NOTE="built now"
if ! cargo build --release --target wasm32-unknown-unknown -p edge-filter >"$OUT/build-wasm.log" 2>&1; then
    # Others edit the filter concurrently; a half-edited tree should not stop the benchmark
    # if a previous build exists, but say so loudly (STRICT_BUILD=1 makes it fatal).
    if [[ "${STRICT_BUILD:-0}" == 1 || ! -f "$WASM" ]]; then
        die "edge filter build failed (see $OUT/build-wasm.log)"
    fi
    WASM_NOTE="BUILD FAILED, using the existing $(date -r "$WASM" '+%F %T') module (see $OUT/build-wasm.log)"
    echo "$BENCH.sh: WARNING: wasm build failed; benchmarking the existing module from $(date -r "$WASM" '+%F %T')" >&2
fi

# --- 2. origin -----------------------------------------------------------------------------
# Every port is picked by the kernel at bind time (port 0) and read back, so nothing races
# between choosing a free port and binding it (other engineers run tests on this machine).
log "starting demo-origin on 127.0.0.1:0 (CPU $ENVOY_CPU)"
taskset -c "$ENVOY_CPU" "$ORIGIN_BIN" --listen "127.0.0.1:0" "${ORIGIN_ARGS[@]}" \
    >"$OUT/origin.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 100); do
    grep -q "demo-origin listening on" "$OUT/origin.log" 2>/dev/null && break
    kill -0 "${PIDS[-1]}" 2>/dev/null || die "demo-origin exited (see $OUT/origin.log)"
    sleep 0.1
done
grep -q "demo-origin listening on" "$OUT/origin.log" || die "demo-origin did not start (see $OUT/origin.log)"
ORIGIN_PORT="$(sed -n 's|.*demo-origin listening on http://127\.0\.0\.1:\([0-9]*\).*|\1|p' "$OUT/origin.log" | head -1)"
[[ -n "$ORIGIN_PORT" ]] || die "cannot read the origin's port from $OUT/origin.log"

# --- 3. envoy ------------------------------------------------------------------------------
# start_envoy CONFIG LISTENER...: starts Envoy (ENVOY_CONCURRENCY workers, CPU ENVOY_CPU), sets
# ENVOY_PID, ADMIN_PORT and PORT[<listener name>] for every listener named, and PORT[A], PORT[B],
# ... by position. ENVOY_TAG (default "envoy") names its log and admin files, so several Envoys
# can run side by side.
start_envoy() {
    local CONFIG="$1"
    shift
    local tag="${ENVOY_TAG:-envoy}"
    log "starting $tag (CPU $ENVOY_CPU, $ENVOY_CONCURRENCY worker(s))"
    rm -f "$OUT/$tag-admin.addr"
    taskset -c "$ENVOY_CPU" "$ENVOY" -c "$CONFIG" --concurrency "$ENVOY_CONCURRENCY" \
        --disable-hot-restart \
        --admin-address-path "$OUT/$tag-admin.addr" --log-level warn >"$OUT/$tag.log" 2>&1 &
    ENVOY_PID=$!
    PIDS+=("$ENVOY_PID")
    ADMIN_PORT=""
    for _ in $(seq 300); do
        [[ -z "$ADMIN_PORT" && -s "$OUT/$tag-admin.addr" ]] && ADMIN_PORT="$(sed -n 's|.*:\([0-9]*\)$|\1|p' "$OUT/$tag-admin.addr")"
        [[ -n "$ADMIN_PORT" && "$(curl -s "http://127.0.0.1:$ADMIN_PORT/ready" 2>/dev/null)" == LIVE* ]] && break
        kill -0 "$ENVOY_PID" 2>/dev/null || { tail -20 "$OUT/$tag.log" >&2; die "$tag exited (see $OUT/$tag.log)"; }
        sleep 0.1
    done
    [[ -n "$ADMIN_PORT" && "$(curl -s "http://127.0.0.1:$ADMIN_PORT/ready")" == LIVE* ]] \
        || die "$tag not ready (see $OUT/$tag.log)"
    local ports
    ports="$(curl -s "http://127.0.0.1:$ADMIN_PORT/listeners?format=json" \
        | python3 -c 'import json, sys
ports = {l["name"]: l["local_address"]["socket_address"]["port_value"]
         for l in json.load(sys.stdin)["listener_statuses"]}
print(*(ports.get(name, "") for name in sys.argv[1:]))' "$@")"
    local -a found
    read -r -a found <<<"$ports"
    [[ "${#found[@]}" == "$#" ]] || die "cannot read the ports of listeners $* from the admin API"
    local letters=(A B C D E F G H I J K L M N O P) i=0 name
    for name in "$@"; do
        PORT[$name]="${found[$i]}"
        PORT[${letters[$i]}]="${found[$i]}"
        i=$((i + 1))
    done
    log "$tag admin $ADMIN_PORT; $(for name in "$@"; do printf '%s %s; ' "$name" "${PORT[$name]}"; done)origin $ORIGIN_PORT"
}
declare -A PORT

# One stat by exact name; empty if Envoy has no such stat.
stat() { curl -s "http://127.0.0.1:$ADMIN_PORT/stats?filter=^$1\$" | awk -F': ' -v n="$1" '$1==n{print $2}'; }
# wrk latency -> milliseconds
to_ms() { awk -v v="$1" 'BEGIN{ n=v+0; u=v; sub(/^[0-9.]+/,"",u);
    if(u=="us")n/=1000; else if(u=="s")n*=1000; else if(u=="m")n*=60000; printf "%.3f", n }'; }
