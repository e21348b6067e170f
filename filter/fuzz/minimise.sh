#!/usr/bin/env bash
# Folds what run.sh found into the committed corpora and keeps them small: for each target
# (all by default), libFuzzer measures which code edges each input of corpus/<target>/ and of
# the scratch directory reaches, and a greedy cover keeps the inputs that add the most edges,
# at most MAX_FILES (default 60) per target. Files named by hand (seeds, and `regression-*`:
# inputs that once exposed a defect) are always kept; picked inputs are named by their SHA-1.
#   filter/fuzz/minimise.sh [TARGET...]
set -euo pipefail
shopt -s nullglob
cd "$(dirname "${BASH_SOURCE[0]}")"
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(cargo fuzz list)
fi
work="${FUZZ_WORK:-${TMPDIR:-/tmp}/edge-fuzz}"
max_files="${MAX_FILES:-60}"
cargo fuzz build --sanitizer none >/dev/null 2>&1
bin=target/x86_64-unknown-linux-gnu/release
for target in "${targets[@]}"; do
    scratch="$(mktemp -d)"
    sources=("corpus/$target")
    [ -d "$work/$target" ] && sources+=("$work/$target")
    "$bin/$target" -merge=1 -merge_control_file="$scratch/control" "$scratch" "${sources[@]}" \
        >"$scratch/log" 2>&1
    picked="$(mktemp -d)"
    covered=$(python3 - "$scratch/control" "$picked" "$max_files" <<'PY'
import hashlib, shutil, sys
control, out, cap = sys.argv[1], sys.argv[2], int(sys.argv[3])
lines = open(control).read().split("\n")
count = int(lines[0])
files = lines[2:2 + count]
edges = {}
for line in lines[2 + count:]:
    parts = line.split()
    if parts and parts[0] == "COV":
        edges[int(parts[1])] = set(parts[2:])
covered, chosen = set(), 0
while edges and chosen < cap:
    best = max(edges, key=lambda i: (len(edges[i] - covered), -len(open(files[i], "rb").read())))
    if not edges[best] - covered:
        break
    covered |= edges.pop(best)
    data = open(files[best], "rb").read()
    shutil.copy(files[best], f"{out}/{hashlib.sha1(data).hexdigest()}")
    chosen += 1
total = len(covered | set().union(*edges.values())) if edges else len(covered)
print(f"{len(covered)} of {total} edges")
PY
)
    find "corpus/$target" -maxdepth 1 -type f -regextype posix-extended \
        -regex '.*/[0-9a-f]{40}' -delete
    for kept in "corpus/$target"/*; do
        rm -f "$picked/$(sha1sum "$kept" | cut -d' ' -f1)"
    done
    for file in "$picked"/*; do
        cp -n "$file" "corpus/$target/"
    done
    rm -rf "$scratch" "$picked"
    echo "$target: $(find "corpus/$target" -type f | wc -l) files, $(cat "corpus/$target"/* | wc -c) bytes, $covered of what the scratch corpus reaches"
done
