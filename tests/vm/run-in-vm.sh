#!/usr/bin/env bash
# Run hutch's tests as root in a small VM whose kernel is pure cgroup v2.
#
#   bash tests/vm/run-in-vm.sh [options] [--] [pytest args]
#   bash tests/vm/run-in-vm.sh tests/unit/cgroups tests/integration/cgroups -m 'not cgroup_v1'
#
# Builds the VM if the cache has none (tests/vm/build.sh), boots it with qemu
# (software emulation), shares this checkout read-only at /hutch, runs
# `python3 -m pytest -p no:cacheprovider [pytest args]` there with the VM's own
# python3 and PYTHONPATH=/hutch/src, and exits with pytest's exit code.
# The guest's console (pytest's output) is copied to stdout as it comes.
#
# Options:
#   --out DIR         keep the results in DIR: rc, console.log, dmesg, report.json (one
#                     line per test: nodeid, outcome, markers), facts/ (mountinfo,
#                     cgroup, controllers... as the tests saw them)
#   --timeout SECS    stop the VM after SECS seconds (default $HUTCH_VM_TIMEOUT or 900)
#   --env NAME=VALUE  set NAME in the tests' environment (repeatable); the host's own
#                     environment does not reach the VM
#   --cgroup PATH     the cgroup the tests run in: / (the root cgroup, default), or a
#                     deeper one made with every controller delegated to it, as
#                     systemd does for a service with Delegate=yes, e.g.
#                     /system.slice/hutch-ci.service (the job's own cgroup then holds
#                     processes: the no-internal-processes rule applies below it)
#   --shell CMD       run the shell command CMD in /hutch instead of pytest
#
# Exit codes: pytest's (or CMD's); 124 when the VM timed out, 125 when the VM could
# not be built or stopped without a result.
# Environment: HUTCH_VM_CACHE (build cache, /var/cache/hutch-vm), HUTCH_VM_SMP (2),
# HUTCH_VM_MEM (MiB, 1024), HUTCH_VM_ACCEL (tcg; kvm cannot boot Debian's kernel on
# some hosts), HUTCH_VM_CPU (max), HUTCH_VM_APPEND (more kernel parameters).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

die() { printf 'run-in-vm: %s\n' "$*" >&2; exit 125; }

out_dir=""
timeout_s="${HUTCH_VM_TIMEOUT:-900}"
cgroup=""
shell_cmd=""
envs=()
while [[ $# -gt 0 ]]; do
    case "$1" in
        --out) out_dir="${2:?--out needs a directory}"; shift 2 ;;
        --timeout) timeout_s="${2:?--timeout needs seconds}"; shift 2 ;;
        --env)
            [[ "${2:-}" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] || die "--env needs NAME=VALUE, not '${2:-}'"
            envs+=("$2"); shift 2 ;;
        --cgroup) cgroup="${2:?--cgroup needs a path}"; shift 2 ;;
        --shell) shell_cmd="${2:?--shell needs a command}"; shift 2 ;;
        -h|--help) sed -n '2,33s/^# \{0,1\}//p' "$0"; exit 0 ;;
        --) shift; break ;;
        *) break ;;
    esac
done
[[ "$timeout_s" =~ ^[0-9]+$ && "$timeout_s" -gt 0 ]] || die "--timeout needs a whole number of seconds"
[[ $EUID -eq 0 ]] || die "run me as root (the VM's cache and build need it)"
[[ -z "${HUTCH_VM_GUEST:-}" ]] || die "already inside the test VM: no VM in the VM"

# Single-quote for the guest's /bin/sh.
quote() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }

t0=$SECONDS
vm="$(bash "$here/build.sh")" || die "could not build the VM (see above)"
[[ -f "$vm/complete" ]] || die "build.sh printed '$vm', which holds no complete VM"
t_build=$(( SECONDS - t0 ))

