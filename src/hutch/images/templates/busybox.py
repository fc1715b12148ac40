"""The built-in default image: a minimal root file system from the host's busybox.

It needs a *static* busybox (Debian's ``busybox-static``), since nothing else of
the host's userland (no libc, no loader) is copied into the root. The binary is
copied, not linked, so a container that writes to it cannot change the host's.
Stdlib only, and fast: one copy, a few hundred symlinks, two small files runs.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import tempfile

from hutch.errors import InvalidArgument, NotFound, Unsupported

DEFAULT_BUSYBOX = "/bin/busybox"
PACKAGE_HINT = "install Debian's busybox-static (apt-get install busybox-static)"

# Directory -> mode. Created in this order, so parents come first.
DIRECTORIES: dict[str, int] = {
    "bin": 0o755, "sbin": 0o755, "etc": 0o755, "proc": 0o555, "sys": 0o555,
    "dev": 0o755, "tmp": 0o1777, "root": 0o700, "home": 0o755, "run": 0o755,
    "var": 0o755, "var/log": 0o755, "usr": 0o755, "usr/bin": 0o755, "usr/sbin": 0o755,
}

PASSWD = """\
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
"""

GROUP = """\
root:x:0:
tty:x:5:
nogroup:x:65534:
nobody:x:65534:
"""

HOSTS = """\
127.0.0.1\tlocalhost
::1\tlocalhost ip6-localhost ip6-loopback
"""

# busybox init(8) reads this when it runs as PID 1 of an OS container.
INITTAB = """\
::askfirst:-/bin/sh
::ctrlaltdel:/sbin/reboot
::shutdown:/bin/sync
"""

_PT_INTERP = 3


def elf_interpreter(path: str) -> str | None:
    """The program interpreter (PT_INTERP) of an ELF file, or None when it is static.

    A static-pie binary has no PT_INTERP either, and runs without a loader too.
    """
    with open(path, "rb") as f:
        ident = f.read(16)
        if len(ident) < 16 or ident[:4] != b"\x7fELF" or ident[4] not in (1, 2):
            raise InvalidArgument(f"{path} is not an ELF executable; {PACKAGE_HINT}")
        e = "<" if ident[5] == 1 else ">"
        if ident[4] == 2:  # ELFCLASS64: e_phoff at 32, e_phentsize/e_phnum at 54
            header, phdr_fmt = f.read(48), e + "IIQQQQ"
            phoff = struct.unpack_from(e + "Q", header, 16)[0]
            phentsize, phnum = struct.unpack_from(e + "HH", header, 38)
        else:  # ELFCLASS32: e_phoff at 28, e_phentsize/e_phnum at 42
            header, phdr_fmt = f.read(36), e + "IIIIII"
            phoff = struct.unpack_from(e + "I", header, 12)[0]
            phentsize, phnum = struct.unpack_from(e + "HH", header, 26)
        for i in range(phnum):
            f.seek(phoff + i * phentsize)
            fields = struct.unpack(phdr_fmt, f.read(struct.calcsize(phdr_fmt)))
            if fields[0] != _PT_INTERP:
                continue
            # 64-bit: type flags offset vaddr paddr filesz; 32-bit: type offset vaddr paddr filesz
            offset, size = (fields[2], fields[5]) if ident[4] == 2 else (fields[1], fields[4])
            f.seek(offset)
            return f.read(size).rstrip(b"\0").decode(errors="replace")
    return None


def check_static(busybox: str) -> None:
    """Refuse a missing or dynamically linked busybox, saying what to install."""
    if not os.path.isfile(busybox):
        raise NotFound(f"busybox not found at {busybox}; {PACKAGE_HINT}")
    interp = elf_interpreter(busybox)
    if interp is not None:
        raise Unsupported(f"{busybox} is dynamically linked (interpreter {interp}) and cannot "
                          f"run inside a root file system without a libc; {PACKAGE_HINT}")


def list_applets(busybox: str) -> list[str]:
    """Relative install paths of every applet (``bin/sh``, ``usr/bin/awk``...)."""
    out = subprocess.run([busybox, "--list-full"], capture_output=True, text=True,
                         check=False, stdin=subprocess.DEVNULL)
    if out.returncode != 0:
        raise Unsupported(f"{busybox} --list-full failed ({out.stderr.strip() or out.returncode}); "
                          f"{PACKAGE_HINT}")
    applets = []
    for line in out.stdout.split():
        parts = line.strip("/").split("/")
        if not line or any(p in ("", ".", "..") for p in parts):
            raise InvalidArgument(f"{busybox} --list-full printed a bad applet path {line!r}")
        applets.append("/".join(parts))
    return applets


def busybox_version(busybox: str) -> str:
    """The version from busybox's banner ("BusyBox v1.35.0 (...)"), or "unknown"."""
    out = subprocess.run([busybox], capture_output=True, text=True, check=False,
                         stdin=subprocess.DEVNULL)
    words = (out.stdout or out.stderr).split()
    return words[1].lstrip("v") if len(words) > 1 and words[0] == "BusyBox" else "unknown"


