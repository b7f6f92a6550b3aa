#!/usr/bin/env bash
# Remote layer cache benchmark (issue 18): on a machine with an empty local cache, how long
# does it take to get the image of bench/recipe.toml.in (one ~1 GB tree as one layer), and
# how many bytes move, when it is
#   cold           built from the tree: `kiln build` with an empty store
#   remote         built with `--cache-from docker://…` (a registry on loopback that a
#                  `--cache-to` build filled): the layer is pulled, verified by digest and
#                  diff_id, and written out. The `path` input is unpinned, so the tree is still
#                  walked and hashed (its digest is part of the layer's cache key)
#   remote-pinned  the same with the tree's sha256 pinned in the recipe: the tree is not read
#   copy           `kiln copy docker://…@sha256:… oci:OUT` of the image the fill build pushed
#                  (the floor: the same bytes, nothing to look up or verify beyond digests)
# Contenders run interleaved (A B C D A B C D …); every run starts from an empty store, and
# every run's image digest is checked against the fill build's.
#
# CPU: user+sys seconds of the kiln process (/usr/bin/time, Debian package `time`); the
# registry's own CPU is not counted.
# Bytes moved: the growth of the loopback interface's received-bytes counter
# (/proc/net/dev, `lo`) during the run; on a busy machine other loopback traffic inflates it.
# Also printed once: the registry's storage size after the fill (what --cache-to stored).
#
# usage: bench/cache.sh [-n REPS] [-s SIZE_MB] [-t TREE] [-w WORKDIR] [-c "CONTENDERS"]
#   -n REPS        repetitions of each contender (default 3)
#   -s SIZE_MB     size of the generated tree (default 1024); ignored with -t
#   -t TREE        benchmark an existing directory instead of generating one
#   -w WORKDIR     scratch directory (default /tmp/kiln-bench-cache)
#   -c CONTENDERS  which to run, in this order (default "cold remote remote-pinned copy")
#   KILN=path      the kiln binary (default target/release/kiln: cargo build --release)
#   REGISTRY=path  the distribution registry (default /usr/bin/docker-registry)
set -euo pipefail

REPS=3
SIZE_MB=1024
TREE=""
WORK=/tmp/kiln-bench-cache
WANT="cold remote remote-pinned copy"
while getopts "n:s:t:w:c:h" opt; do
  case "$opt" in
    n) REPS=$OPTARG ;;
    s) SIZE_MB=$OPTARG ;;
    t) TREE=$OPTARG ;;
    w) WORK=$OPTARG ;;
    c) WANT=$OPTARG ;;
    *) sed -n '2,30p' "$0"; exit 2 ;;
  esac
done

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
KILN="${KILN:-$REPO/target/release/kiln}"
REGISTRY="${REGISTRY:-/usr/bin/docker-registry}"
[[ -x "$KILN" ]] || { echo "kiln not built ($KILN): cargo build --release" >&2; exit 2; }
[[ -x /usr/bin/time ]] || { echo "no /usr/bin/time (Debian package time)" >&2; exit 2; }
[[ -x "$REGISTRY" ]] || { echo "no registry at $REGISTRY (Debian package docker-registry)" >&2; exit 2; }
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)

# --- the input tree -------------------------------------------------------------------------
if [[ -z "$TREE" ]]; then
  TREE="$WORK/tree-${SIZE_MB}M"
  if [[ ! -f "$TREE/.generated" ]]; then
    rm -rf "$TREE"
    python3 "$HERE/gen_tree.py" "$TREE" --size-mb "$SIZE_MB" --seed 7 >&2
    touch -d @1600000000 "$TREE/.generated"
  fi
fi
TREE=$(cd "$TREE" && pwd)
TREE_BYTES=$(du -sb "$TREE" | cut -f1)
echo "tree: $TREE ($TREE_BYTES bytes, $(find "$TREE" -type f | wc -l) files)" >&2

# --- a registry on loopback -----------------------------------------------------------------
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
HOST="127.0.0.1:$PORT"
rm -rf "$WORK/registry"
mkdir -p "$WORK/registry"
cat > "$WORK/registry/config.yml" <<YML
version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: $WORK/registry/storage
http:
  addr: $HOST
  secret: kiln-bench
YML
"$REGISTRY" serve "$WORK/registry/config.yml" > "$WORK/registry/log" 2>&1 &
REGISTRY_PID=$!
trap 'kill $REGISTRY_PID 2>/dev/null || true' EXIT
python3 - "$HOST" <<'PY'
import sys, time, urllib.request
for _ in range(200):
    try:
        urllib.request.urlopen(f"http://{sys.argv[1]}/v2/", timeout=1); sys.exit(0)
    except Exception:
        time.sleep(0.1)
sys.exit("the registry did not start")
PY
CACHE="docker://$HOST/bench/cache"
IMAGE="docker://$HOST/bench/image"

