#!/usr/bin/env bash
# Install hutch on Debian 12, as root: the Debian packages it needs, a Python
# venv in this checkout (.venv) with hutch installed editable, the commands in
# /usr/local/bin, then a first container from the built-in busybox image.
# Idempotent: a second run only checks, and is quick.
#
#   bash install.sh [--no-demo]
#
# HUTCH_RUNTIME=runc runs the demo with another OCI runtime instead of
# hutch-runtime (the value may carry global flags: "runc --debug").
set -euo pipefail

# hutch itself, then what the test suite needs: runc is the reference peer;
# nftables and podman back the `nft` and `podman` markers, which must not skip in CI;
# docker-registry is the real registry the registry tests start on 127.0.0.1 themselves.
# gcc and libc6-dev build the static attack probe of tests/security; dnsmasq-base answers
# for container names on each network (hutch.network.dns).
PACKAGES=(python3 python3-venv python3-pip busybox-static iproute2 uidmap util-linux libseccomp2
          runc nftables podman btrfs-progs skopeo umoci docker-registry debootstrap
          gcc libc6-dev dnsmasq-base)
PYTHON=/usr/bin/python3
DEMO_DIR=/var/lib/hutch/demo
BIN_DIR=/usr/local/bin

say() { printf '==> %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

usage() {
    sed -n '2,11s/^# \{0,1\}//p' "$0"
}

demo=1
for arg in "$@"; do
    case "$arg" in
        --no-demo) demo=0 ;;
        -h|--help) usage; exit 0 ;;
        *) die "unknown argument '$arg' (try --help)" ;;
    esac
done

[[ $EUID -eq 0 ]] || die "run me as root (sudo bash install.sh): I install Debian packages and write to $BIN_DIR"
command -v dpkg-query >/dev/null && command -v apt-get >/dev/null \
    || die "this installer needs a Debian system (dpkg and apt-get); Debian 12 is supported"

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$repo"
[[ -f pyproject.toml && -d src/hutch ]] || die "$repo does not look like a hutch checkout"

