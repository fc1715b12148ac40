"""The shim's main loop, and the lean image that runs it while a container lives.

Why a lean image: one shim runs per container for the container's whole life, so
its private memory is what each more container costs. The process that created
the container imported the runtime (launcher, the seccomp binding and
libseccomp), ``json``, ``socket`` and ``signal`` (which pull in ``enum`` and
``re``): about 7 MiB that it would keep. This module and what it imports use only
``os``, ``select``, ``time`` and the C modules ``_signal``, ``_socket`` and
``_json`` (about 3 MiB in all), and the shim re-executes into it (same pid: it
stays the container's parent and subreaper) once the container has run for
``LEAN_AFTER`` seconds. A container that ends sooner never pays for the switch.

Two images, one loop (``Supervisor.serve``):

- the full image (shim/main.py, ``python -m hutch.shim``) subclasses Supervisor:
  it creates and starts the container in-process, and handles its exit (the
  runtime's delete) and the restart policy;
- the lean image (``python -S -c 'from hutch.shim.supervisor import main; ...'``)
  serves control requests, output, logs, attached clients, ttys and health
  probes. A signal for the container's init goes straight to it (the init is our
  child: its pid cannot be reused before we reap it); health probes run in a
  short-lived child (shim/probe.py). When the container exits, or every process of
  it is to be killed (a stop's timeout, ``rm -f``), it re-executes the full image,
  which does that with the runtime, cleans up and restarts the container if the
  policy says so. Both happen once at the end of a container's life.

State crosses each execve as inheritable fds and JSON in a memfd (shim/handover.py).
"""

from __future__ import annotations

import os
import select
import sys
import time

import _signal
from _socket import socket

from hutch.common.atomicfile import write_atomic
from hutch.shim import handover, minijson
from hutch.shim.logs import JsonLog

LEAN_AFTER = 1.0  # seconds a container runs before its shim switches to the lean image
LEAN_CODE = "from hutch.shim.supervisor import main; main()"


def _ignore(_signum: int, _frame: object) -> None:
    """A handler, not SIG_IGN: the dispositions of handled signals are not inherited
    by what the shim starts (an ignored one would be, by the container's init too)."""


