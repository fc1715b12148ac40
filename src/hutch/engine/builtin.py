"""The built-in images: made from templates into the snapshotter, no registry needed.

``busybox`` is built from the host's static busybox in a moment, so ``hutch run
busybox echo hello`` works on a fresh machine. The committed snapshot
``image/<name>`` is the parent of every container's root made from it.
"""

from __future__ import annotations

import fcntl
import os

from hutch.errors import NotFound

BUILTIN = {"busybox"}
# What the image's config would say (the OCI image config's Env/Cmd/WorkingDir).
IMAGE_CONFIG = {
    "busybox": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Cmd": ["sh"], "WorkingDir": "/"},
}


def normalize(ref: str) -> str:
    name = ref.split("/")[-1]
    base, _, tag = name.partition(":")
    if base in BUILTIN and tag in ("", "latest"):
        return base
    raise NotFound(f"no such image: {ref} (built in: {', '.join(sorted(BUILTIN))}; "
                   "the image store and registry pulls come with the images issue)")


def ensure(snapshotter: object, name: str, lock_path: str) -> str:
    """The committed snapshot key of built-in image ``name``, building it once."""
    from hutch.images.templates import build_busybox_rootfs
    from hutch.storage.mount import mounted

    key = f"image/{name}"
    if _exists(snapshotter, key):
        return key
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another hutch may be building it right now
        if _exists(snapshotter, key):
            return key
        work = f"{key}.build.{os.getpid()}"
        mounts = snapshotter.prepare(work)  # type: ignore[attr-defined]
        try:
            with mounted(mounts) as target:
                build_busybox_rootfs(target, in_place=True)
            snapshotter.commit(key, work)  # type: ignore[attr-defined]
        except BaseException:
            snapshotter.remove(work)  # type: ignore[attr-defined]
            raise
    return key


def _exists(snapshotter: object, key: str) -> bool:
    try:
        snapshotter.stat(key)  # type: ignore[attr-defined]
        return True
    except NotFound:
        return False
