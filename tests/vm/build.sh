#!/usr/bin/env bash
# Build the pure cgroup v2 test VM from Debian packages, or find it in the cache.
#
#   bash tests/vm/build.sh            prints the directory holding the VM
#   bash tests/vm/build.sh --key      prints only the cache key (builds nothing)
#
# The VM is three files: Debian's kernel (vmlinuz, from linux-image-amd64, taken
# out of the .deb, never installed on this host), a small initramfs (busybox and
# the modules to mount the root: virtio, ext4, overlay, 9p; its /init is
# tests/vm/initramfs-init) and root.img, an ext4 image of a Debian root made by
# mmdebstrap with python3, pytest and the tools the tests use. They live in
# $HUTCH_VM_CACHE/<key> (default /var/cache/hutch-vm), where <key> hashes this
# script, initramfs-init and the versions of the packages that go in, so a
# second run only boots. A build happens in a temporary directory beside it and
# is renamed into place at the end, so a half-finished build is never used; a
# lock keeps two builds from running at once, and older builds are removed.
#
# Runs as root (apt-get, mmdebstrap, chroot). The host needs only Debian's
# package mirror: missing host tools (qemu-system-x86, mmdebstrap, e2fsprogs)
# are installed with apt-get.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE="${HUTCH_VM_CACHE:-/var/cache/hutch-vm}"
SUITE=bookworm
KERNEL_META=linux-image-amd64
# What goes into the VM's root (Debian package names, resolved by apt in it).
PACKAGES=(python3 python3-pytest python3-pytest-timeout busybox-static iproute2 util-linux
          procps kmod mount e2fsprogs)
# Host tools: the emulator, the root file system builder, mke2fs.
HOST_TOOLS=(qemu-system-x86_64:qemu-system-x86 mmdebstrap:mmdebstrap mke2fs:e2fsprogs
            dpkg-deb:dpkg)
# Modules the initramfs loads (with what they depend on) to mount the root and the shares.
INITRD_MODULES=(virtio_pci virtio_blk crc32c_generic ext4 overlay 9pnet_virtio 9p)
# The kernel modules copied into the root (for loop devices, veth, overlay... in tests);
# the rest (sound, GPUs, wireless, hardware drivers) stays out.
MODULE_DIRS=(arch block crypto fs lib mm net virt drivers/block drivers/char drivers/virtio
             drivers/md drivers/net/ipvlan drivers/net/vxlan drivers/net/bonding drivers/net/team)
MODULE_SKIP=(net/mac80211 net/wireless net/bluetooth)

say() { printf 'hutch-vm build: %s\n' "$*" >&2; }
die() { printf 'hutch-vm build: error: %s\n' "$*" >&2; exit 1; }

mode=build
case "${1:-}" in
    --key) mode=key ;;
    "") ;;
    -h|--help) sed -n '2,22s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) die "unknown argument '$1' (try --help)" ;;
esac

[[ $EUID -eq 0 ]] || die "run me as root: I use apt-get, mmdebstrap and chroot"
[[ "$(uname -m)" == x86_64 ]] || die "this VM is x86_64 only (host is $(uname -m))"
command -v apt-get >/dev/null || die "needs a Debian host (apt-get)"

apt_updated=0
apt_update() {
    if [[ $apt_updated -eq 0 ]]; then
        say "apt-get update"
        apt-get update -q >&2 || die "apt-get update failed"
        apt_updated=1
    fi
}

