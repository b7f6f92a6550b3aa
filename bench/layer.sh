#!/usr/bin/env bash
# Layer-writing benchmark (issue 7): how long does it take to turn a ~1 GB tree into one
# compressed, reproducible layer, compared with the tools people use today?
#
# Contenders, run interleaved (A B C A B C …) so that machine-load drift hits all of them:
#   tar-gzip      tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - | gzip -n -6
#   tar-pigz      the same tar | pigz -n -6 (all cores)
#   umoci-insert  umoci insert of the tree into a fresh scratch OCI layout
#   tar-kiln-N    the same tar | kiln's layer encoder (gzip 6, N threads), when built:
#                 cargo build --release --example compress_layer
#   kiln-build    SLOT: `kiln build` of bench/recipe.toml.in with a `path` input pointing at
#                 the tree. Enabled by KILN_BUILD=1 once `kiln build` exists.
#
# For every run: wall seconds, CPU seconds (user+sys), peak RSS, output bytes; then a summary
# with medians and ratios against tar-gzip.
#
# usage: bench/layer.sh [-n REPS] [-s SIZE_MB] [-t TREE] [-w WORKDIR] [-j THREADS]
#   -n REPS     repetitions of each contender (default 3)
#   -s SIZE_MB  size of the generated tree (default 1024); ignored with -t
#   -t TREE     benchmark an existing directory instead of generating one
#   -w WORKDIR  scratch directory (default /tmp/kiln-bench); outputs are deleted after each run
#   -j THREADS  kiln encoder threads (default: nproc); 1 is always measured too
set -euo pipefail

REPS=3
SIZE_MB=1024
TREE=""
WORK=/tmp/kiln-bench
THREADS=$(nproc)
while getopts "n:s:t:w:j:h" opt; do
  case "$opt" in
    n) REPS=$OPTARG ;;
    s) SIZE_MB=$OPTARG ;;
    t) TREE=$OPTARG ;;
    w) WORK=$OPTARG ;;
    j) THREADS=$OPTARG ;;
    *) sed -n '2,25p' "$0"; exit 2 ;;
  esac
done

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
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
TREE_BYTES=$(du -sb --exclude=.generated "$TREE" | cut -f1)
echo "tree: $TREE ($TREE_BYTES bytes, $(find "$TREE" -type f | wc -l) files)" >&2

TAR="tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner --exclude=./.generated -C $TREE -cf - ."
KILN_ENCODER="$REPO/target/release/examples/compress_layer"
OUT="$WORK/out"

# --- contenders: name -> command that writes $OUT (a file or a directory) ---------------------
declare -A CMD
ORDER=()
add() { CMD[$1]=$2; ORDER+=("$1"); }
have() { command -v "$1" >/dev/null 2>&1; }

add tar-gzip "$TAR | gzip -n -6 > $OUT"
if have pigz; then add tar-pigz "$TAR | pigz -n -6 > $OUT"; else echo "pigz not installed: skipped" >&2; fi
if [[ -x "$KILN_ENCODER" ]]; then
  add tar-kiln-1 "$TAR | $KILN_ENCODER gzip 6 1 2>/dev/null > $OUT"
  if [[ "$THREADS" != 1 ]]; then add "tar-kiln-$THREADS" "$TAR | $KILN_ENCODER gzip 6 $THREADS 2>/dev/null > $OUT"; fi
else
  echo "kiln encoder not built (cargo build --release --example compress_layer): skipped" >&2
fi
if have umoci; then
  # A pristine scratch layout, copied before each run so every insert starts from the same state.
  BASE="$WORK/umoci-base"
  if [[ ! -d "$BASE" ]]; then
    umoci init --layout "$BASE" >&2
    umoci new --image "$BASE:bench" >&2
  fi
  ROOTLESS=""
  [[ $(id -u) != 0 ]] && ROOTLESS="--rootless"
  add umoci-insert "cp -a $BASE $OUT && umoci insert $ROOTLESS --image $OUT:bench $TREE /data"
else
  echo "umoci not installed: skipped" >&2