install_packages() {
    local missing=() pkg
    for pkg in "${PACKAGES[@]}"; do
        if [[ "$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null)" != installed ]]; then
            missing+=("$pkg")
        fi
    done
    if [[ ${#missing[@]} -eq 0 ]]; then
        say "Debian packages: all present (${PACKAGES[*]})"
        quiet_registry_service
        return
    fi
    say "Debian packages: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    # No service may start from a postinst (docker-registry's would listen on :5000):
    # a policy-rc.d that denies, for the time of the install, unless one is there.
    local policy=/usr/sbin/policy-rc.d own_policy=0
    if [[ ! -e $policy ]]; then
        printf '#!/bin/sh\nexit 101\n' > "$policy"
        chmod 755 "$policy"
        own_policy=1
    fi
    local rc=0
    apt-get install -y -q --no-install-recommends "${missing[@]}" || rc=$?
    [[ $own_policy -eq 0 ]] || rm -f "$policy"
    [[ $rc -eq 0 ]] || die "apt-get install failed (exit code $rc)"
    quiet_registry_service
}

# The tests start their own registries; the packaged service stays stopped and off.
quiet_registry_service() {
    [[ -x /etc/init.d/docker-registry ]] || return 0
    if /etc/init.d/docker-registry status >/dev/null 2>&1; then
        /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
    fi
    if command -v update-rc.d >/dev/null; then
        update-rc.d docker-registry disable >/dev/null 2>&1 || true
    fi
}

# The venv is current when its stamp holds the hash of pyproject.toml and the
# interpreter version, and hutch imports from this checkout.
venv_stamp() {
    { sha256sum pyproject.toml; "$PYTHON" --version; } | sha256sum | cut -d' ' -f1
}

venv_current() {
    [[ -x .venv/bin/python && -x .venv/bin/hutch-runtime && -x .venv/bin/pytest ]] || return 1
    [[ "$(cat .venv/.hutch-stamp 2>/dev/null)" == "$(venv_stamp)" ]] || return 1
    [[ "$(.venv/bin/python -c 'import hutch, os; print(os.path.dirname(hutch.__file__))' 2>/dev/null)" \
        == "$repo/src/hutch" ]]
}

install_venv() {
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
        || die "hutch needs Python >= 3.11; $PYTHON is $("$PYTHON" --version 2>&1)"
    if [[ -e .venv ]] && ! .venv/bin/python -c 'import sys' 2>/dev/null; then
        say "Python venv: .venv is broken, making it again"
        rm -rf .venv
    elif [[ -e .venv ]] && ! grep -qx "home = $(dirname "$PYTHON")" .venv/pyvenv.cfg 2>/dev/null; then
        say "Python venv: .venv was not made with $PYTHON, making it again"
        rm -rf .venv
    fi
    if [[ ! -e .venv ]]; then
        say "Python venv: creating $repo/.venv with $PYTHON"
        "$PYTHON" -m venv .venv
    fi
    # Bytecode ahead of time: with PYTHONDONTWRITEBYTECODE set (as here), every
    # hutch-runtime start would otherwise compile its modules again.
    .venv/bin/python -m compileall -q src >/dev/null
    if venv_current; then
        say "Python venv: hutch is installed and current"
        return
    fi
    say "Python venv: installing hutch (editable) with its test tools"
    .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
    venv_stamp > .venv/.hutch-stamp
}

link_commands() {
    local cmd
    for cmd in hutch hutch-runtime; do
        if [[ "$(readlink "$BIN_DIR/$cmd" 2>/dev/null)" != "$repo/.venv/bin/$cmd" ]]; then
            ln -sfn "$repo/.venv/bin/$cmd" "$BIN_DIR/$cmd"
        fi
    done
    say "Commands: $BIN_DIR/hutch and $BIN_DIR/hutch-runtime -> $repo/.venv/bin"
}

# The demo bundle: the built-in busybox image (kept and reused) and a config
# from the runtime's own `spec`, with our command and no terminal.
make_demo_bundle() {
    local -a runtime=("$@")
    if [[ ! -x "$DEMO_DIR/rootfs/bin/busybox" ]]; then
        say "Demo: building the busybox image in $DEMO_DIR/rootfs"
        rm -rf "$DEMO_DIR/rootfs"
        mkdir -p "$DEMO_DIR"
        .venv/bin/python -c 'import sys
from hutch.images.templates import build_busybox_rootfs
build_busybox_rootfs(sys.argv[1])' "$DEMO_DIR/rootfs"
    fi
    local spec_dir
    spec_dir="$(mktemp -d)"
    "${runtime[@]}" spec --bundle "$spec_dir" || { rm -rf "$spec_dir"; die "'${runtime[*]} spec' failed"; }
    .venv/bin/python - "$spec_dir/config.json" "$DEMO_DIR/config.json" <<'EOF'
import json, os, sys
config = json.load(open(sys.argv[1]))
config["process"]["terminal"] = False
config["process"]["args"] = ["sh", "-c", "echo hello from a hutch container: $(hostname), pid $$"]
config["hostname"] = "hutch-demo"
config["root"] = {"path": "rootfs", "readonly": True}
with open(sys.argv[2] + ".tmp", "w") as f:
    json.dump(config, f, indent=2)
os.replace(sys.argv[2] + ".tmp", sys.argv[2])
EOF
    rm -rf "$spec_dir"
}

run_demo() {
    local -a runtime
    if [[ -n "${HUTCH_RUNTIME:-}" ]]; then
        read -r -a runtime <<<"$HUTCH_RUNTIME"
        say "Demo: using HUTCH_RUNTIME=${HUTCH_RUNTIME}"
    else
        runtime=("$BIN_DIR/hutch-runtime")
    fi
    command -v "${runtime[0]}" >/dev/null || die "runtime '${runtime[0]}' not found"
    make_demo_bundle "${runtime[@]}"
    local id="hutch-demo-$$" rc=0
    say "Demo: ${runtime[*]} run --bundle $DEMO_DIR $id"
    "${runtime[@]}" run --bundle "$DEMO_DIR" "$id" </dev/null || rc=$?
    # `run` deletes the container when it exits; make sure, quietly.
    if "${runtime[@]}" state "$id" >/dev/null 2>&1; then
        "${runtime[@]}" delete --force "$id" || { [[ $rc -ne 0 ]] || rc=1; }
    fi
    [[ $rc -eq 0 ]] || die "the demo container failed (exit code $rc)"
    say "Demo: done; the container is deleted"
}

install_packages
install_venv
link_commands
if [[ $demo -eq 1 ]]; then
    run_demo
fi
say "hutch is installed. Run the tests with: bash test.sh"
