#!/bin/bash
# Prepare the cgroup v2 test lane: host tools, a Debian kernel (unpacked, never
# installed) and an initramfs.  Idempotent: everything is cached and rebuilt
# only when its inputs change, so run.sh calls this on every run (~0.2 s when
# warm).
#
# Usage: tests/v2lane/prepare.sh [--print-env]
#   --print-env  print KVER=, KERNEL=, INITRD=, KMODROOT= lines on stdout (for
#                run.sh); all progress messages go to stderr.
# Environment:
#   V2LANE_CACHE  cache dir (default /var/cache/dockyard-v2lane when writable,
#                 else tests/v2lane/.build inside the checkout)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
PRINT_ENV=0
for a in "$@"; do
    case $a in
        --print-env) PRINT_ENV=1 ;;
        -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
        *) echo "prepare.sh: unknown argument: $a" >&2; exit 2 ;;
    esac
done

log() { echo "v2lane-prepare: $*" >&2; }
die() { echo "v2lane-prepare: ERROR: $*" >&2; exit 1; }

# A shared cache outside the checkout lets several checkouts (CI clones) reuse
# one 70 MB kernel download; fall back to the checkout when not root.
if [[ -n ${V2LANE_CACHE:-} ]]; then
    CACHE=$V2LANE_CACHE
elif mkdir -p /var/cache/dockyard-v2lane 2>/dev/null && [[ -w /var/cache/dockyard-v2lane ]]; then
    CACHE=/var/cache/dockyard-v2lane
else
    CACHE=$HERE/.build
fi
mkdir -p "$CACHE"

# Serialise concurrent prepares (several engineers / CI jobs on one host).
exec 9>"$CACHE/.lock"
flock 9

# ---------------------------------------------------------------- host tools
# Command -> Debian package that provides it.
declare -A NEED=(
    [qemu-system-x86_64]=qemu-system-x86
    [qemu-img]=qemu-utils
    [cpio]=cpio
    [depmod]=kmod
    [modprobe]=kmod
    [mkfs.ext4]=e2fsprogs
    [timeout]=coreutils
    [flock]=util-linux
)
missing=()
for cmd in "${!NEED[@]}"; do
    PATH=$PATH:/usr/sbin:/sbin command -v "$cmd" >/dev/null || missing+=("${NEED[$cmd]}")
done
# The guest's /bin/busybox must be static: the initramfs has no libc.
BUSYBOX=/usr/bin/busybox
[[ -x /bin/busybox ]] && BUSYBOX=/bin/busybox
if [[ ! -x $BUSYBOX ]] || ldd "$BUSYBOX" >/dev/null 2>&1; then
    missing+=(busybox-static)
