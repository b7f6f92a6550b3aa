#!/usr/bin/env bash
# Layer-writing benchmark (issue 7): how long does it take to turn a ~1 GB tree into one
# compressed, reproducible layer, compared with the tools people use today?
#
# Contenders, run interleaved (A B C A B C …) so that machine-load drift hits all of them:
#   tar-gzip      tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -cf - | gzip -n -6
#   tar-pigz      the same tar | pigz -n -6 (all cores)
#   tar-kiln      the same tar | kiln's gzip layer encoder (default level, nproc threads):
#                 examples/compress_layer (cargo build --release --example compress_layer)
#   umoci-insert  umoci insert of the tree into a fresh scratch OCI layout
#   kiln-cold     `kiln build` of bench/recipe.toml.in (one `path` input: the tree, copied to
#                 /data), gzip, with an empty store: walks and hashes the input, builds the layer
#   kiln-warm     the same build again with nothing changed (the store from a previous build)
#   kiln-zstd     kiln-cold with `compression = "zstd"`
# All contenders read the tree from the page cache (it is read once before the first run).
#
# For every run: wall seconds, CPU seconds (user+sys), peak RSS, output bytes and layer bytes
# (the largest blob of an OCI layout); then medians, and every contender's ratios against
# umoci-insert (wall, CPU, layer size).
#
# usage: bench/layer.sh [-n REPS] [-s SIZE_MB] [-t TREE] [-w WORKDIR] [-c "CONTENDERS"]
#   -n REPS        repetitions of each contender (default 3)
#   -s SIZE_MB     size of the generated tree (default 1024); ignored with -t
#   -t TREE        benchmark an existing directory instead of generating one
#   -w WORKDIR     scratch directory (default /tmp/kiln-bench); outputs are deleted after each run
#   -c CONTENDERS  which to run, in this order (default: all of the above that are installed)
#   KILN=path      the kiln binary (default target/release/kiln: cargo build --release)
#   KILN_B=path    a second kiln binary (e.g. an older commit's) to compare in the same run:
#                  adds kiln-cold-b and kiln-warm-b, built with it from their own stores
set -euo pipefail

REPS=3
SIZE_MB=1024
TREE=""
WORK=/tmp/kiln-bench
WANT="tar-gzip tar-pigz tar-kiln umoci-insert kiln-cold kiln-warm kiln-zstd"
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
KILN="${KILN:-$REPO/target/release/kiln}"
OUT="$WORK/out"
$TAR > /dev/null # into the page cache, for every contender alike

# --- contenders: name -> command that writes $OUT (a file or a directory) ---------------------
# PREP[name] runs before each measurement and is not timed.
declare -A CMD PREP
ORDER=()
have() { command -v "$1" >/dev/null 2>&1; }
recipe() { # codec -> recipe path; the recipe's `path` is relative to WORKDIR, as recipes are meant to be
  local r="$WORK/recipe-$1.toml"
  sed "s|@TREE@|$(realpath --relative-to="$WORK" "$TREE")|" "$HERE/recipe.toml.in" > "$r"
  [[ $1 == zstd ]] && sed -i 's|^epoch = 0$|epoch = 0\ncompression = "zstd"|' "$r"
  echo "$r"
}
add() { # name command [prep]
  case " $WANT " in *" $1 "*) ;; *) return 0 ;; esac
  CMD[$1]=$2; PREP[$1]=${3:-true}; ORDER+=("$1")
}

add tar-gzip "$TAR | gzip -n -6 > $OUT"
if have pigz; then add tar-pigz "$TAR | pigz -n -6 > $OUT"; else echo "pigz not installed: skipped" >&2; fi
if [[ -x "$KILN_ENCODER" ]]; then
  add tar-kiln "$TAR | $KILN_ENCODER gzip 1 $(nproc) 2>/dev/null > $OUT"
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
  # umoci insert changes the ctime of the directory it inserts, which would make every kiln
  # build after it see a changed input (kiln's warm path trusts unchanged lstat data only), so
  # umoci gets its own copy of the tree.
  UTREE="$WORK/umoci-tree"
  if [[ ! -f "$UTREE/.copied" ]]; then
    rm -rf "$UTREE"
    cp -a "$TREE" "$UTREE"
    touch "$UTREE/.copied"
  fi
  add umoci-insert "umoci insert $ROOTLESS --image $OUT:bench $UTREE /data" "cp -a $BASE $OUT"
else
  echo "umoci not installed: skipped" >&2
