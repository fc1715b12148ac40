"""Shared fixtures and marker gating for hutch's tests.

Markers (declared in pyproject.toml) name what a test needs from the host; a
test whose need is missing is skipped with the reason. With HUTCH_REQUIRE_ALL=1
(CI) every skip is a failure instead, except for the markers listed in
HUTCH_ALLOW_SKIP (comma separated).
"""

from __future__ import annotations

import itertools
import os
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hutch.images.templates import build_busybox_rootfs
from hutch.testing import host
from hutch.testing.bundle import Bundle, make_bundle
from hutch.testing.cleanup import Reaper, cgroup_candidates, mounts_below, remove_cgroup_tree
from hutch.testing.runtime import RuntimeCLI, default_runtime_argv

REQUIRE_ALL = os.environ.get("HUTCH_REQUIRE_ALL") == "1"
ALLOW_SKIP = {m.strip() for m in os.environ.get("HUTCH_ALLOW_SKIP", "").split(",") if m.strip()}
ROOT_DIRS = ("integration", "e2e")  # tests there run as root: marked so automatically

_allowed_skip = pytest.StashKey[bool]()
_counter = itertools.count()


# --- markers --------------------------------------------------------------------------------

def pytest_report_header(config: pytest.Config) -> list[str]:
    missing = [f"{name} ({reason})" for name, probe in host.PROBES.items()
               if (reason := probe()) is not None]
    try:
        runtime = " ".join(default_runtime_argv())
    except FileNotFoundError as e:
        runtime = f"unavailable: {e}"
    return [f"hutch: runtime under test: {runtime}",
            f"hutch: cgroup mode {host.cgroup_mode()}; host lacks: {', '.join(missing) or '-'}",
            f"hutch: HUTCH_REQUIRE_ALL={int(REQUIRE_ALL)} "
            f"HUTCH_ALLOW_SKIP={','.join(sorted(ALLOW_SKIP)) or '-'}"]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    tests_dir = Path(__file__).parent
    for item in items:
        parts = Path(item.path).relative_to(tests_dir).parts if \
            Path(item.path).is_relative_to(tests_dir) else ()
        if parts and parts[0] in ROOT_DIRS and item.get_closest_marker("root") is None:
            item.add_marker(pytest.mark.root)


