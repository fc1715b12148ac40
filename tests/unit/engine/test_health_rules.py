"""Health-check options and the shim's bookkeeping of results (no container needed)."""

from __future__ import annotations

import pytest

from hutch.engine.health import parse_duration, resolve
from hutch.errors import InvalidArgument
from hutch.shim.health import HealthCheck


@pytest.mark.parametrize("text,seconds", [("30s", 30), ("1m30s", 90), ("500ms", 0.5),
                                          ("1h", 3600), ("2", 2), ("0.25", 0.25),
                                          ("1.5s", 1.5)])
def test_durations(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "soon", "5 s", "1x", "-1s", "s"])
def test_bad_durations(text):
    with pytest.raises(InvalidArgument):
        parse_duration(text, "--health-interval")


IMAGE = {"Healthcheck": {"Test": ["CMD", "/bin/check", "--quick"], "Interval": 5_000_000_000,
                         "Retries": 7}}


def test_image_healthcheck_is_honoured_and_flags_override_it():
    check = resolve({}, IMAGE)
    assert check["argv"] == ["/bin/check", "--quick"]
    assert (check["interval"], check["timeout"], check["retries"]) == (5, 30, 7)
    check = resolve({"health_cmd": "true", "health_timeout": "2s"}, IMAGE)
    assert check["argv"] == ["/bin/sh", "-c", "true"] and check["timeout"] == 2
    assert check["interval"] == 5 and check["retries"] == 7
    assert resolve({"no_healthcheck": True}, IMAGE) is None
    assert resolve({}, {"Healthcheck": {"Test": ["NONE"]}}) is None
    assert resolve({}, {}) is None


def test_bad_checks_are_refused():
    with pytest.raises(InvalidArgument, match="conflicts"):
        resolve({"no_healthcheck": True, "health_cmd": "true"}, {})
    with pytest.raises(InvalidArgument, match="--health-retries 0"):
        resolve({"health_cmd": "true", "health_retries": 0}, {})
    with pytest.raises(InvalidArgument, match="CMD-SHELL"):
        resolve({}, {"Healthcheck": {"Test": ["SHELL", "x"]}})


def _checker(retries: int = 2, start_period: float = 0.0) -> HealthCheck:
    h = HealthCheck({"argv": ["true"], "interval": 1, "timeout": 1, "retries": retries,
                     "start_period": start_period}, "/nonexistent", "c")
    h.container_started()
    return h


def test_failures_in_a_row_make_it_unhealthy_and_one_success_healthy():
    h = _checker(retries=2)
    h._record(1, "no\n")
    assert h.state["Status"] == "starting" and h.state["FailingStreak"] == 1
    h._record(1, "no\n")
    assert h.state["Status"] == "unhealthy" and h.state["FailingStreak"] == 2
    h._record(0, "")
    assert h.state["Status"] == "healthy" and h.state["FailingStreak"] == 0
    for _ in range(10):
        h._record(3, "x")
    assert len(h.state["Log"]) == 5 and h.state["Log"][-1]["ExitCode"] == 3


def test_failures_in_the_start_period_do_not_count():
    h = _checker(retries=1, start_period=60)
    h._record(1, "not yet\n")
    assert h.state["Status"] == "starting" and h.state["FailingStreak"] == 0
    h._record(0, "")
    assert h.state["Status"] == "healthy"
    h._record(1, "down\n")  # once healthy, the start period is over
    assert h.state["Status"] == "unhealthy"


def test_no_probe_after_the_container_stopped():
    h = _checker()
    assert h.wait_time(h.started) == pytest.approx(1)
    h.container_stopped()
    assert h.wait_time(h.started) is None
