#!/bin/bash
# v2 suite job: runs inside the v2 lane guest (pure cgroup v2).
#   tests/v2lane/run.sh -- bash tests/v2lane/job-suite.sh [PYTEST-ARGS...]
# Starts one dockyard daemon from the checkout's .venv on a private socket
# and data root (on the lane's data disk, so overlayfs and io.max have a real
# block device), runs `pytest tests/v2` against it with the real docker CLI
# (the host's /usr/local/bin, visible through the /usr share) and docker-py,
# stops the daemon and exits with pytest's code.  Extra arguments go to
# pytest (e.g. `-k stats`).  The daemon log is copied to $V2LANE_OUT.
set -euo pipefail

[[ ${V2LANE:-} == 1 ]] || { echo "job-suite.sh runs inside the v2 lane: tests/v2lane/run.sh -- bash $0" >&2; exit 2; }
cd "$V2LANE_CHECKOUT"

PY=$V2LANE_CHECKOUT/.venv/bin/python
DOCKER=/usr/local/bin/docker
# Sockets cannot be bound on the 9p checkout: socket, exec root and the log
# (written often) live on tmpfs.
SOCK=/run/dockyard-v2.sock
EXEC_ROOT=/run/dockyard-v2
LOG=/run/dockyard-v2.log
DATA_ROOT=${V2LANE_DATA:-/var/lib/dockyard-v2}/dockyard

[[ -x $PY ]] || { echo "job-suite: no venv python at $PY (run make setup-test on the host)" >&2; exit 2; }
[[ -x $DOCKER ]] || { echo "job-suite: no docker CLI at $DOCKER in the guest" >&2; exit 2; }

export DOCKER_HOST=unix://$SOCK
export DOCKER_CONFIG=/run/dockyard-v2-docker-config   # no host CLI config/contexts
export V2_DOCKER=$DOCKER
export V2_DAEMON_LOG=$LOG
mkdir -p "$DOCKER_CONFIG"

t0=$(date +%s%N)
ms() { echo $(( ($(date +%s%N) - t0) / 1000000 )); }

"$PY" -m dockyard.cli daemon -H "unix://$SOCK" --data-root "$DATA_ROOT" \
    --exec-root "$EXEC_ROOT" --debug </dev/null >"$LOG" 2>&1 &
DPID=$!

stop_daemon() {
    # Containers outlive the daemon by design: remove them while it runs so
    # no conmon/container is left for the lane to SIGKILL, then stop it.
    if kill -0 "$DPID" 2>/dev/null; then
        local ids
        ids=$(timeout 30 "$DOCKER" ps -aq 2>/dev/null || true)
        [[ -n $ids ]] && timeout 120 "$DOCKER" rm -f $ids >/dev/null 2>&1 || true
        kill -TERM "$DPID" 2>/dev/null || true
        for _ in $(seq 75); do kill -0 "$DPID" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$DPID" 2>/dev/null || true
    fi
    wait "$DPID" 2>/dev/null || true
    [[ -n ${V2LANE_OUT:-} ]] && cp "$LOG" "$V2LANE_OUT/daemon.log" 2>/dev/null || true
}
trap stop_daemon EXIT

# Wait for the socket and a working /_ping (python start-up + engine init
# take a few seconds under emulation).
for _ in $(seq 600); do
    kill -0 "$DPID" 2>/dev/null || { echo "job-suite: daemon exited during start-up:"; cat "$LOG"; exit 1; }
    [[ -S $SOCK ]] && "$DOCKER" version --format '{{.Server.Version}}' >/dev/null 2>&1 && break
    sleep 0.1
done
"$DOCKER" version --format 'job-suite: daemon up ({{.Server.Version}}, API {{.Server.APIVersion}})' \
    || { echo "job-suite: daemon did not answer within 60 s:"; cat "$LOG"; exit 1; }
echo "job-suite: daemon ready after $(ms) ms"

# -p no:cacheprovider: nothing written to the checkout's .pytest_cache.
# -rfExX: list failures, errors, xfails (with reasons) and xpasses in the summary.
set +e
"$PY" -m pytest tests/v2 -q -p no:cacheprovider -rfExX --durations=8 "$@"
rc=$?
set -e
echo "job-suite: pytest exit code $rc after $(ms) ms"
if ((rc != 0)); then
    echo "job-suite: last 60 lines of the daemon log:"
    tail -n 60 "$LOG" | cut -c1-400
fi
exit "$rc"