fi
if [[ -x "$KILN" ]]; then
  GZ=$(recipe gzip)
  ZS=$(recipe zstd)
  add kiln-cold "$KILN build $GZ -o $OUT --cache $WORK/kiln-cold >/dev/null 2>&1" "rm -rf $WORK/kiln-cold"
  add kiln-warm "$KILN build $GZ -o $OUT --cache $WORK/kiln-warm >/dev/null 2>&1"
  add kiln-zstd "$KILN build $ZS -o $OUT --cache $WORK/kiln-zstd >/dev/null 2>&1" "rm -rf $WORK/kiln-zstd"
  if [[ -n "${CMD[kiln-warm]:-}" ]]; then
    rm -rf "$WORK/kiln-warm" "$OUT"
    "$KILN" build "$GZ" -o "$OUT" --cache "$WORK/kiln-warm" >/dev/null 2>&1 # the build to rebuild
  fi
  if [[ -n "${KILN_B:-}" ]]; then
    [[ -x "$KILN_B" ]] || { echo "KILN_B is not an executable: $KILN_B" >&2; exit 2; }
    WANT="$WANT kiln-cold-b kiln-warm-b"
    add kiln-cold-b "$KILN_B build $GZ -o $OUT --cache $WORK/kiln-cold-b >/dev/null 2>&1" "rm -rf $WORK/kiln-cold-b"
    add kiln-warm-b "$KILN_B build $GZ -o $OUT --cache $WORK/kiln-warm-b >/dev/null 2>&1"
    rm -rf "$WORK/kiln-warm-b" "$OUT"
    "$KILN_B" build "$GZ" -o "$OUT" --cache "$WORK/kiln-warm-b" >/dev/null 2>&1
  fi
else
  echo "kiln not built ($KILN; cargo build --release): kiln-* skipped" >&2
fi

# --- measurement ------------------------------------------------------------------------------
RESULTS="$WORK/results.tsv"
printf "rep\tname\twall_s\tcpu_s\tmax_rss_kb\tout_bytes\tlayer_bytes\n" > "$RESULTS"

measure() { # name command -> one TSV line
  local name=$1 cmd=$2 tf="$WORK/time.out"
  rm -rf "$OUT"
  bash -c "${PREP[$name]}"
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
  local bytes layer
  bytes=$(du -sb "$OUT" | cut -f1)
  layer=$(find "$OUT" -type f -printf '%s\n' | sort -n | tail -1)
  printf "%s\t%s\t%s\t%s\t%s\t%s\t%s\n" "$rep" "$name" "$wall" \
    "$(python3 -c "print(round($user + $sys, 2))")" "$rss" "$bytes" "$layer" >> "$RESULTS"
  echo "rep $rep $name: wall ${wall}s cpu $(python3 -c "print(round($user + $sys, 2))")s rss ${rss}KB out $bytes layer $layer" >&2
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
keys = ("wall_s", "cpu_s", "max_rss_kb", "out_bytes", "layer_bytes")
med = {n: {k: statistics.median(float(r[k]) for r in rows if r["name"] == n) for k in keys} for n in names}
base = med.get("umoci-insert")
print(f"| contender | wall s | CPU s | MB/s | peak RSS MB | layer MB | layer/tree | wall/umoci | CPU/umoci | layer/umoci |")
print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
for n in names:
    m = med[n]
    rel = (lambda k: f"{m[k] / base[k]:.2f}" if base else "-")
    lay = f"{m['layer_bytes'] / base['layer_bytes']:.3f}" if base else "-"
    print(f"| {n} | {m['wall_s']:.2f} | {m['cpu_s']:.2f} | {tree / 1e6 / m['wall_s']:.0f} | "
          f"{m['max_rss_kb'] / 1024:.0f} | {m['layer_bytes'] / 1e6:.1f} | {m['layer_bytes'] / tree:.3f} | "
          f"{rel('wall_s')} | {rel('cpu_s')} | {lay} |")
if "kiln-cold" in med and "kiln-warm" in med:
    print(f"\nkiln warm/cold wall: {med['kiln-warm']['wall_s'] / med['kiln-cold']['wall_s']:.3f}")
if "kiln-cold-b" in med and "kiln-cold" in med:
    for k in ("cold", "warm"):
        a, b = med[f"kiln-{k}"], med[f"kiln-{k}-b"]
        print(f"kiln-{k} / kiln-{k}-b: wall {a['wall_s'] / b['wall_s']:.3f}, CPU {a['cpu_s'] / b['cpu_s']:.3f}, "
              f"layer bytes {'equal' if a['layer_bytes'] == b['layer_bytes'] else 'DIFFERENT'}")
reps = len(rows) // max(len(names), 1)
print(f"(medians of {reps} interleaved runs; tree {tree / 1e6:.1f} MB; results in {sys.argv[1]})")
PY
