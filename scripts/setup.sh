#!/usr/bin/env bash
# Installs what kiln's test suite needs on a Debian 12 machine: the real components the tests
# drive (registry, skopeo, umoci, podman + runc, static busybox, …) and a Python virtualenv with
# the independent verifiers. Idempotent; run as root (or through sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(docker-registry skopeo umoci podman runc busybox-static diffoscope-minimal pigz
          uidmap python3-venv zstd xz-utils bzip2 apache2-utils
          gnupg apt-utils debian-archive-keyring mmdebstrap)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# podman on these machines: runc (crun fails on hybrid cgroups) and no default rlimits.
mkdir -p tests/.containers
printf '[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n' > tests/.containers/containers.conf

# Independent verifiers (signatures, DSSE, SBOMs), in a virtualenv of their own.
if [ -f tests/verifiers/requirements.txt ]; then
  if [ ! -x .venv/bin/python ]; then python3 -m venv .venv; fi
  .venv/bin/pip install -q --disable-pip-version-check -r tests/verifiers/requirements.txt
fi

echo "setup: done" >&2
