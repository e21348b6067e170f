#!/usr/bin/env bash
# Hit path and pass-through against their floors and the peer caches, as ratios in one run:
#   ours        our edge filter (proxy-wasm, V8) answering L1 hits on /api/v1/leads/42
#   chain       the same behind the chain envoy/envoy.yaml ships (brotli and gzip compressors
#               before the edge filter, the buffer filter after it): chain/ours is their cost
#   floor       benches/floor/local-reply: a bare proxy-wasm guest answering every request with a
#               fixed 7,300-byte body and a hit's headers (the floor of anything in a wasm VM)
#   read        benches/floor/read-reply: the floor guest after reading what any cache must, the
#               request headers and the clock (two host calls): read/floor is their cost and
#               the ceiling of ours/floor, read/envoy-cache the ceiling of ours/envoy-cache
#   envoy-cache Envoy's cache filter (SimpleHttpCache) answering hits
#   direct      Envoy direct_response with the same body (no cache, no VM)
#   nginx       nginx proxy_cache hits (1 worker)
#   varnish     Varnish hits, default settings
#   pass        our edge filter passing an uncached service through to the origin (PASS_PATH)
#   continue    benches/floor/continue: a bare proxy-wasm guest that only continues (PASS_PATH)
#   plain       Envoy with no filter but the router (PASS_PATH)
#   bypass      our listener, on a route where Envoy disables the edge filter (edge-launch
#               --bypass): /bypass + PASS_PATH, rewritten to PASS_PATH
#   base        ours built from elsewhere (BASE_WASM=<file>.wasm, default the same module): an
#               A/B of two builds in one run; not in the default set (VARIANTS="ours base floor")
# One Envoy (--concurrency 1) with a listener per Envoy variant; nginx and varnishd as separate
# processes; all of them and the demo origin (--latency-scale 0) pinned to CPU 0, wrk to CPU 1.
# ROUNDS rounds of every variant in turn (interleaved, so drift hits all alike); prints each
# round's req/s and ratios, then the medians and the median of the per-round ratios.
#
# Usage: benches/peers/hit_path.sh   (ROUNDS=5 DURATION=5 CONNECTIONS=16 PASS_PATH=/api/v1/coaching/42,
#                                     VARIANTS="ours floor" for a subset)
#        SMOKE=1 benches/peers/hit_path.sh   (1 round of 1 s: proves the script works; no figures)
# Installs Debian's wrk, varnish and nginx-light when missing. Logs and rendered configs go to
# target/wrk-hit_path/.
set -euo pipefail

ROUNDS="${ROUNDS:-5}"
BENCH_PATH="/api/v1/leads/42"
PASS_PATH="${PASS_PATH:-/api/v1/coaching/42}"
BENCH=hit_path
PEERS="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TEMPLATE="$PEERS/envoy-hit-path.yaml.tmpl"
source "$PEERS/../wrk/common.sh"
source "$PEERS/peers.sh"

log "building the floor guests for wasm32 (release)"
cargo build --release --target wasm32-unknown-unknown -p floor-local-reply -p floor-read-reply -p floor-continue \
    >"$OUT/build-floor.log" 2>&1 || die "floor guests build failed (see $OUT/build-floor.log)"
FLOOR_REPLY_WASM="$ROOT/target/wasm32-unknown-unknown/release/floor_local_reply.wasm"
FLOOR_READ_WASM="$ROOT/target/wasm32-unknown-unknown/release/floor_read_reply.wasm"
FLOOR_CONTINUE_WASM="$ROOT/target/wasm32-unknown-unknown/release/floor_continue.wasm"

# The body and headers of a hit, straight from the origin (for direct_response and the checks).
curl -sS --fail -D "$OUT/origin-headers.txt" -o "$OUT/leads-42.body" \
    "http://127.0.0.1:$ORIGIN_PORT$BENCH_PATH" || die "origin did not answer $BENCH_PATH"
