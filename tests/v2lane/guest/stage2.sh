#!/bin/bash
# v2lane stage 2: PID 1 in the real root (host bash from the /usr share).
# Sets up a pure cgroup v2 system, runs the job from the checkout dir, records
# its exit code and output in the control share, and powers off.
# Not `set -e`: PID 1 must reach poweroff whatever fails; the job's exit code
# is what matters, setup errors are reported as rc 125 with a reason.
set -uo pipefail

export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export HOME=/root LANG=C.UTF-8 TERM=${TERM:-dumb}
CTL=/.v2lane/ctl
BB=/.v2lane/bin/busybox
DATA=/var/lib/dockyard-v2

say() { echo "v2lane: $*"; }
# Setup uses the static busybox copied into the root tmpfs: every dynamically
# linked binary exec'd from the 9p /usr costs ~0.1 s under TCG.
mount() { $BB mount "$@"; }
umount() { $BB umount "$@"; }
ln() { $BB ln "$@"; }
mkdir() { $BB mkdir "$@"; }
# Boot-time profile (uptime + step) in ctl/marks, for run.sh --out.
mark() { local u; read -r u _ </proc/uptime; echo "$u $*" >>$CTL/marks; }
mark stage2

halt() {
    trap - EXIT
    sync
    [[ -f $CTL/rc ]] || { echo 125 >$CTL/rc.tmp && mv $CTL/rc.tmp $CTL/rc; }
    [[ $(</proc/mounts) == *" $DATA "* ]] && umount $DATA 2>/dev/null
    sync
    $BB poweroff -f
    echo o >/proc/sysrq-trigger
}
trap halt EXIT

setup_fail() {
    say "SETUP FAILED: $*"
    echo "$*" >$CTL/setup.err
    echo 125 >$CTL/rc.tmp && mv $CTL/rc.tmp $CTL/rc
    halt
}

CHECKOUT= DISK=0
while IFS='=' read -r k v; do
    case $k in CHECKOUT) CHECKOUT=$v ;; DISK) DISK=$v ;; esac
done <$CTL/lane.conf

# ------------------------------------------------------------ basic mounts
# /run, /tmp and /var/lib are tmpfs mounts made by stage 1 (see there why).
mkdir -p /dev/pts /dev/shm /dev/mqueue /run/lock
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5 devpts /dev/pts || setup_fail "devpts"
[[ -e /dev/ptmx ]] || ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777,nosuid,nodev shm /dev/shm || setup_fail "/dev/shm"
mount -t mqueue mqueue /dev/mqueue 2>/dev/null
# devtmpfs has no fd links; bash process substitution and many tools need them.
ln -sfn /proc/self/fd /dev/fd
ln -sfn /proc/self/fd/0 /dev/stdin
ln -sfn /proc/self/fd/1 /dev/stdout
ln -sfn /proc/self/fd/2 /dev/stderr
mount -t securityfs securityfs /sys/kernel/security 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
$BB hostname v2lane
echo v2lane >/etc/hostname
$BB ip link set lo up || setup_fail "loopback"

mark mounts
# --------------------------------------------------------- kernel modules
# The full module tree of the guest kernel is shared read-only; the kernel's
# own module autoloading (iptables, nf_*, xt_*, ...) goes through this
# wrapper because the host's /usr/lib/modules is not the guest kernel's.
if [[ -d /.v2lane/kernel/lib/modules/$(uname -r) ]]; then
    cat >/.v2lane/bin/modprobe <<'EOF'
#!/bin/sh
exec /usr/sbin/modprobe -d /.v2lane/kernel "$@"
EOF
    chmod 755 /.v2lane/bin/modprobe
    echo /.v2lane/bin/modprobe >/proc/sys/kernel/modprobe
    # Modules an engine and its tests typically need, loaded up front so a
    # job's plain `modprobe X` (which looks in the host's /lib/modules) is
    # not needed; jobs can call "$(cat /proc/sys/kernel/modprobe)" for more.
    # overlay, veth, bridge, nf_*/xt_* autoload on first use; these do not.
    for m in br_netfilter loop; do
        /.v2lane/bin/modprobe -q "$m" || say "warning: modprobe $m failed"
    done
