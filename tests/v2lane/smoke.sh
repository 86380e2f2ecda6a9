#!/bin/bash
# Smoke job for the v2 lane; run it as: tests/v2lane/run.sh -- bash tests/v2lane/smoke.sh
# Proves, inside the guest, that the lane is what later suites rely on:
# pure cgroup v2 with the five controllers delegable, runc enforcing limits
# (read back from inside a container through its cgroup namespace), the data
# disk as a real block device for io.max, overlayfs, and the checkout's venv.
set -euo pipefail

[[ ${V2LANE:-} == 1 ]] || { echo "smoke.sh runs inside the v2 lane: tests/v2lane/run.sh -- bash $0" >&2; exit 2; }

fails=0
ok()   { echo "ok   - $*"; }
bad()  { echo "FAIL - $*"; fails=$((fails + 1)); }
check() { # description expected actual
    if [[ $2 == "$3" ]]; then ok "$1 = $3"; else bad "$1: expected '$2', got '$3'"; fi
}
t0=$(date +%s%N)
lap() { echo "     ($(( ($(date +%s%N) - t0) / 1000000 )) ms)"; }

# ------------------------------------------------------------- cgroup v2
[[ $(stat -fc %T /sys/fs/cgroup) == cgroup2fs ]] && ok "/sys/fs/cgroup is cgroup2" || bad "/sys/fs/cgroup is $(stat -fc %T /sys/fs/cgroup)"
ctrls=$(cat /sys/fs/cgroup/cgroup.controllers)
sub=$(cat /sys/fs/cgroup/cgroup.subtree_control)
echo "     cgroup.controllers: $ctrls"
echo "     cgroup.subtree_control: $sub"
for c in cpuset cpu io memory pids; do
    [[ " $ctrls " == *" $c "* ]] || bad "controller $c missing"
    [[ " $sub " == *" $c "* ]] || bad "controller $c not enabled in subtree_control"
done
ok "cpuset cpu io memory pids available and delegated"
grep -q nsdelegate /proc/self/mountinfo && ok "cgroup2 mounted with nsdelegate" || bad "no nsdelegate"
check "own cgroup" "0::/init.scope" "$(cat /proc/self/cgroup)"
[[ ! -d /sys/fs/cgroup/unified && ! -d /sys/fs/cgroup/memory ]] && ok "no v1 hierarchies" || bad "v1 hierarchies present"

# ------------------------------------------------------------- data disk
if [[ -n ${V2LANE_DATA:-} ]]; then
    ok "data disk $V2LANE_DATA_DEV ($V2LANE_DATA_MAJMIN) mounted at $V2LANE_DATA as $(findmnt -no FSTYPE "$V2LANE_DATA")"
else
    bad "no data disk"
fi

# io.max throttles direct reads of the data disk: 3 MiB at 1 MiB/s must take
# well over a second (unthrottled it takes a few ms).
if [[ -n ${V2LANE_DATA_MAJMIN:-} ]]; then
    G=/sys/fs/cgroup/v2lane-smoke-io
    mkdir -p $G
    echo "$V2LANE_DATA_MAJMIN rbps=1048576" >$G/io.max
    t1=$(date +%s%N)
    (echo $BASHPID >$G/cgroup.procs && exec dd if="$V2LANE_DATA_DEV" of=/dev/null bs=64k count=48 iflag=direct status=none)
    ms=$(( ($(date +%s%N) - t1) / 1000000 ))
    rmdir $G
    ((ms >= 1500)) && ok "io.max rbps=1MiB/s on $V2LANE_DATA_DEV: 3 MiB direct read took $ms ms" \
        || bad "io.max not enforced: 3 MiB direct read took $ms ms"
fi

# ------------------------------------------------------------- overlayfs
for base in /tmp "${V2LANE_DATA:-/tmp}"; do
    d=$(mktemp -d "$base/ovl.XXXXXX")
    mkdir "$d"/{lower,upper,work,merged}
    echo lower >"$d/lower/f"; echo gone >"$d/lower/g"
    if mount -t overlay -o "lowerdir=$d/lower,upperdir=$d/upper,workdir=$d/work" ovl "$d/merged" 2>/dev/null; then
        echo upper >"$d/merged/f"; rm "$d/merged/g"
        [[ -c $d/upper/g && $(cat "$d/upper/f") == upper ]] \
            && ok "overlayfs with upper on $(findmnt -no FSTYPE -T "$base") ($base): copy-up and whiteout" \
            || bad "overlayfs on $base: wrong upper contents"
        umount "$d/merged"
    else
        bad "overlayfs with upper on $base does not mount"
    fi
    rm -rf "$d"