curl -sS --fail -o "$OUT/pass.body" "http://127.0.0.1:$ORIGIN_PORT$PASS_PATH" \
    || die "origin did not answer $PASS_PATH"
hdr() { grep -i "^$1:" "$2" | head -1 | cut -d: -f2- | sed 's/^ *//; s/\r$//'; }
CONTENT_TYPE="$(hdr content-type "$OUT/origin-headers.txt")"
CACHE_CONTROL="$(hdr cache-control "$OUT/origin-headers.txt")"
ETAG="$(hdr etag "$OUT/origin-headers.txt")"
BODY_BYTES="$(wc -c <"$OUT/leads-42.body")"

CONFIG="$OUT/envoy-hit-path.yaml"
sed -e "s|@@ORIGIN_PORT@@|$ORIGIN_PORT|g" -e "s|@@WASM@@|$WASM|g" \
    -e "s|@@BASE_WASM@@|${BASE_WASM:-$WASM}|g" \
    -e "s|@@FLOOR_REPLY_WASM@@|$FLOOR_REPLY_WASM|g" \
    -e "s|@@FLOOR_READ_WASM@@|$FLOOR_READ_WASM|g" \
    -e "s|@@FLOOR_CONTINUE_WASM@@|$FLOOR_CONTINUE_WASM|g" \
    -e "s|@@BODY_FILE@@|$OUT/leads-42.body|g" \
    -e "s|@@CONTENT_TYPE@@|${CONTENT_TYPE:-application/json}|g" \
    -e "s|@@CACHE_CONTROL@@|$CACHE_CONTROL|g" -e "s|@@ETAG@@|$ETAG|g" \
    "$TEMPLATE" >"$CONFIG"
grep -q '@@' "$CONFIG" && die "unfilled placeholder in $CONFIG"

start_envoy "$CONFIG" ours ours_base ours_chain floor_reply floor_read floor_continue envoy_cache direct plain
start_nginx nginx 1 ""
start_varnish varnish

# --- variants: name, port, path, what a warm answer must show -----------------------------
# VARIANTS="ours floor" runs a subset.
VARIANTS=(${VARIANTS:-ours chain floor read envoy-cache direct nginx varnish pass continue plain bypass})
declare -A VPORT=([ours]="${PORT[ours]}" [base]="${PORT[ours_base]}" [chain]="${PORT[ours_chain]}" [floor]="${PORT[floor_reply]}" [read]="${PORT[floor_read]}"
    [envoy-cache]="${PORT[envoy_cache]}" [direct]="${PORT[direct]}" [nginx]="$NGINX_PORT"
    [varnish]="$VARNISH_PORT" [pass]="${PORT[ours]}" [continue]="${PORT[floor_continue]}"
    [plain]="${PORT[plain]}" [bypass]="${PORT[ours]}")
declare -A VPATH=([pass]="$PASS_PATH" [continue]="$PASS_PATH" [plain]="$PASS_PATH"
    [bypass]="/bypass$PASS_PATH")
vpath() { echo "${VPATH[$1]:-$BENCH_PATH}"; }
# A grep -Ei pattern the response headers of a warm request must match (a hit, for caches).
declare -A HIT=([ours]='^cache-status:.*hit' [base]='^cache-status:.*hit' [chain]='^cache-status:.*hit' [floor]='^cache-status:.*hit' [read]='^cache-status:.*hit'
    [envoy-cache]='^age:' [direct]='^etag:' [nginx]='^x-cache-status: *hit'
    [varnish]='^x-varnish: *[0-9]+ +[0-9]+' [pass]='^x-origin-endpoint:'
    [continue]='^x-origin-endpoint:' [plain]='^x-origin-endpoint:'
    [bypass]='^x-origin-endpoint:')

