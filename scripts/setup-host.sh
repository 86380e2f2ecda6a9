#!/usr/bin/env bash
# Install the Debian packages dockyard needs, only those missing; idempotent.
set -euo pipefail

PKGS=(
  runc crun conmon busybox-static golang-github-containers-common catatonit
  iptables netavark aardvark-dns uidmap python3-venv qemu-user-static
)
if [ "${DOCKYARD_TEST_PKGS:-0}" = 1 ]; then
  # what the test suite uses besides the engine's own needs
  PKGS+=(tmux docker.io docker-registry apache2-utils openssl gcc libc6-dev openssh-client
         python3-dev)  # python3-dev: docker-compose v1 builds PyYAML 5.4.1 (tests/eco)
fi

missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends "${missing[@]}"; then
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
fi
# Docker Engine's default seccomp profile, the daemon's default (checksummed)
bash "$(dirname "$0")/fetch-seccomp-profile.sh"
# The API socket belongs to group docker, as dockerd's does.
getent group docker >/dev/null || groupadd --system docker
if [ "${DOCKYARD_TEST_PKGS:-0}" = 1 ]; then
  # the arm64 test image's package (Debian's arm64 busybox-static), fetched
  # once into a cache so the platform tests need no network while they run
  bash "$(dirname "$0")/../tests/fixtures/arm64-busybox.sh" fetch \
    || echo "setup: could not fetch busybox-static:arm64; the emulation tests will skip"
  # a private sshd for the ssh:// test (unpacked, not installed: the package
  # would start a system-wide sshd)
  bash "$(dirname "$0")/../tests/fixtures/sshd.sh" fetch \
    || echo "setup: could not fetch openssh-server; the real-sshd test will skip"
fi
