#!/usr/bin/env bash
# Rate-limit check cost in one Envoy, measured as ratios, on a limited-but-admitted route:
#   A = our edge filter (proxy-wasm, V8): per-tenant token bucket in Envoy shared data,
#   B = Envoy's native envoy.filters.http.local_ratelimit with the same limit,
#   C = the same route with no limiter (the floor).
# Every listener proxies GET /api/v1/coaching/1 to the demo origin (--latency-scale 0). The limit
# is 1e6 rps with a burst of 1e6, so every request is admitted: we measure checking and spending
# the bucket, not rejecting. One Envoy (--concurrency 1) and the origin on CPU 0, wrk on CPU 1.
# Runs A B C x 3 rounds, interleaved, so drift hits all three alike; prints per-round tables,
# medians and A/B, A/C, B/C.
#
# Usage: benches/wrk/ratelimit.sh          (DURATION=5 ROUNDS=3 CONNECTIONS=16 by default)
# Logs and the rendered config go to target/wrk-ratelimit/.
set -euo pipefail

BENCH_PATH="/api/v1/coaching/1"
TENANT_HEADER="x-location-id: t1"
TEMPLATE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/envoy-ratelimit.yaml.tmpl"
BENCH=ratelimit
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
curl -sS --fail -o "$OUT/check-origin.body" "http://127.0.0.1:$ORIGIN_PORT$BENCH_PATH" \
    || die "origin did not answer $BENCH_PATH"
BODY_BYTES="$(wc -c <"$OUT/check-origin.body")"

# --- 3. envoy ------------------------------------------------------------------------------
CONFIG="$OUT/envoy-ratelimit.yaml"
sed -e "s|@@ORIGIN_PORT@@|$ORIGIN_PORT|g" -e "s|@@WASM@@|$WASM|g" "$TEMPLATE" >"$CONFIG"
grep -q '@@' "$CONFIG" && die "unfilled placeholder in $CONFIG"

start_envoy "$CONFIG" a_wasm b_local c_plain

# --- 4. checks: 200, same body, A carries RateLimit headers, both limiters counted ----------
# Counters that say the limiters saw (and admitted) the requests.
A_OK="wasmcustom.edge.ratelimit.admitted"
A_BAD=(wasmcustom.edge.ratelimit.rejected wasmcustom.edge.ratelimit.contention_exhausted)
B_OK="b_local.http_local_rate_limit.ok"
B_BAD=(b_local.http_local_rate_limit.rate_limited)
UPSTREAM="cluster.origin.upstream_rq_total"
for v in A B C; do
    for i in 1 2 3; do
        code="$(curl -sS -H "$TENANT_HEADER" -D "$OUT/check-$v.headers" -o "$OUT/check-$v.body" \
            -w '%{http_code}' "http://127.0.0.1:${PORT[$v]}$BENCH_PATH")" \
            || die "listener $v: request $i failed"
        [[ "$code" == 200 ]] || { cat "$OUT/check-$v.headers" >&2; die "listener $v: HTTP $code, want 200"; }
    done
    cmp -s "$OUT/check-$v.body" "$OUT/check-origin.body" \
        || die "listener $v: body differs from the origin's ($(wc -c <"$OUT/check-$v.body") vs $BODY_BYTES bytes)"
done
grep -qi '^ratelimit:' "$OUT/check-A.headers" && grep -qi '^ratelimit-policy:' "$OUT/check-A.headers" \
    || { cat "$OUT/check-A.headers" >&2; die "listener A: no 'ratelimit'/'ratelimit-policy' header, the limiter did not run"; }
grep -qi '^ratelimit' "$OUT/check-B.headers" "$OUT/check-C.headers" \
    && die "listener B or C carries a ratelimit header (wrong listener wiring?)"
[[ "$(stat "$A_OK")" -ge 3 ]] 2>/dev/null || die "listener A: $A_OK is '$(stat "$A_OK")', want >= 3"
[[ "$(stat "$B_OK")" -ge 3 ]] 2>/dev/null || die "listener B: $B_OK is '$(stat "$B_OK")', want >= 3"
log "A: $(grep -i '^ratelimit-policy:' "$OUT/check-A.headers" | tr -d '\r'); $(grep -i '^ratelimit:' "$OUT/check-A.headers" | tr -d '\r')"
log "B: $B_OK = $(stat "$B_OK")"

