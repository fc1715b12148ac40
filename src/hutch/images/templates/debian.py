"""The ``debian`` template's root file system: debootstrap, made fit for a container, cached.

debootstrap builds a minimal Debian (``--variant=minbase``) with sysvinit as its
init, so the container boots Debian's own init and rc scripts on a host without
systemd. The tree is then adjusted for life in a container (see ``configure``)
and packed as a tar in the cache (``/var/cache/hutch/templates``, or
``$HUTCH_TEMPLATE_CACHE``), named by a key of suite, architecture, the package
list and this recipe, so the minutes of debootstrap are spent once per machine.
A build happens in a temporary directory beside the cache entry and is renamed
into place at the end; a lock per key keeps two builds of one key from racing.

Runs as root. Stdlib only; debootstrap and GNU tar are the tools.
"""

from __future__ import annotations

import collections
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from typing import TextIO

from hutch.errors import InvalidArgument, NotFound, SystemFailure, Unsupported

DEFAULT_CACHE = "/var/cache/hutch/templates"
DEFAULT_SUITE = "bookworm"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
# Always in: an init that runs without systemd (sysvinit's init, rc scripts, halt),
# and ps/kill/top, which a system container's user expects.
BASE_PACKAGES = ("sysvinit-core", "procps")
PACKAGE_HINT = "install Debian's debootstrap (apt-get install debootstrap)"

# Bumped (or the texts below changed) -> a new cache key, so an old tar is not reused.
RECIPE = 1

# Debian's inittab, for a container: root logged in on /dev/console (the pty hutch's
# console attaches to) and on /dev/tty1, /dev/tty2 (ptys the engine makes, as LXC's
# lxc.tty.max), and a power failure (SIGPWR, hutch stop's signal) turned into a
# halt, as LXC's debian template does. Root's password stays locked: the consoles
# are reached only through the host (the shim's socket).
INITTAB = """\
# /etc/inittab: init(8) configuration, for a hutch container.
id:2:initdefault:
si::sysinit:/etc/init.d/rcS
~~:S:wait:/sbin/sulogin --force
l0:0:wait:/etc/init.d/rc 0
l1:1:wait:/etc/init.d/rc 1
l2:2:wait:/etc/init.d/rc 2
l3:3:wait:/etc/init.d/rc 3
l4:4:wait:/etc/init.d/rc 4
l5:5:wait:/etc/init.d/rc 5
l6:6:wait:/etc/init.d/rc 6
z6:6:respawn:/sbin/sulogin --force
# Ctrl-Alt-Del (SIGINT to init) reboots; a power failure (SIGPWR: `hutch stop`) halts.
ca:12345:ctrlaltdel:/sbin/shutdown -t1 -r now
pf::powerfail:/sbin/init 0
# Logins: root on the console (hutch console NAME; the boot messages go there too)
# and on the container's ttys (hutch console NAME --tty 1|2).
co:2345:respawn:/sbin/agetty --noclear --autologin root --keep-baud console 115200,38400,9600 linux
1:2345:respawn:/sbin/agetty --noclear --autologin root tty1 linux
2:2345:respawn:/sbin/agetty --noclear --autologin root tty2 linux
"""
TTYS = 2  # /dev/tty1, /dev/tty2 (the engine makes them)

# rc scripts that make no sense in a container (the runtime sets the hostname; no
# hardware clock, no root file system to check, no backlight, no sysctl).
DISABLED_SERVICES = ("hostname.sh", "hwclock.sh", "checkroot.sh", "checkfs.sh",
                     "checkroot-bootclean.sh", "brightness", "mount-configfs",
                     "procps")  # procps: sysctl, the host's to set
# (umountnfs.sh, umountfs and umountroot stay, though they can do little here: they
# order the shutdown, sendsigs -> ... -> halt, and without them startpar would run
# halt beside the services' stop scripts.)

