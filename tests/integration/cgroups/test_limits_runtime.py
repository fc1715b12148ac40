"""`hutch-runtime update` reaches the cgroup manager's update() on a running container.

The limit is read from outside: the pids.max of the cgroup that /proc/PID/cgroup
names for the container's init.

Marked cgroup_v1 for now: in the v2 VM the tests run in a delegated cgroup that
holds processes (pytest), and a relative cgroupsPath below it can get no
controllers there (the no-internal-processes rule; see test_resources_real.py's
``delegated`` fixture), so the runtime's container would have no pids.max.
"""

from __future__ import annotations

import json
import os

import pytest

from hutch.cgroups.mode import find_hierarchies, parse_proc_cgroup, read_mounts, read_own


def _pids_max(pid: int) -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        theirs = {e.hierarchy_id: e.path for e in parse_proc_cgroup(f.read())}
    ids = {e.controllers: e.hierarchy_id for e in read_own()}
    hierarchies = find_hierarchies(read_mounts(), read_own())
    # the v1 pids hierarchy, else the cgroup2 one
    h = min(hierarchies, key=lambda h: ("pids" not in h.controllers, h.version != 2))
    with open(os.path.join(h.dir_of(theirs[ids[h.controllers]]), "pids.max")) as f:
        return f.read().strip()


@pytest.mark.cgroup_v1
def test_update_changes_the_pids_limit_of_a_running_container(  # type: ignore[no-untyped-def]
        runtime, bundle, container_id, cgroups_path, tmp_path):
    b = bundle(["sleep", "60"], linux={"cgroupsPath": cgroups_path})
    runtime.run("run", "--detach", "--bundle", b.path, container_id)
    pid = runtime.state(container_id)["pid"]
    runtime.run("update", "--pids-limit", "42", container_id)
    assert _pids_max(pid) == "42"
    resources = tmp_path / "r.json"
    resources.write_text(json.dumps({"pids": {"limit": -1}}))
    runtime.run("update", "--resources", resources, container_id)
    assert _pids_max(pid) == "max"
    r = runtime.run("update", "--resources", "-", container_id, check=False,
                    input=json.dumps({"pids": {"limit": 5}, "cpu": {"cpus": "9999"}}))
    assert r.returncode != 0 and "names cpu 9999" in r.stderr, r.stderr
    assert _pids_max(pid) == "max"  # the bad update changed nothing
    assert runtime.state(container_id)["status"] == "running"