def pytest_runtest_setup(item: pytest.Item) -> None:
    for marker in item.iter_markers():
        probe = host.PROBES.get(marker.name)
        reason = probe() if probe else None
        if reason is None:
            continue
        if REQUIRE_ALL and marker.name not in ALLOW_SKIP:
            pytest.fail(f"[{marker.name}] {reason} (HUTCH_REQUIRE_ALL=1: this host must have it)",
                        pytrace=False)
        item.stash[_allowed_skip] = True
        pytest.skip(f"[{marker.name}] {reason}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under HUTCH_REQUIRE_ALL=1, any other skip (pytest.skip, skipif...) fails too."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if (REQUIRE_ALL and report.skipped and not hasattr(report, "wasxfail")
            and not item.stash.get(_allowed_skip, False)):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        reason = str(reason).removeprefix("Skipped: ")
        report.outcome = "failed"
        report.longrepr = f"skipped ({reason}), but HUTCH_REQUIRE_ALL=1 forbids skips"


# --- fixtures -------------------------------------------------------------------------------

@pytest.fixture(scope="session", autouse=True)
def _engine_host_network() -> Iterator[None]:
    """Whatever a test runs of the engine, its networks never touch the machine's own:
    hutch's host side (bridges, rules, resolvers) goes to a namespace made here, unless
    a test chooses one of its own (HUTCH_HOST_NETNS)."""
    if os.geteuid() != 0 or os.environ.get("HUTCH_HOST_NETNS"):
        yield
        return
    from hutch.testing.hostnet import SimulatedHost
    sim = SimulatedHost("session")
    os.environ["HUTCH_HOST_NETNS"] = sim.path
    try:
        yield
    finally:
        del os.environ["HUTCH_HOST_NETNS"]
        problems = sim.close()
    assert not problems, problems


def _after_runtime(request: pytest.FixtureRequest) -> None:
    """Make sure the runtime fixture exists when the test uses it (see _clean_runtime_now)."""
    if "runtime" in request.fixturenames:
        request.getfixturevalue("runtime")


def _clean_runtime_now(request: pytest.FixtureRequest) -> None:
    """Delete the test's containers before a teardown looks for what they left.

    A fixture that requested ``runtime`` is torn down *before* it, so the
    runtime's own teardown would come too late for these checks.
    """
    if "runtime" in request.fixturenames:
        problems = request.getfixturevalue("runtime").cleanup()
        if problems:
            pytest.fail("runtime teardown: " + "; ".join(problems), pytrace=False)


@pytest.fixture(scope="session")
def busybox_rootfs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The default image's root file system, built once per session. Do not write to
    it: bundles copy it."""
    return Path(build_busybox_rootfs(str(tmp_path_factory.mktemp("busybox") / "rootfs")))


@pytest.fixture
def bundle(request: pytest.FixtureRequest, tmp_path: Path,
           busybox_rootfs: Path) -> Iterator[Callable[..., Bundle]]:
    """Factory: ``bundle(args=[...], **config_overrides) -> Bundle`` in a fresh directory.

    At teardown, a mount left below a bundle (a leak into the host's mount
    namespace) is detached and fails the test.
    """
    _after_runtime(request)
    made: list[Path] = []

    def factory(args: list[str] | None = None, **overrides: Any) -> Bundle:
        path = tmp_path / f"bundle{len(made)}"
        made.append(path)
        return make_bundle(path, busybox_rootfs, args, **overrides)

    yield factory
    _clean_runtime_now(request)
    leaked = mounts_below(made)
    for target in sorted(leaked, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", target], check=False, capture_output=True)
    if leaked:
        pytest.fail(f"mounts leaked into the host's mount namespace: {leaked}", pytrace=False)


@pytest.fixture
def runtime() -> Iterator[RuntimeCLI]:
    """The runtime under test with a fresh --root; teardown deletes every container."""
    root = tempfile.mkdtemp(prefix="hutch-rt-")  # short: state dirs may hold unix sockets
    cli = RuntimeCLI(default_runtime_argv(), root)
    yield cli
    problems = cli.cleanup()
    if problems:
        pytest.fail("runtime teardown: " + "; ".join(problems), pytrace=False)


@pytest.fixture
def container_id() -> str:
    """A container id unique in this session."""
    return f"t{os.getpid()}-{next(_counter)}"


@pytest.fixture
def cgroups_path(request: pytest.FixtureRequest) -> Iterator[str]:
    """A unique relative cgroupsPath ``hutch-test-<pid>-<n>/ctr``.

    At teardown the ``ctr`` cgroup must be gone (the runtime removes what it
    made); if it is not, it is emptied and removed and the test fails. The
    intermediate ``hutch-test-<pid>-<n>`` is removed quietly (runc leaves it too).
    """
    _after_runtime(request)
    top = f"hutch-test-{os.getpid()}-{next(_counter)}"
    leaf = f"{top}/ctr"
    yield leaf
    _clean_runtime_now(request)
    leftover = [d for d in cgroup_candidates(leaf) if os.path.isdir(d)]
    errors = []
    for d in cgroup_candidates(top):
        if os.path.isdir(d):
            try:
                remove_cgroup_tree(d)
            except OSError as e:
                errors.append(str(e))
    if leftover or errors:
        pytest.fail(f"cgroups left behind: {leftover}" + (f"; cleanup failed: {errors}"
                                                          if errors else ""), pytrace=False)


@pytest.fixture
def reap() -> Iterator[Reaper]:
    """Start processes with ``reap.popen(argv, ...)`` or track them with ``reap.add``:
    whatever still runs at teardown is killed and reaped."""
    reaper = Reaper()
    yield reaper
    problems = reaper.close()
    if problems:
        pytest.fail("processes could not be ended: " + "; ".join(problems), pytrace=False)
