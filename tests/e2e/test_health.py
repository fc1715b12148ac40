"""Health checks through the CLI: the shim runs the command inside the container."""

from __future__ import annotations

import json
import time

from test_engine_cli import Hutch, hutch  # noqa: F401 - the fixture


def _health(h: Hutch, name: str) -> dict:
    return json.loads(h("inspect", name).stdout)[0]["State"].get("Health") or {}


def _wait_status(h: Hutch, name: str, wanted: str, timeout: float = 20) -> dict:
    deadline = time.monotonic() + timeout
    while (health := _health(h, name)).get("Status") != wanted:
        assert time.monotonic() < deadline, f"never {wanted}: {health}"
        time.sleep(0.1)
    return health


def test_check_turns_unhealthy_when_its_file_is_removed(hutch):  # noqa: F811
    hutch("run", "-d", "--name", "hc", "--health-cmd", "cat /tmp/ok",
          "--health-interval", "200ms", "--health-retries", "2", "busybox",
          "sh", "-c", "echo fine > /tmp/ok; exec sleep 60")
    assert _health(hutch, "hc")["Status"] == "starting"  # the first probe is an interval away
    health = _wait_status(hutch, "hc", "healthy")
    assert health["FailingStreak"] == 0
    assert health["Log"][-1]["ExitCode"] == 0 and health["Log"][-1]["Output"] == "fine\n"
    row = [line for line in hutch("ps").stdout.splitlines() if "hc" in line][0]
    assert "Up " in row and "(healthy)" in row
    hutch("exec", "hc", "rm", "/tmp/ok")
    health = _wait_status(hutch, "hc", "unhealthy")
    assert health["FailingStreak"] >= 2
    last = health["Log"][-1]
    assert last["ExitCode"] == 1 and "No such file" in last["Output"]
    assert len(health["Log"]) <= 5
    assert "(unhealthy)" in hutch("ps").stdout
    hutch("exec", "hc", "sh", "-c", "echo back > /tmp/ok")  # one success: healthy again
    assert _wait_status(hutch, "hc", "healthy")["Log"][-1]["Output"] == "back\n"


def test_a_probe_past_its_timeout_fails(hutch):  # noqa: F811
    hutch("run", "-d", "--name", "slow", "--health-cmd", "sleep 30", "--health-interval",
          "100ms", "--health-timeout", "300ms", "--health-retries", "1", "busybox",
          "sleep", "60")
    started = time.monotonic()
    health = _wait_status(hutch, "slow", "unhealthy")
    assert time.monotonic() - started < 10
    assert health["Log"][-1]["ExitCode"] == -1 and "timeout" in health["Log"][-1]["Output"]
    # the killed probe's command does not linger inside the container
    ps = hutch("exec", "slow", "ps").stdout
    assert ps.count("sleep 30") <= 1  # at most the next probe's


def test_health_flags_are_checked_and_no_healthcheck_turns_it_off(hutch):  # noqa: F811
    r = hutch("create", "--health-cmd", "true", "--health-interval", "soon", "busybox",
              check=False)
    assert r.returncode == 125 and "--health-interval 'soon'" in r.stderr
    r = hutch("create", "--health-cmd", "true", "--no-healthcheck", "busybox", check=False)
    assert r.returncode == 125 and "conflicts" in r.stderr
    assert hutch.ids() == []
    hutch("run", "-d", "--name", "plain", "--no-healthcheck", "busybox", "sleep", "60")
    assert "Health" not in json.loads(hutch("inspect", "plain").stdout)[0]["State"]
    assert "(" not in [line for line in hutch("ps").stdout.splitlines() if "plain" in line][0]
