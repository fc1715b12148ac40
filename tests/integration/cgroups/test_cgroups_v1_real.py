"""The v1 manager on this host's real cgroup v1 hierarchies (root, legacy or hybrid).

Every test works below our own cgroup, under a parent named hutch-test-<random>,
and the ``cg`` fixture kills, reaps and removes everything it made, also when the
test fails.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hutch.cgroups import detect_mode, load_manager, new_manager
from hutch.cgroups.mode import parse_proc_cgroup, read_own
from hutch.cgroups.tree import remove_dirs, wait_until
from hutch.cgroups.v1.manager import V1Manager
from hutch.errors import HutchError, SystemFailure


def _host_mode() -> str:
    try:
        return detect_mode()
    except HutchError as e:
        return f"none ({e})"


_MODE = _host_mode()
pytestmark = [
    pytest.mark.root,
    pytest.mark.cgroup_v1,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create cgroups"),
    pytest.mark.skipif(_MODE not in ("legacy", "hybrid"),
                       reason=f"needs a cgroup v1 host (legacy or hybrid), this one is {_MODE}"),
]

PR_SET_CHILD_SUBREAPER = 36


def _subreaper(on: bool) -> None:
    from hutch.linux.syscalls import prctl
    prctl(PR_SET_CHILD_SUBREAPER, int(on))


class Cgroups:
    """Managers and processes of one test; ``cleanup()`` undoes all of it."""

    def __init__(self) -> None:
        self.top = f"hutch-test-{secrets.token_hex(4)}"
        self.managers: list[V1Manager] = []
        self.procs: list[subprocess.Popen[bytes]] = []
        self.reaping = False

    def manager(self, sub: str = "c1") -> V1Manager:
        m = new_manager(f"{self.top}/{sub}", sub.rsplit("/", 1)[-1])
        assert isinstance(m, V1Manager)
        self.managers.append(m)
        return m

    def spawn(self, code: str, *args: str, stdin: int | None = None) -> subprocess.Popen[bytes]:
        p = subprocess.Popen([sys.executable, "-c", code, *args], stdin=stdin)
        self.procs.append(p)
        return p

    def adopt_orphans(self) -> None:
        """Become the subreaper, so grandchildren we cause are ours to reap, not PID 1's."""
        _subreaper(True)
        self.reaping = True

    def top_dirs(self) -> list[str]:
        """Our hutch-test-<random> directory in every hierarchy."""
        dirs = set()
        for m in self.managers:
            for d in m.paths.values():
                while d != "/" and os.path.basename(d) != self.top:
                    d = os.path.dirname(d)
                if d != "/":
                    dirs.add(d)
        return sorted(dirs)

    def cleanup(self) -> None:
        errors: list[BaseException] = []
        for m in self.managers:
            try:
                if m.exists():
                    if m.is_frozen():
                        m.thaw()
                    m.kill_all(signal.SIGKILL)
            except BaseException as e:  # noqa: BLE001 - keep cleaning, report at the end
                errors.append(e)
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired as e:
                errors.append(e)
        if self.reaping:
            self._reap_orphans()
            _subreaper(False)
        try:
            remove_dirs(self.top_dirs(), timeout=10)
        except BaseException as e:  # noqa: BLE001
            errors.append(e)
        if errors:
            raise errors[0]

    def _reap_orphans(self) -> None:
        """Reap the grandchildren that were handed to us, until none turn up for a while.

        (Other fixtures may have live children, so "no child left" may never come.)
        """
        for m in self.managers:
            wait_until(lambda m=m: not m.pids(), 10)  # type: ignore[misc]
        quiet = 0
        while quiet < 5:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid:
                quiet = 0
            else:
                quiet += 1
                time.sleep(0.02)


@pytest.fixture
def cg() -> Iterator[Cgroups]:
    c = Cgroups()
    try:
        yield c
    finally:
        c.cleanup()
        for d in c.top_dirs():
            assert not os.path.exists(d), f"{d} left behind"


COUNTER = """
import os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o600)
n = 0
while True:
    n += 1
    os.pwrite(fd, b"%012d" % n, 0)
    time.sleep(0.005)
"""


def _counter(path: str) -> int:
    with open(path, "rb") as f:
        raw = f.read(12)
    return int(raw) if raw.strip() else 0


def _own_by_id() -> dict[int, str]:
    """Our own cgroup per hierarchy id."""
    return {e.hierarchy_id: e.path for e in read_own()}


def test_create_and_add_pid_in_every_hierarchy(cg: Cgroups) -> None:
    m = cg.manager()
    m.create()
    m.create()  # idempotent
    assert m.exists()
    cpuset_dir = m.paths["cpuset"]
    parent_cpus = Path(os.path.dirname(os.path.dirname(cpuset_dir)), "cpuset.cpus").read_text()
    assert Path(cpuset_dir, "cpuset.cpus").read_text() == parent_cpus

    p = cg.spawn("import time; time.sleep(100)")
    m.add_pid(p.pid)
    own = _own_by_id()
    with open(f"/proc/{p.pid}/cgroup") as f:
        lines = parse_proc_cgroup(f.read())
    assert lines, "no cgroup lines"
    for line in lines:
        expected = own[line.hierarchy_id].rstrip("/") + f"/{cg.top}/c1"
        assert line.path == expected, f"hierarchy {line.hierarchy_id} {line.controllers}"
    freezer_own = next(e.path for e in read_own() if "freezer" in e.controllers)
    assert m.path == freezer_own.rstrip("/") + f"/{cg.top}/c1"
    assert m.pids() == [p.pid]


