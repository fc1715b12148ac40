"""Helpers for the runtime's integration tests: run a bundle, start one detached,
wait for something without sleeping longer than needed."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hutch.testing.bundle import Bundle, make_bundle
from hutch.testing.cleanup import mounts_below, pid_alive
from hutch.testing.runtime import RuntimeCLI

T = TypeVar("T")


class Ctr:
    """Drive one runtime (the ``runtime`` fixture) for the common cases of these tests.

    ``cid`` defaults to the test's ``container_id``; a second container of the
    same test passes its own id (e.g. ``ctr.id + "-b"``).
    """

    def __init__(self, runtime: RuntimeCLI, container_id: str) -> None:
        self.runtime = runtime
        self.id = container_id

    def run(self, b: Bundle, cid: str | None = None, **kw: Any) -> subprocess.CompletedProcess[str]:
        """``run`` in the foreground; returns whatever it gives (no check)."""
        return self.runtime.run("run", "--bundle", b.path, cid or self.id, check=False, **kw)

    def output(self, b: Bundle, cid: str | None = None) -> str:
        """``run`` in the foreground, which must exit 0; its stdout."""
        res = self.run(b, cid)
        assert res.returncode == 0, (f"run exited {res.returncode}\nstdout: {res.stdout!r}\n"
                                     f"stderr: {res.stderr!r}")
        return res.stdout

    def create(self, b: Bundle, cid: str | None = None, *extra: str) -> int:
        """``create`` (init left blocked); returns the init's pid."""
        cid = cid or self.id
        self.runtime.run("create", *extra, "--bundle", b.path, cid)
        state = self.runtime.state(cid)
        assert state["status"] == "created", state
        return int(state["pid"])

    def run_detached(self, b: Bundle, cid: str | None = None) -> int:
        """``run -d``; returns the container process's pid."""
        cid = cid or self.id
        self.runtime.run("run", "-d", "--bundle", b.path, cid)
        return int(self.runtime.state(cid)["pid"])

    def wait_stopped(self, cid: str | None = None, timeout: float = 5.0) -> dict[str, Any]:
        cid = cid or self.id
        return wait_until(lambda: (s := self.runtime.state(cid))["status"] == "stopped" and s,
                          timeout, f"{cid} to stop")

    def features(self) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.runtime.run("features").stdout)
        return result

    # the module's helpers, so tests need not import this conftest
    wait_until = staticmethod(lambda *a, **kw: wait_until(*a, **kw))
    wait_file = staticmethod(lambda *a, **kw: wait_file(*a, **kw))
    wait_dead = staticmethod(lambda *a, **kw: wait_dead(*a, **kw))


def wait_until(predicate: Callable[[], T], timeout: float = 5.0, what: str = "") -> T:
    """Poll ``predicate`` until it returns something true; return it. Fails after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or predicate}")
        time.sleep(0.01)


def wait_file(path: str | os.PathLike[str], timeout: float = 5.0) -> str:
    """Wait until ``path`` exists and ends with a newline (written completely); its text."""
    def ready() -> str | None:
        try:
            with open(path) as f:
                text = f.read()
        except FileNotFoundError:
            return None
        return text if text.endswith("\n") else None
    return wait_until(ready, timeout, f"{path} to be written")


def wait_dead(pid: int, timeout: float = 5.0) -> None:
    wait_until(lambda: not pid_alive(pid), timeout, f"pid {pid} to end")


@pytest.fixture
def ctr(runtime: RuntimeCLI, container_id: str) -> Ctr:
    return Ctr(runtime, container_id)



@pytest.fixture
def open_bundle(request: pytest.FixtureRequest,
                busybox_rootfs: Path) -> Iterator[Callable[..., Bundle]]:
    """Like ``bundle``, but in a directory every user may traverse (mode 0711 up to /tmp):
    a container whose root is an unprivileged uid on the host (user namespace) must
    reach its rootfs, which pytest's 0700 tmp_path forbids.

    At teardown the containers of ``runtime`` are deleted first, then the
    directories removed; a mount left below them fails the test.
    """
    top = Path(tempfile.mkdtemp(prefix="hutch-open-"))
    top.chmod(0o711)
    made: list[Path] = []

    def factory(args: list[str] | None = None, **overrides: Any) -> Bundle:
        path = top / f"bundle{len(made)}"
        made.append(path)
        b = make_bundle(path, busybox_rootfs, args, **overrides)
        path.chmod(0o711)
        return b

    yield factory
    if "runtime" in request.fixturenames:  # pytest tears us down before ``runtime``
        rt: RuntimeCLI = request.getfixturevalue("runtime")
        for cid in rt.list_ids():
            rt.run("delete", "--force", cid, check=False)
    leaked = mounts_below([top])
    for target in sorted(leaked, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", target], check=False, capture_output=True)
    shutil.rmtree(top, ignore_errors=True)
    if leaked:
        pytest.fail(f"mounts leaked into the host's mount namespace: {leaked}", pytrace=False)
