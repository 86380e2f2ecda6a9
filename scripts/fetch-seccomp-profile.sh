#!/usr/bin/env bash
# Docker Engine's default seccomp profile, taken from Debian's
# golang-github-docker-docker-dev package without installing it (it would
# pull in some 260 packages): `apt-get download` fetches the .deb (apt checks
# it against the signed package index), only the profile is extracted, and
# its checksum must match the one recorded beside it in the project.
#
#   fetch-seccomp-profile.sh [DEST_DIR]   (default: dockyard/oci/profiles)
#
# The .deb is kept in a cache (DOCKYARD_CACHE, /var/cache/dockyard) so a
# second checkout needs no download.  Idempotent: a profile already in place
# with the right checksum is left alone.
set -euo pipefail

HERE="$(cd "$(dirname "$0")/.." && pwd)"
DEST="${1:-$HERE/dockyard/oci/profiles}"
SUM_FILE="$HERE/dockyard/oci/profiles/docker-default.json.sha256"
CACHE="${DOCKYARD_CACHE:-/var/cache/dockyard}/deb"
PKG=golang-github-docker-docker-dev
MEMBER=./usr/share/gocode/src/github.com/docker/docker/profiles/seccomp/default.json
OUT="$DEST/docker-default.json"
WANT="$(awk '{print $1}' "$SUM_FILE")"

have_sum() { [ -f "$1" ] && [ "$(sha256sum "$1" | awk '{print $1}')" = "$WANT" ]; }

if have_sum "$OUT"; then
  exit 0
fi
mkdir -p "$CACHE" "$DEST"
deb="$(ls "$CACHE"/${PKG}_*_all.deb 2>/dev/null | tail -n1 || true)"
if [ -z "$deb" ]; then
  # apt's sandbox user must be able to write the download directory
  tmp="$(mktemp -d)"
  chmod 0755 "$tmp"
  if ! (cd "$tmp" && apt-get download -q "$PKG" >/dev/null 2>&1); then
    apt-get update -q >/dev/null
    (cd "$tmp" && apt-get download -q "$PKG" >/dev/null)
  fi
  mv "$tmp"/${PKG}_*_all.deb "$CACHE"/
  rm -rf "$tmp"
  deb="$(ls "$CACHE"/${PKG}_*_all.deb | tail -n1)"
fi
part="$OUT.part.$$"
trap 'rm -f "$part"' EXIT
dpkg-deb --fsys-tarfile "$deb" | tar -xO "$MEMBER" > "$part"
if ! have_sum "$part"; then
  echo "seccomp profile: $MEMBER from $(basename "$deb") has sha256" \
       "$(sha256sum "$part" | awk '{print $1}'), expected $WANT;" \
       "not installed (update $SUM_FILE after checking the new profile)" >&2
  exit 1
fi
chmod 0644 "$part"
mv "$part" "$OUT"
echo "setup: Docker's default seccomp profile from $(basename "$deb") -> $OUT"
