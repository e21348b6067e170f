#!/usr/bin/env bash
# A cache workload against ours and the peer caches, one table:
#   REQUESTS (20,000) GETs of /api/v1/leads/r<round>-<key> from CLIENTS (32) keep-alive clients,
#   keys drawn from KEYS (1,000) with Zipf s = ZIPF_S (1), the same draws for every server, new
#   keys each round (every run starts cold); the demo
#   origin takes 150 ms per lead and answers `Cache-Control: max-age=1, stale-while-revalidate=5`.
#   ours         Envoy (ENVOY_WORKERS = 2 workers) with the shipped filter chain as the launcher
#                renders it (compressors, edge filter, router); plugin config OURS_CONFIG
#                (default benches/peers/workload-plugin-config.json: leads cached with the
#                defaults, except that age counts from a response's arrival as Varnish counts
#                it: `age_includes_response_delay: false`; with the RFC 9111 default the 150 ms
#                the origin takes count toward age and a `max-age=1` entry refreshes ~15% more)
#   varnish      Varnish, default settings (grace from stale-while-revalidate)
#   nginx        nginx, ENVOY_WORKERS workers, proxy_cache with proxy_cache_lock,
#                proxy_cache_use_stale updating and proxy_cache_background_update
#   envoy-cache  Envoy (ENVOY_WORKERS workers) with its cache filter (SimpleHttpCache)
#   floor        not in the default set: ours's Envoy and chain with benches/floor/local-reply in
#                the VM, answering every request at once with a fixed body. It never waits on
#                the origin, so it only means something where the others never do either: the
#                hit ceiling of anything in a wasm VM in this setup (see HITS below)
# The servers and the origin are pinned to CPU 0, the load generator (the zipf example with
# --target) to CPU 1. Prints req/s, mean, p95 and p99 latency, and the origin fetches each
# server caused (the origin's own counter), then ours against Varnish. ROUNDS (default 1) > 1
# runs the servers interleaved that many times and prints medians.
#
# Usage: benches/peers/workload.sh            (REQUESTS, CLIENTS, KEYS, ZIPF_S, ROUNDS, OURS_CONFIG,
#                                              SERVERS, ORIGIN_CACHE_CONTROL)
#        SMOKE=1 benches/peers/workload.sh    (300 requests, 1 round: proves the script works)
#   HITS: what serving hits costs each server in this setup (all but the first answer per key
#   are hits, so req/s is the hit throughput of 32 clients on one core):
#        SERVERS="ours floor varnish" KEYS=10 REQUESTS=60000 ORIGIN_CACHE_CONTROL=max-age=60 \
#            ROUNDS=3 benches/peers/workload.sh
# Per run, answers-r<round>-<server>.txt holds `<sent µs> <latency µs>` per answer (where in the
# run a server loses time); ours-stats.txt holds ours's Envoy stats after the runs.
# Installs Debian's wrk, varnish and nginx-light when missing. Logs and rendered configs go to
# target/wrk-workload/.
set -euo pipefail

PEERS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROUNDS="${ROUNDS:-1}"
if [[ "${SMOKE:-0}" == 1 ]]; then
    REQUESTS=300
fi
REQUESTS="${REQUESTS:-20000}"
CLIENTS="${CLIENTS:-32}"
KEYS="${KEYS:-1000}"
ZIPF_S="${ZIPF_S:-1}"
ENVOY_WORKERS="${ENVOY_WORKERS:-2}"
OURS_CONFIG="${OURS_CONFIG:-$PEERS/workload-plugin-config.json}"
ORIGIN_CACHE_CONTROL="${ORIGIN_CACHE_CONTROL:-max-age=1, stale-while-revalidate=5}"
ORIGIN_ARGS=(--latency-scale 1 --cache-control "leads:$ORIGIN_CACHE_CONTROL")
PATH_PREFIX="/api/v1/leads/"
ENVOY_CONCURRENCY="$ENVOY_WORKERS"
BENCH=workload
source "$PEERS/../wrk/common.sh"
source "$PEERS/peers.sh"

native_build launch-and-load -p edge-envoy --bin edge-launch --example zipf
LAUNCH="$ROOT/target/$PROFILE_DIR/edge-launch"
LOADGEN="$ROOT/target/$PROFILE_DIR/examples/zipf"
[[ -f "$OURS_CONFIG" ]] || die "no plugin config $OURS_CONFIG"

curl -sS --fail -D "$OUT/origin-headers.txt" -o /dev/null "http://127.0.0.1:$ORIGIN_PORT${PATH_PREFIX}1" \
    || die "origin did not answer ${PATH_PREFIX}1"