for v in "${VARIANTS[@]}"; do
    url="http://127.0.0.1:${VPORT[$v]}$(vpath "$v")"
    for i in 1 2 3 4; do
        curl -sS --fail -D "$OUT/warm-$v.headers" -o "$OUT/warm-$v.body" "$url" \
            || die "$v: warm-up request $i to $url failed"
    done
    grep -Eqi "${HIT[$v]}" "$OUT/warm-$v.headers" \
        || { cat "$OUT/warm-$v.headers" >&2; die "$v: the warm answer has no '${HIT[$v]}' header"; }
    case "$v" in
        pass | continue | plain | bypass) want="$OUT/pass.body" ;;
        floor | read) want="" ;;
        *) want="$OUT/leads-42.body" ;;
    esac
    if [[ -n "$want" ]]; then
        cmp -s "$OUT/warm-$v.body" "$want" || die "$v: body differs from the origin's ($url)"
    fi
done
has_variant() { [[ " ${VARIANTS[*]} " == *" $1 "* ]]; }
if has_variant floor; then
    [[ "$(wc -c <"$OUT/warm-floor.body")" == 7300 ]] || die "floor: body is not 7,300 bytes"
fi
if has_variant read; then
    [[ "$(wc -c <"$OUT/warm-read.body")" == 7300 ]] || die "read: body is not 7,300 bytes"
fi
if has_variant pass && grep -i '^cache-status:' "$OUT/warm-pass.headers" | grep -qi 'hit'; then
    die "pass: $PASS_PATH is answered from our cache; pick an uncached PASS_PATH"
fi
if has_variant ours && has_variant floor; then
    log "ours hit: $(grep -i '^cache-status:' "$OUT/warm-ours.headers" | tr -d '\r')"
    log "hit headers (ours | floor):"
    paste <(grep -v '^HTTP' "$OUT/warm-ours.headers" | cut -d: -f1 | tr -d '\r' | sort) \
        <(grep -v '^HTTP' "$OUT/warm-floor.headers" | cut -d: -f1 | tr -d '\r' | sort) >&2 || true
fi

origin_total() { curl -s "http://127.0.0.1:$ORIGIN_PORT/__origin/stats" | python3 -c 'import json, sys; print(json.load(sys.stdin)["total"])'; }

# --- wrk ------------------------------------------------------------------------------------
WRK_CMD=(taskset -c "$WRK_CPU" wrk -t1 "-c$CONNECTIONS" "-d${DURATION}s" --latency)
RESULTS="$OUT/results.tsv"
: >"$RESULTS"
for r in $(seq "$ROUNDS"); do
    for v in "${VARIANTS[@]}"; do
        f="$OUT/wrk-r$r-$v.txt"
        before="$(origin_total)"
        "${WRK_CMD[@]}" "http://127.0.0.1:${VPORT[$v]}$(vpath "$v")" >"$f" 2>&1 \
            || die "wrk failed (see $f)"
        after="$(origin_total)"
        rps="$(awk '/^Requests\/sec:/{print $2}' "$f")"
        p99="$(awk '$1=="99%"{print $2}' "$f")"
        non2xx="$(awk -F': *' '/Non-2xx or 3xx responses/{print $2}' "$f")"
        errs="$(awk '/Socket errors/{print}' "$f")"
        [[ -n "$rps" && -n "$p99" ]] || die "could not parse wrk output (see $f)"
        [[ -z "$non2xx" ]] || die "$v: $non2xx non-2xx responses in round $r (see $f)"
        [[ -z "$errs" ]] || echo "hit_path.sh: WARNING: $v round $r: $errs" >&2
        printf '%s\t%s\t%s\t%s\t%s\n' "$r" "$v" "$rps" "$(to_ms "$p99")" "$((after - before))" >>"$RESULTS"
        log "round $r $v: $rps req/s, p99 $p99, origin requests $((after - before))"
    done
done

