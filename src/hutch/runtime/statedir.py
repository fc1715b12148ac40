"""Where hutch-runtime keeps what it knows of each container: <root>/<id>/.

    state.json   the facts of the container (pid, its start time, bundle, cgroup,
                 the spec); never its status, which is derived each time
    exec.fifo    exists from create until start; init blocks writing to it
"""

from __future__ import annotations

import json
import os
import stat

from hutch.common.atomicfile import write_json_atomic
from hutch.errors import AlreadyExists, InvalidArgument, NotFound

DEFAULT_ROOT = "/run/hutch-runtime"
STATE_FILE = "state.json"
EXEC_FIFO = "exec.fifo"
_ID_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_+-.")


def default_root(environ: dict[str, str] | None = None) -> str:
    """Where state goes without --root: HUTCH_RUNTIME_ROOT; for root /run/hutch-runtime;
    for another user, as runc, $XDG_RUNTIME_DIR/hutch-runtime, else
    /run/user/UID/hutch-runtime when that directory is the user's, else
    /tmp/hutch-runtime-UID (checked to be the user's own when it is used)."""
    env = os.environ if environ is None else environ
    if env.get("HUTCH_RUNTIME_ROOT"):
        return env["HUTCH_RUNTIME_ROOT"]
    uid = os.geteuid()
    if uid == 0:
        return DEFAULT_ROOT
    if env.get("XDG_RUNTIME_DIR"):
        return os.path.join(env["XDG_RUNTIME_DIR"], "hutch-runtime")
    run_user = f"/run/user/{uid}"
    try:
        if os.stat(run_user).st_uid == uid:
            return os.path.join(run_user, "hutch-runtime")
    except OSError:
        pass
    return f"/tmp/hutch-runtime-{uid}"


def _ensure_root(root: str) -> None:
    """Make the state root; a non-root user's must be its own and closed to others
    (it may be in /tmp, where anyone could have made it first)."""
    uid = os.geteuid()
    os.makedirs(root, mode=0o711 if uid == 0 else 0o700, exist_ok=True)
    if uid != 0:
        st = os.lstat(root)
        if not stat.S_ISDIR(st.st_mode) or st.st_uid != uid or st.st_mode & 0o022:
            raise InvalidArgument(f"state directory {root} is not a directory of yours that "
                                  "only you can write to; remove it or give --root")


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
        _ensure_root(self.root)
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