grep -qi "^cache-control: $ORIGIN_CACHE_CONTROL" "$OUT/origin-headers.txt" \
    || { cat "$OUT/origin-headers.txt" >&2; die "the origin does not answer '$ORIGIN_CACHE_CONTROL'"; }

# --- ours: the shipped chain, rendered by the launcher --------------------------------------
OURS_YAML="$OUT/envoy-ours.yaml"
"$LAUNCH" --print-config --listen 127.0.0.1:0 --admin 127.0.0.1:0 \
    --upstream "127.0.0.1:$ORIGIN_PORT" --plugin-config "$OURS_CONFIG" --wasm "$WASM" \
    --workers "$ENVOY_WORKERS" >"$OURS_YAML" || die "edge-launch --print-config failed"
ENVOY_TAG=envoy-ours start_envoy "$OURS_YAML" edge
OURS_PORT="${PORT[edge]}"
OURS_ADMIN="$ADMIN_PORT"

# SERVERS="ours varnish" runs a subset; "floor" is not in the default set.
SERVERS=(${SERVERS:-ours varnish nginx envoy-cache})

# --- the floor: the same Envoy and chain with the floor guest in the VM -----------------------
FLOOR_PORT=""
if [[ " ${SERVERS[*]} " == *" floor "* ]]; then
    log "building the floor guest for wasm32 (release)"
    cargo build --release --target wasm32-unknown-unknown -p floor-local-reply \
        >"$OUT/build-floor.log" 2>&1 || die "floor guest build failed (see $OUT/build-floor.log)"
    FLOOR_YAML="$OUT/envoy-floor.yaml"
    sed "s|$WASM|$ROOT/target/wasm32-unknown-unknown/release/floor_local_reply.wasm|" \
        "$OURS_YAML" >"$FLOOR_YAML"
    grep -q floor_local_reply "$FLOOR_YAML" || die "cannot put the floor guest in $FLOOR_YAML"
    ENVOY_TAG=envoy-floor start_envoy "$FLOOR_YAML" edge
    FLOOR_PORT="${PORT[edge]}"
fi

# --- Envoy's cache filter ---------------------------------------------------------------------
CACHE_YAML="$OUT/envoy-cache.yaml"
cat >"$CACHE_YAML" <<EOF
# Rendered by benches/peers/workload.sh: Envoy's cache filter in front of the demo origin.
admin:
  address:
    socket_address: { address: 127.0.0.1, port_value: 0 }
static_resources:
  listeners:
  - name: envoy_cache
    address:
      socket_address: { address: 127.0.0.1, port_value: 0 }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: envoy_cache
          route_config:
            name: envoy_cache
            virtual_hosts:
            - name: origin
              domains: ["*"]
              routes:
              - match: { prefix: "/" }
                route: { cluster: origin, timeout: 15s }
          http_filters:
          - name: envoy.filters.http.cache
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.cache.v3.CacheConfig
              typed_config:
                "@type": type.googleapis.com/envoy.extensions.http.cache.simple_http_cache.v3.SimpleHttpCacheConfig
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
  clusters:
  - name: origin
    type: STATIC
    connect_timeout: 2s
    load_assignment:
      cluster_name: origin
      endpoints:
      - lb_endpoints:
        - endpoint:
            address:
              socket_address: { address: 127.0.0.1, port_value: $ORIGIN_PORT }
EOF
ENVOY_TAG=envoy-cache start_envoy "$CACHE_YAML" envoy_cache
ENVOY_CACHE_PORT="${PORT[envoy_cache]}"

# --- nginx and Varnish -----------------------------------------------------------------------
start_nginx nginx "$ENVOY_WORKERS" "            proxy_cache_lock on;
            proxy_cache_use_stale updating;
            proxy_cache_background_update on;"
start_varnish varnish

declare -A SPORT=([ours]="$OURS_PORT" [varnish]="$VARNISH_PORT" [nginx]="$NGINX_PORT"
    [envoy-cache]="$ENVOY_CACHE_PORT" [floor]="$FLOOR_PORT")

# Every server answers a lead before the runs (and the answer is the origin's).
curl -sS --fail -o "$OUT/origin-lead.body" "http://127.0.0.1:$ORIGIN_PORT${PATH_PREFIX}999999" \
    || die "origin did not answer ${PATH_PREFIX}999999"
