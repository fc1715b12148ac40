"""Bad input: errors that name the problem, and nothing left behind.

hutch-runtime's messages must name the problem (the field, the id, the state); with
runc (HUTCH_TEST_RUNTIME=runc) its own wording is accepted.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hutch.testing.bundle import Bundle
from hutch.testing.cleanup import cgroup_candidates

BundleFactory = Callable[..., Bundle]


def assert_nothing_left(ctr, cid: str, cgroups_path: str | None = None) -> None:
    assert ctr.runtime.list_ids() == []
    root = Path(ctr.runtime.root)
    if root.is_dir():
        assert not (root / cid).exists(), list(root.iterdir())
    if cgroups_path:
        left = [d for d in cgroup_candidates(cgroups_path) if os.path.isdir(d)]
        assert left == [], left


def failed_create(ctr, bundle_path: Path | str, cid: str | None = None
                  ) -> subprocess.CompletedProcess[str]:
    res = ctr.runtime.run("create", "--bundle", bundle_path, cid or ctr.id, check=False)
    assert res.returncode != 0, res
    assert res.stderr.strip(), "an error must say what went wrong"
    return res


def is_runc(ctr) -> bool:
    return ctr.runtime.name == "runc"


# --- the bundle -------------------------------------------------------------------------------

def test_missing_bundle_directory(ctr, tmp_path: Path) -> None:
    missing = tmp_path / "no-such-bundle"
    res = failed_create(ctr, missing)
    assert str(missing) in res.stderr, res.stderr
    assert_nothing_left(ctr, ctr.id)


def test_bundle_without_config_json(ctr, tmp_path: Path) -> None:
    (tmp_path / "rootfs").mkdir()
    res = failed_create(ctr, tmp_path)
    assert "config.json" in res.stderr, res.stderr
    assert_nothing_left(ctr, ctr.id)


@pytest.mark.parametrize("text", ["{not json", "", "[1, 2]", '{"ociVersion": "1.0.2"'])
def test_malformed_config_json(ctr, bundle: BundleFactory, text: str) -> None:
    b = bundle(["true"])
    b.config_path.write_text(text)
    res = failed_create(ctr, b.path)
    if not is_runc(ctr):  # runc: "invalid character 'n' looking for ..." / "unexpected EOF"
        assert "config.json" in res.stderr, res.stderr
    assert_nothing_left(ctr, ctr.id)


def test_bundle_whose_rootfs_is_missing(ctr, bundle: BundleFactory, cgroups_path: str) -> None:
    b = bundle(["true"], linux={"cgroupsPath": cgroups_path})
    b.config["root"]["path"] = "no-such-rootfs"
    b.write()
    res = failed_create(ctr, b.path)
    assert "no-such-rootfs" in res.stderr, res.stderr
    assert_nothing_left(ctr, ctr.id, cgroups_path)


# --- invalid configs --------------------------------------------------------------------------

def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(c: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        for p in parents:
            c = c[p]
        if value is _DELETE:
            del c[last]
        else:
            c[last] = value
    return change


_DELETE = object()


def _append_namespace(ns: dict[str, str]) -> Callable[[dict[str, Any]], None]:
    return lambda c: c["linux"]["namespaces"].append(ns)


def _drop_namespace(kind: str) -> Callable[[dict[str, Any]], None]:
    def change(c: dict[str, Any]) -> None:
        c["linux"]["namespaces"] = [n for n in c["linux"]["namespaces"] if n["type"] != kind]
    return change


# id: (change, what hutch's error must contain, what runc's must contain; None: runc accepts it)
INVALID = {
    "namespace-type": (_append_namespace({"type": "foo"}), ["linux.namespaces", "foo"],
                       ["foo"]),
    "duplicate-namespace": (_append_namespace({"type": "pid"}), ["linux.namespaces", "pid"],
                            ["duplicated ns"]),
    "empty-args": (_set("process.args", []), ["process.args"], ["args"]),
    "args-not-a-list": (_set("process.args", "sh"), ["process.args"], ["process.args"]),
    "relative-cwd": (_set("process.cwd", "tmp"), ["process.cwd"], ["Cwd"]),
    "no-root": (_set("root", _DELETE), ["root"], ["root"]),
    "no-process": (_set("process", _DELETE), ["process"], ["process"]),
    "uid-not-a-number": (_set("process.user.uid", "x"), ["process.user.uid"],
                         ["process.user.uid"]),
    "device-type": (_set("linux.devices", [{"path": "/dev/x", "type": "z", "major": 1,
                                            "minor": 1}]),
                    ["linux.devices", "z"], ["device type"]),
    "hostname-without-uts": (_drop_namespace("uts"), ["hostname", "uts"], ["hostname", "UTS"]),
    "rlimit-type": (_set("process.rlimits", [{"type": "RLIMIT_FOO", "hard": 1, "soft": 1}]),
                    ["process.rlimits", "RLIMIT_FOO"], ["RLIMIT_FOO"]),
    "mappings-without-userns": (
        _set("linux.uidMappings", [{"containerID": 0, "hostID": 1000, "size": 1}]),
        ["linux.uidMappings", "user"], None),  # runc 1.1 ignores them
    "relative-mount-destination": (
        lambda c: c["mounts"].append({"destination": "rel/x", "type": "tmpfs",
                                      "source": "tmpfs"}),
        ["mounts", "rel/x"], None),  # runc 1.1 warns and accepts it
    "sysctl-not-namespaced": (_set("linux.sysctl", {"foo.bar": "1"}), ["linux.sysctl", "foo.bar"],
                              ["foo.bar"]),
}


@pytest.mark.parametrize("case", list(INVALID))
def test_invalid_config_names_the_field(ctr, bundle: BundleFactory, cgroups_path: str,
                                        case: str) -> None:
    change, hutch_words, runc_words = INVALID[case]
    b = bundle(["true"], linux={"cgroupsPath": cgroups_path})
    change(b.config)
    b.write()
    if is_runc(ctr) and runc_words is None:
        return
    res = failed_create(ctr, b.path)
    for word in (runc_words if is_runc(ctr) else hutch_words):
        assert word in res.stderr, res.stderr
    assert_nothing_left(ctr, ctr.id, cgroups_path)


def test_namespace_path_that_does_not_exist(ctr, bundle: BundleFactory, tmp_path: Path,
                                            cgroups_path: str) -> None:
    missing = tmp_path / "no-such-ns"
    b = bundle(["true"], linux={"cgroupsPath": cgroups_path})
    b.config["linux"]["namespaces"] = [
        {"type": t} for t in ("pid", "ipc", "uts", "mount")] + [
        {"type": "network", "path": str(missing)}]
    b.write()
    res = failed_create(ctr, b.path)
    assert str(missing) in res.stderr, res.stderr
    assert_nothing_left(ctr, ctr.id, cgroups_path)


def test_namespace_path_of_the_wrong_type(ctr, bundle: BundleFactory, cgroups_path: str) -> None:
    b = bundle(["true"], linux={"cgroupsPath": cgroups_path})
    b.config["linux"]["namespaces"] = [
        {"type": t} for t in ("pid", "ipc", "uts", "mount")] + [
        {"type": "network", "path": "/proc/self/ns/uts"}]
    b.write()
    res = failed_create(ctr, b.path)
    if not is_runc(ctr):  # runc: "...setns_ns: failed to setns to /proc/self/ns/uts: ..."
        assert "network" in res.stderr, res.stderr
    assert_nothing_left(ctr, ctr.id, cgroups_path)


def test_unknown_mount_type(ctr, bundle: BundleFactory, cgroups_path: str) -> None:
    b = bundle(["true"], linux={"cgroupsPath": cgroups_path})
    b.config["mounts"].append({"destination": "/x", "type": "nosuchfs", "source": "x"})
    b.write()
    res = failed_create(ctr, b.path)
    assert "/x" in res.stderr, res.stderr
    if not is_runc(ctr):
        assert "nosuchfs" in res.stderr and "/proc/self/fd" not in res.stderr, res.stderr
    assert_nothing_left(ctr, ctr.id, cgroups_path)


# --- ids --------------------------------------------------------------------------------------

@pytest.mark.parametrize("bad_id", ["../escape", "a/b", "", "."])
def test_invalid_container_id(ctr, bundle: BundleFactory, bad_id: str) -> None:
    b = bundle(["true"])
    res = ctr.runtime.run("create", "--bundle", b.path, bad_id, check=False)
    assert res.returncode != 0
    if not is_runc(ctr):
        assert "id" in res.stderr, res.stderr
    assert ctr.runtime.list_ids() == []
    assert not (Path(ctr.runtime.root).parent / "escape").exists()


def test_duplicate_id(ctr, bundle: BundleFactory) -> None:
    first = bundle(["sleep", "60"])
    pid = ctr.create(first)
    second = bundle(["true"])
    res = failed_create(ctr, second.path)
    if is_runc(ctr):
        assert "already exists" in res.stderr, res.stderr
    else:
        assert ctr.id in res.stderr and "exists" in res.stderr, res.stderr
    state = ctr.runtime.state(ctr.id)
    assert (state["status"], state["pid"], state["bundle"]) == ("created", pid, str(first.path))
    assert ctr.runtime.list_ids() == [ctr.id]


@pytest.mark.parametrize("verb", [["start"], ["state"], ["kill"], ["kill", "--all"],
                                  ["delete"], ["pause"], ["resume"], ["ps"],
                                  ["exec", "--", "_ID_", "true"]])
def test_unknown_id(ctr, verb: list[str]) -> None:
    args = [a.replace("_ID_", "no-such-ctr") for a in verb]
    if "no-such-ctr" not in args:
        args.append("no-such-ctr")
    res = ctr.runtime.run(*args, check=False)
    assert res.returncode != 0, res
    if is_runc(ctr):
        assert "does not exist" in res.stderr, res.stderr
    else:
        assert "no-such-ctr" in res.stderr and "does not exist" in res.stderr, res.stderr


def test_delete_force_of_an_unknown_id_succeeds(ctr) -> None:
    assert ctr.runtime.run("delete", "--force", "no-such-ctr", check=False).returncode == 0


# --- the wrong state for the verb -------------------------------------------------------------

def _running(ctr, bundle: BundleFactory, cgroups_path: str) -> int:
    pid = ctr.create(bundle(["sleep", "60"], linux={"cgroupsPath": cgroups_path}))
    ctr.runtime.run("start", ctr.id)
    assert ctr.runtime.state(ctr.id)["status"] == "running"
    return pid


def _stopped(ctr, bundle: BundleFactory, cgroups_path: str) -> None:
    ctr.create(bundle(["true"], linux={"cgroupsPath": cgroups_path}))
    ctr.runtime.run("start", ctr.id)
    ctr.wait_stopped()


def _refused(ctr, *args: str, hutch_words: tuple[str, ...] = (),
             runc_words: tuple[str, ...] = ()) -> subprocess.CompletedProcess[str]:
    res = ctr.runtime.run(*args, check=False)
    assert res.returncode != 0, res
    for word in (runc_words if is_runc(ctr) else (ctr.id, *hutch_words)):
        assert word in res.stderr, res.stderr
    return res


def test_start_a_running_container(ctr, bundle: BundleFactory, cgroups_path: str) -> None:
    pid = _running(ctr, bundle, cgroups_path)
    _refused(ctr, "start", ctr.id, hutch_words=("running",), runc_words=("running",))
    assert ctr.runtime.state(ctr.id)["status"] == "running"
    assert ctr.runtime.state(ctr.id)["pid"] == pid


def test_start_a_stopped_container(ctr, bundle: BundleFactory, cgroups_path: str) -> None:
    _stopped(ctr, bundle, cgroups_path)
    _refused(ctr, "start", ctr.id, hutch_words=("stopped",), runc_words=("stopped",))


def test_pause_a_created_container(ctr, bundle: BundleFactory, cgroups_path: str) -> None:
    ctr.create(bundle(["sleep", "60"], linux={"cgroupsPath": cgroups_path}))
    res = ctr.runtime.run("pause", ctr.id, check=False)
    if is_runc(ctr) and res.returncode == 0:  # runc 1.1 freezes a created container too
        assert ctr.runtime.state(ctr.id)["status"] == "paused"
        ctr.runtime.run("resume", ctr.id)
        return
    assert res.returncode != 0, res
    assert ctr.id in res.stderr and "created" in res.stderr, res.stderr
    assert ctr.runtime.state(ctr.id)["status"] == "created"


def test_pause_a_stopped_container(ctr, bundle: BundleFactory, cgroups_path: str) -> None:
    _stopped(ctr, bundle, cgroups_path)
    _refused(ctr, "pause", ctr.id, hutch_words=("stopped",), runc_words=("not running",))


def test_resume_a_running_container(ctr, bundle: BundleFactory, cgroups_path: str) -> None:
    _running(ctr, bundle, cgroups_path)
    _refused(ctr, "resume", ctr.id, hutch_words=("running",), runc_words=("not paused",))
    assert ctr.runtime.state(ctr.id)["status"] == "running"


def test_pause_a_paused_container(ctr, bundle: BundleFactory, cgroups_path: str) -> None:
    _running(ctr, bundle, cgroups_path)
    ctr.runtime.run("pause", ctr.id)
    try:
        _refused(ctr, "pause", ctr.id, hutch_words=("paused",), runc_words=("not running",))
        assert ctr.runtime.state(ctr.id)["status"] == "paused"
    finally:
        ctr.runtime.run("resume", ctr.id, check=False)


def test_delete_a_running_container_without_force(ctr, bundle: BundleFactory,
                                                  cgroups_path: str) -> None:
    pid = _running(ctr, bundle, cgroups_path)
    _refused(ctr, "delete", ctr.id, hutch_words=("running", "--force"),
             runc_words=("not stopped",))
    assert ctr.runtime.state(ctr.id)["status"] == "running"
    assert ctr.runtime.state(ctr.id)["pid"] == pid


def test_delete_a_paused_container_without_force(ctr, bundle: BundleFactory,
                                                 cgroups_path: str) -> None:
    _running(ctr, bundle, cgroups_path)
    ctr.runtime.run("pause", ctr.id)
    _refused(ctr, "delete", ctr.id, hutch_words=("paused",), runc_words=("not stopped",))
    assert ctr.runtime.state(ctr.id)["status"] == "paused"
    ctr.runtime.run("delete", "--force", ctr.id)
    assert ctr.runtime.list_ids() == []


def test_kill_a_stopped_container(ctr, bundle: BundleFactory, cgroups_path: str) -> None:
    _stopped(ctr, bundle, cgroups_path)
    _refused(ctr, "kill", ctr.id, "KILL", hutch_words=("stopped",),
             runc_words=("not running",))


def test_exec_into_a_stopped_container(ctr, bundle: BundleFactory, cgroups_path: str) -> None:
    _stopped(ctr, bundle, cgroups_path)
    _refused(ctr, "exec", ctr.id, "true", hutch_words=("stopped",), runc_words=("stopped",))


def test_kill_with_an_unknown_signal(ctr, bundle: BundleFactory, cgroups_path: str) -> None:
    pid = _running(ctr, bundle, cgroups_path)
    res = ctr.runtime.run("kill", ctr.id, "SIGNOPE", check=False)
    assert res.returncode != 0
    assert "SIGNOPE" in res.stderr or "NOPE" in res.stderr, res.stderr
    assert ctr.runtime.state(ctr.id)["pid"] == pid
    assert ctr.runtime.state(ctr.id)["status"] == "running"


# --- leftovers after a failure late in create ---------------------------------------------------

def test_failure_inside_the_container_setup_leaves_nothing(
        ctr, bundle: BundleFactory, tmp_path: Path, cgroups_path: str) -> None:
    b = bundle(["true"], linux={"cgroupsPath": cgroups_path})
    b.config["mounts"].append({"destination": "/data", "type": "bind",
                               "source": str(tmp_path / "missing-source"),
                               "options": ["bind"]})
    b.write()
    failed_create(ctr, b.path)
    assert_nothing_left(ctr, ctr.id, cgroups_path)


def test_state_of_a_created_container_is_valid_json(ctr, bundle: BundleFactory) -> None:
    b = bundle(["true"], annotations={"a": "b"})
    pid = ctr.create(b)
    state = json.loads(ctr.runtime.run("state", ctr.id).stdout)
    assert {k: state[k] for k in ("id", "status", "pid", "bundle")} == {
        "id": ctr.id, "status": "created", "pid": pid, "bundle": str(b.path)}
    assert state["annotations"] == {"a": "b"}
