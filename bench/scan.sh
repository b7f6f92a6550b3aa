#!/bin/sh
# `kiln scan` benchmark (issue 14): an image (or a RECIPE.lock) against a generated OSV
# directory of ~SIZE_MB of `Debian:12` records, as osv.dev publishes them (one JSON file per
# record, ECOSYSTEM ranges, CVSS vectors, long `details`). A few records name common Debian
# source packages (glibc, openssl, zlib, …) so that an image of those has findings; the rest
# name synthetic source packages, so every record is read and parsed.
#
# usage: bench/scan.sh -t TARGET [-s SIZE_MB] [-w WORKDIR] [-k KILN] [-n REPS]
#   -t TARGET   what to scan: oci:out/NAME, docker://…, or a RECIPE.lock
#   -s SIZE_MB  size of the generated database (default 100)
#   -w WORKDIR  scratch directory (default /tmp/kiln-bench-scan); the database is kept there
#               and reused when its size matches
#   -k KILN     the kiln binary (default: target/release/kiln, built with cargo build --release)
#   -n REPS     timed runs (default 3); prints wall time and peak memory of each
set -eu

TARGET=""
SIZE=100
WORK=/tmp/kiln-bench-scan
KILN=""
REPS=3
while getopts t:s:w:k:n: opt; do
    case $opt in
        t) TARGET=$OPTARG ;;
        s) SIZE=$OPTARG ;;
        w) WORK=$OPTARG ;;
        k) KILN=$OPTARG ;;
        n) REPS=$OPTARG ;;
        *) sed -n '2,16p' "$0"; exit 2 ;;
    esac
done
[ -n "$TARGET" ] || { echo "bench/scan.sh: -t TARGET is required" >&2; exit 2; }
ROOT=$(cd "$(dirname "$0")/.." && pwd)
if [ -z "$KILN" ]; then
    (cd "$ROOT" && cargo build --release --quiet)
    KILN=$ROOT/target/release/kiln
fi
mkdir -p "$WORK"
DB=$WORK/osv-$SIZE
if [ ! -f "$DB/.generated" ]; then
    rm -rf "$DB"
    python3 - "$DB" "$SIZE" <<'PY'
import json, os, sys
db, size_mb = sys.argv[1], int(sys.argv[2])
os.makedirs(db)
real = ["glibc", "openssl", "zlib", "base-files", "tzdata", "ca-certificates", "busybox",
        "netbase", "bash", "coreutils", "tar", "gawk", "grep", "zstd"]
details = ("A flaw was found in the handling of crafted input. " * 40).strip()
total, i = 0, 0
while total < size_mb * 1024 * 1024:
    source = real[i % len(real)] if i % 997 == 0 else f"synthetic-src-{i % 20000}"
    record = {
        "schema_version": "1.6.0",
        "id": f"DEBIAN-CVE-2099-{i:06d}",
        "aliases": [f"CVE-2099-{i:06d}"],
        "modified": "2026-12-01T00:00:00Z",
        "published": "2026-11-01T00:00:00Z",
        "summary": f"{source}: generated record {i}",
        "details": details,
        "severity": [{"type": "CVSS_V3",
                      "score": "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H"}],
        "affected": [{
            "package": {"ecosystem": "Debian:12", "name": source,
                        "purl": f"pkg:deb/debian/{source}?arch=source"},
            "ranges": [{"type": "ECOSYSTEM",
                        "events": [{"introduced": "0"}, {"fixed": f"99:{i}.0-1"}]}],
            "ecosystem_specific": {"urgency": "not yet assigned"},
        }],
        "references": [{"type": "ADVISORY",
                        "url": f"https://security-tracker.debian.org/tracker/CVE-2099-{i:06d}"}],
    }
    data = json.dumps(record, indent=2).encode()
    sub = os.path.join(db, f"{i // 1000:03d}")
    os.makedirs(sub, exist_ok=True)
    with open(os.path.join(sub, f"DEBIAN-CVE-2099-{i:06d}.json"), "wb") as f:
        f.write(data)
    total += len(data)
    i += 1
open(os.path.join(db, ".generated"), "w").write(f"{i} records, {total} bytes\n")
PY
fi
echo "database: $DB ($(cat "$DB/.generated" | tr -d '\n'), $(du -sm "$DB" | cut -f1) MiB on disk)"
echo "target: $TARGET; kiln: $KILN; $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
n=0
while [ "$n" -lt "$REPS" ]; do
    n=$((n + 1))
    /usr/bin/time -f "run $n: %e s wall, %M KiB peak RSS" \
        "$KILN" scan "$TARGET" --db "$DB" --json >"$WORK/report.json" || [ $? -eq 1 ]
    python3 -c "import json,sys; r=json.load(open(sys.argv[1])); print(f\"  {r['packages']} packages, {r['database']['records']} records, {len(r['findings'])} findings\")" "$WORK/report.json"
done