def test_freeze_stops_progress_and_thaw_resumes(cg: Cgroups, tmp_path: Path) -> None:
    m = cg.manager()
    m.create()
    counter = os.path.join(tmp_path, "counter")
    p = cg.spawn(COUNTER, counter)
    m.add_pid(p.pid)
    assert wait_until(lambda: os.path.exists(counter) and _counter(counter) > 5, 10)

    assert not m.is_frozen()
    m.freeze()
    assert m.is_frozen()
    assert Path(m.paths["freezer"], "freezer.state").read_text().strip() == "FROZEN"
    frozen_at = _counter(counter)
    time.sleep(0.3)
    assert _counter(counter) == frozen_at, "the process kept counting while frozen"

    m.thaw()
    assert not m.is_frozen()
    assert wait_until(lambda: _counter(counter) > frozen_at + 5, 10), "no progress after thaw"


def test_pids_lists_forked_children_and_subcgroups(cg: Cgroups) -> None:
    m = cg.manager()
    m.create()
    p = cg.spawn("import os, sys, time\nsys.stdin.readline()\nos.fork()\ntime.sleep(100)",
                 stdin=subprocess.PIPE)
    cg.adopt_orphans()
    m.add_pid(p.pid)
    assert p.stdin is not None
    p.stdin.write(b"go\n")
    p.stdin.flush()
    assert wait_until(lambda: len(m.pids()) == 2, 10), m.pids()
    child = next(pid for pid in m.pids() if pid != p.pid)
    with open(f"/proc/{child}/status") as f:
        assert f"PPid:\t{p.pid}\n" in f.read()

    inner = cg.manager("c1/inner")
    inner.create()
    inner.add_pid(child)
    assert m.pids() == sorted([p.pid, child])
    assert m.pids(recursive=False) == [p.pid]
    assert inner.pids() == [child]

    state = json.loads(json.dumps(m.state()))
    again = load_manager(state)
    assert again.version == 1 and again.path == m.path
    assert again.pids() == m.pids()


FORKER = """
import os, time
while True:
    if os.fork() == 0:
        time.sleep(100)
        os._exit(0)
    time.sleep(0.01)
"""


def test_kill_all_sigkill_kills_a_forking_process(cg: Cgroups) -> None:
    m = cg.manager()
    m.create()
    cg.adopt_orphans()
    p = cg.spawn("import sys; sys.stdin.readline()\n" + FORKER, stdin=subprocess.PIPE)
    m.add_pid(p.pid)
    assert p.stdin is not None
    p.stdin.write(b"go\n")
    p.stdin.flush()
    assert wait_until(lambda: len(m.pids()) > 5, 10)

    m.kill_all(signal.SIGKILL)
    assert p.wait(timeout=10) == -signal.SIGKILL
    assert wait_until(lambda: not m.pids(), 5), f"left alive: {m.pids()}"
    assert not m.is_frozen()  # thawed again, or the dead could not die


def test_kill_all_other_signal(cg: Cgroups) -> None:
    m = cg.manager()
    m.create()
    p = cg.spawn("import time; time.sleep(100)")
    m.add_pid(p.pid)
    m.kill_all(signal.SIGTERM)
    assert p.wait(timeout=10) == -signal.SIGTERM
    assert not m.is_frozen()


def test_kill_all_sigkill_on_a_paused_cgroup(cg: Cgroups) -> None:
    m = cg.manager()
    m.create()
    p = cg.spawn("import time; time.sleep(100)")
    m.add_pid(p.pid)
    m.freeze()
    m.kill_all(signal.SIGKILL)  # delete --force of a paused container
    assert p.wait(timeout=10) == -signal.SIGKILL
    assert not m.is_frozen()
    m.remove()
    assert not m.exists()


def test_remove_leaves_nothing(cg: Cgroups) -> None:
    m = cg.manager()
    m.create()
    cg.manager("c1/nested/deeper").create()  # cgroups the container made itself
    p = cg.spawn("import time; time.sleep(100)")
    m.add_pid(p.pid)

    with pytest.raises(SystemFailure, match="remove cgroup .*still busy.*" + str(p.pid)):
        m.remove(timeout=0.2)

    m.kill_all(signal.SIGKILL)
    p.wait(timeout=10)
    m.remove()
    for d in set(m.paths.values()):
        assert not os.path.exists(d), d
        assert os.path.isdir(os.path.dirname(d))  # the parent is not the manager's to remove
    assert not m.exists()
    assert not m.is_frozen()
    assert m.pids() == []
    m.remove()  # gone already: fine
