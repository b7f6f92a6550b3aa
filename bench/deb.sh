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
#   kiln-warm   and once more (what every later warm build costs)
#   kiln-debs   kiln build on the same cache with the layer cache removed (.debs cached,
#               the layer rebuilt)
#   mmdebstrap  mmdebstrap --variant=extract --include=<the locked closure> into a tarball,
#               with a fresh apt cache (downloads the Packages indexes and every .deb)
# Each line: wall seconds, and the bytes written (kiln: the output layout; mmdebstrap: its tar).
#
# usage: bench/deb.sh [-w WORKDIR] [-k KILN]
set -euo pipefail
WORK=/tmp/kiln-bench-deb
KILN="$(cd "$(dirname "$0")/.." && pwd)/target/release/kiln"
while getopts "w:k:h" opt; do
  case "$opt" in
    w) WORK=$OPTARG ;;
    k) KILN=$OPTARG ;;
    *) sed -n 2,16p "$0"; exit 2 ;;
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
t0=$(python3 -c 'import time; print(time.time())')
"$KILN" lock r.toml --cache "$WORK/lock-cache" 2>/dev/null
lock=$(python3 -c 'import sys,time; print(f"{time.time()-float(sys.argv[1]):.2f}")' "$t0")
CLOSURE=$(python3 -c 'import tomllib;print(",".join(p["name"] for p in tomllib.load(open("r.lock","rb"))["set"][0]["package"]))')
echo "mirror $MIRROR $CODENAME; closure: $CLOSURE"

secs() { python3 -c 'import sys,time; print(f"{time.time()-float(sys.argv[1]):.2f}")' "$1"; }
now() { python3 -c 'import time; print(time.time())'; }
bytes() { du -sb "$1" | cut -f1; }

t=$(now); "$KILN" build r.toml -o out-cold --cache "$WORK/cache" >/dev/null 2>&1; cold=$(secs "$t")
t=$(now); "$KILN" build r.toml -o out-warm1 --cache "$WORK/cache" >/dev/null 2>&1; warm1=$(secs "$t")
t=$(now); "$KILN" build r.toml -o out-warm --cache "$WORK/cache" >/dev/null 2>&1; warm=$(secs "$t")
rm -rf "$WORK/cache/refs/layers"
t=$(now); "$KILN" build r.toml -o out-debs --cache "$WORK/cache" >/dev/null 2>&1; debs=$(secs "$t")
t=$(now)
mmdebstrap --quiet --variant=extract --include="$CLOSURE" --architectures=amd64 \
  --keyring=/usr/share/keyrings/debian-archive-keyring.gpg \
  "$CODENAME" "$WORK/mmdebstrap.tar" "deb $MIRROR $CODENAME main" >/dev/null 2>&1
mm=$(secs "$t")
printf '%-11s %8s s %12s bytes\n' kiln-lock "$lock" "$(bytes r.lock)"
printf '%-11s %8s s %12s bytes\n' kiln-cold "$cold" "$(bytes out-cold)"
printf '%-11s %8s s %12s bytes\n' kiln-warm1 "$warm1" "$(bytes out-warm1)"
printf '%-11s %8s s %12s bytes\n' kiln-warm "$warm" "$(bytes out-warm)"
printf '%-11s %8s s %12s bytes\n' kiln-debs "$debs" "$(bytes out-debs)"
printf '%-11s %8s s %12s bytes\n' mmdebstrap "$mm" "$(bytes mmdebstrap.tar)"
