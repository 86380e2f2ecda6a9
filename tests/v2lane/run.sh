#!/bin/bash
# Run a command inside a pure cgroup v2 VM (QEMU/TCG, Debian kernel) with the
# host's /usr and /etc read-only and this checkout read-write at the same
# path.  Prints the guest console (the job's output) and exits with the job's
# exit code.  Lane failures (no boot, timeout, setup error) exit 125/124 with
# a reason on stderr.
#
# Usage: tests/v2lane/run.sh [options] [--] JOB [ARG...]
#   JOB runs in the guest from the checkout dir, e.g.
#     tests/v2lane/run.sh -- bash tests/v2lane/smoke.sh
#     tests/v2lane/run.sh -- .venv/bin/python -m pytest tests/integration
# Options:
#   --timeout SEC     wall-clock limit for the whole VM (default 1800)
#   --mem MB          guest RAM (default 2048)
#   --smp N           guest vCPUs (default 2)
#   --disk-size SIZE  data disk size, ext4 at /var/lib/dockyard-v2 (default 2G)
#   --no-disk         no data disk
#   --env NAME=VALUE  export in the job's environment (repeatable)
#   --out DIR         copy job.log, rc, dmesg.txt and the files the job wrote
#                     to $V2LANE_OUT into DIR
#   --keep            keep the per-run temp dir (control share, disk image)
#   --verbose         kernel messages on the console (drops `quiet`)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
CHECKOUT=$(cd "$HERE/../.." && pwd -P)

TIMEOUT=1800 MEM=2048 SMP=2 DISK_SIZE=2G DISK=1 OUT= KEEP=0 QUIET=quiet
ENVS=()
usage() { sed -n '2,23p' "$0" >&2; exit 2; }
while (($#)); do
    case $1 in
        --timeout) TIMEOUT=$2; shift 2 ;;
        --mem) MEM=$2; shift 2 ;;
        --smp) SMP=$2; shift 2 ;;
        --disk-size) DISK_SIZE=$2; shift 2 ;;
        --no-disk) DISK=0; shift ;;
        --env) [[ $2 == [A-Za-z_]*=* ]] || usage; ENVS+=("$2"); shift 2 ;;
        --out) OUT=$2; shift 2 ;;
        --keep) KEEP=1; shift ;;
        --verbose) QUIET=; shift ;;
        -h|--help) usage ;;
        --) shift; break ;;
        -*) echo "run.sh: unknown option $1" >&2; usage ;;
        *) break ;;
    esac
