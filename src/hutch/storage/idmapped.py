"""Mount a snapshot's records with its owners shifted for a user namespace.

The result shows the image's files (owned by 0 on disk) as owned by the container's
root (``base`` on the host, 0 inside). Overlay cannot be idmapped itself, so its
lower layers are: each becomes an idmapped clone the overlay is mounted on, and
the image's layers stay shared and unchanged on disk. The upper layer is the
container's own: its top directories are given to the container's root once
(overlay creates its work directory as the mounter, which an idmapped upper
refuses with EOVERFLOW), and what the container writes is stored with its
host ids.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from hutch.common.mount import Mount
from hutch.errors import Unsupported
from hutch.linux import constants as C
from hutch.linux.idmap import attach, idmapped_tree
from hutch.linux.syscalls import mount


def mount_idmapped(mounts: Sequence[Mount], target: str, userns_fd: int, host_id: int) -> None:
    """``mounts`` (one record) at ``target`` for a container whose root is ``host_id``."""
    if len(mounts) != 1:
        raise Unsupported(f"idmapped roots take one mount record, not {len(mounts)}")
    m = mounts[0]
    if m.is_bind:  # a single layer: the container's own, shown with the image's owners
        fd = idmapped_tree(m.source, userns_fd)
        try:
            attach(fd, target)
        finally:
            os.close(fd)
        if m.readonly:
            mount(None, target, None, C.MS_BIND | C.MS_REMOUNT | C.MS_RDONLY)
        return
    if m.type != "overlay":
        raise Unsupported(f"cannot idmap a {m.type} mount (overlay and bind can be)")
    fds: list[int] = []
    try:
        options = []
        upper = work = None
        for opt in m.options:
            key, _, value = opt.partition("=")
            if key == "lowerdir":
                lowers = []
                for d in value.split(":"):
                    fds.append(idmapped_tree(d, userns_fd))
                    lowers.append(f"/proc/self/fd/{fds[-1]}")
                options.append("lowerdir=" + ":".join(lowers))
            elif key == "upperdir":
                upper = value
            elif key == "workdir":
                work = value
            else:
                options.append(opt)
        if upper and work:
            for d in (upper, work):
                os.chown(d, host_id, host_id)
            options += [f"upperdir={upper}", f"workdir={work}"]
        mount("overlay", target, "overlay", 0, ",".join(options))
    finally:
        for fd in fds:
            os.close(fd)
