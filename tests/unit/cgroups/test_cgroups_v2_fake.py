"""The v2 manager against a fake cgroup2 tree in a temporary directory.

The fake keeps real directories and real files (so os.walk, isdir and exists behave)
and imitates the kernel where it matters: new cgroups get their control files,
cgroup.controllers follows the parent's subtree_control, subtree_control takes
"+ctrl" tokens and refuses domain controllers in a "busy" cgroup (the
no-internal-processes rule), cgroup.freeze updates cgroup.events, cgroup.procs
moves pids, rmdir says EBUSY while a cgroup has processes.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import threading
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from hutch.cgroups import NullCgroupManager, build_manager, files, kill, load_manager, tree
from hutch.cgroups.mode import parse_mountinfo, parse_proc_cgroup
from hutch.cgroups.v2.manager import V2Manager
from hutch.errors import InvalidArgument, SystemFailure, Unsupported

CONTROL = ("cgroup.controllers", "cgroup.subtree_control", "cgroup.procs", "cgroup.freeze",
           "cgroup.events", "cgroup.type", "cgroup.kill")
DOMAIN = {"memory", "io"}  # the others here (cpu, pids) are threaded-capable


class FakeCgroup2:
    def __init__(self, root: Path, controllers: tuple[str, ...] = ("cpu", "io", "memory", "pids")):
        self.root = str(root)
        self.writes: list[tuple[str, str]] = []
        self.busy: set[str] = set()  # cgroups that hold processes of their own (for subtree_control)
        self.stuck: set[str] = set()  # cgroups whose freeze never completes
        self.kernel_without: set[str] = set()  # control files this "kernel" lacks
        self.type_of: dict[str, str] = {}  # cgroup dir -> cgroup.type of new cgroups below it
        root.mkdir()
        self._populate(self.root, controllers)

    # -- helpers
    def _file(self, d: str, name: str) -> str:
        return os.path.join(d, name)

    def _set(self, d: str, name: str, value: str) -> None:
        Path(self._file(d, name)).write_text(value)

    def _get(self, d: str, name: str) -> str:
        return Path(self._file(d, name)).read_text()

    def _populate(self, d: str, controllers: tuple[str, ...] | list[str]) -> None:
        values = {"cgroup.controllers": " ".join(controllers), "cgroup.subtree_control": "",
                  "cgroup.procs": "", "cgroup.freeze": "0",
                  "cgroup.events": "populated 0\nfrozen 0\n",
                  "cgroup.type": self.type_of.get(os.path.dirname(d), "domain"),
                  "cgroup.kill": ""}
        for name, value in values.items():
            if name not in self.kernel_without:
                self._set(d, name, value)

    def mkcg(self, rel: str) -> str:
        """Make a cgroup as if someone else (e.g. systemd) had."""
        d = self.root
        for part in rel.strip("/").split("/"):
            d = os.path.join(d, part)
            if not os.path.isdir(d):
                self.mkdir(d)
        return d

    def procs(self, d: str) -> list[int]:
        return [int(p) for p in self._get(d, "cgroup.procs").split()]

    # -- the "kernel"
    def mkdir(self, path: str, mode: int = 0o777) -> None:
        os.mkdir(path, mode)
        self._populate(path, self._get(os.path.dirname(path), "cgroup.subtree_control").split())

    def rmdir(self, path: str) -> None:
        if not os.path.isdir(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        if any(e.is_dir() for e in os.scandir(path)):
            raise OSError(errno.ENOTEMPTY, os.strerror(errno.ENOTEMPTY), path)
        if self.procs(path):
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
        for name in os.listdir(path):
            os.unlink(os.path.join(path, name))
        os.rmdir(path)

    def write(self, path: str, value: str) -> None:
        self.writes.append((os.path.relpath(path, self.root), value))
        d, name = os.path.split(path)
        try:
            if not os.path.exists(path):
                raise OSError(errno.ENOENT, "No such file or directory")
            if name == "cgroup.subtree_control":
                self._subtree_control(d, value)
            elif name == "cgroup.procs":
                pid = int(value)
                for top, _, names in os.walk(self.root):
                    if "cgroup.procs" in names:
                        self._set(top, "cgroup.procs",
                                  "".join(f"{p}\n" for p in self.procs(top) if p != pid))
                self._set(d, "cgroup.procs", "".join(f"{p}\n" for p in self.procs(d) + [pid]))
            elif name == "cgroup.freeze":
                self._set(d, name, value)
                frozen = value == "1" and d not in self.stuck
                self._set(d, "cgroup.events", f"populated 0\nfrozen {int(frozen)}\n")
            else:
                self._set(d, name, value)
        except OSError as e:
            raise SystemFailure(e.errno or errno.EIO, f"write '{value}' to {path}: {e.strerror}") from e

    def _subtree_control(self, d: str, value: str) -> None:
        available = self._get(d, "cgroup.controllers").split()
        enabled = self._get(d, "cgroup.subtree_control").split()
        for token in value.split():
            ctrl = token[1:]
            if ctrl not in available:
                raise OSError(errno.ENOENT, "No such file or directory")
            if token[0] == "+" and ctrl in DOMAIN and d in self.busy:
                raise OSError(errno.EBUSY, "Device or resource busy")
        for token in value.split():
            ctrl = token[1:]
            if token[0] == "+" and ctrl not in enabled:
                enabled.append(ctrl)
            elif token[0] == "-" and ctrl in enabled:
                enabled.remove(ctrl)
        self._set(d, "cgroup.subtree_control", " ".join(enabled))
        for entry in os.scandir(d):
            if entry.is_dir():
                self._set(entry.path, "cgroup.controllers", " ".join(enabled))


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeCgroup2:
    fs = FakeCgroup2(tmp_path / "cgroup")
    monkeypatch.setattr(files, "write", fs.write)
    real_os = os
    proxy = types.SimpleNamespace(**{k: getattr(real_os, k) for k in dir(real_os)
                                     if not k.startswith("__")})
    proxy.mkdir = fs.mkdir
    proxy.rmdir = fs.rmdir
    monkeypatch.setattr(tree, "os", proxy)
    return fs


def manager(fs: FakeCgroup2, cgroups_path: str | None, own: str = "/") -> V2Manager:
    mountinfo = f"30 20 0:30 / {fs.root} rw - cgroup2 cgroup2 rw\n"
    m = build_manager(cgroups_path, "abc", parse_mountinfo(mountinfo),
                      parse_proc_cgroup(f"0::{own}\n"))
    assert isinstance(m, V2Manager)
    return m


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    p = subprocess.Popen(["sleep", "100"])
    yield p
    p.kill()
    p.wait()


def test_create_enables_controllers_from_own_cgroup_down(fake: FakeCgroup2) -> None:
    fake.mkcg("user.slice/me")
    fake._set(fake.root, "cgroup.subtree_control", "cpu io memory pids")  # systemd did that
    fake._set(fake.mkcg("user.slice"), "cgroup.subtree_control", "cpu io memory pids")
    fake._set(os.path.join(fake.root, "user.slice/me"), "cgroup.controllers", "cpu io memory pids")
    m = manager(fake, "hutch/abc", own="/user.slice/me")
    m.create()
    leaf = os.path.join(fake.root, "user.slice/me/hutch/abc")
    assert m.paths == {"unified": leaf}
    assert m.path == "/user.slice/me/hutch/abc"
    assert fake._get(leaf, "cgroup.controllers").split() == ["cpu", "io", "memory", "pids"]
    assert fake._get(leaf, "cgroup.subtree_control") == ""  # the leaf holds processes: no
    touched = [p for p, _ in fake.writes]
    assert "cgroup.subtree_control" not in touched  # above our own cgroup: never
    assert "user.slice/cgroup.subtree_control" not in touched
    assert ("user.slice/me/cgroup.subtree_control", "+cpu +io +memory +pids") in fake.writes
    assert ("user.slice/me/hutch/cgroup.subtree_control", "+cpu +io +memory +pids") in fake.writes


def test_create_enables_nothing_in_a_cgroup_that_holds_processes(fake: FakeCgroup2) -> None:
    fake.busy.add(fake.root + "/busy")  # our own cgroup holds processes (ourselves)
    fake._set(fake.root, "cgroup.subtree_control", "cpu io memory pids")
    busy = fake.mkcg("busy")
    fake._set(busy, "cgroup.procs", "4242")
    m = manager(fake, "c", own="/busy")
    m.create()
    # Enabling even cpu or pids there would make every new child "domain invalid".
    assert fake._get(busy, "cgroup.subtree_control").split() == []
    assert fake._get(m.directory, "cgroup.controllers").split() == []


def test_create_is_idempotent(fake: FakeCgroup2) -> None:
    m = manager(fake, "hutch/abc")
    m.create()
    writes = list(fake.writes)
    m.create()
    assert fake.writes == writes  # nothing left to enable, nothing written
    assert m.exists()


def test_create_absolute_starts_at_the_root(fake: FakeCgroup2) -> None:
    m = manager(fake, "/a/b", own="/elsewhere")
    m.create()
    assert m.directory == os.path.join(fake.root, "a/b")
    assert [p for p, _ in fake.writes] == ["cgroup.subtree_control", "a/cgroup.subtree_control"]


def test_create_rolls_back_in_a_threaded_subtree(fake: FakeCgroup2) -> None:
    parent = fake.mkcg("threaded")
    fake.type_of[parent] = "domain invalid"
    m = manager(fake, "/threaded/x")
    with pytest.raises(Unsupported, match="domain invalid"):
        m.create()
    assert not os.path.exists(os.path.join(parent, "x"))  # what create made is gone again
    assert os.path.isdir(parent)  # what it did not make stays


def test_add_pid_and_pids(fake: FakeCgroup2) -> None:
    m = manager(fake, "c")
    m.create()
    m.add_pid(101)
    inner = manager(fake, "c/inner")
    inner.create()
    inner.add_pid(102)
    assert ("c/cgroup.procs", "101") in fake.writes
    assert m.pids() == [101, 102]
    assert m.pids(recursive=False) == [101]
    assert inner.pids() == [102]


def test_pids_of_a_missing_cgroup(fake: FakeCgroup2) -> None:
    assert manager(fake, "nope").pids() == []


def test_add_pid_error_names_file_and_value(fake: FakeCgroup2) -> None:
    m = manager(fake, "never-created")
    with pytest.raises(SystemFailure) as exc:
        m.add_pid(7)
    assert exc.value.errno == errno.ENOENT
    assert str(exc.value).startswith(f"write '7' to {m.directory}/cgroup.procs")


def test_freeze_thaw(fake: FakeCgroup2) -> None:
    m = manager(fake, "c")
    assert not m.is_frozen()  # not created yet
    m.create()
    m.freeze()
    assert m.is_frozen()
    assert fake._get(m.directory, "cgroup.freeze") == "1"
    m.thaw()
    assert not m.is_frozen()


def test_freeze_timeout_names_the_file_and_thaws(fake: FakeCgroup2) -> None:
    m = manager(fake, "c")
    m.create()
    fake.stuck.add(m.directory)
    m.freeze_timeout = 0.05
    with pytest.raises(SystemFailure, match=r"cgroup\.events does not read 'frozen 1'") as exc:
        m.freeze()
    assert exc.value.errno == errno.ETIMEDOUT
    assert fake.writes[-1] == ("c/cgroup.freeze", "0")


def test_freeze_without_kernel_support(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fs = FakeCgroup2(tmp_path / "cg")
    fs.kernel_without = {"cgroup.freeze", "cgroup.kill"}
    monkeypatch.setattr(files, "write", fs.write)
    d = fs.mkcg("old")
    m = V2Manager(d, "/old")
    with pytest.raises(Unsupported, match="Linux 5.2"):
        m.freeze()


def test_kill_all_sigkill_uses_cgroup_kill(fake: FakeCgroup2) -> None:
    m = manager(fake, "c")
    m.create()
    m.kill_all(signal.SIGKILL)
    assert fake.writes[-1] == ("c/cgroup.kill", "1")


def test_kill_all_other_signals_freeze_signal_thaw(fake: FakeCgroup2,
                                                  sleeper: subprocess.Popen[bytes]) -> None:
    m = manager(fake, "c")
    m.create()
    m.add_pid(sleeper.pid)
    m.kill_all(signal.SIGTERM)
    assert sleeper.wait(timeout=5) == -signal.SIGTERM
    freezes = [v for p, v in fake.writes if p == "c/cgroup.freeze"]
    assert freezes == ["1", "0"]
    assert "c/cgroup.kill" not in [p for p, _ in fake.writes]


def test_kill_all_leaves_a_paused_cgroup_paused(fake: FakeCgroup2,
                                                sleeper: subprocess.Popen[bytes]) -> None:
    m = manager(fake, "c")
    m.create()
    m.add_pid(sleeper.pid)
    m.freeze()
    m.kill_all(signal.SIGUSR1)  # stays pending in a real frozen process; sleep dies of it here
    assert m.is_frozen()
    sleeper.wait(timeout=5)


def test_kill_all_sigkill_without_cgroup_kill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             sleeper: subprocess.Popen[bytes]) -> None:
    fs = FakeCgroup2(tmp_path / "cg")
    fs.kernel_without = {"cgroup.kill"}  # Linux 5.2 to 5.13
    monkeypatch.setattr(files, "write", fs.write)
    d = fs.mkcg("c")
    fs.write(os.path.join(d, "cgroup.procs"), str(sleeper.pid))
    V2Manager(d, "/c").kill_all(signal.SIGKILL)
    assert sleeper.wait(timeout=5) == -signal.SIGKILL
    assert [v for p, v in fs.writes if p == "c/cgroup.freeze"] == ["1", "0"]


def test_signal_all_without_freezer_repeats_sigkill(sleeper: subprocess.Popen[bytes]) -> None:
    def alive() -> list[int]:
        return [] if sleeper.poll() is not None else [sleeper.pid]
    kill.signal_all(signal.SIGKILL, alive, None, "test")
    assert sleeper.returncode == -signal.SIGKILL


def test_signal_all_gives_up_on_endless_pids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kill, "KILL_TIMEOUT", 0.05)
    monkeypatch.setattr(kill, "signal_pids", lambda pids, sig: None)
    with pytest.raises(SystemFailure, match="still there after"):
        kill.signal_all(signal.SIGKILL, lambda: [999999], None, "/x")


def test_remove_children_first(fake: FakeCgroup2) -> None:
    m = manager(fake, "hutch/c")
    m.create()
    manager(fake, "hutch/c/a/b").create()  # the container made cgroups of its own
    manager(fake, "hutch/c/d").create()
    m.remove()
    assert not m.exists()
    assert os.path.isdir(os.path.join(fake.root, "hutch"))  # the parent is not ours to remove
    m.remove()  # already gone: fine


def test_remove_waits_for_processes_to_leave(fake: FakeCgroup2) -> None:
    m = manager(fake, "c")
    m.create()
    m.add_pid(4242)
    t = threading.Timer(0.1, lambda: fake._set(m.directory, "cgroup.procs", ""))
    t.start()
    try:
        m.remove(timeout=5)
    finally:
        t.join()
    assert not m.exists()


def test_remove_timeout_names_the_directory(fake: FakeCgroup2) -> None:
    m = manager(fake, "c")
    m.create()
    m.add_pid(4242)
    start = time.monotonic()
    with pytest.raises(SystemFailure) as exc:
        m.remove(timeout=0.1)
    assert time.monotonic() - start < 2
    assert exc.value.errno == errno.EBUSY
    assert str(exc.value).startswith(f"remove cgroup {m.directory}: still busy")
    assert "4242" in str(exc.value)


def test_remove_refuses_a_hierarchy_root(fake: FakeCgroup2, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tree.os, "path", types.SimpleNamespace(
        **{k: getattr(os.path, k) for k in dir(os.path) if not k.startswith("__")}))
    monkeypatch.setattr(tree.os.path, "ismount", lambda p: p == fake.root)
    with pytest.raises(InvalidArgument, match="root of a cgroup hierarchy"):
        V2Manager(fake.root, "/").remove()
    assert os.path.isdir(fake.root)


def test_state_round_trip(fake: FakeCgroup2) -> None:
    m = manager(fake, "hutch/abc")
    m.create()
    m.add_pid(5)
    again = load_manager(json.loads(json.dumps(m.state())))
    assert isinstance(again, V2Manager)
    assert again.version == 2 and again.path == m.path and again.pids() == [5]
    again.create()  # a reloaded manager creates the directory but enables nothing new
    assert isinstance(load_manager(NullCgroupManager().state()), NullCgroupManager)


@pytest.mark.parametrize("bad", [
    [], {"version": 3, "paths": {"unified": "/sys/fs/cgroup/x"}},
    {"version": 2, "paths": {}}, {"version": 2, "paths": {"unified": "relative"}},
    {"version": 2, "paths": {"unified": "/sys/fs/cgroup/../etc"}},
    {"version": 2, "paths": {"unified": "/"}},
    {"version": 2, "paths": {"memory": "/sys/fs/cgroup/memory/x"}},
    {"version": 1, "paths": {"memory": 7}},
    {"version": 1, "path": 3, "paths": {"memory": "/sys/fs/cgroup/memory/x"}},
])
def test_load_manager_refuses_bad_state(bad: object) -> None:
    with pytest.raises(InvalidArgument):
        load_manager(bad)  # type: ignore[arg-type]


def test_null_manager() -> None:
    n = NullCgroupManager()
    n.create()
    n.add_pid(1)
    n.freeze()
    n.thaw()
    n.kill_all(signal.SIGKILL)
    n.remove()
    assert n.pids() == [] and not n.is_frozen() and not n.exists()
    assert n.state() == {"version": 0, "path": "", "paths": {}}