# --- recipes: the tree unpinned, and pinned ---------------------------------------------------
RECIPE="$WORK/recipe.toml"
sed "s|@TREE@|$(realpath --relative-to="$WORK" "$TREE")|" "$HERE/recipe.toml.in" > "$RECIPE"
TREE_SHA=$("$KILN" build "$RECIPE" --plan | python3 -c 'import json,sys; print(json.load(sys.stdin)["inputs"]["tree"]["digest"].split(":")[1])')
PINNED="$WORK/recipe-pinned.toml"
sed "s|^path = \"\\(.*\\)\"$|path = \"\\1\"\nsha256 = \"$TREE_SHA\"|" "$RECIPE" > "$PINNED"

# --- the fill: one build shares its layer and pushes the image --------------------------------
rm -rf "$WORK/fill-cache" "$WORK/fill-out"
DIGEST=$("$KILN" build "$RECIPE" -o "$WORK/fill-out" --cache "$WORK/fill-cache" \
  --cache-to "$CACHE" --push "$IMAGE:latest" 2>"$WORK/fill.log" | tail -1)
grep -q "cache: pushed 1 layer record" "$WORK/fill.log" || { cat "$WORK/fill.log" >&2; exit 1; }
REG_BYTES=$(du -sb "$WORK/registry/storage" | cut -f1)
echo "fill: $DIGEST; registry storage $REG_BYTES bytes" >&2
rm -rf "$WORK/fill-cache" "$WORK/fill-out"

declare -A CMD
CMD[cold]="$KILN build $RECIPE -o $WORK/out --cache $WORK/store"
CMD[remote]="$KILN build $RECIPE -o $WORK/out --cache $WORK/store --cache-from $CACHE"
CMD[remote-pinned]="$KILN build $PINNED -o $WORK/out --cache $WORK/store --cache-from $CACHE"
CMD[copy]="$KILN copy $IMAGE@$DIGEST oci:$WORK/out --cache $WORK/store"

lo_rx() { awk '$1 == "lo:" { print $2 }' /proc/net/dev; }

RESULTS="$WORK/results.tsv"
printf "rep\tname\twall_s\tcpu_s\tlo_bytes\n" > "$RESULTS"
for rep in $(seq 1 "$REPS"); do
  for name in $WANT; do
    [[ -n "${CMD[$name]:-}" ]] || { echo "unknown contender $name" >&2; exit 2; }
    rm -rf "$WORK/out" "$WORK/store"
    sync
    rx0=$(lo_rx); t0=$(date +%s.%N)
    got=$(/usr/bin/time -f "%U %S" -o "$WORK/$name.time" ${CMD[$name]} 2>"$WORK/$name.log" | tail -1)
    t1=$(date +%s.%N); rx1=$(lo_rx)
    cpu=$(awk '{ printf "%.2f", $1 + $2 }' "$WORK/$name.time")
    if [[ "$got" != "$DIGEST" ]]; then
      echo "$name gave $got, not $DIGEST:" >&2; cat "$WORK/$name.log" >&2; exit 1
    fi
    if [[ $name == remote* ]] && ! grep -q "remote cache hit" "$WORK/$name.log"; then
      echo "$name did not hit the remote cache:" >&2; cat "$WORK/$name.log" >&2; exit 1
    fi
    wall=$(python3 -c "print(round($t1 - $t0, 2))")
    printf "%s\t%s\t%s\t%s\t%s\n" "$rep" "$name" "$wall" "$cpu" "$((rx1 - rx0))" >> "$RESULTS"
    echo "rep $rep $name: wall ${wall}s cpu ${cpu}s loopback $((rx1 - rx0)) bytes" >&2
  done
done
rm -rf "$WORK/out" "$WORK/store"

# --- summary ----------------------------------------------------------------------------------
python3 - "$RESULTS" "$TREE_BYTES" "$REG_BYTES" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
tree, reg = int(sys.argv[2]), int(sys.argv[3])
names = list(dict.fromkeys(r["name"] for r in rows))
med = {n: {k: statistics.median(float(r[k]) for r in rows if r["name"] == n)
           for k in ("wall_s", "cpu_s", "lo_bytes")} for n in names}
ratio = lambda n, base, k: f"{med[n][k] / med[base][k]:.2f}" if base in med and med[base][k] else "-"
print("| contender | wall s | kiln CPU s | MB moved (loopback) | wall/cold | CPU/cold | wall/copy | bytes/copy |")
print("|---|--:|--:|--:|--:|--:|--:|--:|")
for n in names:
    m = med[n]
    print(f"| {n} | {m['wall_s']:.2f} | {m['cpu_s']:.2f} | {m['lo_bytes'] / 1e6:.1f} | "
          f"{ratio(n, 'cold', 'wall_s')} | {ratio(n, 'cold', 'cpu_s')} | "
          f"{ratio(n, 'copy', 'wall_s')} | {ratio(n, 'copy', 'lo_bytes')} |")
reps = len(rows) // max(len(names), 1)
print(f"(medians of {reps} interleaved runs; tree {tree / 1e6:.1f} MB; registry storage after "
      f"--cache-to and --push {reg / 1e6:.1f} MB; results in {sys.argv[1]})")
PY
