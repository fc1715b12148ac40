"""A pytest plugin loaded in the test VM (``-p hutch_vm_report``, tests/vm/run-in-vm.sh).

Writes /out/report.json ($HUTCH_VM_REPORT), one JSON object per line for each
test phase that decides an outcome: {"nodeid", "outcome" (passed, failed,
skipped, xfailed or xpassed), "when" (setup, call, teardown), "markers"}. A test has a "call" line
when it ran, and a setup or teardown line too when that phase failed or skipped.
The host side (tests/integration/cgroups/test_v2_vm.py) reads it to see what ran.
Only pytest and the standard library: the VM has Debian's pytest and nothing else.
"""

from __future__ import annotations

import json
import os

import pytest

REPORT = os.environ.get("HUTCH_VM_REPORT", "/out/report.json")
_markers: dict[str, list[str]] = {}


def _write(line: dict[str, object]) -> None:
    try:
        with open(REPORT, "a") as f:
            f.write(json.dumps(line) + "\n")
    except OSError:
        pass


def pytest_sessionstart(session: pytest.Session) -> None:
    try:
        open(REPORT, "w").close()
    except OSError:
        pass


@pytest.hookimpl(trylast=True)  # after conftest.py has added its markers
def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config,
                                  items: list[pytest.Item]) -> None:
    for item in items:
        _markers[item.nodeid] = sorted({m.name for m in item.iter_markers()})


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call" or report.outcome != "passed":
        outcome = report.outcome
        if hasattr(report, "wasxfail"):
            outcome = "xfailed" if report.skipped else "xpassed"
        _write({"nodeid": report.nodeid, "outcome": outcome, "when": report.when,
                "markers": _markers.get(report.nodeid, [])})