def _write(root: str, rel: str, text: str, mode: int = 0o644) -> None:
    path = os.path.join(root, rel)
    with open(path, "w") as f:
        f.write(text)
    os.chmod(path, mode)


def _populate(root: str, busybox: str) -> None:
    for rel, mode in DIRECTORIES.items():
        os.makedirs(os.path.join(root, rel), exist_ok=True)
        os.chmod(os.path.join(root, rel), mode)
    shutil.copyfile(busybox, os.path.join(root, "bin/busybox"))
    os.chmod(os.path.join(root, "bin/busybox"), 0o755)
    for applet in list_applets(busybox):
        if applet == "bin/busybox":
            continue
        link = os.path.join(root, applet)
        os.makedirs(os.path.dirname(link), mode=0o755, exist_ok=True)
        target = os.path.relpath("bin/busybox", os.path.dirname(applet))
        os.symlink(target, link)
    version = busybox_version(busybox)
    _write(root, "etc/passwd", PASSWD)
    _write(root, "etc/group", GROUP)
    _write(root, "etc/hostname", "hutch\n")
    _write(root, "etc/hosts", HOSTS)
    _write(root, "etc/inittab", INITTAB)
    _write(root, "etc/os-release",
           'NAME="hutch busybox"\nID=hutch-busybox\n'
           f'VERSION_ID="{version}"\n'
           f'PRETTY_NAME="hutch busybox (BusyBox {version})"\n')


def build_busybox_rootfs(dest: str, busybox: str | None = None, in_place: bool = False) -> str:
    """Build the default root file system at ``dest`` and return its absolute path.

    ``dest`` must not exist or be an empty directory. The tree is built beside it
    and renamed into place, so a failure leaves nothing behind; ``in_place`` builds
    directly in ``dest`` (a mounted snapshot, which cannot be renamed over).
    """
    busybox = busybox or DEFAULT_BUSYBOX
    check_static(busybox)
    dest = os.path.abspath(dest)
    if os.path.lexists(dest) and (not os.path.isdir(dest) or os.listdir(dest)):
        raise InvalidArgument(f"cannot build a root file system at {dest}: "
                              "it exists and is not an empty directory")
    if in_place:
        _populate(dest, busybox)
        os.chmod(dest, 0o755)
        return dest
    parent = os.path.dirname(dest)
    os.makedirs(parent, exist_ok=True)
    work = tempfile.mkdtemp(prefix=f".{os.path.basename(dest)}.", dir=parent)
    try:
        _populate(work, busybox)
        os.chmod(work, 0o755)
        if os.path.isdir(dest):
            os.rmdir(dest)
        os.rename(work, dest)
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return dest
