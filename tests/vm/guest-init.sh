#!/bin/sh
# Stage 2 of the hutch test VM: pid 1 in the VM's root (after tests/vm/initramfs-init),
# run by the guest's /bin/sh from the shared checkout, so editing it needs no rebuild.
#
# Sets up a pure cgroup v2 host the way systemd does (cgroup2 at /sys/fs/cgroup with
# nsdelegate and memory_recursiveprot, pid 1 in /init.scope, every controller enabled
# in the root's subtree_control), then runs /out/cmd (written by tests/vm/run-in-vm.sh)
# in the job's cgroup, writes its exit code to /out/rc, the kernel log to /out/dmesg,
# and powers off. The job's cgroup is the path in /out/cgroup: default / (the root
# cgroup); a deeper one, such as /system.slice/hutch-ci.service, is made with every
# controller enabled down to it, like a systemd service with Delegate=yes, so the
# job's own cgroup holds processes (the no-internal-processes rule applies below it).
# Facts about the host the job saw go to /out/facts/ for the runner's caller to check.
PATH=/usr/sbin:/usr/bin:/sbin:/bin
export PATH

stop() {
    sync
    /bin/busybox poweroff -f
    echo o > /proc/sysrq-trigger
    sleep 10
}

fail() {
    echo "hutch-vm: stage 2 failed: $*"
    stop
}

mount -t proc proc /proc || fail "cannot mount /proc"
mount -t sysfs sysfs /sys || fail "cannot mount /sys"
mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 /sys/fs/cgroup \
    || fail "cannot mount cgroup2 at /sys/fs/cgroup"
mount -t bpf bpf /sys/fs/bpf 2>/dev/null
mkdir -p /dev/pts /dev/shm
mount -t devpts -o mode=620,ptmxmode=666 devpts /dev/pts
mount -t tmpfs -o mode=1777 shm /dev/shm
mount -t tmpfs -o mode=1777 tmp /tmp
mount -t tmpfs -o mode=755 run /run
# What udev would add to devtmpfs.
ln -sfn /proc/self/fd /dev/fd
ln -sfn /proc/self/fd/0 /dev/stdin
ln -sfn /proc/self/fd/1 /dev/stdout
ln -sfn /proc/self/fd/2 /dev/stderr
ln -sfn /proc/kcore /dev/core
# Device nodes of modules that load on first open (/dev/loop-control, /dev/net/tun,
# /dev/fuse...), as systemd makes them at boot from `kmod static-nodes`.
kmod static-nodes --format=devname 2>/dev/null | while read -r _mod name spec; do
    case "$_mod" in "#"*|"") continue ;; esac
    [ -e "/dev/$name" ] && continue
    mkdir -p "$(dirname "/dev/$name")"
    nums="${spec#?}"
    mknod "/dev/$name" "$(echo "$spec" | cut -c1)" "${nums%%:*}" "${nums#*:}"
done
stty -F /dev/console -onlcr 2>/dev/null   # plain \n on the serial console
# Kernel messages below "critical" (OOM kills the tests cause...) go to /out/dmesg at
# the end, not into pytest's output on the console.
echo 2 > /proc/sys/kernel/printk
hostname hutch-vm
ip link set lo up

# hutch's commands, as install.sh links them on a host (the tests find hutch-runtime
# next to sys.executable, /usr/bin/python3 here). They live in the tmpfs overlay only.
for entry in hutch:hutch.cli.main hutch-runtime:hutch.cli.runtime; do
    printf '#!/usr/bin/python3\nimport sys\nsys.path.insert(0, "/hutch/src")\nfrom %s import main\nsys.exit(main())\n' \
        "${entry#*:}" > "/usr/bin/${entry%%:*}"
    chmod 755 "/usr/bin/${entry%%:*}"
done

cg=/sys/fs/cgroup
job=/
[ -s /out/cgroup ] && job="$(cat /out/cgroup)"
case "$job" in
    /*) ;;
    *) fail "the job's cgroup must be an absolute path, not '$job'" ;;
esac

# Enable every controller a cgroup has for its children.
delegate() {
    for c in $(cat "$1/cgroup.controllers"); do
        echo "+$c" > "$1/cgroup.subtree_control" 2>/dev/null \
            || echo "hutch-vm: cannot enable $c in $1/cgroup.subtree_control"
    done
}

mkdir -p "$cg/init.scope"
echo $$ > "$cg/init.scope/cgroup.procs" || fail "cannot move pid 1 to /init.scope"
dir="$cg"
rest="${job#/}"
delegate "$dir"
while [ -n "$rest" ]; do
    part="${rest%%/*}"
    [ "$part" = "$rest" ] && rest="" || rest="${rest#*/}"
    dir="$dir/$part"
    mkdir -p "$dir" || fail "cannot make the cgroup $dir"
    [ -n "$rest" ] && delegate "$dir"
done

mkdir -p /out/facts
rm -f /out/rc
(
    echo 0 > "$dir/cgroup.procs" || exit 125
    cat /proc/self/mountinfo > /out/facts/mountinfo
    cat /proc/self/cgroup > /out/facts/cgroup
    cat /proc/cmdline > /out/facts/cmdline
    cat "$cg/cgroup.controllers" > /out/facts/controllers
    cat "$dir/cgroup.controllers" > /out/facts/job-controllers
    uname -r > /out/facts/kernel
    nproc > /out/facts/nproc
    cd /hutch || exit 125
    exec env -i PATH="$PATH" HOME=/root LANG=C.UTF-8 TERM=dumb HUTCH_VM_GUEST=1 /bin/sh /out/cmd
)
rc=$?
dmesg > /out/dmesg 2>&1
echo "$rc" > /out/rc.tmp && mv /out/rc.tmp /out/rc
stop
