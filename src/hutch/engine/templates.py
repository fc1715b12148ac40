"""OS-container templates (LXC's -t): an image plus what makes it boot its own init.

``busybox``: busybox init with an inittab that starts a few services (syslogd,
crond, an httpd), a shell on the console, and shutdown actions that stop the
services and record that the shutdown was clean. Stopped with SIGUSR2 (busybox
init's poweroff), which the container's init turns into an orderly shutdown.

``debian``: debootstrap's minimal Debian with sysvinit (images/templates/debian.py),
cached per machine and imported into the instance's image store once; Debian's
own init and rc scripts boot it, SIGPWR (a power failure: ``init 0``) stops it.

``dir`` and ``tar``: a root file system the user has, imported as an image
(through the image service's safe import), booting ``--init`` (/sbin/init).

``oci``: an image by reference (``--url``, LXC's lxc-oci), from the store or
pulled from its registry under the trust policy, booting ``--init``.

Each template may take options after ``--`` (``hutch create -t debian -n NAME --
--suite trixie``): ``options`` lists them as argparse arguments, ``image_for``
turns them into the name of an image in the store (made when missing), and
``--init``/``--stop-signal``, when a template has them, say how it boots and stops.
"""

from __future__ import annotations

import argparse
import errno
import hashlib
import os
import shlex
from collections.abc import Callable
from typing import Any

from hutch.errors import InvalidArgument, NotFound

BUSYBOX_INITTAB = """\
::sysinit:/bin/mkdir -p /run /var/log /var/spool/cron/crontabs /var/www
::sysinit:/bin/sh -c 'echo "hutch: $(hostname) booting" > /dev/console'
::respawn:/sbin/syslogd -n -O /var/log/messages
::respawn:/usr/sbin/crond -f -c /var/spool/cron/crontabs
::respawn:/usr/sbin/httpd -f -p 80 -h /var/www
::askfirst:-/bin/sh
tty1::askfirst:-/bin/sh
tty2::askfirst:-/bin/sh
::shutdown:/bin/sh -c 'echo "hutch: $(hostname) shutting down" > /dev/console'
::shutdown:/bin/sh -c 'killall syslogd crond httpd; echo clean > /var/log/shutdown'
"""

TEMPLATES = {
    "busybox": {"image": "busybox", "init": ["/sbin/init"], "stop_signal": "SIGUSR2",
                "ttys": 2,  # /dev/tty1, /dev/tty2 with a shell each (hutch console --tty N)
                "files": {"etc/inittab": BUSYBOX_INITTAB,
                          "var/www/index.html": "<h1>hutch busybox</h1>\n"}},
}


# -- templates whose image comes from their options -----------------------------------

STORE_PREFIX = "localhost/hutch"  # where their images are named in the store


def _debian_image(images: Any, o: dict[str, Any]) -> str:
    """localhost/hutch/debian:SUITE-ARCH-HASH, imported from the machine's cache (built
    there by debootstrap the first time)."""
    from hutch.images.templates import debian
    opts = debian.DebianOptions(suite=o["suite"], mirror=o["mirror"], arch=o["arch"],
                                include=tuple(p for p in o["include"].split(",") if p))
    name = f"{STORE_PREFIX}/debian:{debian.cache_key(opts).removeprefix('debian-')}"
    if not _stored(images, name):
        images.import_(debian.ensure(opts), name=name, run=debian.RUN_CONFIG)
    return name


def _tar_image(images: Any, o: dict[str, Any]) -> str:
    """localhost/hutch/rootfs:tar-HASH (of the file): the same tar is imported once."""
    path = os.path.abspath(o["file"])
    if not os.path.isfile(path):
        raise NotFound(f"--file {o['file']}: no such file")
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    name = f"{STORE_PREFIX}/rootfs:tar-{digest.hexdigest()[:16]}"
    if not _stored(images, name):
        images.import_(path, name=name, run=_import_run(o))
    return name


def _dir_image(images: Any, o: dict[str, Any]) -> str:
    """localhost/hutch/rootfs:dir-HASH (of the path): imported again at each create, so
    the container starts from the tree as it is now."""
    path = os.path.realpath(o["path"])
    if not os.path.isdir(path):
        raise NotFound(f"--path {o['path']}: no such directory")
    if path == "/":
        raise InvalidArgument("--path /: the host's own root cannot be a template")
    name = f"{STORE_PREFIX}/rootfs:dir-{hashlib.sha256(path.encode()).hexdigest()[:16]}"
    images.import_(path, name=name, run=_import_run(o))
    return name