# --- report ---------------------------------------------------------------------------------
echo
echo "command:   $0  (ROUNDS=$ROUNDS DURATION=$DURATION CONNECTIONS=$CONNECTIONS SMOKE=$SMOKE)"
echo "wrk:       ${WRK_CMD[*]} http://127.0.0.1:<port><path>"
echo "envoy:     taskset -c $ENVOY_CPU $ENVOY -c $CONFIG --concurrency $ENVOY_CONCURRENCY" \
    "($("$ENVOY" --version 2>/dev/null | awk -F'version: ' 'NF > 1 {print $2}' | cut -d/ -f2))"
echo "nginx:     $("$NGINX" -v 2>&1 | sed 's/.*version: //'), 1 worker, proxy_cache; varnish:" \
    "$("$VARNISHD" -V 2>&1 | head -1 | sed 's/varnishd (//; s/ revision.*//'), default settings"
echo "origin:    demo-origin --latency-scale 0 (CPU $ENVOY_CPU); hit path $BENCH_PATH ($BODY_BYTES bytes)," \
    "pass path $PASS_PATH ($(wc -c <"$OUT/pass.body") bytes)"
echo "wasm:      $WASM ($WASM_NOTE)"
echo "machine:   $(nproc) CPUs, shared with other work: absolute req/s are noisy, ratios within a round less so"
python3 - "$RESULTS" "$SMOKE" <<'PY'
import statistics
import sys

SMOKE = sys.argv[2] == "1"

rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
data = {(int(r), v): (float(rps), float(p99), int(up)) for r, v, rps, p99, up in rows}
rounds = sorted({r for r, _ in data})
variants = []
for _, v, *_ in rows:
    if v not in variants:
        variants.append(v)
# (numerator, denominator, target)
RATIOS = [
    ("ours", "floor", 0.95),
    ("read", "floor", None),
    ("ours", "read", None),
    ("ours", "base", None),
    ("base", "floor", None),
    ("chain", "ours", None),
    ("ours", "envoy-cache", 0.75),
    ("read", "envoy-cache", None),
    ("ours", "varnish", None),
    ("ours", "nginx", None),
    ("ours", "direct", None),
    ("floor", "direct", None),
    ("pass", "continue", 0.95),
    ("pass", "plain", None),
    ("continue", "plain", None),
    ("bypass", "plain", None),
]
RATIOS = [t for t in RATIOS if t[0] in variants and t[1] in variants]


def ratio(r, a, b):
    return data[(r, a)][0] / data[(r, b)][0]


for r in rounds:
    print(f"\nround {r}")
    print(f"  {'variant':14}{'req/s':>11}{'p99 ms':>10}{'origin rq':>11}")
    for v in variants:
        rps, p99, up = data[(r, v)]
        print(f"  {v:14}{rps:11.0f}{p99:10.3f}{up:11d}")
    print("  ratios: " + "  ".join(f"{a}/{b} {ratio(r, a, b):.3f}" for a, b, _ in RATIOS))

med = {v: (statistics.median(data[(r, v)][0] for r in rounds),
           statistics.median(data[(r, v)][1] for r in rounds)) for v in variants}
print(f"\nmedians over {len(rounds)} round(s)")
print(f"  {'variant':14}{'req/s':>11}{'p99 ms':>10}")
for v in variants:
    print(f"  {v:14}{med[v][0]:11.0f}{med[v][1]:10.3f}")
print("\nratios of req/s: of the medians | median of the per-round ratios | per round")
for a, b, target in RATIOS:
    of_medians = med[a][0] / med[b][0]
    per_round = [ratio(r, a, b) for r in rounds]
    paired = statistics.median(per_round)
    verdict = f"  [target >= {target}: {'PASS' if paired >= target else 'FAIL'}]" if target else ""
    if SMOKE and target:
        verdict = f"  [target >= {target}; not judged in a smoke run]"
    rounds_text = " ".join(f"{x:.3f}" for x in per_round)
    print(f"  {a + '/' + b:22}{of_medians:7.3f} | {paired:.3f} | {rounds_text}{verdict}")
PY
echo
echo "logs: $OUT"
