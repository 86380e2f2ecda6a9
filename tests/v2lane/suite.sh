#!/bin/bash
# Run the v2 suite (tests/v2) in the cgroup v2 lane and print its summary:
# what `make test-v2` and `make test` call.
#
# Usage: tests/v2lane/suite.sh [--if-installable] [PYTEST-ARGS...]
#   --if-installable  (make test) run only where QEMU is installed or apt can
#                     install it; elsewhere print a loud SKIPPED line and
#                     exit 0.  Once it runs, a lane that cannot boot fails.
# Environment: V2LANE_OUT_DIR (default build/v2lane: job.log, daemon.log,
# dmesg.txt of the last run), V2LANE_TIMEOUT (default 900 s).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
CHECKOUT=$(cd "$HERE/../.." && pwd -P)

if [[ ${1:-} == --if-installable ]]; then
    shift
    candidate() { apt-cache policy qemu-system-x86 2>/dev/null | grep -q 'Candidate: [0-9]'; }
    # A fresh machine may have empty apt lists: refresh once before deciding.
    if ! command -v qemu-system-x86_64 >/dev/null && ! candidate && ((EUID == 0)); then
        apt-get update -q >/dev/null 2>&1 || true
    fi
    if ! command -v qemu-system-x86_64 >/dev/null && ! candidate; then
        echo "v2lane: SKIPPED: QEMU is neither installed nor installable here (apt has no" \
             "qemu-system-x86 candidate): cgroup v2 was NOT tested" >&2
        exit 0
    fi
fi

OUT=${V2LANE_OUT_DIR:-$CHECKOUT/build/v2lane}
rm -rf "$OUT"
# 900 s: the lane's whole run must stay within 10 minutes; a hung guest is
# killed (exit 124) instead of stalling CI.
set +e
"$HERE/run.sh" --timeout "${V2LANE_TIMEOUT:-900}" --out "$OUT" -- bash tests/v2lane/job-suite.sh "$@"
rc=$?
set -e
case $rc in
    0) echo "v2lane: v2 suite passed (logs in $OUT)" >&2 ;;
    124|125) echo "v2lane: LANE FAILED (exit $rc): see the messages above and $OUT" >&2 ;;
    *) echo "v2lane: v2 suite FAILED (exit $rc); daemon log: $OUT/daemon.log" >&2 ;;
esac
exit "$rc"
