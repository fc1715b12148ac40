"""Where hutch-runtime keeps what it knows of each container: <root>/<id>/.

    state.json   the facts of the container (pid, its start time, bundle, cgroup,
                 the spec); never its status, which is derived each time
    exec.fifo    exists from create until start; init blocks writing to it
"""

from __future__ import annotations

import json
import os

from hutch.common.atomicfile import write_json_atomic
from hutch.errors import AlreadyExists, InvalidArgument, NotFound

DEFAULT_ROOT = "/run/hutch-runtime"
STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def validate_id(container_id: str) -> None:
    if not container_id or container_id in (".", "..") or len(container_id) > 1024 \
            or not _ID_CHARS.issuperset(container_id):
        raise InvalidArgument(f"invalid container id {container_id!r}: use letters, digits, "
                              "'_', '+', '-' and '.'")


class StateDir:
    def __init__(self, root: str, container_id: str) -> None:
        validate_id(container_id)
        self.root = root
        self.id = container_id
        self.path = os.path.join(root, container_id)

    @property
    def state_file(self) -> str:
        return os.path.join(self.path, STATE_FILE)

    @property
    def fifo(self) -> str:
        return os.path.join(self.path, EXEC_FIFO)

    def create(self) -> None:
        """Claim the id; refuse one that exists."""
        os.makedirs(self.root, mode=0o711, exist_ok=True)
        try:
            os.mkdir(self.path, 0o711)
        except FileExistsError:
            raise AlreadyExists(f"container with id {self.id} already exists") from None
        os.chmod(self.path, 0o711)  # init may run as any user and must reach the fifo
        os.mkfifo(self.fifo, 0o622)
        os.chmod(self.fifo, 0o622)

    def exists(self) -> bool:
        return os.path.isdir(self.path)

    def load(self) -> dict:
        try:
            with open(self.state_file, "rb") as f:
                return json.loads(f.read())
        except FileNotFoundError:
            if os.path.isdir(self.path):
                return {"id": self.id, "pid": 0, "creating": True}
            raise NotFound(f"container {self.id} does not exist") from None

    def save(self, record: dict) -> None:
        write_json_atomic(self.state_file, record, 0o600)

    def remove(self) -> None:
        for name in os.listdir(self.path) if os.path.isdir(self.path) else []:
            os.unlink(os.path.join(self.path, name))
        try:
            os.rmdir(self.path)
        except FileNotFoundError:
            pass


def list_ids(root: str) -> list[str]:
    try:
        return sorted(n for n in os.listdir(root) if os.path.isdir(os.path.join(root, n)))
    except FileNotFoundError:
        return []