fi
apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >&2
}
if ((${#missing[@]})); then
    mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)
    [[ $(id -u) == 0 ]] || die "need root to apt-get install: ${missing[*]}"
    log "installing ${missing[*]}"
    # Only refresh package lists when the install fails for lack of them.
    apt_install "${missing[@]}" || { apt-get update >&2 && apt_install "${missing[@]}"; } \
        || die "apt-get install ${missing[*]} failed"
fi
export PATH=$PATH:/usr/sbin:/sbin
if ldd "$BUSYBOX" >/dev/null 2>&1; then
    die "$BUSYBOX is dynamically linked; install busybox-static"
fi

# ------------------------------------------------------------------- kernel
# linux-image-amd64 is a metapackage; its Depends names the real image
# package (linux-image-6.1.0-NN-amd64 on bookworm).
resolve_kpkg() {
    apt-cache depends linux-image-amd64 2>/dev/null \
        | awk '/Depends: linux-image-[0-9]/ {print $2; exit}'
}
KPKG=$(resolve_kpkg || true)
if [[ -z $KPKG ]]; then
    log "apt-cache does not know linux-image-amd64; running apt-get update"
    apt-get update >&2 || true
    KPKG=$(resolve_kpkg || true)
fi
if [[ -z $KPKG ]]; then
    # Offline and no lists: fall back to the newest kernel already cached.
    KPKG=$(ls -1d "$CACHE"/kernel/linux-image-* 2>/dev/null | sort -V | tail -1 || true)
    KPKG=${KPKG##*/}
    [[ -n $KPKG ]] || die "cannot resolve linux-image-amd64's kernel package (no apt lists, nothing cached)"
    log "apt-cache unavailable; using cached $KPKG"
fi
KVER=${KPKG#linux-image-}
KROOT=$CACHE/kernel/$KPKG            # dpkg -x target: boot/, lib/modules/KVER/
if [[ ! -e $KROOT/.complete ]]; then
    log "fetching $KPKG (apt-get download, never installed)"
    t0=$SECONDS
    tmp=$(mktemp -d "$CACHE/.kernel.XXXXXX")
    # apt drops to the _apt user for downloads; let it write there to avoid
    # the "unsandboxed" warning.
    chmod 755 "$tmp"
    id _apt >/dev/null 2>&1 && chown _apt "$tmp" 2>/dev/null || true
    (cd "$tmp" && apt-get download "$KPKG" >&2) || {
        apt-get update >&2 && (cd "$tmp" && apt-get download "$KPKG" >&2)
    } || { rm -rf "$tmp"; die "apt-get download $KPKG failed"; }
    deb=$(ls "$tmp"/*.deb)
    mkdir "$tmp/root"
    dpkg -x "$deb" "$tmp/root"
    rm -f "$deb"
    [[ -f $tmp/root/boot/vmlinuz-$KVER && -d $tmp/root/lib/modules/$KVER ]] \
        || { rm -rf "$tmp"; die "$KPKG did not contain boot/vmlinuz-$KVER and lib/modules/$KVER"; }
    # The .deb ships no modules.dep (postinst would run depmod); make one so
    # the guest's modprobe and our dependency resolution work.
    depmod -b "$tmp/root" "$KVER"
    chmod 755 "$tmp/root"
    rm -rf "$KROOT"
    mkdir -p "$CACHE/kernel"
    mv "$tmp/root" "$KROOT"
    rm -rf "$tmp"
    touch "$KROOT/.complete"
    log "kernel $KVER ready in $((SECONDS - t0)) s"
fi
KERNEL=$KROOT/boot/vmlinuz-$KVER

# ---------------------------------------------------------------- initramfs
# Only what stage 1 needs to reach the 9p shares and the data disk goes into
# the initramfs; everything else is modprobe'd in the guest from the full
# module tree, which is shared read-only (tag kmod).
MODULES=(virtio_pci virtio_blk virtio_rng 9pnet_virtio 9p overlay ext4)
declare -A seen=()
modfiles=()
for m in "${MODULES[@]}"; do
    deps=$(modprobe -d "$KROOT" -S "$KVER" --show-depends "$m") \
        || die "module $m not found in $KVER"
    while read -r kind path _; do
        [[ $kind == insmod ]] || continue     # "builtin X" needs nothing
        rel=${path#"$KROOT"/}
        rel=${rel#./}
        [[ -n ${seen[$rel]:-} ]] && continue
        seen[$rel]=1
        modfiles+=("$rel")
    done <<<"$deps"
done

GUEST=$HERE/guest
# Key the image on everything that goes into it, so an edited init script or
# a new kernel yields a new image and stale ones are never used.
KEY=$( { echo "$KVER"; printf '%s\n' "${modfiles[@]}"; sha256sum "$BUSYBOX" "$GUEST"/init "$GUEST"/stage2.sh; } \
        | sha256sum | cut -c1-16)
INITRD=$CACHE/initramfs-$KVER-$KEY.cpio.gz
if [[ ! -s $INITRD ]]; then
    t0=$(date +%s%N)
    stage=$(mktemp -d "$CACHE/.initramfs.XXXXXX")
    mkdir -p "$stage"/{bin,dev,proc,sys,newroot,lib/modules}
    cp "$BUSYBOX" "$stage/bin/busybox"
    # Applet links made here: the guest never needs --install.
    for app in sh mount umount mkdir ln cat echo insmod switch_root poweroff sleep \
               ls mknod cp chmod grep sed tr dmesg; do
        ln -s busybox "$stage/bin/$app"
    done
    : >"$stage/modules.order"
    for rel in "${modfiles[@]}"; do
        mkdir -p "$stage/$(dirname "$rel")"
        cp "$KROOT/$rel" "$stage/$rel"
        echo "$rel" >>"$stage/modules.order"
    done
    install -m 755 "$GUEST/init" "$stage/init"
    install -m 755 "$GUEST/stage2.sh" "$stage/stage2.sh"
    # The kernel needs a console node before devtmpfs is mounted.
    mknod -m 600 "$stage/dev/console" c 5 1 2>/dev/null || true
    (cd "$stage" && find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0) \
        | gzip -6 >"$INITRD.tmp"
    mv "$INITRD.tmp" "$INITRD"
    rm -rf "$stage"
    # Keep the cache small: drop initramfs images of older inputs.
    find "$CACHE" -maxdepth 1 -name 'initramfs-*.cpio.gz' ! -newer "$INITRD" ! -path "$INITRD" \
        -mmin +60 -delete 2>/dev/null || true
    log "initramfs $(basename "$INITRD") ($(du -h "$INITRD" | cut -f1)) built in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
fi

if ((PRINT_ENV)); then
    printf 'KVER=%s\nKERNEL=%s\nINITRD=%s\nKMODROOT=%s\nCACHE=%s\n' \
        "$KVER" "$KERNEL" "$INITRD" "$KROOT" "$CACHE"
else
    log "ready: kernel $KERNEL"
    log "       initrd $INITRD"
fi