# The image's run config: boot init, stop it with a power failure.
RUN_CONFIG = {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
              "Cmd": ["/sbin/init"], "StopSignal": "SIGPWR"}

_SUITE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_PACKAGE = re.compile(r"^[a-z0-9][a-z0-9+.-]{0,99}$")
_ARCH = re.compile(r"^[a-z0-9][a-z0-9-]{0,19}$")
_MIRROR = re.compile(r"^(https?|file)://[^\s'\"]+$")


@dataclass(frozen=True)
class DebianOptions:
    """What the template takes (``-- --suite S --mirror URL --include A,B --arch A``)."""

    suite: str = DEFAULT_SUITE
    mirror: str = DEFAULT_MIRROR
    include: tuple[str, ...] = field(default_factory=tuple)
    arch: str = ""  # "" is the host's

    def checked(self) -> DebianOptions:
        """These options with the arch filled in; InvalidArgument naming a bad one."""
        if not _SUITE.match(self.suite):
            raise InvalidArgument(f"--suite {self.suite!r}: a Debian suite or code name "
                                  "(bookworm, trixie, stable...)")
        if not _MIRROR.match(self.mirror):
            raise InvalidArgument(f"--mirror {self.mirror!r}: an http://, https:// or file:// "
                                  "URL of a Debian archive")
        for p in self.include:
            if not _PACKAGE.match(p):
                raise InvalidArgument(f"--include: {p!r} is not a Debian package name")
        arch = self.arch or host_arch()
        if not _ARCH.match(arch):
            raise InvalidArgument(f"--arch {arch!r}: a Debian architecture (amd64, arm64...)")
        return DebianOptions(self.suite, self.mirror.rstrip("/"),
                             tuple(sorted(set(self.include))), arch)

    @property
    def packages(self) -> tuple[str, ...]:
        return tuple(sorted(set(BASE_PACKAGES) | set(self.include)))


def host_arch() -> str:
    """The host's Debian architecture (dpkg's name for it)."""
    try:
        out = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True,
                             check=True, stdin=subprocess.DEVNULL)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        machine = os.uname().machine
        return {"x86_64": "amd64", "aarch64": "arm64", "i686": "i386"}.get(machine, machine)


def cache_dir() -> str:
    return os.environ.get("HUTCH_TEMPLATE_CACHE") or DEFAULT_CACHE


def cache_key(opts: DebianOptions) -> str:
    """``debian-SUITE-ARCH-HASH``: the hash covers the packages and this recipe (not the
    mirror: every mirror serves the same suite)."""
    opts = opts.checked()
    recipe = json.dumps([RECIPE, opts.packages, INITTAB, DISABLED_SERVICES])
    digest = hashlib.sha256(recipe.encode()).hexdigest()[:12]
    return f"debian-{opts.suite}-{opts.arch}-{digest}"


def cached(opts: DebianOptions, cache: str | None = None) -> str | None:
    """The cached tar of ``opts``, or None when it has not been built."""
    path = os.path.join(cache or cache_dir(), cache_key(opts) + ".tar")
    return path if os.path.isfile(path) else None