work="$(mktemp -d /tmp/hutch-vm.XXXXXX)"
qemu_pid=""
cleanup() {
    if [[ -n "$qemu_pid" ]] && kill -0 "$qemu_pid" 2>/dev/null; then
        kill -TERM "$qemu_pid" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10; do
            kill -0 "$qemu_pid" 2>/dev/null || break
            sleep 0.5
        done
        kill -KILL "$qemu_pid" 2>/dev/null || true
        wait "$qemu_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

share="$work/out"
mkdir -p "$share"
[[ -n "$cgroup" ]] && printf '%s\n' "$cgroup" > "$share/cgroup"
{
    echo "export PYTHONPATH=/hutch/src:/hutch/tests/vm PYTHONDONTWRITEBYTECODE=1"
    for e in ${envs[@]+"${envs[@]}"}; do
        echo "export ${e%%=*}=$(quote "${e#*=}")"
    done
    echo "cd /hutch"
    if [[ -n "$shell_cmd" ]]; then
        printf '%s\n' "$shell_cmd"
    else
        printf 'exec python3 -m pytest -p no:cacheprovider -p hutch_vm_report'
        for a in "$@"; do printf ' %s' "$(quote "$a")"; done
        printf '\n'
    fi
} > "$share/cmd"

append="console=ttyS0 cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1 quiet panic=-1"
append+=" rdinit=/init ${HUTCH_VM_APPEND:-}"
accel="${HUTCH_VM_ACCEL:-tcg}"
# -nodefaults: no VGA, NIC, floppy or CD; -nic none: no network at all.
qemu=(qemu-system-x86_64 -nodefaults -no-user-config -no-reboot
      -machine "pc,accel=$accel" -cpu "${HUTCH_VM_CPU:-max}" -smp "${HUTCH_VM_SMP:-2}" -m "${HUTCH_VM_MEM:-1024}"
      -display none -nic none
      -kernel "$vm/vmlinuz" -initrd "$vm/initrd.img" -append "$append"
      -drive "file=$vm/root.img,format=raw,if=virtio,readonly=on"
      -fsdev "local,id=hutch,path=$repo,security_model=none,readonly=on"
      -device "virtio-9p-pci,fsdev=hutch,mount_tag=hutch"
      -fsdev "local,id=out,path=$share,security_model=none"
      -device "virtio-9p-pci,fsdev=out,mount_tag=out"
      -chardev "stdio,id=con,signal=off,logfile=$work/console.log"
      -serial chardev:con)

echo "run-in-vm: booting $(basename "$vm") ($accel, ${HUTCH_VM_SMP:-2} CPUs, ${HUTCH_VM_MEM:-1024} MiB," \
     "timeout ${timeout_s} s)" >&2
t1=$SECONDS
# timeout(1) runs qemu in a process group of its own and kills it when time is up,
# even if this script is killed first.
timeout --kill-after=10 "$timeout_s" "${qemu[@]}" </dev/null &
qemu_pid=$!
qrc=0
wait "$qemu_pid" || qrc=$?
qemu_pid=""
t_run=$(( SECONDS - t1 ))

rc=125
if [[ -f "$share/rc" ]]; then
    rc="$(cat "$share/rc")"
    echo "run-in-vm: exit code $rc (build/cache ${t_build} s, boot+run ${t_run} s)" >&2
elif [[ $qrc -eq 124 || $qrc -eq 137 ]]; then
    rc=124
    echo "run-in-vm: the VM did not finish within ${timeout_s} s and was killed" >&2
else
    echo "run-in-vm: the VM stopped without a result (qemu exit code $qrc); console above" >&2
fi

if [[ -n "$out_dir" ]]; then
    mkdir -p "$out_dir"
    cp -r "$share"/. "$out_dir"/
    cp "$work/console.log" "$out_dir/console.log" 2>/dev/null || true
    echo "$rc" > "$out_dir/rc"
fi
exit "$rc"
