#!/usr/bin/env bash
# Runs kiln-sandbox's integration tests as an unprivileged user, the way a rootless kiln runs.
#
# Must be started as root (CI runs as root): it creates the user `kilntest` if missing, builds
# the test binaries as the caller, copies them where that user can execute them, and runs the
# `it` suite and the `rootless` check (kiln inside its own user namespace) twice as `kilntest`:
#   1. single-id mapping (container 0 = kilntest, nothing else mapped);
#   2. subordinate range through newuidmap/newgidmap (grants kilntest 65536 ids in
#      /etc/subuid and /etc/subgid with usermod if it has none).
# Temporary files (some owned by subordinate ids) are removed as root at the end.
#
# Usage: sandbox/tests/run-unprivileged.sh [extra test-binary arguments, e.g. a filter]
set -euo pipefail

user=kilntest
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
workspace="$(cd "$here/../.." && pwd)"

for tool in useradd usermod setpriv newuidmap newgidmap; do
    command -v "$tool" >/dev/null || { echo "run-unprivileged.sh: $tool is missing" >&2; exit 2; }
done
# shellcheck source=scripts/unprivileged-user.sh
source "$workspace/scripts/unprivileged-user.sh"
ensure_unprivileged_user "$user"

cd "$workspace"
json="$(cargo test -p kiln-sandbox --test it --test rootless --no-run --message-format=json)"
exe_of() {
    printf '%s\n' "$json" | grep "\"name\":\"$1\"" | grep -o '"executable":"[^"]*"' \
        | tail -n 1 | cut -d'"' -f4
}
it="$(exe_of it)"
rootless="$(exe_of rootless)"
for binary in "$it" "$rootless"; do
    if [[ -z "$binary" || ! -x "$binary" ]]; then
        echo "run-unprivileged.sh: could not build the kiln-sandbox test binaries" >&2
        exit 2
    fi
done

scratch="$(mktemp -d /tmp/kiln-sandbox-unprivileged.XXXXXX)"
cleanup() { rm -rf "$scratch"; }
trap cleanup EXIT
chmod 0755 "$scratch"
cp "$it" "$scratch/it"
cp "$rootless" "$scratch/rootless"
chmod 0755 "$scratch/it" "$scratch/rootless"
install -d -o "$uid" -g "$gid" -m 0700 "$scratch/tmp"

status=0
for mapping in single subordinate; do
    echo "== kiln-sandbox tests as $user ($uid:$gid), $mapping id mapping" >&2
    as_user=(setpriv --reuid="$uid" --regid="$gid" --init-groups --reset-env
        env TMPDIR="$scratch/tmp" HOME="$scratch/tmp" PATH=/usr/sbin:/usr/bin:/sbin:/bin
        CI="${CI:-}" KILN_SANDBOX_TEST_MAPPING="$mapping")
    (cd "$scratch" && "${as_user[@]}" "$scratch/it" "$@") || status=1
    (cd "$scratch" && "${as_user[@]}" "$scratch/rootless") || status=1
done
exit "$status"
