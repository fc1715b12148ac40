"""The cgroup suite on a pure cgroup v2 host: a qemu VM built from Debian packages.

This machine (and many developers') is cgroup v1 or hybrid, so the ``cgroup_v2``
tests cannot run here. tests/vm/run-in-vm.sh builds (or takes from its cache) a
small VM, Debian's kernel booted with cgroup_no_v1=all and a Debian root with
python3 and pytest, shares this checkout into it read-only and runs the cgroup
tests there as root: tests/unit/cgroups and tests/integration/cgroups, the
``cgroup_v1`` ones deselected, with HUTCH_REQUIRE_ALL=1 so a skip inside fails.
The tests run in the VM's root cgroup; HUTCH_VM_CGROUP=/system.slice/hutch-ci.service
runs them in a cgroup delegated to them as systemd does for a service with
Delegate=yes, which holds their own processes.

When the VM cannot be built or booted (no qemu, no Debian mirror), these tests
fail with the reason: they are not skipped.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
RUNNER = REPO / "tests" / "vm" / "run-in-vm.sh"
THIS = Path(__file__).resolve().relative_to(REPO)
VM_TIMEOUT = int(os.environ.get("HUTCH_VM_TIMEOUT", "840"))  # the whole VM run, seconds
JOB_CGROUP = os.environ.get("HUTCH_VM_CGROUP", "/")
INNER_ARGS = ["tests/unit/cgroups", "tests/integration/cgroups",
              "-m", "not cgroup_v1", f"--ignore={THIS}"]

pytestmark = [pytest.mark.root, pytest.mark.slow, pytest.mark.timeout(VM_TIMEOUT + 120)]


@dataclass(repr=False)
class VMRun:
    rc: int
    out: Path
    stdout: str
    stderr: str
    seconds: float

    def __repr__(self) -> str:
        return f"VMRun(rc={self.rc}, out={str(self.out)!r}, {self.seconds:.0f} s)"

    def file(self, name: str) -> str:
        path = self.out / name
        return path.read_text() if path.exists() else ""

    def tail(self, lines: int = 120) -> str:
        console = self.file("console.log") or self.stdout
        return ("\n".join(console.splitlines()[-lines:]) +
                "\n--- run-in-vm.sh stderr ---\n" + "\n".join(self.stderr.splitlines()[-40:]))


@pytest.fixture(scope="module")
def vm_run(tmp_path_factory: pytest.TempPathFactory) -> VMRun:
    if os.geteuid() != 0:
        pytest.fail("the cgroup v2 VM needs root (it builds into /var/cache/hutch-vm)",
                    pytrace=False)
    out = tmp_path_factory.mktemp("vm")
    argv = ["bash", str(RUNNER), "--out", str(out), "--timeout", str(VM_TIMEOUT),
            "--cgroup", JOB_CGROUP, "--env", "HUTCH_REQUIRE_ALL=1", "--", *INNER_ARGS]
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=VM_TIMEOUT + 100)
    return VMRun(proc.returncode, out, proc.stdout, proc.stderr, time.monotonic() - start)


def _booted(run: VMRun) -> None:
    if not (run.out / "facts" / "mountinfo").exists():
        pytest.fail(f"the cgroup v2 VM did not run (run-in-vm.sh exit code {run.rc}):\n"
                    f"{run.tail()}", pytrace=False)


def _mounts(mountinfo: str) -> list[tuple[str, str]]:
    """(mount point, fs type) of every line of a mountinfo."""
    result = []
    for line in mountinfo.splitlines():
        fields = line.split()
        sep = fields.index("-")
        result.append((fields[4], fields[sep + 1]))
    return result


def test_vm_is_a_pure_cgroup_v2_host(vm_run: VMRun) -> None:
    _booted(vm_run)
    mounts = _mounts(vm_run.file("facts/mountinfo"))
    assert ("/sys/fs/cgroup", "cgroup2") in mounts, mounts
    v1 = [m for m in mounts if m[1] == "cgroup"]
    assert not v1, f"cgroup v1 hierarchies are mounted in the VM: {v1}"
    assert "cgroup_no_v1=all" in vm_run.file("facts/cmdline").split()
    controllers = set(vm_run.file("facts/controllers").split())
    assert {"cpu", "memory", "pids", "io", "cpuset", "hugetlb"} <= controllers, controllers
    # The tests ran in the cgroup asked for, with every controller.
    assert vm_run.file("facts/cgroup").strip() == f"0::{JOB_CGROUP}"
    assert set(vm_run.file("facts/job-controllers").split()) == controllers


def test_cgroup_suite_passes_on_cgroup_v2(vm_run: VMRun) -> None:
    _booted(vm_run)
    outcomes: dict[str, str] = {}
    markers: dict[str, list[str]] = {}
    for line in vm_run.file("report.json").splitlines():
        entry = json.loads(line)
        markers[entry["nodeid"]] = entry["markers"]
        if outcomes.get(entry["nodeid"]) != "failed":  # a teardown failure after a pass counts
            outcomes[entry["nodeid"]] = entry["outcome"]
    # xfailed (expected to fail, and did) is fine, as in the suite on the host.
    failed = sorted(n for n, o in outcomes.items() if o == "failed")
    skipped = sorted(n for n, o in outcomes.items() if o == "skipped")
    passed = sorted(n for n, o in outcomes.items() if o == "passed")
    v2 = [n for n in passed if "cgroup_v2" in markers[n]]
    summary = (f"in the VM ({vm_run.seconds:.0f} s): {len(passed)} passed "
               f"({len(v2)} marked cgroup_v2), {len(failed)} failed, {len(skipped)} skipped")
    assert vm_run.rc == 0, f"{summary}; pytest exit code {vm_run.rc}; failed: {failed}\n" \
                           f"{vm_run.tail()}"
    assert not failed and not skipped, summary
    assert passed, f"{summary}: no test ran in the VM\n{vm_run.tail()}"
    unmarked_v1 = [n for n in passed if "cgroup_v1" in markers[n]]
    assert not unmarked_v1, f"cgroup_v1 tests ran on a v2 host: {unmarked_v1}"