# --- 5. wrk --------------------------------------------------------------------------------
WRK_CMD=(taskset -c "$WRK_CPU" wrk -t1 "-c$CONNECTIONS" "-d${DURATION}s" --latency -H "$TENANT_HEADER")
RESULTS="$OUT/results.tsv"
: >"$RESULTS"
sum_stats() { local s=0 x; for n in "$@"; do x="$(stat "$n")"; s=$((s + ${x:-0})); done; echo "$s"; }
declare -A OKSTAT=([A]=$A_OK [B]=$B_OK [C]=$UPSTREAM)
for r in $(seq "$ROUNDS"); do
    for v in A B C; do
        f="$OUT/wrk-r$r-$v.txt"
        ok_before="$(stat "${OKSTAT[$v]}")"
        bad_before="$(sum_stats "${A_BAD[@]}" "${B_BAD[@]}")"
        "${WRK_CMD[@]}" "http://127.0.0.1:${PORT[$v]}$BENCH_PATH" >"$f" 2>&1 || die "wrk failed (see $f)"
        ok_after="$(stat "${OKSTAT[$v]}")"
        bad_after="$(sum_stats "${A_BAD[@]}" "${B_BAD[@]}")"
        rps="$(awk '/^Requests\/sec:/{print $2}' "$f")"
        p99="$(awk '$1=="99%"{print $2}' "$f")"
        total="$(awk '/requests in/{print $1}' "$f")"
        non2xx="$(awk -F': *' '/Non-2xx or 3xx responses/{print $2}' "$f")"
        errs="$(awk '/Socket errors/{print}' "$f")"
        [[ -n "$rps" && -n "$p99" && -n "$total" ]] || die "could not parse wrk output (see $f)"
        [[ -z "$non2xx" ]] || die "listener $v: $non2xx non-2xx responses in round $r (see $f)"
        [[ "$bad_after" == "$bad_before" ]] \
            || die "listener $v round $r: $((bad_after - bad_before)) rejected/contention-exhausted requests (limit should admit all)"
        [[ -z "$errs" ]] || echo "ratelimit.sh: WARNING: listener $v round $r: $errs" >&2
        printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$r" "$v" "$rps" "$(to_ms "$p99")" "$total" \
            "$((ok_after - ok_before))" >>"$RESULTS"
        log "round $r $v: $rps req/s, p99 $p99, $total requests, ${OKSTAT[$v]} +$((ok_after - ok_before))"
    done
done

# --- report --------------------------------------------------------------------------------
echo
echo "command:   $0 $*  (DURATION=$DURATION ROUNDS=$ROUNDS CONNECTIONS=$CONNECTIONS)"
echo "wrk:       ${WRK_CMD[*]:0:$((${#WRK_CMD[@]} - 1))} '${WRK_CMD[-1]}' http://127.0.0.1:<port>$BENCH_PATH"
echo "envoy:     taskset -c $ENVOY_CPU $ENVOY -c $CONFIG --concurrency 1 --disable-hot-restart"
echo "           version $("$ENVOY" --version 2>/dev/null | awk -F'version: ' 'NF > 1 {print $2}')"
echo "origin:    taskset -c $ENVOY_CPU $ORIGIN_BIN --listen 127.0.0.1:$ORIGIN_PORT --latency-scale 0"
echo "wasm:      $WASM ($WASM_NOTE)"
echo "nproc:     $(nproc)    body: $BODY_BYTES bytes    limit: 1000000 rps, burst 1000000 (all admitted)"
echo "counted:   A = $A_OK, B = $B_OK, C = $UPSTREAM (deltas over each run; wrk counts only completed requests)"
python3 - "$RESULTS" <<'PY'
import sys, statistics
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1]) if l.strip()]
names = {"A": "edge filter (wasm)", "B": "local_ratelimit", "C": "no limiter"}
rounds = sorted({int(r[0]) for r in rows})
data = {(int(r), v): (float(rps), float(p99), int(n), int(ok)) for r, v, rps, p99, n, ok in rows}
def ratios(r):
    return {p: data[(r, p[0])][0] / data[(r, p[2])][0] for p in ("A/B", "A/C", "B/C")}
for r in rounds:
    print(f"\nround {r}")
    print(f"  {'':3}{'listener':22}{'req/s':>12}{'p99 ms':>10}{'requests':>11}{'counted':>10}")
    for v in "ABC":
        rps, p99, n, ok = data[(r, v)]
        print(f"  {v:3}{names[v]:22}{rps:12.0f}{p99:10.3f}{n:11d}{ok:10d}")
    print("  req/s ratios: " + "   ".join(f"{k} {x:.3f}" for k, x in ratios(r).items()))
med = {v: (statistics.median(data[(r, v)][0] for r in rounds),
           statistics.median(data[(r, v)][1] for r in rounds)) for v in "ABC"}
print(f"\nmedians over {len(rounds)} rounds")
print(f"  {'':3}{'listener':22}{'req/s':>12}{'p99 ms':>10}{'us/req':>10}")
for v in "ABC":
    print(f"  {v:3}{names[v]:22}{med[v][0]:12.0f}{med[v][1]:10.3f}{1e6 / med[v][0]:10.2f}")
print("\nratios: req/s of the medians | median of the per-round req/s ratios | p99 (inverted: the"
      " other's p99 over this one's, so higher is better here too)")
for a, b in (("A", "B"), ("A", "C"), ("B", "C")):
    rr = med[a][0] / med[b][0]
    paired = statistics.median(ratios(r)[f"{a}/{b}"] for r in rounds)
    pr = med[b][1] / med[a][1] if med[a][1] else float("nan")
    print(f"  {a}/{b}: {rr:.3f} | {paired:.3f} | p99 {b}/{a} {pr:.3f}")
print("\nlimiter cost per request over C (from the medians; the whole Envoy+origin CPU is shared):")
for v in "AB":
    print(f"  {v} {names[v]:20} {1e6 / med[v][0] - 1e6 / med['C'][0]:+7.2f} us/req")
PY
echo
echo "logs: $OUT"
