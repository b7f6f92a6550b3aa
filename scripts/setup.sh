#!/usr/bin/env bash
# Installs what kiln's test suite needs on a Debian 12 machine: the real components the tests
# drive (registry, skopeo, umoci, podman + runc, static busybox, …) and a Python virtualenv with
# the independent verifiers. Idempotent; run as root (or through sudo).
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(docker-registry skopeo umoci podman runc busybox-static diffoscope-minimal pigz
          uidmap python3-venv zstd xz-utils bzip2 apache2-utils time gcc libc6-dev
          gnupg apt-utils debian-archive-keyring mmdebstrap git openssl systemd)
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

# The archive corpus of tests/it/corpus.rs: real archives other tools wrote, which kiln must
# extract exactly as GNU tar does. The data part of Debian packages (apt-get download: hardlinks,
# symlinks, setuid files, thousands of entries), crates from cargo's download cache, and PyPI
# sdists. Downloaded once; the list is the stamp, so changing it fetches again.
corpus=tests/corpus
debs=(base-files bash busybox-static bzip2 ca-certificates coreutils curl dash dpkg e2fsprogs
      findutils gawk git grep gzip iproute2 iputils-ping less libc-bin libc6 libperl5.36 login
      mount ncurses-base ncurses-term openssh-client openssl passwd perl-base perl-modules-5.36
      perl procps python3-pip python3.11-minimal sed sudo tar tzdata unzip util-linux xz-utils
      zstd)
crates=(clap_builder flate2 indicatif libc regex-syntax rustix serde syn toml_edit zstd-sys)
sdists=(six==1.16.0 requests==2.31.0 certifi==2023.7.22 urllib3==1.26.18 click==8.1.7
        MarkupSafe==2.1.3)
stamp="${debs[*]} | ${crates[*]} | ${sdists[*]}"
if [ "$(cat "$corpus/.stamp" 2>/dev/null)" != "$stamp" ]; then
  echo "setup: downloading the archive corpus into $corpus" >&2
  rm -rf "$corpus"
  mkdir -p "$corpus/debs" "$corpus/src"
  # apt-get download needs the package lists; a fresh machine may not have them yet.
  (cd "$corpus/debs" && apt-get download -qq "${debs[@]}" 2>/dev/null) ||
    { apt-get update -q && (cd "$corpus/debs" && apt-get download -qq "${debs[@]}"); }
  # cargo's cache holds the .crate files (gzip tarballs) of Cargo.lock's versions.
  cargo fetch --locked -q
  for c in "${crates[@]}"; do
    f=$(ls "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"$c"-[0-9]*.crate | sort -V | tail -n1)
    cp "$f" "$corpus/src/"
  done
  python3 -m venv "$corpus/.pip"
  "$corpus/.pip/bin/pip" download -q --disable-pip-version-check --no-binary :all: --no-deps \
    -d "$corpus/src" "${sdists[@]}"
  rm -rf "$corpus/.pip"
  echo "$stamp" > "$corpus/.stamp"
fi

echo "setup: done" >&2