def ensure(opts: DebianOptions, cache: str | None = None, log: TextIO | None = None) -> str:
    """The cached root file system tar for ``opts``, built with debootstrap when missing.

    ``log`` gets debootstrap's output (default: stderr). Returns the tar's path.
    """
    opts = opts.checked()
    cache = cache or cache_dir()
    key = cache_key(opts)
    final = os.path.join(cache, key + ".tar")
    if os.path.isfile(final):
        return final
    if shutil.which("debootstrap") is None:
        raise NotFound(f"debootstrap not found; {PACKAGE_HINT}")
    if os.geteuid() != 0:
        raise Unsupported(f"building the debian template ({key}) needs root: debootstrap "
                          "creates files of every owner and runs in a chroot")
    os.makedirs(cache, mode=0o755, exist_ok=True)
    with open(os.path.join(cache, f".{key}.lock"), "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another hutch may be building it right now
        if os.path.isfile(final):
            return final
        work = tempfile.mkdtemp(prefix=f".{key}.", dir=cache)
        try:
            root = os.path.join(work, "root")
            _debootstrap(opts, root, log or sys.stderr)
            configure(root)
            _pack(root, os.path.join(work, "rootfs.tar"))
            os.rename(os.path.join(work, "rootfs.tar"), final)
        finally:
            _remove_tree(work)
    return final


def _debootstrap(opts: DebianOptions, root: str, log: TextIO) -> None:
    argv = ["debootstrap", "--variant=minbase", f"--arch={opts.arch}",
            "--include=" + ",".join(opts.packages), opts.suite, root, opts.mirror]
    print(f"hutch: building the debian template: {' '.join(argv)}", file=log, flush=True)
    last: collections.deque[str] = collections.deque(maxlen=8)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, errors="replace")
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # debootstrap's progress, as it comes
            last.append(line.rstrip())
            log.write(line)
            log.flush()
    except BaseException:
        proc.kill()  # and its tree goes with the work directory
        proc.wait()
        raise
    code = proc.wait()
    if code != 0:
        tail = "\n".join(last)
        raise SystemFailure(0, f"debootstrap of {opts.suite} ({opts.arch}) from {opts.mirror} "
                               f"failed with exit code {code}:\n{tail}")


def configure(root: str) -> None:
    """Make a debootstrapped tree boot in a container (see INITTAB, DISABLED_SERVICES)."""
    _write(root, "etc/inittab", INITTAB)
    for name in DISABLED_SERVICES:
        if os.path.lexists(os.path.join(root, "etc/init.d", name)):
            _chroot(root, "/usr/sbin/update-rc.d", "-f", name, "remove")
    # The container's own hostname and hosts come at create time; these are neutral.
    _write(root, "etc/hostname", "debian\n")
    _write(root, "etc/hosts", hosts_file("debian"))
    # No dpkg caches or debootstrap leftovers in the image.
    for rel in ("var/cache/apt/archives", "var/lib/apt/lists"):
        d = os.path.join(root, rel)
        for name in os.listdir(d) if os.path.isdir(d) else ():
            path = os.path.join(d, name)
            if os.path.isfile(path) and not os.path.islink(path) and name != "lock":
                os.unlink(path)


def hosts_file(hostname: str) -> str:
    return (f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n"
            "::1\tlocalhost ip6-localhost ip6-loopback\n"
            "ff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")


def _write(root: str, rel: str, text: str) -> None:
    """Replace a file of the fresh tree (never through a symlink)."""
    path = os.path.join(root, rel)
    if os.path.islink(path):
        os.unlink(path)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o644)
    with os.fdopen(fd, "w") as f:
        f.write(text)


def _chroot(root: str, *argv: str) -> None:
    proc = subprocess.run(["chroot", root, *argv], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, check=False,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LC_ALL": "C"})
    if proc.returncode != 0:
        raise SystemFailure(0, f"{' '.join(argv)} in the new debian tree failed: "
                               f"{proc.stderr.strip() or proc.returncode}")


def _pack(root: str, dest: str) -> None:
    """A tar of the tree with numeric owners and xattrs, sorted, without /dev's nodes
    (the runtime gives the container its own /dev)."""
    argv = ["tar", "--create", "--file", dest, "--numeric-owner", "--xattrs",
            "--xattrs-include=*", "--sort=name", "--exclude=./dev/*", "-C", root, "."]
    proc = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          check=False)
    if proc.returncode != 0:
        raise SystemFailure(0, f"packing the debian tree failed: {proc.stderr.strip()}")


def _remove_tree(path: str) -> None:
    """Remove a build directory; whatever debootstrap left mounted in it first (its /proc,
    /sys or /dev binds): never delete through a mount into the host."""
    from hutch.storage.mount import unmount_all
    if not os.path.exists(path):
        return
    unmount_all(path, detach=True)
    shutil.rmtree(path)
