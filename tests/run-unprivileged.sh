#!/usr/bin/env bash
# Runs kiln's `run`-step integration tests (`tests/it/run.rs`) as an unprivileged user: rootless
# kiln, which enters its own user namespace before running steps.
#
# Must be started as root (CI runs as root): it creates the user `kilntest` if missing (and
# grants it 65536 subordinate ids), builds the `it` test binary and `kiln` as the caller,
# copies them where that user can execute them, and runs the `run::` tests twice as
# `kilntest`, with `KILN_ID_MAPPING=single` (only the user's own id: a chown to another owner
# is refused with a clear error) and `KILN_ID_MAPPING=subordinate` (newuidmap/newgidmap: the
# same results as root). podman is exercised in the root run only. Temporary files (some
# owned by subordinate ids if a test failed midway) are removed as root at the end.
#
# Usage: tests/run-unprivileged.sh [extra test-binary arguments]
set -euo pipefail

user=kilntest
workspace="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

for tool in useradd usermod setpriv newuidmap newgidmap busybox tar; do
    command -v "$tool" >/dev/null || { echo "run-unprivileged.sh: $tool is missing" >&2; exit 2; }
done
# shellcheck source=scripts/unprivileged-user.sh
source "$workspace/scripts/unprivileged-user.sh"
ensure_unprivileged_user "$user"

cd "$workspace"
json="$(cargo test -p kiln --test it --no-run --message-format=json)"
it="$(printf '%s\n' "$json" | grep '"name":"it"' | grep -o '"executable":"[^"]*"' | tail -n 1 | cut -d'"' -f4)"
kiln="$(printf '%s\n' "$json" | grep '"name":"kiln"' | grep '"bin"' | grep -o '"executable":"[^"]*"' | tail -n 1 | cut -d'"' -f4)"
for binary in "$it" "$kiln"; do
    if [[ -z "$binary" || ! -x "$binary" ]]; then
        echo "run-unprivileged.sh: could not build the kiln test binaries" >&2
        exit 2
    fi
done

scratch="$(mktemp -d /tmp/kiln-unprivileged.XXXXXX)"
cleanup() { rm -rf "$scratch"; }
trap cleanup EXIT
chmod 0755 "$scratch"
cp "$it" "$scratch/it"
cp "$kiln" "$scratch/kiln"
chmod 0755 "$scratch/it" "$scratch/kiln"

status=0
for mapping in single subordinate; do
    echo "== kiln run-step tests as $user ($uid:$gid), $mapping id mapping" >&2
    install -d -o "$uid" -g "$gid" -m 0700 "$scratch/tmp-$mapping"
    as_user=(setpriv --reuid="$uid" --regid="$gid" --init-groups --reset-env
        env TMPDIR="$scratch/tmp-$mapping" HOME="$scratch/tmp-$mapping"
        PATH=/usr/sbin:/usr/bin:/sbin:/bin CI="${CI:-}"
        KILN_TEST_BIN="$scratch/kiln" KILN_ID_MAPPING="$mapping")
    (cd "$scratch" && "${as_user[@]}" "$scratch/it" run:: "$@") || status=1
done
exit "$status"