class Supervisor:
    """The state of a shim and the loop that serves it; the lean image's behaviour
    where the container's runtime is needed (shim/main.py overrides those methods)."""

    lean = True

    def __init__(self, config: dict, config_path: str) -> None:
        self.config = config
        self.config_path = config_path
        self.id = config["id"]
        self.dir = config["dir"]
        self.runtime_root = config["runtime_root"]
        self.bundle = config["bundle"]
        self.terminal = bool(config.get("terminal"))
        self.open_stdin = bool(config.get("stdin"))
        log = config.get("log") or {}
        self.log_path = os.path.join(self.dir, "container.log")
        self.log_max_size = int(log.get("max_size", 10 << 20))
        self.log_max_files = int(log.get("max_files", 3))
        self.log: JsonLog | None = None
        restart = config.get("restart") or {}
        self.policy = restart.get("policy", "no")
        self.max_retries = int(restart.get("max_retries", 0))
        self.stop_signal = int(config.get("stop_signal", _signal.SIGTERM))
        # An OS container's init powering off (reboot(2) in its pid namespace: the kernel
        # ends it with SIGINT) is a clean exit, 0, as LXC takes it.
        self.halt_is_exit_0 = bool(config.get("halt_is_exit_0"))
        self.status: dict = {"state": "created", "restart_count": 0, "pid": 0}
        self.pid = 0
        self.started = 0.0  # time.monotonic() of the container's last start
        self.outputs: dict[int, str] = {}  # fd -> stream name
        self.stdin_w = -1
        self.master = -1
        # Our own open of the pty's slave: with it, the master never reads EIO while
        # no process of the container has its console open (sysvinit opens
        # /dev/console per message), so the console lives as long as the container.
        self.console_peer = -1
        self.clients: dict[int, socket] = {}  # fd -> attached client: gets the output
        self.control: socket | None = None
        self.wake_r = -1
        self.user_stopped = False
        self.pending_start = False
        self.stop_deadline: float | None = None
        self.restart_at: float | None = None
        # What the lean image leaves to the full one: an exit status, a signal for every
        # process of the container.
        self.exited_status: int | None = None
        self.pending_kill: int | None = None
        self.ttys = None
        if config.get("ttys"):
            from hutch.shim.ttys import Ttys
            self.ttys = Ttys(int(config["ttys"]), self.bundle, int(config.get("tty_owner") or 0))
        self.health = None
        if config.get("health"):
            from hutch.shim.health import HealthCheck
            self.health = HealthCheck(config["health"], self.runtime_root, self.id)
            self.status["health"] = self.health.state  # saved with the status

    # -- status -----------------------------------------------------------------------

    def save(self, **changes: object) -> None:
        self.status.update(changes)
        write_atomic(os.path.join(self.dir, "status.json"),
                     minijson.dumps(self.status).encode())

    # -- what needs the runtime: the lean image's way ------------------------------------

    def kill(self, sig: int, all_processes: bool) -> None:
        """``sig`` to the init. Every process of the container (the runtime's cgroup
        kill: forks cannot escape, a frozen cgroup is thawed) is the full image's
        work: it runs next. SIGKILL to the init first ends a pid namespace at once."""
        if not self.pid:
            return
        if not all_processes or sig == _signal.SIGKILL:
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass
        if all_processes:
            self.pending_kill = sig

    def container_exited(self, status: int) -> None:
        """Cleaning up and restarting need the runtime: the full image does it."""
        self.exited_status = status
        self.hand_over()

    def start_pending(self) -> None:
        raise AssertionError("only the full image holds a container not started yet")

    # -- switching images ---------------------------------------------------------------

    def hand_over(self) -> None:
        """Re-execute into the other image (here: the full one). Returns only if the
        execve failed; the switch is tried again at the next turn of the loop."""
        env = dict(os.environ)
        argv = [sys.executable, "-m", "hutch.shim", self.config_path]
        try:
            handover.exec_image(argv, env, self.handover_state(), self.handover_fds())
        except OSError as e:
            self.log_error(f"cannot re-execute the shim: {e}")

    def handover_state(self) -> dict:
        assert self.log is not None and self.control is not None
        return {
            "status": self.status, "pid": self.pid, "started": self.started,
            "outputs": [[fd, name] for fd, name in self.outputs.items()],
            "stdin_w": self.stdin_w, "master": self.master, "console_peer": self.console_peer,
            "clients": list(self.clients), "control": self.control.fileno(),
            "user_stopped": self.user_stopped, "pending_start": self.pending_start,
            "stop_deadline": self.stop_deadline, "restart_at": self.restart_at,
            "exited_status": self.exited_status, "pending_kill": self.pending_kill,
            "log": self.log.handover_state(),
            "ttys": self.ttys.handover_state() if self.ttys is not None else None,
            "health": self.health.handover_state() if self.health is not None else None,
        }

    def handover_fds(self) -> list[int]:
        assert self.log is not None and self.control is not None
        fds = [self.control.fileno(), self.log.fd, *self.outputs, *self.clients]
        fds += [fd for fd in (self.stdin_w, self.master, self.console_peer) if fd >= 0]
        if self.ttys is not None:
            fds += [*self.ttys.masters, *self.ttys.slaves, *self.ttys.clients]
        if self.health is not None:
            fds += self.health.fds()
        return fds

    def restore(self, state: dict) -> None:
        """Take over the previous image's state (``handover_state``)."""
        self.status = state["status"]
        self.pid, self.started = int(state["pid"]), float(state["started"])
        self.outputs = {int(fd): name for fd, name in state["outputs"]}
        self.stdin_w, self.master = int(state["stdin_w"]), int(state["master"])
        self.console_peer = int(state["console_peer"])
        self.clients = {int(fd): socket(fileno=int(fd)) for fd in state["clients"]}
        self.control = socket(fileno=int(state["control"]))
        self.user_stopped, self.pending_start = state["user_stopped"], state["pending_start"]
        self.stop_deadline, self.restart_at = state["stop_deadline"], state["restart_at"]
        self.exited_status, self.pending_kill = state["exited_status"], state["pending_kill"]
        self.log = JsonLog.restore(self.log_path, self.log_max_size, self.log_max_files,
                                   state["log"])
        if self.ttys is not None:
            self.ttys.restore(state["ttys"])
        if self.health is not None:
            self.health.restore(state["health"])
            self.status["health"] = self.health.state  # one dict again, saved with the status
        handover.seal(self.handover_fds())

    def ready_to_hand_over(self, now: float) -> bool:
        """Whether to switch images now: the lean image does for what needs the runtime
        (an exit, a kill of every process)."""
        return self.exited_status is not None or self.pending_kill is not None

    # -- output and clients -----------------------------------------------------------

    def log_error(self, text: str) -> None:
        if self.log is not None:
            self.log.write("stderr", f"hutch-shim: {text}\n".encode())

    def drain(self, settle: float = 0.0) -> None:
        """Read what the container wrote and has not been logged yet.

        ``settle``: how long to wait for more from a terminal. What a process writes to
        a pty reaches the master through the kernel's flip buffer, pushed by a worker
        thread a moment later: the last line before an exit (a halt's "Will now halt.")
        may not be readable yet when the exit is seen."""
        for fd in list(self.outputs):
            wait = settle if fd == self.master else 0.0
            while True:
                ready, _, _ = select.select([fd], [], [], wait)
                if not ready or not self.pump(fd):
                    break

    def pump(self, fd: int) -> bool:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if not data:
            return False
        assert self.log is not None
        self.log.write(self.outputs.get(fd, "stdout"), data)
        for cfd, c in list(self.clients.items()):
            try:
                c.sendall(data)
            except OSError:
                self.drop(cfd)
        return True

    def drop(self, fd: int) -> None:
        client = self.clients.pop(fd, None)
        if client is not None:
            client.close()

    def handle_request(self, conn: socket) -> None:
        """One JSON request per connection; attach keeps the connection."""
        conn.settimeout(2)
        try:
            raw = conn.recv(65536)
            req = minijson.loads(raw.split(b"\n", 1)[0] or b"{}")
        except (OSError, ValueError):
            conn.close()
            return
        if not req or not isinstance(req, dict):  # a liveness probe: connected and closed
            conn.close()
            return
        op = req.get("op")
        reply: dict = {"ok": True}
        if op == "status":
            reply["status"] = self.status
        elif op == "kill" and self.pid:
            self.kill(int(req.get("signal", _signal.SIGKILL)), bool(req.get("all")))
        elif op == "stop":
            self.user_stopped = True
            if self.pid:
                self.kill(self.stop_signal, False)
                self.stop_deadline = time.monotonic() + float(req.get("timeout", 10))
        elif op in ("attach", "resize") and req.get("tty"):
            try:
                master = self.ttys.master_of(int(req["tty"]))  # type: ignore[union-attr]
            except (AttributeError, KeyError, ValueError):
                count = self.ttys.count if self.ttys is not None else 0
                reply = {"ok": False, "error": f"no tty {req['tty']}: the container has "
                         f"{count} (1..{count})" if count else "the container has no ttys"}
            else:
                if op == "attach":
                    conn.settimeout(None)
                    conn.sendall(b'{"ok": true}\n')
                    self.ttys.attach(int(req["tty"]), conn)  # type: ignore[union-attr]
                    return
                set_winsize(master, int(req.get("rows", 24)), int(req.get("cols", 80)))
        elif op == "resize" and self.master >= 0:
            set_winsize(self.master, int(req.get("rows", 24)), int(req.get("cols", 80)))
        elif op == "attach":
            conn.settimeout(None)
            conn.sendall(b'{"ok": true}\n')
            self.clients[conn.fileno()] = conn
            if self.pending_start:
                self.pending_start = False
                self.start_pending()
            return
        elif op == "write" and (self.stdin_w >= 0 or self.master >= 0):
            os.write(self.stdin_w if self.stdin_w >= 0 else self.master,
                     str(req.get("data", "")).encode())
        elif op not in ("kill", "resize", "write"):
            reply = {"ok": False, "error": f"unknown request {op!r}"}
        try:
            conn.sendall((minijson.dumps(reply) + "\n").encode())
        except OSError:
            pass  # the client went away (a liveness probe does): nothing to tell it
        finally:
            conn.close()

    def client_input(self, fd: int) -> None:
        """Bytes from an attached client go to the container's stdin (or its pty)."""
        try:
            data = self.clients[fd].recv(65536)
        except OSError:
            data = b""
        if not data:
            self.drop(fd)
            return
        target = self.master if self.master >= 0 else self.stdin_w
        if target >= 0:
            os.write(target, data)

    # -- main loop ----------------------------------------------------------------------

    def install_signals(self) -> None:
        """SIGCHLD wakes the loop (through a pipe); SIGTERM is not for us: the engine
        stops containers through the control socket."""
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.wake_r = wake_r
        _signal.set_wakeup_fd(wake_w)
        _signal.signal(_signal.SIGCHLD, _ignore)
        _signal.signal(_signal.SIGTERM, _ignore)

    def serve(self) -> int:
        """Until the container has ended for good; then close everything and return 0."""
        assert self.control is not None and self.log is not None
        control = self.control.fileno()
        self.reap()  # what ended while no handler was there (across an execve)
        while True:
            now = time.monotonic()
            if self.ready_to_hand_over(now):
                self.hand_over()  # returns only if it failed: go on here
            timeout = 1.0
            if self.restart_at is not None:
                timeout = max(0.0, self.restart_at - now)
            if self.stop_deadline is not None:
                timeout = min(timeout, max(0.0, self.stop_deadline - now))
            if not self.lean and self.pid and now < self.started + LEAN_AFTER:
                timeout = min(timeout, self.started + LEAN_AFTER - now)  # time to switch
            health_fds = self.health.fds() if self.health is not None else []
            if self.health is not None and not self.pending_start:
                wait = self.health.wait_time(now)
                timeout = timeout if wait is None else min(timeout, wait)
            tty_fds = self.ttys.fds() if self.ttys is not None else []
            fds = [control, self.wake_r, *self.outputs, *self.clients, *health_fds, *tty_fds]
            ready, _, _ = select.select(fds, [], [], timeout)
            for fd in ready:
                self.dispatch(fd, control, health_fds)
            self.reap()
            if self.exited_status is not None:
                continue  # the lean image hands over to the full one
            if self.health is not None and self.pid and not self.pending_start:
                self.health.tick(time.monotonic())
            if self.stop_deadline is not None and time.monotonic() >= self.stop_deadline:
                self.kill(_signal.SIGKILL, True)
                self.stop_deadline = None
            if self.pid == 0 and self.restart_at is None and self.status.get("state") == "exited":
                if not self.should_restart():
                    break
                self.restart_at = time.monotonic() + self.backoff()
                self.save(state="restarting")
            if self.restart_at is not None and self.user_stopped:
                self.restart_at = None
                self.save(state="exited")
                break
            if self.restart_at is not None and time.monotonic() >= self.restart_at:
                self.restart_at = None
                self.status["restart_count"] = self.status.get("restart_count", 0) + 1
                try:
                    self.start_container()
                except Exception as e:  # noqa: BLE001
                    self.save(state="exited", error=f"restart failed: {e}")
                    break
        self.close()
        return 0

    def start_container(self) -> None:
        raise AssertionError("only the full image starts containers")

    def dispatch(self, fd: int, control: int, health_fds: list[int]) -> None:
        """One ready fd of the loop."""
        if fd == control:
            assert self.control is not None
            conn_fd, _ = self.control._accept()
            conn = socket(fileno=conn_fd)
            try:
                self.handle_request(conn)
            except Exception as e:  # noqa: BLE001 - one bad request must not end us
                self.log_error(f"request failed: {e}")
                conn.close()
        elif fd == self.wake_r:
            try:
                os.read(self.wake_r, 512)
            except BlockingIOError:
                pass
        elif self.ttys is not None and self.ttys.owns(fd):
            self.ttys.ready(fd)
        elif fd in health_fds:
            self.health.read()  # type: ignore[union-attr]
        elif fd in self.outputs:
            if not self.pump(fd):
                self.outputs.pop(fd, None)
                os.close(fd)
        elif fd in self.clients:
            self.client_input(fd)

    def close(self) -> None:
        """The end of the shim: its clients, ttys, log and control socket."""
        for fd in list(self.clients):
            self.drop(fd)
        if self.ttys is not None:
            self.ttys.close()
        if self.log is not None:
            self.log.close()
        if self.control is not None:
            self.control.close()
        try:
            os.unlink(os.path.join(self.dir, "control.sock"))
        except FileNotFoundError:
            pass

    def should_restart(self) -> bool:
        if self.user_stopped or self.policy == "no":
            return False
        code = self.status.get("exit_code")
        count = self.status.get("restart_count", 0)
        if self.policy == "on-failure":
            return code != 0 and (self.max_retries == 0 or count < self.max_retries)
        return self.policy in ("always", "unless-stopped")

    def backoff(self) -> float:
        """Docker's: 100 ms, doubled at each restart, at most a minute."""
        return min(0.1 * (2 ** self.status.get("restart_count", 0)), 60.0)

    def reap(self) -> None:
        while self.exited_status is None:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid == self.pid:
                self.container_exited(status)
            elif self.health is not None and self.health.reaped(pid, status):
                self.save()


def set_winsize(fd: int, rows: int, cols: int) -> None:
    """A terminal's size (TIOCSWINSZ), as a client's resize asks."""
    import fcntl
    import struct
    import termios
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def read_config(path: str) -> dict:
    with open(path, "rb") as f:
        config = minijson.loads(f.read())
    if not isinstance(config, dict):
        raise ValueError(f"{path}: the shim's config is not a JSON object")
    return config


def main() -> None:
    """The lean image: ``python -S -c LEAN_CODE CONFIG --resume FD``."""
    args = sys.argv[1:]
    memfd = handover.resume_fd(args)
    if memfd is None:
        sys.exit("hutch.shim.supervisor: started by a shim only (--resume FD)")
    shim = Supervisor(read_config(args[0]), args[0])
    state = handover.receive(memfd)
    shim.install_signals()
    shim.restore(state)
    sys.exit(shim.serve())
