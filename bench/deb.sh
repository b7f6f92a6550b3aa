#!/usr/bin/env bash
# Debian package-set benchmark: kiln (the lock made first and not timed) against
# `mmdebstrap --variant=extract` on the same packages, in one run, from the Debian mirror apt
# uses on this machine (read from apt's sources; never a hard-coded host).
#
#   kiln-lock   kiln lock with an empty cache (InRelease verified, Packages.xz, resolution):
#               reported, not part of the comparison
#   kiln-cold   kiln build with an empty cache: every .deb downloaded (verified), unpacked,
#               the layer written and compressed
#   kiln-warm1  kiln build again on the same cache (.debs and the layer cache hit; this first
#               reuse re-hashes each cached blob once and records it as verified)
#   kiln-warm   and N more times (-n, default 5; each into a new output directory): the median
#               is what every later warm build costs
#   kiln-debs   kiln build on the same cache with the layer cache removed (.debs cached,
#               the layer rebuilt)
#   mmdebstrap  mmdebstrap --variant=extract --include=<the locked closure> into a tarball,
#               with a fresh apt cache (downloads the Packages indexes and every .deb)
# Each line: wall seconds, and the bytes written (kiln: the output layout; mmdebstrap: its tar);
# then the two ratios the issue sets targets for. Times are taken with bash's $EPOCHREALTIME
# around the command alone: no process is started to read the clock (python3 can be a pyenv
# shim that takes 0.1-2 s to start, which used to be counted in every kiln time).
#
# usage: bench/deb.sh [-w WORKDIR] [-k KILN] [-n WARM_RUNS]
set -euo pipefail
WORK=/tmp/kiln-bench-deb
KILN="$(cd "$(dirname "$0")/.." && pwd)/target/release/kiln"
RUNS=5
while getopts "w:k:n:h" opt; do
  case "$opt" in
    w) WORK=$OPTARG ;;
    k) KILN=$OPTARG ;;
    n) RUNS=$OPTARG ;;
    *) sed -n 2,22p "$0"; exit 2 ;;
  esac
done
for tool in "$KILN" mmdebstrap python3; do
  command -v "$tool" >/dev/null || { echo "missing $tool (scripts/setup.sh; cargo build --release)" >&2; exit 2; }
done
CODENAME=$(. /etc/os-release && echo "$VERSION_CODENAME")
MIRROR=$(python3 - "$CODENAME" <<'PY'
import glob, sys
codename = sys.argv[1]
files = ["/etc/apt/sources.list"] + sorted(glob.glob("/etc/apt/sources.list.d/*"))
for f in files:
    try:
        text = open(f).read()
    except OSError:
        continue
    if f.endswith(".sources"):
        for stanza in text.split("\n\n"):
            fields = dict(l.split(":", 1) for l in stanza.splitlines() if ":" in l and not l.startswith((" ", "#")))
            fields = {k.strip(): v.strip() for k, v in fields.items()}
            if "deb" in fields.get("Types", "").split() and codename in fields.get("Suites", "").split():
                print(fields["URIs"].split()[0].rstrip("/")); sys.exit(0)
    elif f.endswith(".list"):
        for line in text.splitlines():
            w = [x for x in line.split() if not x.startswith("[")]
            if len(w) >= 3 and w[0] == "deb" and w[2] == codename:
                print(w[1].rstrip("/")); sys.exit(0)
sys.exit("no deb source for " + codename)
PY
)
PACKAGES='"base-files", "netbase", "tzdata", "ca-certificates", "busybox-static", "libc6", "libssl3"'
rm -rf "$WORK"; mkdir -p "$WORK"; cd "$WORK"
cat > r.toml <<TOML
[image]
name = "bench"
platform = "linux/amd64"

[repositories.debian]
url = "$MIRROR"
suite = "$CODENAME"
keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"

[[layer]]
[[layer.step]]
packages = [$PACKAGES]
TOML
secs() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }
t=$EPOCHREALTIME; "$KILN" lock r.toml --cache "$WORK/lock-cache" 2>/dev/null; lock=$(secs "$t")
CLOSURE=$(python3 -c 'import tomllib;print(",".join(p["name"] for p in tomllib.load(open("r.lock","rb"))["set"][0]["package"]))')
echo "mirror $MIRROR $CODENAME; closure: $CLOSURE"

bytes() { du -sb "$1" | cut -f1; }
median() { tr ' ' '\n' | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

t=$EPOCHREALTIME; "$KILN" build r.toml -o out-cold --cache "$WORK/cache" >/dev/null 2>&1; cold=$(secs "$t")
t=$EPOCHREALTIME; "$KILN" build r.toml -o out-warm1 --cache "$WORK/cache" >/dev/null 2>&1; warm1=$(secs "$t")
warms=""
for i in $(seq "$RUNS"); do
  t=$EPOCHREALTIME; "$KILN" build r.toml -o "out-warm$((i + 1))" --cache "$WORK/cache" >/dev/null 2>&1
  warms="$warms $(secs "$t")"
done
warm=$(echo $warms | median)
rm -rf "$WORK/cache/refs/layers"
t=$EPOCHREALTIME; "$KILN" build r.toml -o out-debs --cache "$WORK/cache" >/dev/null 2>&1; debs=$(secs "$t")
t=$EPOCHREALTIME
mmdebstrap --quiet --variant=extract --include="$CLOSURE" --architectures=amd64 \
  --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
  "$CODENAME" "$WORK/mmdebstrap.tar" "deb $MIRROR $CODENAME main" >/dev/null 2>&1
mm=$(secs "$t")
printf '%-11s %8s s %12s bytes\n' kiln-lock "$lock" "$(bytes r.lock)"
printf '%-11s %8s s %12s bytes\n' kiln-cold "$cold" "$(bytes out-cold)"
printf '%-11s %8s s %12s bytes\n' kiln-warm1 "$warm1" "$(bytes out-warm1)"
printf '%-11s %8s s %12s bytes   (median of%s)\n' kiln-warm "$warm" "$(bytes out-warm2)" "$warms"
printf '%-11s %8s s %12s bytes\n' kiln-debs "$debs" "$(bytes out-debs)"
printf '%-11s %8s s %12s bytes\n' mmdebstrap "$mm" "$(bytes mmdebstrap.tar)"
awk -v c="$cold" -v w="$warm" -v m="$mm" -v l="$(cut -d' ' -f1 /proc/loadavg)" 'BEGIN {
  printf "kiln warm / kiln cold  = %5.1f %%  (target < 10 %%: %s)\n", 100 * w / c, (w < 0.1 * c) ? "met" : "NOT met"
  printf "kiln cold / mmdebstrap = %5.2f    (target <= 1: %s)\n", c / m, (c <= m) ? "met" : "NOT met"
  printf "load average at the end: %s\n", l
}'
