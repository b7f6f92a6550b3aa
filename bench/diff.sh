#!/usr/bin/env bash
# `kiln diff` benchmark: two ~1 GB images that differ in a few files.
#
# Builds image A with kiln from a generated tree (bench/gen_tree.py: 60% large files, 40%
# small ones), and image B from a copy of that tree with a few changes: two files' contents,
# one mode, one added file, one removed file. Then measures, with /usr/bin/time -v (wall and
# peak RSS):
#   kiln-diff     kiln diff oci:A oci:B --json (release build), output kept for the checks
#   zcat-layers   zcat of every layer blob of both images, one after the other (the floor:
#                 decompressing both)
#   zcat-parallel the same, both images at once (kiln diff reads two layers at a time)
#   diffoscope    diffoscope on the two oci-archive tarballs, under a timeout (default 20 min);
#                 reported as "timeout" when it does not finish
# and checks that kiln's report names exactly the changed paths.
#
# usage: bench/diff.sh [-s SIZE_MB] [-t TREE] [-w WORKDIR] [-T DIFFOSCOPE_TIMEOUT_S] [-n REPS]
#   -s SIZE_MB  size of the generated tree (default 1024)
#   -t TREE     copy this directory as tree A instead of generating one
#   -w WORKDIR  scratch directory (default /tmp/kiln-bench-diff)
#   -T SECONDS  diffoscope timeout (default 1200; 0 skips diffoscope)
#   -n REPS     repetitions of kiln-diff and zcat-layers (default 3; diffoscope runs once)
set -euo pipefail

SIZE_MB=1024
TREE_SRC=""
WORK=/tmp/kiln-bench-diff
DTIMEOUT=1200
REPS=3
while getopts "s:t:w:T:n:h" opt; do
  case "$opt" in
    s) SIZE_MB=$OPTARG ;;
    t) TREE_SRC=$OPTARG ;;
    w) WORK=$OPTARG ;;
    T) DTIMEOUT=$OPTARG ;;
    n) REPS=$OPTARG ;;
    *) sed -n '2,22p' "$0"; exit 2 ;;
  esac
done

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$HERE")
KILN="${KILN:-$REPO/target/release/kiln}"
[[ -x "$KILN" ]] || { echo "build kiln first: cargo build --release" >&2; exit 2; }
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)

# --- the two trees ----------------------------------------------------------------------------
A="$WORK/a/tree"
B="$WORK/b/tree"
if [[ ! -f "$WORK/a/.done" ]]; then
  rm -rf "$WORK/a" && mkdir -p "$WORK/a"
  if [[ -n "$TREE_SRC" ]]; then
    cp -a "$TREE_SRC" "$A"
    rm -f "$A/.generated"
  else
    python3 "$HERE/gen_tree.py" "$A" --size-mb "$SIZE_MB" --seed 7 >&2
  fi
  touch "$WORK/a/.done"
fi
if [[ ! -f "$WORK/b/.done" ]]; then
  rm -rf "$WORK/b" && mkdir -p "$WORK/b"
  cp -a "$A" "$B"
  # The changes kiln must find, and nothing else.
  first_big=$(find "$B/opt/big" -type f | sort | head -1)
  printf 'patched' | dd of="$first_big" bs=1 seek=4096 conv=notrunc status=none
  echo "changed" >> "$B/usr/share/pkg0000/sub0/file-000000.txt"
  chmod 0700 "$B/usr/share/pkg0001/sub0/file-000400.txt"
  echo "new file" > "$B/usr/share/pkg0000/added.txt"
  rm "$B/usr/share/pkg0002/sub0/file-000800.txt"
  # Keep mtimes as in A so only the intended differences exist (kiln clamps them anyway).
  touch -d @1600000000 "$first_big" "$B/usr/share/pkg0000/sub0/file-000000.txt" \
    "$B/usr/share/pkg0000/added.txt" "$B/usr/share/pkg0000" "$B/usr/share/pkg0002/sub0"
  touch "$WORK/b/.done"
fi
echo "tree: $(du -sb "$A" | cut -f1) bytes, $(find "$A" -type f | wc -l) files" >&2

# --- the two images (kiln build, as OCI layouts and oci-archive tarballs) ------------------------
for side in a b; do
  if [[ ! -f "$WORK/$side/.built" ]]; then
    cat > "$WORK/$side/recipe.toml" <<EOF
[image]
name = "bench-diff"
epoch = 1600000000

[inputs.tree]
path = "tree"

[[layer]]
[[layer.step]]
copy = "tree"
dest = "/"
EOF
    "$KILN" build "$WORK/$side/recipe.toml" -o "$WORK/$side/oci" --cache "$WORK/cache" >/dev/null
    "$KILN" build "$WORK/$side/recipe.toml" -o "$WORK/$side/image.tar" --format oci-archive \
      --cache "$WORK/cache" >/dev/null
    touch "$WORK/$side/.built"
  fi