fi

# ---- SLOT: kiln build ------------------------------------------------------------------------
# `kiln build` of a recipe whose `path` input is the tree. The recipe is written into WORKDIR
# with `path` relative to it, as recipes are meant to be.
RECIPE="$WORK/recipe.toml"
sed "s|@TREE@|$(realpath --relative-to="$WORK" "$TREE")|" "$HERE/recipe.toml.in" > "$RECIPE"
KILN="${KILN:-$REPO/target/release/kiln}"
if [[ "${KILN_BUILD:-0}" == 1 ]]; then
  add kiln-build "$KILN build $RECIPE -o $OUT --cache $WORK/kiln-cache >/dev/null"
else
  echo "kiln build: slot not enabled (set KILN_BUILD=1 once \`kiln build\` works; recipe: $RECIPE)" >&2
fi
# -----------------------------------------------------------------------------------------------

# --- measurement ------------------------------------------------------------------------------
RESULTS="$WORK/results.tsv"
printf "rep\tname\twall_s\tcpu_s\tmax_rss_kb\tout_bytes\n" > "$RESULTS"

measure() { # name command -> one TSV line
  local name=$1 cmd=$2 tf="$WORK/time.out"
  rm -rf "$OUT"
  sync
  if [[ -x /usr/bin/time ]]; then
    /usr/bin/time -f "%e %U %S %M" -o "$tf" bash -c "set -o pipefail; $cmd"
    read -r wall user sys rss < "$tf"
  else
    python3 - "$cmd" > "$tf" <<'PY'
import resource, subprocess, sys, time
t = time.monotonic()
subprocess.run(["bash", "-c", "set -o pipefail; " + sys.argv[1]], check=True)
wall = time.monotonic() - t
r = resource.getrusage(resource.RUSAGE_CHILDREN)
print(f"{wall:.2f} {r.ru_utime:.2f} {r.ru_stime:.2f} {r.ru_maxrss}")
PY
    read -r wall user sys rss < "$tf"
  fi
  local bytes
  bytes=$(du -sb "$OUT" | cut -f1)
  printf "%s\t%s\t%s\t%s\t%s\t%s\n" "$rep" "$name" "$wall" \
    "$(python3 -c "print(round($user + $sys, 2))")" "$rss" "$bytes" >> "$RESULTS"
  echo "rep $rep $name: wall ${wall}s cpu $(python3 -c "print(round($user + $sys, 2))")s rss ${rss}KB out $bytes" >&2
}

for rep in $(seq 1 "$REPS"); do
  for name in "${ORDER[@]}"; do
    measure "$name" "${CMD[$name]}"
  done
done
rm -rf "$OUT"

# --- summary ----------------------------------------------------------------------------------
python3 - "$RESULTS" "$TREE_BYTES" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
tree = int(sys.argv[2])
names = list(dict.fromkeys(r["name"] for r in rows))
med = {}
for n in names:
    rs = [r for r in rows if r["name"] == n]
    med[n] = {k: statistics.median(float(r[k]) for r in rs) for k in ("wall_s", "cpu_s", "max_rss_kb", "out_bytes")}
base = med.get("tar-gzip")
print(f"{'contender':<16}{'wall s':>9}{'cpu s':>9}{'MB/s':>9}{'rss MB':>9}{'out MB':>10}{'ratio':>8}{'wall/base':>11}")
for n in names:
    m = med[n]
    rel = f"{m['wall_s'] / base['wall_s']:.2f}" if base else "-"
    print(f"{n:<16}{m['wall_s']:>9.2f}{m['cpu_s']:>9.2f}{tree / 1e6 / m['wall_s']:>9.1f}"
          f"{m['max_rss_kb'] / 1024:>9.1f}{m['out_bytes'] / 1e6:>10.1f}{m['out_bytes'] / tree:>8.3f}{rel:>11}")
print(f"(medians of {len(rows) // max(len(names), 1)} interleaved runs; tree {tree / 1e6:.1f} MB; results in {sys.argv[1]})")
PY