fi

mark modules
# ---------------------------------------------------------------- cgroup2
mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup || setup_fail "mount cgroup2"
# No internal processes: controllers can be enabled in the root's
# subtree_control only after every process left the root group.
mkdir -p /sys/fs/cgroup/init.scope
while read -r pid; do
    echo "$pid" >/sys/fs/cgroup/init.scope/cgroup.procs 2>/dev/null   # kthreads refuse; fine
done </sys/fs/cgroup/cgroup.procs
for c in cpuset cpu io memory pids; do
    echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control || setup_fail "cannot enable +$c"
done
# Optional controllers: enable what exists, like a systemd host does.
read -r avail </sys/fs/cgroup/cgroup.controllers
for c in hugetlb rdma misc; do
    [[ " $avail " == *" $c "* ]] && echo "+$c" >/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null
done

mark cgroup2
# -------------------------------------------------------------- data disk
export V2LANE_DATA= V2LANE_DATA_DEV= V2LANE_DATA_MAJMIN=
if [[ $DISK == 1 ]]; then
    [[ -b /dev/vda ]] || setup_fail "data disk /dev/vda missing"
    mkdir -p $DATA
    mount -t ext4 -o noatime /dev/vda $DATA || setup_fail "mount /dev/vda on $DATA"
    V2LANE_DATA=$DATA V2LANE_DATA_DEV=/dev/vda V2LANE_DATA_MAJMIN=$(</sys/block/vda/dev)
fi

mark disk
# -------------------------------------------------------------------- job
mapfile -d '' -t ARGV <$CTL/job.argv
if [[ -s $CTL/job.env ]]; then
    mapfile -d '' -t JENV <$CTL/job.env
    for kv in "${JENV[@]}"; do export "$kv"; done
fi
export V2LANE=1 V2LANE_CHECKOUT=$CHECKOUT V2LANE_OUT=$CTL/out
cd "$CHECKOUT" || setup_fail "cd $CHECKOUT"
cat /proc/uptime >$CTL/t_job_start
say "guest up in $(cut -d' ' -f1 /proc/uptime) s; job: ${ARGV[*]}"
# The job's stdin is /dev/null (the console is the lane's log, not a
# terminal); its output goes to the console and to ctl/job.log through tee
# on a fifo, so PID 1 waits for the job itself, not for whatever background
# process still holds its stdout.
# setsid: the job gets its own session, apart from PID 1.
mkfifo /run/v2lane-job.out
tee $CTL/job.log </run/v2lane-job.out &
teepid=$!
setsid -w "${ARGV[@]}" </dev/null >/run/v2lane-job.out 2>&1
rc=$?
echo "$rc" >$CTL/rc.tmp && mv $CTL/rc.tmp $CTL/rc
cat /proc/uptime >$CTL/t_job_end
mark job-end

leftovers() { # pids of user processes other than PID 1, tee and this subshell
    local p c                                  # (kernel threads have no cmdline)
    for p in /proc/[0-9]*; do
        p=${p#/proc/}
        [[ $p == 1 || $p == "$BASHPID" || $p == "$teepid" ]] && continue
        c=
        { IFS= read -r -d '' c <"/proc/$p/cmdline"; } 2>/dev/null
        [[ -n $c ]] && echo "$p"
    done
}
left=$(leftovers)
if [[ -n $left ]]; then
    # Leftovers (a daemon the job forgot) must not keep files open on the
    # disk, nor the job's output pipe open.
    say "job left processes behind; terminating:" $left
    kill -TERM $left 2>/dev/null
    for _ in $(seq 25); do
        left=$(leftovers)
        [[ -z $left ]] && break
        sleep 0.2
    done
    [[ -n $left ]] && kill -KILL $left 2>/dev/null
fi
wait $teepid   # tee ends when the last writer of the fifo is gone
say "job exited $rc after $(awk -v a="$(cut -d' ' -f1 $CTL/t_job_start)" '{printf "%.1f", $1 - a}' $CTL/t_job_end) s"
$BB dmesg >$CTL/dmesg.txt 2>/dev/null
halt