done
layers() { # the layer blobs of an OCI layout, from its manifest
  python3 - "$1" <<'PY'
import json, sys
root = sys.argv[1]
index = json.load(open(f"{root}/index.json"))
m = next(d for d in index["manifests"] if "artifactType" not in d)
manifest = json.load(open(f"{root}/blobs/sha256/{m['digest'].split(':')[1]}"))
for l in manifest["layers"]:
    print(f"{root}/blobs/sha256/{l['digest'].split(':')[1]}")
PY
}
IMAGE_BYTES=$(cat $(layers "$WORK/a/oci") $(layers "$WORK/b/oci") | wc -c)
echo "images: $(du -sb "$WORK/a/oci" | cut -f1) + $(du -sb "$WORK/b/oci" | cut -f1) bytes" >&2

# --- measurement ------------------------------------------------------------------------------
RESULTS="$WORK/results.tsv"
printf "rep\tname\twall_s\tmax_rss_kb\tstatus\n" > "$RESULTS"
measure() { # rep name timeout command
  local rep=$1 name=$2 limit=$3 cmd=$4 tf="$WORK/time.out" status=ok rc=0
  sync
  /usr/bin/time -v -o "$tf" timeout "$limit" bash -c "$cmd" || rc=$?
  if [[ $rc == 124 ]]; then status=timeout; elif [[ $rc != 0 && $rc != 1 ]]; then status="exit-$rc"; fi
  local wall rss
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$tf" |
    awk -F: '{ if (NF == 3) print $1 * 3600 + $2 * 60 + $3; else print $1 * 60 + $2 }')
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$tf")
  printf "%s\t%s\t%s\t%s\t%s\n" "$rep" "$name" "$wall" "$rss" "$status" >> "$RESULTS"
  echo "rep $rep $name: wall ${wall}s peak rss ${rss} KB ($status)" >&2
}

for rep in $(seq 1 "$REPS"); do
  measure "$rep" kiln-diff 3600 "$KILN diff oci:$WORK/a/oci oci:$WORK/b/oci --json > $WORK/report.json"
  measure "$rep" zcat-layers 3600 "cat $(layers "$WORK/a/oci" | tr '\n' ' ') | zcat > /dev/null; cat $(layers "$WORK/b/oci" | tr '\n' ' ') | zcat > /dev/null"
  measure "$rep" zcat-parallel 3600 "cat $(layers "$WORK/a/oci" | tr '\n' ' ') | zcat > /dev/null & cat $(layers "$WORK/b/oci" | tr '\n' ' ') | zcat > /dev/null; wait"
done
if [[ "$DTIMEOUT" == 0 ]]; then
  echo "diffoscope: skipped (-T 0)" >&2
elif command -v diffoscope >/dev/null; then
  measure 1 diffoscope "$DTIMEOUT" "diffoscope --no-progress --text $WORK/diffoscope.txt $WORK/a/image.tar $WORK/b/image.tar > /dev/null"
else
  echo "diffoscope not installed (apt-get install diffoscope-minimal): skipped" >&2
fi

# --- correctness: the report names exactly the changed paths ------------------------------------
python3 - "$WORK/report.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
got = {(f["path"], tuple(f["classes"])) for f in r["files"]}
content = {p for p, c in got if "content" in c}
print(f"kiln verdict: {r['verdict']}; {len(r['files'])} paths differ:", file=sys.stderr)
for p, c in sorted(got):
    print(f"  {','.join(c):<16} {p}", file=sys.stderr)
want_classes = {"content", "mode", "added", "removed"}
assert r["verdict"] == "different", r["verdict"]
assert {c for _, cs in got for c in cs} - {"mtime"} <= want_classes, got
assert len(content) == 2 and any(p.endswith("added.txt") for p, c in got if "added" in c), got
PY

# --- summary ----------------------------------------------------------------------------------
python3 - "$RESULTS" "$IMAGE_BYTES" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
size = int(sys.argv[2])
print(f"{'tool':<14}{'wall s':>10}{'peak RSS MB':>14}{'MB/s':>9}  status")
for n in dict.fromkeys(r["name"] for r in rows):
    rs = [r for r in rows if r["name"] == n]
    wall = statistics.median(float(r["wall_s"]) for r in rs)
    rss = statistics.median(float(r["max_rss_kb"]) for r in rs) / 1024
    status = ",".join(sorted({r["status"] for r in rs}))
    print(f"{n:<14}{wall:>10.2f}{rss:>14.1f}{size / 1e6 / wall:>9.1f}  {status} ({len(rs)} runs)")
print(f"(both images' compressed layers: {size / 1e6:.1f} MB; medians; results in {sys.argv[1]})")
PY
