"""The shared fixtures against a real runtime: hutch-runtime, or runc with
HUTCH_TEST_RUNTIME=runc (which checks the fixtures and tests themselves)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from hutch.testing.bundle import Bundle
from hutch.testing.cleanup import (Reaper, cgroup_candidates, mounts_below, pid_alive,
                                   remove_cgroup_tree)
from hutch.testing.host import cgroup_mounts, own_cgroup_dir
from hutch.testing.runtime import RuntimeCLI, default_runtime_argv

BundleFactory = Callable[..., Bundle]


def test_bundle_runs_in_the_foreground(runtime: RuntimeCLI, bundle: BundleFactory,
                                       container_id: str) -> None:
    b = bundle(["echo", "hi"])
    res = runtime.run("run", "--bundle", b.path, container_id)
    assert (res.returncode, res.stdout) == (0, "hi\n")


def test_bundle_config_is_what_the_container_sees(runtime: RuntimeCLI, bundle: BundleFactory,
                                                  container_id: str) -> None:
    b = bundle(["sh", "-c", "hostname; echo $$; id -u; cat /etc/os-release"])
    b.config["hostname"] = "edited"
    b.write()
    lines = runtime.run("run", "--bundle", b.path, container_id).stdout.splitlines()
    assert lines[:3] == ["edited", "1", "0"]
    assert 'NAME="hutch busybox"' in lines


def test_runtime_teardown_removes_a_created_container(bundle: BundleFactory,
                                                      tmp_path: Path) -> None:
    # The fixture's teardown is RuntimeCLI.cleanup: run it here, on a container
    # left in "created" (its init blocked, holding its namespaces).
    cli = RuntimeCLI(default_runtime_argv(), str(tmp_path / "state"))
    try:
        b = bundle(["sleep", "60"])
        cli.run("create", "--bundle", b.path, "left-behind")
        state = cli.state("left-behind")
        assert state["status"] == "created" and pid_alive(state["pid"])
        assert cli.cleanup() == []
        assert not pid_alive(state["pid"])
        assert not os.path.exists(cli.root)
    finally:
        if os.path.exists(cli.root):
            cli.cleanup()


def test_runtime_teardown_ends_a_foreground_run(runtime: RuntimeCLI, bundle: BundleFactory,
                                                container_id: str) -> None:
    proc = runtime.popen("run", "--bundle", bundle(["sleep", "60"]).path, container_id,
                         stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while container_id not in runtime.list_ids() or \
            runtime.state(container_id)["status"] != "running":
        assert proc.poll() is None, "run exited early"
        assert time.monotonic() < deadline, "the container did not start in 10 s"
        time.sleep(0.05)
    assert runtime.cleanup() == []  # the fixture's teardown then finds nothing left
    assert proc.poll() is not None


def test_cgroups_path_is_below_our_own_cgroup(runtime: RuntimeCLI, bundle: BundleFactory,
                                              container_id: str, cgroups_path: str) -> None:
    b = bundle(["cat", "/proc/self/cgroup"], linux={"cgroupsPath": cgroups_path})
    lines = runtime.run("run", "--bundle", b.path, container_id).stdout.splitlines()
    # Without a cgroup namespace the container sees the host's paths.
    assert lines and all(line.endswith("/" + cgroups_path) for line in lines), lines


@pytest.mark.cgroup_v1
def test_remove_cgroup_tree_kills_what_runs_inside(reap: Reaper) -> None:
    pids_mount = next(m for m in cgroup_mounts() if m.version == 1 and "pids" in m.options)
    base = own_cgroup_dir(pids_mount)
    assert base is not None
    top = os.path.join(base, f"hutch-test-{os.getpid()}-removal")
    assert top in cgroup_candidates(os.path.basename(top))
    os.makedirs(os.path.join(top, "ctr"))
    try:
        sleeper = reap.popen(["sleep", "60"])
        Path(top, "ctr", "cgroup.procs").write_text(str(sleeper.pid))
        remove_cgroup_tree(top)
        assert not os.path.exists(top)
        assert sleeper.wait(timeout=5) == -9
    finally:
        for d in (os.path.join(top, "ctr"), top):
            if os.path.isdir(d):
                os.rmdir(d)


def test_mounts_below_finds_a_leak(tmp_path: Path) -> None:
    target = tmp_path / "leak"
    target.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "none", target], check=True)
    try:
        assert mounts_below([tmp_path]) == [str(target)]
    finally:
        subprocess.run(["umount", target], check=True)
    assert mounts_below([tmp_path]) == []