host_tools() {
    local entry tool pkg missing=()
    for entry in "${HOST_TOOLS[@]}"; do
        tool="${entry%%:*}" pkg="${entry#*:}"
        command -v "$tool" >/dev/null || missing+=("$pkg")
    done
    [[ ${#missing[@]} -eq 0 ]] && return
    say "installing host tools: ${missing[*]}"
    apt_update
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2 \
        || die "could not install ${missing[*]}"
}

# The candidate version apt would install, or nothing.
candidate() {
    apt-cache policy "$1" 2>/dev/null | awk '/^  Candidate:/ { if ($2 != "(none)") print $2 }'
}

# The real kernel package behind the metapackage (linux-image-6.1.0-NN-amd64).
kernel_package() {
    apt-cache depends "$KERNEL_META" 2>/dev/null \
        | awk '/^ *Depends: linux-image-[0-9]/ { print $2; exit }'
}

# The Debian mirrors (and suites) this host's apt uses, as sources lines for mmdebstrap.
# HUTCH_VM_MIRROR=URL overrides: URL is used for SUITE and SUITE-updates, and
# URL-security for SUITE-security.
mirror_lines() {
    if [[ -n "${HUTCH_VM_MIRROR:-}" ]]; then
        printf 'deb %s %s main\n' "$HUTCH_VM_MIRROR" "$SUITE" "$HUTCH_VM_MIRROR" "$SUITE-updates" \
            "$HUTCH_VM_MIRROR-security" "$SUITE-security"
        return
    fi
    apt-get indextargets --format '$(SITE) $(CODENAME) $(ORIGIN) $(COMPONENT) $(ARCHITECTURE)' \
            'Identifier: Packages' 2>/dev/null \
        | awk -v s="$SUITE" '$3 == "Debian" && $4 == "main" && $5 == "amd64" &&
                             ($2 == s || $2 == s "-updates" || $2 == s "-security") {
                                 print "deb " $1 " " $2 " main" }' \
        | sort -u
}

kernel_pkg=""
kernel_ver=""
mirrors=""
versions=""
resolve() {
    kernel_pkg="$(kernel_package)"
    mirrors="$(mirror_lines)"
    if [[ -z "$kernel_pkg" || -z "$mirrors" ]]; then
        apt_update
        kernel_pkg="$(kernel_package)"
        mirrors="$(mirror_lines)"
    fi
    [[ -n "$kernel_pkg" ]] || die "apt knows no $KERNEL_META: is a Debian $SUITE mirror in the host's sources?"
    [[ -n "$mirrors" ]] || die "the host's apt has no Debian $SUITE mirror (set HUTCH_VM_MIRROR=URL)"
    # One apt-cache call for every version (each call costs a third of a second).
    versions="$(apt-cache policy "$kernel_pkg" "${PACKAGES[@]}" 2>/dev/null \
        | awk '/^[^ ]/ { pkg = $1; sub(/:$/, "", pkg) } /^  Candidate:/ { print pkg "=" $2 }')"
    kernel_ver="$(awk -F= -v p="$kernel_pkg" '$1 == p { print $2 }' <<<"$versions")"
    [[ -n "$kernel_ver" && "$kernel_ver" != "(none)" ]] || die "apt has no candidate for $kernel_pkg"
}

cache_key() {
    {
        sha256sum "$here/build.sh" "$here/initramfs-init" | cut -d' ' -f1
        echo "$SUITE"
        echo "$mirrors"
        echo "$versions"
    } | sha256sum | cut -c1-16
}

# Print the modules (paths relative to the modules dir) to load for the names given,
# dependencies first, each once; modules built into the kernel print nothing.
module_order() {
    local moddir="$1"; shift
    awk -v want="$*" '
        function norm(s) { gsub(/-/, "_", s); return s }
        function base(p,   n) { n = p; sub(/.*\//, "", n); sub(/\.ko(\.[a-z]+)?$/, "", n); return norm(n) }
        FILENAME ~ /modules\.dep$/ {
            path = $1; sub(/:$/, "", path); name = base(path)
            file[name] = path; deps[name] = ""
            for (i = 2; i <= NF; i++) deps[name] = deps[name] " " base($i)
            next
        }
        { builtin[base($0)] = 1 }
        function visit(n,   d, k, i) {
            if (n in seen) return
            seen[n] = 1
            k = split(deps[n], d, " ")
            for (i = k; i >= 1; i--) visit(d[i])
            print file[n]
        }
        END {
            k = split(want, w, " ")
            for (i = 1; i <= k; i++) {
                n = norm(w[i])
                if (n in file) visit(n)
                else if (!(n in builtin)) { print "unknown module " w[i] > "/dev/stderr"; exit 1 }
            }
        }' "$moddir/modules.builtin" "$moddir/modules.dep"
}

build() {
    local key="$1" tmp="$2"
    local t0=$SECONDS kdir root initrd kver size_mb

    say "downloading $kernel_pkg $kernel_ver"
    mkdir -p "$tmp/deb"
    if ! (cd "$tmp/deb" && apt-get download -q -o APT::Sandbox::User=root "$kernel_pkg=$kernel_ver" >&2); then
        apt_update   # an old package list names a file the mirror no longer has
        kernel_ver="$(candidate "$kernel_pkg")"
        (cd "$tmp/deb" && apt-get download -q -o APT::Sandbox::User=root "$kernel_pkg=$kernel_ver" >&2) \
            || die "could not download $kernel_pkg"
    fi
    kdir="$tmp/kernel"
    dpkg-deb -x "$tmp"/deb/*.deb "$kdir"
    kver="$(ls "$kdir/lib/modules")"
    [[ -n "$kver" && -f "$kdir/boot/vmlinuz-$kver" ]] || die "no kernel found in $kernel_pkg"

    say "making the root file system with mmdebstrap ($SUITE, ${PACKAGES[*]})"
    root="$tmp/root"
    local -a sources
    mapfile -t sources <<<"$mirrors"
    # A private mount namespace: whatever mmdebstrap mounts in the chroot dies with it.
    unshare --mount --propagation private -- \
        mmdebstrap --mode=root --variant=essential --quiet \
            --include="$(IFS=,; echo "${PACKAGES[*]}")" \
            --dpkgopt='path-exclude=/usr/share/man/*' \
            --dpkgopt='path-exclude=/usr/share/locale/*' \
            --dpkgopt='path-exclude=/usr/share/info/*' \
            --dpkgopt='path-exclude=/usr/share/doc/*' \
            --dpkgopt='path-include=/usr/share/doc/*/copyright' \
            "$SUITE" "$root" "${sources[@]}" >&2 \
        || die "mmdebstrap failed"

    say "adding kernel modules for $kver"
    local src="$kdir/lib/modules/$kver" dst="$root/lib/modules/$kver" d s
    mkdir -p "$dst/kernel"
    cp "$src"/modules.builtin "$src"/modules.builtin.modinfo "$src"/modules.order "$dst/"
    for d in "${MODULE_DIRS[@]}"; do
        if [[ -d "$src/kernel/$d" ]]; then
            mkdir -p "$dst/kernel/$(dirname "$d")"
            cp -a "$src/kernel/$d" "$dst/kernel/$d"
        fi
    done
    cp -a "$src"/kernel/drivers/net/*.ko "$dst/kernel/drivers/net/" 2>/dev/null || true
    for s in "${MODULE_SKIP[@]}"; do rm -rf "$dst/kernel/$s"; done
    chroot "$root" depmod "$kver"

    # The guest: mount points for the shares, a name, no login.
    mkdir -p "$root/hutch" "$root/out"
    echo hutch-vm > "$root/etc/hostname"
    printf '127.0.0.1\tlocalhost\n127.0.1.1\thutch-vm\n::1\tlocalhost ip6-localhost\n' > "$root/etc/hosts"
    rm -rf "$root/var/cache/apt" "$root/var/lib/apt/lists"
    mkdir -p "$root/var/cache/apt" "$root/var/lib/apt/lists"

    say "making the initramfs"
    initrd="$tmp/initrd"
    mkdir -p "$initrd"/{bin,dev,proc,sys,lower,rw,newroot,modules}
    cp "$root/bin/busybox" "$initrd/bin/busybox"
    cp "$here/initramfs-init" "$initrd/init"
    chmod 755 "$initrd/init"
    local m
    module_order "$dst" "${INITRD_MODULES[@]}" > "$tmp/modules.order" || die "cannot resolve the initramfs modules"
    while read -r m; do
        cp "$dst/$m" "$initrd/modules/"
        basename "$m" >> "$initrd/modules/load"
    done < "$tmp/modules.order"

    mkdir -p "$tmp/out"
    (cd "$initrd" && find . | LC_ALL=C sort | "$root/bin/busybox" cpio -o -H newc -R 0:0) \
        > "$tmp/out/initrd.img" 2>/dev/null
    cp "$kdir/boot/vmlinuz-$kver" "$tmp/out/vmlinuz"

    say "making root.img (ext4)"
    size_mb=$(( $(du -sm "$root" | cut -f1) * 5 / 4 + 64 ))
    mke2fs -q -t ext4 -L hutch-root -m 0 -O ^has_journal -E root_owner=0:0 \
        -d "$root" -F "$tmp/out/root.img" "${size_mb}M" \
        || die "mke2fs failed"

    {
        echo "key=$key"
        echo "suite=$SUITE"
        echo "kernel=$kernel_pkg $kernel_ver ($kver)"
        echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ) in $(( SECONDS - t0 )) s"
        echo "initrd_modules=$(tr '\n' ' ' < "$initrd/modules/load")"
        echo "packages:"
        chroot "$root" dpkg-query -W -f '  ${Package} ${Version}\n'
    } > "$tmp/out/info"
    touch "$tmp/out/complete"
}

host_tools
resolve
key="$(cache_key)"
if [[ $mode == key ]]; then
    echo "$key"
    exit 0
fi

vm="$CACHE/$key"
if [[ -f "$vm/complete" ]]; then
    echo "$vm"
    exit 0
fi

mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
flock -w 1800 9 || die "another build holds $CACHE/.lock for more than 30 minutes"
if [[ -f "$vm/complete" ]]; then   # built by whoever held the lock
    echo "$vm"
    exit 0
fi
# We hold the lock: temporary directories left here were left by a build that died.
rm -rf "$CACHE"/.build-*
tmp="$(mktemp -d "$CACHE/.build-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
say "building the VM into $vm (cold build, about a minute)"
t0=$SECONDS
build "$key" "$tmp" >&2
rm -rf "$vm"
mv "$tmp/out" "$vm"
# Only the newest build is kept.
for old in "$CACHE"/*; do
    if [[ -d "$old" && "$old" != "$vm" && "$(basename "$old")" =~ ^[0-9a-f]{16}$ ]]; then
        rm -rf "$old"
    fi
done
say "built in $(( SECONDS - t0 )) s: $(du -sh "$vm" | cut -f1) in $vm"
echo "$vm"
