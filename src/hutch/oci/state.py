"""The OCI state document, as `runc state` prints it.

Key order and formats follow runc: "created" is RFC 3339 in UTC with the
nanoseconds Go's RFC3339Nano keeps (trailing zeros dropped, no fraction when
it is zero), "owner" is always there, "annotations" only when non-empty, and
the pid is 0 once the container has stopped.
"""

from __future__ import annotations

import time

from hutch import OCI_VERSION
from hutch.errors import InvalidArgument


class Status:
    """The container statuses of the runtime-spec (plain strings)."""

    CREATING = "creating"
    CREATED = "created"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"

    ALL: tuple[str, ...] = (CREATING, CREATED, RUNNING, PAUSED, STOPPED)


def format_created(ns: int) -> str:
    """Nanoseconds since the epoch as RFC 3339 UTC: "2024-01-02T03:04:05.123456789Z"."""
    seconds, nanos = divmod(ns, 1_000_000_000)
    text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
    if nanos:
        text += "." + f"{nanos:09d}".rstrip("0")
    return text + "Z"


def state_document(id: str, status: str, pid: int, bundle: str,
                   annotations: dict[str, str] | None, created: int | str | None = None,
                   *, rootfs: str = "", owner: str = "",
                   version: str = OCI_VERSION) -> dict[str, object]:
    """The state of one container as a JSON-ready dict.

    ``created`` is nanoseconds since the epoch, an already formatted string, or
    None for now. ``rootfs`` is the absolute root filesystem path; ``version``
    the ociVersion of the container's config.
    """
    if status not in Status.ALL:
        choices = ", ".join(Status.ALL)
        raise InvalidArgument(f"unknown container status {status!r} (one of: {choices})")
    if created is None:
        created = time.time_ns()
    doc: dict[str, object] = {
        "ociVersion": version,
        "id": id,
        "pid": 0 if status == Status.STOPPED else pid,
        "status": status,
        "bundle": bundle,
        "rootfs": rootfs,
        "created": created if isinstance(created, str) else format_created(created),
    }
    if annotations:
        doc["annotations"] = dict(annotations)
    doc["owner"] = owner
    return doc
