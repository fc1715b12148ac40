"""Garbage collection of the content store: mark from names and leases, sweep the rest.

Mark: every image's target, and everything reachable from it (an index's
manifests, a manifest's config and layers), plus every blob held by a live
lease. Sweep: delete each blob that was not marked. Stale ingests (untouched
for a day, nobody writing) go too.

Writers that commit blobs before a name points at them (imports, pulls) hold
the store's lock shared (``store_lock(content, exclusive=False)``) or a lease;
gc takes it exclusively, so it never sweeps a blob between its commit and the
name that keeps it.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from hutch.common.digest import Digest
from hutch.errors import Conflict
from hutch.images.content import STALE_INGEST, ContentStore
from hutch.images.metadata import MetadataStore
from hutch.images.walk import walk

LOCK_NAME = "gc.lock"


@contextmanager
def store_lock(content: ContentStore, exclusive: bool, timeout: float = 60.0) -> Iterator[None]:
    """The store-wide lock: shared for writers that add blobs, exclusive for gc."""
    fd = os.open(os.path.join(content.root, LOCK_NAME), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                 0o600)
    try:
        op = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, op | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise Conflict(f"the content store {content.root} is busy ("
                                   f"{'garbage collection' if not exclusive else 'a writer'} "
                                   f"holds it for more than {timeout:.0f}s); try again") from None
                time.sleep(0.05)
        yield
    finally:
        os.close(fd)


@dataclass
class GCResult:
    marked: int = 0
    removed: list[Digest] = field(default_factory=list)
    freed: int = 0  # bytes
    ingests_removed: int = 0
    dry_run: bool = False


def mark(content: ContentStore, meta: MetadataStore) -> set[Digest]:
    """Every digest reachable from a name or held by a lease."""
    targets, leased = meta.roots()
    keep = set(leased)
    for desc in walk(content, targets, missing_ok=True):
        keep.add(desc.digest)
    return keep


def collect(content: ContentStore, meta: MetadataStore, *, dry_run: bool = False,
            min_age: float = 0.0, ingest_age: float = STALE_INGEST,
            timeout: float = 60.0) -> GCResult:
    """Delete every blob that nothing references (and that is older than ``min_age``s)."""
    result = GCResult(dry_run=dry_run)
    with store_lock(content, exclusive=True, timeout=timeout):
        keep = mark(content, meta)
        result.marked = len(keep)
        now = time.time()
        for info in content.walk():
            if info.digest in keep or now - info.created < min_age:
                continue
            if not dry_run:
                try:
                    content.delete(info.digest)
                except LookupError:
                    continue  # another gc got there first
            result.removed.append(info.digest)
            result.freed += info.size
        if not dry_run:
            result.ingests_removed = content.clean_ingests(ingest_age)
    return result