for s in "${SERVERS[@]}"; do
    curl -sS --fail -o "$OUT/check-$s.body" "http://127.0.0.1:${SPORT[$s]}${PATH_PREFIX}999999" \
        || die "$s did not answer ${PATH_PREFIX}999999"
    [[ "$s" == floor ]] && continue # its fixed body is not the origin's
    cmp -s "$OUT/check-$s.body" "$OUT/origin-lead.body" || die "$s: body differs from the origin's"
done

# Jiffies CPU $ENVOY_CPU (servers and origin) spent busy and idle: "busy idle".
cpu_jiffies() {
    awk -v cpu="cpu$ENVOY_CPU" '$1 == cpu {print $2 + $3 + $4 + $7 + $8, $5 + $6}' /proc/stat
}

leads_fetched() {
    curl -s "http://127.0.0.1:$ORIGIN_PORT/__origin/stats" \
        | python3 -c 'import json, sys; print(json.load(sys.stdin)["requests"]["leads"])'
}

# --- runs ---------------------------------------------------------------------------------------
RESULTS="$OUT/results.tsv"
: >"$RESULTS"
LOAD_CMD=(taskset -c "$WRK_CPU" "$LOADGEN" --requests "$REQUESTS" --clients "$CLIENTS"
    --keys "$KEYS" --s "$ZIPF_S")
# Warm-up: each server and its path to the origin (connections, V8's compiled wasm, worker
# threads) see WARMUP requests on other keys (w0, w1, ...) first; they are not measured.
WARMUP="${WARMUP:-200}"
SETTLE=1 # seconds before and after each run, for background fetches still in flight
if [[ "$SMOKE" == 1 ]]; then
    WARMUP=32
    SETTLE=0.3
fi
for s in "${SERVERS[@]}"; do
    taskset -c "$WRK_CPU" "$LOADGEN" --requests "$WARMUP" --clients "$CLIENTS" --keys "$KEYS" \
        --s "$ZIPF_S" --path-prefix "${PATH_PREFIX}w" --target "127.0.0.1:${SPORT[$s]}" \
        >"$OUT/warmup-$s.txt" 2>&1 || die "warm-up of $s failed (see $OUT/warmup-$s.txt)"
done
for r in $(seq "$ROUNDS"); do
    # Each round starts with another server, so none always runs first.
    rotated=("${SERVERS[@]:$(((r - 1) % ${#SERVERS[@]}))}" "${SERVERS[@]:0:$(((r - 1) % ${#SERVERS[@]}))}")
    for s in "${rotated[@]}"; do
        f="$OUT/load-r$r-$s.txt"
        # Whatever the previous run left in flight (background refreshes) lands before this one.
        sleep "$SETTLE"
        before="$(leads_fetched)"
        read -r busy0 idle0 < <(cpu_jiffies)
        # Keys of this round only (r<N>-<key>): every run starts cold, whichever server ran
        # just before it and whatever that left within stale-while-revalidate.
        "${LOAD_CMD[@]}" --path-prefix "${PATH_PREFIX}r$r-" --target "127.0.0.1:${SPORT[$s]}" \
            --answers-out "$OUT/answers-r$r-$s.txt" >"$f" 2>&1 || die "load generator failed (see $f)"
        read -r busy1 idle1 < <(cpu_jiffies)
        busy_pct=$((100 * (busy1 - busy0) / ((busy1 - busy0) + (idle1 - idle0) + 1)))
        sleep "$SETTLE"
        after="$(leads_fetched)"
        line="$(grep '^zipf-result ' "$f")" || die "no result line in $f"
        printf '%s\t%s\t%s\t%s cpu_busy_pct=%s\n' "$r" "$s" "$((after - before))" "$line" "$busy_pct" \
            >>"$RESULTS"
        log "round $r $s: origin fetches $((after - before)); CPU $ENVOY_CPU busy $busy_pct%; $line"
    done
done

# Ours's Envoy stats after the runs (upstream connections, cache outcomes), for a closer look.
curl -s "http://127.0.0.1:$OURS_ADMIN/stats" >"$OUT/ours-stats.txt" || true

# --- report -------------------------------------------------------------------------------------
echo
echo "command:   $0  (REQUESTS=$REQUESTS CLIENTS=$CLIENTS KEYS=$KEYS ZIPF_S=$ZIPF_S ROUNDS=$ROUNDS SMOKE=$SMOKE)"
echo "load:      ${LOAD_CMD[*]} --path-prefix ${PATH_PREFIX}r<round>- --target 127.0.0.1:<port>"
echo "origin:    demo-origin ${ORIGIN_ARGS[*]} (150 ms per lead; CPU $ENVOY_CPU)"
echo "ours:      Envoy $("$ENVOY" --version 2>/dev/null | awk -F'version: ' 'NF > 1 {print $2}' | cut -d/ -f2)," \
    "$ENVOY_WORKERS workers, shipped chain ($OURS_YAML), plugin config $OURS_CONFIG"
