# Sourced by the run-unprivileged.sh scripts: makes sure the test user exists and owns a range
# of 65536 subordinate ids (for newuidmap/newgidmap), then sets `uid` and `gid`.
# Usage: ensure_unprivileged_user NAME   (as root)
ensure_unprivileged_user() {
    local user="$1" start
    if [[ "$(id -u)" != 0 ]]; then
        echo "run-unprivileged.sh: must run as root (it creates and switches to user $user)" >&2
        exit 2
    fi
    if ! id "$user" >/dev/null 2>&1; then
        useradd --create-home --shell /bin/sh "$user"
    fi
    uid="$(id -u "$user")"
    gid="$(id -g "$user")"
    if ! grep -qE "^($user|$uid):" /etc/subuid 2>/dev/null || ! grep -qE "^($user|$uid):" /etc/subgid 2>/dev/null; then
        # A range above every existing one.
        start="$(cat /etc/subuid /etc/subgid 2>/dev/null | awk -F: 'BEGIN{m=100000} {e=$2+$3; if (e>m) m=e} END{print m}')"
        usermod --add-subuids "$start-$((start + 65535))" --add-subgids "$start-$((start + 65535))" "$user"
    fi
}