def _import_run(o: dict[str, Any]) -> dict[str, Any]:
    return {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": shlex.split(o["init"]), "StopSignal": o["stop_signal"]}


def _stored(images: Any, name: str) -> bool:
    try:
        images.meta.get(name)
        return True
    except NotFound:
        return False


_BOOT_OPTIONS = [
    ("--init", {"default": "/sbin/init", "help": "the program to boot as PID 1 (/sbin/init)"}),
    ("--stop-signal", {"dest": "stop_signal", "default": "SIGPWR",
                       "help": "what init takes as `shut down`: SIGPWR (sysvinit, the "
                               "default), SIGUSR2 (busybox), SIGRTMIN+3 (systemd)"}),
]

TEMPLATES.update({
    "debian": {
        "summary": "Debian (debootstrap, minbase + sysvinit), cached after the first build",
        "image_for": _debian_image, "init": ["/sbin/init"], "stop_signal": "SIGPWR",
        "files": {}, "ttys": 2,  # its inittab has a getty on each (debian.INITTAB)
        "options": [
            ("--suite", {"default": "bookworm", "help": "Debian suite (bookworm)"}),
            ("--mirror", {"default": "http://deb.debian.org/debian",
                          "help": "Debian archive URL (http://deb.debian.org/debian)"}),
            ("--include", {"default": "", "help": "more packages, comma separated"}),
            ("--arch", {"default": "", "help": "Debian architecture (the host's)"}),
        ]},
    "dir": {
        "summary": "a root file system in a directory, copied (--path DIR)",
        "image_for": _dir_image, "files": {},
        "options": [("--path", {"required": True, "help": "the root file system"}),
                    *_BOOT_OPTIONS]},
    "tar": {
        "summary": "a root file system tar (plain, gzip or zstd), unpacked safely (--file)",
        "image_for": _tar_image, "files": {},
        "options": [("--file", {"required": True, "help": "ROOTFS.tar[.gz|.zst]"}),
                    *_BOOT_OPTIONS]},
})


def _oci_image(images: Any, o: dict[str, Any]) -> str:
    """``oci`` (LXC's lxc-oci): the image ``--url`` names, ``docker://`` optional: from the
    store, or pulled from its registry (its signatures along, the trust policy checked)."""
    url = o["url"].removeprefix("docker://")
    if "://" in url or url.startswith(("oci:", "oci-archive:", "docker-archive:", "dir:")):
        raise InvalidArgument(f"--url {o['url']}: give an image reference "
                              "([docker://]REGISTRY/REPOSITORY:TAG or a name in the store); "
                              "import a layout or archive first (hutch image import PATH)")
    return str(images.ensure(url, o["pull"]))


TEMPLATES["oci"] = {
    "summary": "an OCI image from a registry or the store, booting --init (--url REF)",
    "image_for": _oci_image, "files": {},
    "options": [("--url", {"required": True, "help": "the image: [docker://]REGISTRY/REPO:TAG"
                                                     " or a name in the store"}),
                ("--pull", {"default": "missing", "choices": ("missing", "always", "never"),
                            "help": "fetch it from its registry (as hutch run --pull)"}),
                *_BOOT_OPTIONS]}
TEMPLATES["busybox"].setdefault("summary", "busybox init with syslogd, crond and httpd, "
                                           "from the host's busybox-static")


class _OptionParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        raise InvalidArgument(f"{self.prog}: {message}")


def option_parser(name: str) -> argparse.ArgumentParser:
    t = get(name)
    p = _OptionParser(prog=f"hutch create -t {name} -n NAME --", add_help=False,
                      description=t.get("summary"))
    for flag, kw in t.get("options", ()):
        p.add_argument(flag, **kw)
    return p


def parse_options(name: str, argv: list[str]) -> dict[str, Any]:
    """The template's options from the words after ``--``; InvalidArgument when bad."""
    return vars(option_parser(name).parse_args(list(argv)))


def boot(template: dict, options: dict[str, Any]) -> tuple[list[str], str]:
    """(init command, stop signal) of a container of ``template`` with ``options``."""
    init = shlex.split(options["init"]) if options.get("init") else list(template["init"])
    if not init or not init[0].startswith("/"):
        raise InvalidArgument(f"--init {options.get('init')!r}: an absolute path in the "
                              "root file system")
    stop_signal = options.get("stop_signal") or template["stop_signal"]
    from hutch.common.signals import signal_number
    try:
        signal_number(stop_signal)
    except InvalidArgument:
        raise InvalidArgument(f"--stop-signal {stop_signal}: not a signal (SIGPWR, SIGUSR2, "
                              "SIGRTMIN+3...)") from None
    return init, stop_signal


def image_for(template: dict, options: dict[str, Any], images: Any) -> str:
    """The name of the image a container of ``template`` starts from (made if missing)."""
    make: Callable[[Any, dict[str, Any]], str] | None = template.get("image_for")
    return make(images, options) if make is not None else template["image"]


def get(name: str) -> dict:
    try:
        return TEMPLATES[name]
    except KeyError:
        raise NotFound(f"no such template: {name} (templates: {', '.join(TEMPLATES)})") \
            from None


def install(template: dict, rootfs: str, hostname: str, owner: int | None = None) -> None:
    """Write the template's files into a container's (mounted) root file system.

    Paths resolve inside the root (a symlink in an imported root file system cannot
    aim a write at the host); a symlink in the file's place is replaced. ``owner``
    (the container's root on the host) gets the files, so its root may edit them.
    """
    from hutch.linux import constants as C
    from hutch.linux.safepath import mkdir_all_in_root, open_in_root
    from hutch.linux.syscalls import openat2
    resolve = C.RESOLVE_IN_ROOT | C.RESOLVE_NO_MAGICLINKS
    root_fd = os.open(rootfs, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for rel, text in {**template["files"], "etc/hostname": hostname + "\n"}.items():
            parent = mkdir_all_in_root(rootfs, os.path.dirname(rel))
            if owner is not None and os.stat(parent).st_uid == 0 and \
                    os.path.realpath(parent) != os.path.realpath(rootfs):
                os.chown(parent, owner, owner)
            flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
            try:
                fd = openat2(root_fd, rel, flags, 0o644, resolve)
            except OSError as e:
                if e.errno != errno.ELOOP:
                    raise
                dir_fd = open_in_root(root_fd, os.path.dirname(rel) or ".",
                                      os.O_PATH | os.O_DIRECTORY)
                try:
                    os.unlink(os.path.basename(rel), dir_fd=dir_fd)
                finally:
                    os.close(dir_fd)
                fd = openat2(root_fd, rel, flags, 0o644, resolve)
            with open(fd, "w") as f:
                f.write(text)
                if owner is not None:
                    os.fchown(f.fileno(), owner, owner)
    finally:
        os.close(root_fd)
