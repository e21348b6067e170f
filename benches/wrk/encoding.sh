#!/usr/bin/env bash
# CPU per compressed cache hit, before and after the cache encoded bodies itself, as ratios:
#   A = the previous chain: Envoy's gzip compressor (hiding Accept-Encoding from the filter)
#       compresses every identity hit the edge filter answers,
#   B = the shipped chain: the edge filter answers with the gzip body stored with the entry,
#   C = the shipped chain answering identity hits (no Accept-Encoding), the reference.
# One Envoy (--concurrency 1, CPU 0, saturated by wrk on CPU 1): req/s is inversely proportional
# to CPU per request, so A/B of req/s is "CPU per compressed hit after / before". Runs A B C x
# ROUNDS, interleaved; prints per-round tables, medians and B/A, B/C.
#
# Usage: benches/wrk/encoding.sh            (DURATION=5 ROUNDS=3 CONNECTIONS=16 by default)
# Logs and the rendered config go to target/wrk-encoding/.
set -euo pipefail

BENCH_PATH="/api/v1/leads/42"
TEMPLATE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/envoy-encoding.yaml.tmpl"
BENCH=encoding
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

CONFIG="$OUT/envoy-encoding.yaml"
sed -e "s|@@ORIGIN_PORT@@|$ORIGIN_PORT|g" -e "s|@@WASM@@|$WASM|g" "$TEMPLATE" >"$CONFIG"
grep -q '@@' "$CONFIG" && die "unfilled placeholder in $CONFIG"
start_envoy "$CONFIG" a_before b_after c_after_identity

declare -A ACCEPT=([A]="gzip" [B]="gzip" [C]="identity")
for v in A B C; do
    for _ in 1 2 3 4; do
        curl -sS --fail -H "Accept-Encoding: ${ACCEPT[$v]}" -D "$OUT/warm-$v.headers" \
            -o "$OUT/warm-$v.body" "http://127.0.0.1:${PORT[$v]}$BENCH_PATH" \
            || die "listener $v: warm-up failed"
    done
    grep -i '^cache-status:' "$OUT/warm-$v.headers" | grep -qi 'hit' \
        || { cat "$OUT/warm-$v.headers" >&2; die "listener $v does not answer hits"; }
done
for v in A B; do
    grep -qi '^content-encoding: *gzip' "$OUT/warm-$v.headers" \
        || { cat "$OUT/warm-$v.headers" >&2; die "listener $v does not answer gzip"; }
done
log "A etag: $(grep -i '^etag:' "$OUT/warm-A.headers" | tr -d '\r' || echo none)"
log "B etag: $(grep -i '^etag:' "$OUT/warm-B.headers" | tr -d '\r')"

RESULTS="$OUT/results.tsv"
: >"$RESULTS"
for r in $(seq "$ROUNDS"); do
    for v in A B C; do
        f="$OUT/wrk-r$r-$v.txt"
        taskset -c "$WRK_CPU" wrk -t1 "-c$CONNECTIONS" "-d${DURATION}s" --latency \
            -H "Accept-Encoding: ${ACCEPT[$v]}" "http://127.0.0.1:${PORT[$v]}$BENCH_PATH" >"$f" 2>&1 \
            || die "wrk failed (see $f)"
        rps="$(awk '/^Requests\/sec:/{print $2}' "$f")"
        [[ -n "$rps" ]] || die "could not parse wrk output (see $f)"
        ! grep -q "Non-2xx" "$f" || die "listener $v: non-2xx responses (see $f)"
        printf '%s\t%s\t%s\n' "$r" "$v" "$rps" >>"$RESULTS"
        log "round $r $v: $rps req/s"
    done
done

echo
echo "command:   $0  (DURATION=$DURATION ROUNDS=$ROUNDS CONNECTIONS=$CONNECTIONS)"
echo "wrk:       taskset -c $WRK_CPU wrk -t1 -c$CONNECTIONS -d${DURATION}s -H 'Accept-Encoding: gzip|identity' http://127.0.0.1:<port>$BENCH_PATH"
echo "envoy:     taskset -c $ENVOY_CPU $ENVOY -c $CONFIG --concurrency 1 --disable-hot-restart"
echo "wasm:      $WASM ($WASM_NOTE)"
echo "body:      $(wc -c <"$OUT/warm-C.body") bytes identity, $(wc -c <"$OUT/warm-B.body") bytes gzip (B), $(wc -c <"$OUT/warm-A.body") bytes gzip (A)"
python3 - "$RESULTS" <<'PY'
import sys, statistics
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
names = {"A": "before: compressor per hit", "B": "after: stored gzip body", "C": "after: identity hit"}
data = {(int(r), v): float(x) for r, v, x in rows}
rounds = sorted({r for r, _ in data})
for r in rounds:
    print(f"round {r}: " + "   ".join(f"{v} {data[(r, v)]:.0f}" for v in "ABC")
          + f"   B/A {data[(r, 'B')] / data[(r, 'A')]:.3f}")
med = {v: statistics.median(data[(r, v)] for r in rounds) for v in "ABC"}
for v in "ABC":
    print(f"  {v} {names[v]:28} {med[v]:10.0f} req/s (median)")
paired = statistics.median(data[(r, "B")] / data[(r, "A")] for r in rounds)
print(f"compressed-hit throughput after/before (B/A): {med['B'] / med['A']:.3f} (paired median {paired:.3f})")
print(f"CPU per compressed hit after/before (A/B):   {med['A'] / med['B']:.3f}")
print(f"compressed hit vs identity hit after (B/C):  {med['B'] / med['C']:.3f}")
PY
echo "logs: $OUT"
