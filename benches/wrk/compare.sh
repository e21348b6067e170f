#!/usr/bin/env bash
# Cache-hit throughput in one Envoy, measured as ratios:
#   A = our edge filter (proxy-wasm, V8) answering hits,
#   B = Envoy's native cache filter (SimpleHttpCache) answering hits,
#   C = a direct_response with the same body (the floor: no cache at all).
# One Envoy (--concurrency 1, CPU 0) with three listeners, the demo origin on CPU 0 too (it only
# sees the warm-up misses), wrk on CPU 1. Runs A B C x 3 rounds, interleaved, so drift (thermal,
# noisy neighbours) hits all three alike; prints per-round tables, medians and A/B, A/C, B/C.
#
# Usage: benches/wrk/compare.sh            (DURATION=5 ROUNDS=3 CONNECTIONS=16 by default)
# Logs and the rendered config go to target/wrk-compare/.
set -euo pipefail

BENCH_PATH="/api/v1/leads/42"
TEMPLATE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/envoy-compare.yaml.tmpl"
BENCH=compare
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

# The body (and the headers a client would see) for C, straight from the origin.
curl -sS --fail -D "$OUT/origin-headers.txt" -o "$OUT/leads-42.body" \
    "http://127.0.0.1:$ORIGIN_PORT$BENCH_PATH" || die "origin did not answer $BENCH_PATH"
hdr() { grep -i "^$1:" "$2" | head -1 | cut -d: -f2- | sed 's/^ *//; s/\r$//'; }
CONTENT_TYPE="$(hdr content-type "$OUT/origin-headers.txt")"
CACHE_CONTROL="$(hdr cache-control "$OUT/origin-headers.txt")"
ETAG="$(hdr etag "$OUT/origin-headers.txt")"
BODY_BYTES="$(wc -c <"$OUT/leads-42.body")"

# --- 3. envoy ------------------------------------------------------------------------------
CONFIG="$OUT/envoy-compare.yaml"
sed -e "s|@@ORIGIN_PORT@@|$ORIGIN_PORT|g" -e "s|@@WASM@@|$WASM|g" \
    -e "s|@@BODY_FILE@@|$OUT/leads-42.body|g" \
    -e "s|@@CONTENT_TYPE@@|${CONTENT_TYPE:-application/json}|g" \
    -e "s|@@CACHE_CONTROL@@|$CACHE_CONTROL|g" -e "s|@@ETAG@@|$ETAG|g" \
    "$TEMPLATE" >"$CONFIG"
grep -q '@@' "$CONFIG" && die "unfilled placeholder in $CONFIG"

start_envoy "$CONFIG" a_wasm b_native c_direct

# --- 4. warm-up and hit checks -------------------------------------------------------------
declare -A NAME=([A]="edge filter (wasm)" [B]="native cache filter" [C]="direct_response")
for v in A B C; do
    for i in 1 2 3 4; do
        curl -sS --fail -D "$OUT/warm-$v.headers" -o "$OUT/warm-$v.body" \
            "http://127.0.0.1:${PORT[$v]}$BENCH_PATH" || die "listener $v: warm-up request $i failed"
    done
    cmp -s "$OUT/warm-$v.body" "$OUT/leads-42.body" \
        || die "listener $v: body differs from the origin's ($(wc -c <"$OUT/warm-$v.body") vs $BODY_BYTES bytes)"
done
grep -i '^cache-status:' "$OUT/warm-A.headers" | grep -qi 'hit' \
    || { cat "$OUT/warm-A.headers" >&2; die "listener A does not answer hits (no 'cache-status: ...hit')"; }
grep -qi '^age:' "$OUT/warm-B.headers" \
    || { cat "$OUT/warm-B.headers" >&2; die "listener B does not answer hits (no 'age' header)"; }
log "A hit: $(grep -i '^cache-status:' "$OUT/warm-A.headers" | tr -d '\r')"
log "B hit: $(grep -i '^age:' "$OUT/warm-B.headers" | tr -d '\r')"

ORIGIN_RQ_BEFORE="$(stat cluster.origin.upstream_rq_total)"