done
(($#)) || usage

lane_fail() { # rc message
    echo "v2lane: LANE FAILURE: $2" >&2
    exit "$1"
}

# qemu's -virtfs takes comma-separated options ("," would need doubling) and
# lane.conf is line-based; a checkout path with either is refused, not mangled.
[[ $CHECKOUT != *,* && $CHECKOUT != *$'\n'* ]] || lane_fail 125 "checkout path $CHECKOUT contains ',' or a newline"
case $CHECKOUT in
    /|/usr|/usr/*|/etc|/etc/*|/proc|/proc/*|/sys|/sys/*|/dev|/dev/*|/.v2lane|/.v2lane/*|/var/lib/dockyard-v2|/var/lib/dockyard-v2/*) lane_fail 125 "checkout $CHECKOUT is under a path the guest mounts itself" ;;
esac

t_start=$(date +%s%N)
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# ------------------------------------------------------------------ prepare
prep=$("$HERE/prepare.sh" --print-env) || lane_fail 125 "prepare.sh failed"
KERNEL= INITRD= KMODROOT= KVER=
while IFS='=' read -r k v; do
    case $k in KERNEL|INITRD|KMODROOT|KVER) printf -v "$k" %s "$v" ;; esac
done <<<"$prep"
[[ -f $KERNEL && -f $INITRD && -d $KMODROOT ]] || lane_fail 125 "prepare.sh gave no kernel/initramfs"
t_prep=$(ms_since "$t_start")

# ----------------------------------------------------------- per-run state
RUN=$(mktemp -d "${V2LANE_TMP:-${TMPDIR:-/tmp}}/dockyard-v2lane.XXXXXX")
QPID=
cleanup() {
    # Never leave a VM behind, whatever killed us.
    [[ -n $QPID ]] && kill "$QPID" 2>/dev/null || true
    if ((KEEP)); then echo "v2lane: kept $RUN" >&2; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

CTL=$RUN/ctl
mkdir -p "$CTL/out"
printf 'CHECKOUT=%s\nDISK=%s\nUSR_CACHE=%s\n' "$CHECKOUT" "$DISK" "${V2LANE_USR_CACHE:-loose}" >"$CTL/lane.conf"
printf '%s\0' "$@" >"$CTL/job.argv"
: >"$CTL/job.env"
((${#ENVS[@]})) && printf '%s\0' "${ENVS[@]}" >"$CTL/job.env"

DISK_ARGS=()
if ((DISK)); then
    # A fresh ext4 image per run: reproducible state, and a real block device
    # in the guest for io.max throttling.  Inode tables are written now so
    # the guest's ext4lazyinit does not add background I/O to io tests.
    truncate -s "$DISK_SIZE" "$RUN/data.img"
    mkfs.ext4 -q -F -L v2lane-data -E lazy_itable_init=0,lazy_journal_init=0 "$RUN/data.img" \
        || lane_fail 125 "mkfs.ext4 of the data disk failed"
    DISK_ARGS=(-drive "file=$RUN/data.img,format=raw,if=virtio,cache=unsafe,discard=unmap")
fi

virtfs() { # tag path ro
    local o="local,path=$2,mount_tag=$1,security_model=none,multidevs=remap"
    [[ $3 == ro ]] && o+=",readonly=on"
    echo "$o"
}

ACCEL=${V2LANE_ACCEL:-tcg,thread=multi}   # /dev/kvm here is kvm_pvm, which QEMU 7.2 cannot use
QEMU=(qemu-system-x86_64
    -accel "$ACCEL" -cpu max -smp "$SMP" -m "$MEM"
    -no-reboot -nographic -nic none
    -bios qboot.rom  # no SeaBIOS screen-clearing escapes on the console, faster boot
    -kernel "$KERNEL" -initrd "$INITRD"
    -append "console=ttyS0 panic=-1 $QUIET"
    -device virtio-rng-pci
    -virtfs "$(virtfs usr /usr ro)"
    -virtfs "$(virtfs etc /etc ro)"
    -virtfs "$(virtfs kmod "$KMODROOT" ro)"
    -virtfs "$(virtfs ctl "$CTL" rw)"
    -virtfs "$(virtfs src "$CHECKOUT" rw)"
    "${DISK_ARGS[@]}"
)

echo "v2lane: kernel $KVER, checkout $CHECKOUT, timeout ${TIMEOUT}s (prepare ${t_prep} ms)" >&2
t_boot=$(date +%s%N)
# stdin from /dev/null: -nographic would otherwise put a terminal into raw
# mode and swallow ^C.  The serial console turns \n into \r\n; strip the \r
# so logs are plain text.  sed -u keeps the output live.
set +e
timeout -k 10 "$TIMEOUT" "${QEMU[@]}" </dev/null 2>"$RUN/qemu.err" > >(sed -u 's/\r$//') &
QPID=$!
wait "$QPID"
qrc=$?
QPID=
wait 2>/dev/null   # the sed
set -e
t_vm=$(ms_since "$t_boot")

ctl_time() { [[ -s $CTL/$1 ]] && cut -d' ' -f1 "$CTL/$1" || echo '?'; }
timing="prepare ${t_prep} ms, VM ${t_vm} ms (guest: stage1 done $(ctl_time t_stage1) s, job start $(ctl_time t_job_start) s, job end $(ctl_time t_job_end) s uptime)"

if [[ -n $OUT ]]; then
    mkdir -p "$OUT"
    cp -a "$CTL/out/." "$OUT/" 2>/dev/null || true
    for f in job.log rc dmesg.txt marks t_stage1 t_job_start t_job_end setup.err stage1.err qemu.err; do
        [[ -e $CTL/$f ]] && cp "$CTL/$f" "$OUT/$f"
        [[ -e $RUN/$f ]] && cp "$RUN/$f" "$OUT/$f"
    done
fi

if [[ -s $RUN/qemu.err ]]; then
    sed 's/^/v2lane: qemu: /' "$RUN/qemu.err" >&2
fi
if [[ -f $CTL/rc ]]; then
    rc=$(<"$CTL/rc")
    if [[ -s $CTL/setup.err ]]; then
        lane_fail 125 "guest setup failed: $(<"$CTL/setup.err") [$timing]"
    fi
    echo "v2lane: job exit code $rc [$timing]" >&2
    exit "$rc"
fi
# No exit code: the lane itself broke.  Say where.
if ((qrc == 124 || qrc == 137)); then
    lane_fail 124 "timed out after ${TIMEOUT}s (job started: $([[ -f $CTL/t_job_start ]] && echo yes || echo no)) [$timing]"
elif [[ -s $CTL/stage1.err ]]; then
    lane_fail 125 "guest stage 1 failed: $(<"$CTL/stage1.err") [$timing]"
elif [[ ! -f $CTL/t_stage1 ]]; then
    lane_fail 125 "guest never reached its root filesystem (qemu exit $qrc; kernel panic or missing module? rerun with --verbose) [$timing]"
else
    lane_fail 125 "guest stopped without recording an exit code (qemu exit $qrc; kernel panic? rerun with --verbose) [$timing]"
fi