done

# ------------------------------------------------------------- runc bundle
runc --version | head -1 | sed 's/^/     /'
B=$(mktemp -d /tmp/bundle.XXXXXX)
mkdir -p "$B/rootfs/bin" "$B/rootfs/proc" "$B/rootfs/sys" "$B/rootfs/dev" "$B/rootfs/tmp"
cp /.v2lane/bin/busybox "$B/rootfs/bin/busybox"      # static busybox from the initramfs
for a in sh cat echo sleep seq head; do ln -s busybox "$B/rootfs/bin/$a"; done
(cd "$B" && runc spec)
# Limits as a Docker-like engine would set them; blockIO on the data disk
# becomes io.max on v2.
MAJ=${V2LANE_DATA_MAJMIN%:*} MIN=${V2LANE_DATA_MAJMIN#*:}
/usr/bin/python3 - "$B/config.json" "$MAJ" "$MIN" <<'EOF'
import json, sys
path, maj, min_ = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = json.load(open(path))
c["process"]["terminal"] = False
c["process"]["args"] = ["sh", "-c", "for f in memory.max pids.max cpu.max io.max; do echo \"$f=$(cat /sys/fs/cgroup/$f)\"; done; cat /proc/self/cgroup"]
c["linux"]["cgroupsPath"] = "/v2lane-smoke/limits"
c["linux"]["resources"] = {
    "memory": {"limit": 64 << 20},
    "pids": {"limit": 10},
    "cpu": {"quota": 50000, "period": 100000},
    "blockIO": {"throttleReadBpsDevice": [{"major": maj, "minor": min_, "rate": 1048576}]},
}
json.dump(c, open(path, "w"), indent=1)
EOF
t1=$(date +%s%N)
out=$(cd "$B" && runc run smoke-limits)
echo "     runc run took $(( ($(date +%s%N) - t1) / 1000000 )) ms; container says:"
echo "$out" | sed 's/^/       /'
check "container memory.max" "memory.max=67108864" "$(grep '^memory.max=' <<<"$out")"
check "container pids.max" "pids.max=10" "$(grep '^pids.max=' <<<"$out")"
check "container cpu.max" "cpu.max=50000 100000" "$(grep '^cpu.max=' <<<"$out")"
check "container io.max" "io.max=$V2LANE_DATA_MAJMIN rbps=1048576 wbps=max riops=max wiops=max" "$(grep '^io.max=' <<<"$out")"
check "container cgroup namespace root" "0::/" "$(grep '^0::' <<<"$out")"

# pids.max is enforced, not just written: starting 20 background sleeps in
# a group allowing 10 tasks must hit "can't fork" (busybox sh then exits 2).
/usr/bin/python3 - "$B/config.json" <<'EOF'
import json, sys
c = json.load(open(sys.argv[1]))
c["process"]["args"] = ["sh", "-c", "i=0; while [ $i -lt 20 ]; do sleep 2 & i=$((i + 1)); done; wait; echo all forked"]
c["linux"]["cgroupsPath"] = "/v2lane-smoke/pids"
json.dump(c, open(sys.argv[1], "w"), indent=1)
EOF
out=$(cd "$B" && runc run smoke-pids 2>&1) && rc=0 || rc=$?
[[ $rc != 0 && $out == *"can't fork"* ]] && ok "pids.max enforced (exit $rc: $out)" || bad "pids.max not enforced (exit $rc: $out)"
rm -rf "$B"
rmdir /sys/fs/cgroup/v2lane-smoke/* /sys/fs/cgroup/v2lane-smoke 2>/dev/null || true
lap

# ------------------------------------------------------------- Python
PY=$V2LANE_CHECKOUT/.venv/bin/python
if [[ -x $PY ]]; then
    t1=$(date +%s%N)
    v=$("$PY" -c 'import sys; print(sys.version.split()[0], sys.prefix)')
    ok "venv python: $v ($(( ($(date +%s%N) - t1) / 1000000 )) ms)"
else
    bad "no venv at $PY"
fi

# The checkout share is writable from the guest.
f=$(mktemp "$V2LANE_CHECKOUT/tests/v2lane/.smoke-write.XXXXXX") && rm -f "$f" \
    && ok "checkout $V2LANE_CHECKOUT writable" || bad "checkout not writable"
echo "smoke artefact" >"$V2LANE_OUT/smoke.txt"

lap
if ((fails)); then echo "smoke: $fails check(s) FAILED"; exit 1; fi
echo "smoke: all checks passed"