# --- 5. wrk --------------------------------------------------------------------------------
WRK_CMD=(taskset -c "$WRK_CPU" wrk -t1 "-c$CONNECTIONS" "-d${DURATION}s" --latency)
RESULTS="$OUT/results.tsv"
: >"$RESULTS"
for r in $(seq "$ROUNDS"); do
    for v in A B C; do
        f="$OUT/wrk-r$r-$v.txt"
        before="$(stat cluster.origin.upstream_rq_total)"
        "${WRK_CMD[@]}" "http://127.0.0.1:${PORT[$v]}$BENCH_PATH" >"$f" 2>&1 || die "wrk failed (see $f)"
        after="$(stat cluster.origin.upstream_rq_total)"
        rps="$(awk '/^Requests\/sec:/{print $2}' "$f")"
        p99="$(awk '$1=="99%"{print $2}' "$f")"
        non2xx="$(awk -F': *' '/Non-2xx or 3xx responses/{print $2}' "$f")"
        errs="$(awk '/Socket errors/{print}' "$f")"
        [[ -n "$rps" && -n "$p99" ]] || die "could not parse wrk output (see $f)"
        [[ -z "$non2xx" ]] || die "listener $v: $non2xx non-2xx responses in round $r (see $f)"
        [[ -z "$errs" ]] || echo "compare.sh: WARNING: listener $v round $r: $errs" >&2
        printf '%s\t%s\t%s\t%s\t%s\n' "$r" "$v" "$rps" "$(to_ms "$p99")" "$((after - before))" >>"$RESULTS"
        log "round $r $v: $rps req/s, p99 $p99, origin requests $((after - before))"
    done
done
ORIGIN_RQ_AFTER="$(stat cluster.origin.upstream_rq_total)"

# --- report --------------------------------------------------------------------------------
echo
echo "command:   $0 $*  (DURATION=$DURATION ROUNDS=$ROUNDS CONNECTIONS=$CONNECTIONS)"
echo "wrk:       ${WRK_CMD[*]} http://127.0.0.1:<port>$BENCH_PATH"
echo "envoy:     taskset -c $ENVOY_CPU $ENVOY -c $CONFIG --concurrency 1 --disable-hot-restart"
echo "           version $("$ENVOY" --version 2>/dev/null | awk -F'version: ' 'NF > 1 {print $2}')"
echo "origin:    taskset -c $ENVOY_CPU $ORIGIN_BIN --listen 127.0.0.1:$ORIGIN_PORT --latency-scale 0"
echo "wasm:      $WASM ($WASM_NOTE)"
echo "nproc:     $(nproc)    body: $BODY_BYTES bytes ($CONTENT_TYPE; cache-control: $CACHE_CONTROL)"
echo "origin requests during wrk runs: $((ORIGIN_RQ_AFTER - ORIGIN_RQ_BEFORE)) (0 = every measured request was a hit)"
python3 - "$RESULTS" <<'EOF'
import sys, statistics
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
names = {"A": "edge filter (wasm)", "B": "native cache filter", "C": "direct_response"}
rounds = sorted({int(r[0]) for r in rows})
data = {(int(r), v): (float(rps), float(p99), int(up)) for r, v, rps, p99, up in rows}
def ratios(r):
    return {p: data[(r, p[0])][0] / data[(r, p[2])][0] for p in ("A/B", "A/C", "B/C")}
for r in rounds:
    print(f"\nround {r}")
    print(f"  {'':3}{'listener':22}{'req/s':>12}{'p99 ms':>10}{'origin rq':>11}")
    for v in "ABC":
        rps, p99, up = data[(r, v)]
        print(f"  {v:3}{names[v]:22}{rps:12.0f}{p99:10.3f}{up:11d}")
    print("  req/s ratios: " + "   ".join(f"{k} {x:.3f}" for k, x in ratios(r).items()))
med = {v: (statistics.median(data[(r, v)][0] for r in rounds),
           statistics.median(data[(r, v)][1] for r in rounds)) for v in "ABC"}
print(f"\nmedians over {len(rounds)} rounds")
print(f"  {'':3}{'listener':22}{'req/s':>12}{'p99 ms':>10}")
for v in "ABC":
    print(f"  {v:3}{names[v]:22}{med[v][0]:12.0f}{med[v][1]:10.3f}")
print("\nratios: req/s of the medians | median of the per-round req/s ratios | p99 (inverted: the"
      " other's p99 over this one's, so higher is better here too)")
for a, b, note in (("A", "B", "target >= 0.75"), ("A", "C", ""), ("B", "C", "")):
    rr = med[a][0] / med[b][0]
    paired = statistics.median(ratios(r)[f"{a}/{b}"] for r in rounds)
    pr = med[b][1] / med[a][1] if med[a][1] else float("nan")
    extra = f"   [{note}: {'PASS' if rr >= 0.75 else 'FAIL'}]" if note else ""
    print(f"  {a}/{b}: {rr:.3f} | {paired:.3f} | p99 {b}/{a} {pr:.3f}{extra}")
EOF
echo
echo "logs: $OUT"
