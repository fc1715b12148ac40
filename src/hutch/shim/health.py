"""The shim's health checks: run a command inside the container every interval.

A probe is a short-lived child running the runtime's exec (as ``hutch exec``
does; shim/probe.py) with its stdout and stderr on a pipe; the shim's main
loop reads the pipe, reaps the probe and records the result. The shim itself does
not import the runtime for it (it stays small for the container's whole life).
The state has Docker's shape (it is shown as ``State.Health`` by ``hutch inspect``)::

    {"Status": "starting" | "healthy" | "unhealthy", "FailingStreak": n,
     "Log": [{"Start": t, "End": t, "ExitCode": n, "Output": text}, ...]}

Docker's rules: the first probe runs one interval after the start; ``retries``
failures in a row make the container unhealthy, one success healthy again;
failures during the start period do not count; a probe that outlives the timeout
is killed and counts as a failure.
"""

from __future__ import annotations

import os
import time

from _signal import SIGKILL, SIGTERM  # not signal: it pulls in enum (shim/supervisor.py)

from hutch.shim import probe
from hutch.shim.logs import rfc3339

KEEP_RESULTS = 5
MAX_OUTPUT = 4096
KILL_GRACE = 1.0  # after the timeout: SIGTERM to the probe, then SIGKILL


class HealthCheck:
    def __init__(self, check: dict, runtime_root: str, container_id: str) -> None:
        self.argv = list(check["argv"])
        self.interval = float(check["interval"])
        self.timeout = float(check["timeout"])
        self.retries = int(check["retries"])
        self.start_period = float(check.get("start_period", 0))
        self.runtime_root = runtime_root
        self.id = container_id
        self.state: dict = {"Status": "starting", "FailingStreak": 0, "Log": []}
        self.started = 0.0
        self.next_at: float | None = None
        self.pid = 0
        self.fd = -1
        self.output = b""
        self.probe_start = 0
        self.deadline = 0.0
        self.term_sent = False
        self.active = False  # the container runs: probes are due

    # -- life cycle of the container ------------------------------------------------------

    def container_started(self) -> None:
        self.state.update(Status="starting", FailingStreak=0)
        self.active = True
        self.started = time.monotonic()
        self.next_at = self.started + self.interval

    def container_stopped(self) -> None:
        """No more probes; one still running is killed (the shim reaps it)."""
        self.active = False
        self.next_at = None
        if self.pid:
            self._kill(SIGKILL)

    # -- handing over to the shim's next image (shim/handover.py) -------------------------

    _SAVED = ("state", "started", "next_at", "pid", "fd", "probe_start", "deadline",
              "term_sent", "active")

    def handover_state(self) -> dict:
        """Everything but the config; times are CLOCK_MONOTONIC, which an execve keeps."""
        return {**{k: getattr(self, k) for k in self._SAVED},
                "output": self.output.decode("latin-1")}

    def restore(self, state: dict) -> None:
        for k in self._SAVED:
            setattr(self, k, state[k])
        self.output = state["output"].encode("latin-1")

    # -- the main loop's view ------------------------------------------------------------

    def fds(self) -> list[int]:
        return [self.fd] if self.fd >= 0 else []

    def wait_time(self, now: float) -> float | None:
        if self.pid:
            return max(0.0, (self.deadline + (KILL_GRACE if self.term_sent else 0)) - now)
        if self.next_at is not None:
            return max(0.0, self.next_at - now)
        return None

    def tick(self, now: float) -> None:
        """Start a probe when one is due; end one that outlived its timeout."""
        if self.pid:
            if now >= self.deadline and not self.term_sent:
                self._kill(SIGTERM)
                self.term_sent = True
            elif self.term_sent and now >= self.deadline + KILL_GRACE:
                self._kill(SIGKILL)
            return
        if self.next_at is not None and now >= self.next_at:
            self._spawn()

    def read(self) -> None:
        try:
            data = os.read(self.fd, 65536)
        except OSError:
            data = b""
        if not data:
            os.close(self.fd)
            self.fd = -1
            return
        if len(self.output) < MAX_OUTPUT:
            self.output = (self.output + data)[:MAX_OUTPUT]

    def reaped(self, pid: int, status: int) -> bool:
        """Whether ``pid`` was the probe; if so its result is recorded."""
        if pid != self.pid or not pid:
            return False
        while self.fd >= 0:
            self.read()  # the rest of its output (the probe is gone: the pipe ends)
        if self.term_sent or os.WIFSIGNALED(status):
            code, text = -1, f"Health check exceeded timeout ({self.timeout:g}s)\n"
            if not self.term_sent:
                code, text = 128 + os.WTERMSIG(status), self.output.decode("utf-8", "replace")
        else:
            code, text = os.WEXITSTATUS(status), self.output.decode("utf-8", "replace")
        self.pid = 0
        if self.active:  # not a probe killed because the container stopped
            self._record(code, text)
        return True

    # -- probes ------------------------------------------------------------------------

    def _spawn(self) -> None:
        r, w = os.pipe2(os.O_CLOEXEC)
        self.probe_start = time.time_ns()
        try:
            pid = probe.spawn(self.runtime_root, self.id, self.argv, w)
        except OSError as e:  # no process to start: a failed probe, tried again later
            os.close(r)
            self._record(-1, f"health check: cannot start the probe: {e}\n")
            return
        finally:
            os.close(w)
        self.pid, self.fd, self.output = pid, r, b""
        self.deadline = time.monotonic() + self.timeout
        self.term_sent = False
        self.next_at = None

    def _kill(self, sig: int) -> None:
        try:
            os.kill(self.pid, sig)  # the probe forwards SIGTERM to the command inside
        except ProcessLookupError:
            pass

    def _record(self, code: int, output: str) -> None:
        now = time.monotonic()
        log = self.state["Log"]
        log.append({"Start": rfc3339(self.probe_start), "End": rfc3339(time.time_ns()),
                    "ExitCode": code, "Output": output})
        del log[:-KEEP_RESULTS]
        if code == 0:
            self.state.update(Status="healthy", FailingStreak=0)
        elif now - self.started >= self.start_period or self.state["Status"] == "healthy":
            streak = self.state["FailingStreak"] + 1
            self.state["FailingStreak"] = streak
            if streak >= self.retries:
                self.state["Status"] = "unhealthy"
        self.next_at = now + self.interval
