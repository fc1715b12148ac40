"""Where one hutch instance keeps its state (``--root`` / HUTCH_ROOT)."""

from __future__ import annotations

import os

DEFAULT_ROOT = "/var/lib/hutch"
DEFAULT_RUN = "/run/hutch"


class Layout:
    """All paths of one instance. With a custom root, runtime state lives below it too,
    so that several independent instances can share a machine."""

    def __init__(self, root: str | None = None) -> None:
        root = root or os.environ.get("HUTCH_ROOT") or DEFAULT_ROOT
        self.root = os.path.abspath(root)
        self.run = DEFAULT_RUN if self.root == DEFAULT_ROOT else os.path.join(self.root, "run")
        self.db = os.path.join(self.root, "hutch.db")
        self.containers = os.path.join(self.root, "containers")
        self.storage = os.path.join(self.root, "storage")
        # The image store: blobs, names (SQLite), signatures, the trust policy.
        self.content = os.path.join(self.root, "content")
        self.images_db = os.path.join(self.root, "images.db")
        self.signatures = os.path.join(self.root, "signatures")
        self.policy = os.path.join(self.root, "policy.json")
        self.images_lock = os.path.join(self.root, "images.lock")
        self.runtime_root = os.path.join(self.run, "runtime")
        self.shims = os.path.join(self.run, "shims")

    def ensure(self) -> None:
        for d in (self.root, self.containers, self.storage, self.run, self.runtime_root,
                  self.shims):
            os.makedirs(d, mode=0o711, exist_ok=True)
        for d in (self.root, self.containers, self.run):
            # A container's root (an unprivileged id on the host) must be able to walk
            # to its root file system and state: search permission, nothing more.
            if os.stat(d).st_mode & 0o011 != 0o011:
                os.chmod(d, os.stat(d).st_mode | 0o011)

    def container_dir(self, cid: str) -> str:
        return os.path.join(self.containers, cid)

    def shim_dir(self, cid: str) -> str:
        # Short: the control socket inside must fit a unix socket path (108 bytes).
        return os.path.join(self.shims, cid[:16])