echo "           wasm $WASM ($WASM_NOTE)"
echo "peers:     $("$VARNISHD" -V 2>&1 | head -1 | sed 's/varnishd (//; s/ revision.*//') (default settings);" \
    "$("$NGINX" -v 2>&1 | sed 's/.*version: //') ($ENVOY_WORKERS workers, lock + use_stale updating +" \
    "background_update); Envoy cache filter ($ENVOY_WORKERS workers)"
echo "machine:   $(nproc) CPUs, shared with other work: absolute figures are noisy"
python3 - "$RESULTS" "$SMOKE" <<'PY'
import statistics
import sys

SMOKE = sys.argv[2] == "1"

runs = {}
order = ["ours", "varnish", "nginx", "envoy-cache"]
for line in open(sys.argv[1]):
    if not line.strip():
        continue
    r, server, fetched, result = line.rstrip("\n").split("\t")
    kv = dict(item.split("=", 1) for item in result.split()[1:])
    runs.setdefault(server, []).append({
        "rps": float(kv["rps"]), "mean": float(kv["mean_ms"]), "p95": float(kv["p95_ms"]),
        "p99": float(kv["p99_ms"]), "fetched": int(fetched), "answered": int(kv["answered"]),
        "non_200": int(kv["non_200"]), "lost": int(kv["unanswered"]) + int(kv["failed"]),
        "waited": int(kv["waited"]), "waited_mean": float(kv["waited_mean_ms"]),
        "quick_mean": float(kv["quick_mean_ms"]), "cpu": int(kv["cpu_busy_pct"]),
    })
    if server not in order:
        order.append(server)
order = [s for s in order if s in runs]
n = len(next(iter(runs.values())))
med = {s: {k: statistics.median(run[k] for run in runs[s]) for k in runs[s][0]} for s in order}
title = "medians over %d rounds" % n if n > 1 else "one run each"
print(f"\n{title}")
print(f"  {'server':13}{'req/s':>9}{'mean ms':>10}{'p95 ms':>9}{'p99 ms':>9}{'origin':>8}"
      f"{'answered':>10}{'non-200':>9}{'lost':>6}{'waited':>8}{'its ms':>8}{'rest ms':>9}{'cpu0 %':>8}")
for s in order:
    m = med[s]
    print(f"  {s:13}{m['rps']:9.0f}{m['mean']:10.2f}{m['p95']:9.2f}{m['p99']:9.2f}{m['fetched']:8.0f}"
          f"{m['answered']:10.0f}{m['non_200']:9.0f}{m['lost']:6.0f}{m['waited']:8.0f}"
          f"{m['waited_mean']:8.2f}{m['quick_mean']:9.3f}{m['cpu']:8.0f}")
print("  waited: answers that took 100 ms or more (they waited on the origin); its ms: their mean;"
      " rest ms: the mean of the others; cpu0 %: how busy the servers' and origin's CPU was")
if "ours" in med:
    print("\nours against each peer (req/s ours/peer, mean and rest latency peer/ours: > 1 is ours"
          " better; origin fetches ours/peer: < 1 is ours better)")
    for s in order:
        if s == "ours":
            continue
        o, p = med["ours"], med[s]
        fetch_ratio = f"{o['fetched'] / p['fetched']:.3f}" if p["fetched"] else "n/a"
        rest_ratio = f"{p['quick_mean'] / o['quick_mean']:.3f}" if o["quick_mean"] else "n/a"
        print(f"  vs {s:12} req/s {o['rps'] / p['rps']:.3f}   mean {p['mean'] / o['mean']:.3f}"
              f"   rest {rest_ratio}   p95 {p['p95'] / o['p95']:.3f}   origin fetches {fetch_ratio}")
    if "varnish" in med and SMOKE:
        print("\ngoal against Varnish: not judged in a smoke run")
    elif "varnish" in med:
        o, v = med["ours"], med["varnish"]
        goal = o["rps"] >= v["rps"] and o["mean"] <= v["mean"] and o["fetched"] <= v["fetched"]
        print(f"\ngoal (req/s and mean latency at least Varnish's, origin fetches at most Varnish's):"
              f" {'MET' if goal else 'NOT MET'}")
PY
echo
echo "logs: $OUT"
