"""Built-in image templates: root file systems made from what the host has.

A template needs nothing from a registry, so hutch can start a container on a
machine that has never pulled an image.
"""

from hutch.images.templates.busybox import build_busybox_rootfs

__all__ = ["build_busybox_rootfs"]
