"""Marker gating in tests/conftest.py: skip with the reason, or fail under
HUTCH_REQUIRE_ALL=1 unless the marker is in HUTCH_ALLOW_SKIP."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

CONFTEST = Path(__file__).parent.parent / "conftest.py"

INNER_TESTS = '''
import pytest

@pytest.mark.fakecap
def test_needs_fakecap():
    pass

@pytest.mark.fakeok
def test_needs_fakeok():
    pass

def test_skips_itself():
    pytest.skip("not today")

@pytest.mark.xfail(reason="known")
def test_expected_failure():
    assert False
'''


def run_inner(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    conftest = CONFTEST.read_text() + (
        '\nhost.PROBES["fakecap"] = lambda: "fakecap is missing"'
        '\nhost.PROBES["fakeok"] = lambda: None\n')
    (tmp_path / "conftest.py").write_text(conftest)
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    fakecap\n    fakeok\n")
    (tmp_path / "test_inner.py").write_text(INNER_TESTS)
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HUTCH_")}
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rsfE",
                           str(tmp_path)], cwd=tmp_path,
                          env={**clean, **env}, capture_output=True, text=True, timeout=120)


def test_missing_capability_skips_with_its_reason(tmp_path: Path) -> None:
    res = run_inner(tmp_path, {})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "[fakecap] fakecap is missing" in res.stdout
    assert "1 passed, 2 skipped, 1 xfailed" in res.stdout


def test_require_all_turns_every_skip_into_a_failure(tmp_path: Path) -> None:
    res = run_inner(tmp_path, {"HUTCH_REQUIRE_ALL": "1"})
    assert res.returncode == 1, res.stdout + res.stderr
    assert "HUTCH_REQUIRE_ALL=1: this host must have it" in res.stdout
    assert "skipped (not today), but HUTCH_REQUIRE_ALL=1 forbids skips" in res.stdout
    assert "1 failed, 1 passed, 1 xfailed, 1 error" in res.stdout


@pytest.mark.parametrize("allow", ["fakecap", "cgroup_v2, fakecap"])
def test_allowed_markers_may_still_skip(tmp_path: Path, allow: str) -> None:
    res = run_inner(tmp_path, {"HUTCH_REQUIRE_ALL": "1", "HUTCH_ALLOW_SKIP": allow})
    assert "1 failed, 1 passed, 1 skipped, 1 xfailed" in res.stdout, res.stdout + res.stderr
    assert "[fakecap] fakecap is missing" in res.stdout
