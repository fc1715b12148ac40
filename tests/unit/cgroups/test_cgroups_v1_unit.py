"""v1 pieces that need no kernel: cpuset inheritance, the freezer loop, manager edges."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from hutch.cgroups import files
from hutch.cgroups.v1 import cpuset, freezer
from hutch.cgroups.v1.manager import V1Manager
from hutch.errors import SystemFailure, Unsupported


def test_cpuset_inherit_copies_only_empty_values(tmp_path: Path) -> None:
    (tmp_path / "cpuset.cpus").write_text("0-1\n")
    (tmp_path / "cpuset.mems").write_text("0\n")
    child = tmp_path / "c"
    child.mkdir()
    (child / "cpuset.cpus").write_text("\n")
    (child / "cpuset.mems").write_text("")
    cpuset.inherit(str(child))
    assert (child / "cpuset.cpus").read_text().startswith("0-1")
    assert (child / "cpuset.mems").read_text() == "0"


def test_cpuset_inherit_noprefix(tmp_path: Path) -> None:
    (tmp_path / "cpus").write_text("3\n")
    (tmp_path / "mems").write_text("0\n")
    child = tmp_path / "c"
    child.mkdir()
    (child / "cpus").write_text("")
    (child / "mems").write_text("1")
    cpuset.inherit(str(child))
    assert (child / "cpus").read_text() == "3"
    assert (child / "mems").read_text() == "1"  # already set: kept


def test_freezer_waits_for_frozen(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "freezer.state"
    state.write_text("THAWED\n")
    reads = {"n": 0}
    writes: list[str] = []

    def write(path: str, value: str) -> None:
        writes.append(value)

    def read(path: str) -> str:
        reads["n"] += 1
        return "FROZEN" if reads["n"] > 3 else "FREEZING"

    monkeypatch.setattr(files, "write", write)
    monkeypatch.setattr(files, "read", read)
    freezer.freeze(str(tmp_path), timeout=5)
    assert set(writes) == {"FROZEN"} and len(writes) >= 3  # re-written while FREEZING


def test_freezer_timeout_thaws_and_names_file(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    writes: list[str] = []
    monkeypatch.setattr(files, "write", lambda path, value: writes.append(value))
    monkeypatch.setattr(files, "read", lambda path: "FREEZING")
    with pytest.raises(SystemFailure) as exc:
        freezer.freeze(str(tmp_path), timeout=0.05)
    assert exc.value.errno == errno.ETIMEDOUT
    assert f"{tmp_path}/freezer.state still reads FREEZING" in str(exc.value)
    assert writes[-1] == "THAWED"


def test_freezer_state_of_missing_cgroup(tmp_path: Path) -> None:
    assert freezer.state(str(tmp_path / "gone")) is None


def test_manager_without_freezer(tmp_path: Path) -> None:
    m = V1Manager({"memory": str(tmp_path / "m")}, "/x")
    assert not m.is_frozen()
    with pytest.raises(Unsupported, match="freezer"):
        m.freeze()
    assert m.pids() == []
    assert not m.exists()


def test_manager_needs_a_hierarchy() -> None:
    with pytest.raises(Unsupported):
        V1Manager({}, "/x")


def test_create_rolls_back_when_a_hierarchy_fails(tmp_path: Path) -> None:
    ok = tmp_path / "a"
    ok.mkdir()
    blocked = tmp_path / "file"
    blocked.write_text("")  # mkdir below a regular file fails with ENOTDIR
    m = V1Manager({"cpu": str(ok / "x/y"), "pids": str(blocked / "y")}, "/x/y")
    with pytest.raises(SystemFailure, match=f"create cgroup {blocked}/y"):
        m.create()
    assert not (ok / "x").exists()


def test_remove_dirs_tries_every_hierarchy(tmp_path: Path) -> None:
    from hutch.cgroups.tree import remove_dirs
    stuck = tmp_path / "stuck"
    stuck.mkdir()
    (stuck / "file").write_text("")  # rmdir: ENOTEMPTY, not retried
    fine = tmp_path / "fine"
    (fine / "child").mkdir(parents=True)
    with pytest.raises(SystemFailure, match=f"remove cgroup {stuck}:") as exc:
        remove_dirs([str(stuck), str(fine)], timeout=1)
    assert exc.value.errno == errno.ENOTEMPTY
    assert not fine.exists()


def test_kill_goes_on_when_the_freeze_does_not_complete(monkeypatch: pytest.MonkeyPatch) -> None:
    from hutch.cgroups import kill
    signalled: list[list[int]] = []
    pids = [[4242], []]

    def freeze() -> None:
        raise SystemFailure(errno.ETIMEDOUT, "freeze: stuck")

    monkeypatch.setattr(kill, "signal_pids", lambda p, sig: signalled.append(list(p)))
    kill.signal_all(9, lambda: pids.pop(0) if pids else [], (lambda: False, freeze, lambda: None),
                    "/x")
    assert signalled[0] == [4242]
