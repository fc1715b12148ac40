"""The per-container supervisor: ``python -m hutch.shim CONFIG``.

One shim per container, started by the engine and left running when the engine's
process exits (daemonless), so a container outlives the command that started it.
The shim is the container's parent (a child subreaper), holds its stdio pipes or
its pty master, writes its output to a JSON-lines log with rotation, serves a
control socket (status, attach, resize, kill, stop), records the exit status and
applies the restart policy. It imports the standard library and hutch's runtime
only: it is on the start path of every container.

Files in the shim's directory (``config["dir"]``)::

    shim.json      the config the engine wrote
    status.json    what the shim knows: state, pid, exit code, restarts (atomic writes)
    control.sock   the control socket
    container.log  the log (container.log.1 ... after rotation)
"""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import sys
import time

from hutch.common.atomicfile import write_json_atomic
from hutch.linux import constants as C
from hutch.linux.syscalls import prctl
from hutch.shim.logs import JsonLog, rfc3339

READY_FD_ENV = "HUTCH_SHIM_READY_FD"


class Shim:
    def __init__(self, config: dict) -> None:
        self.config = config
        self.id = config["id"]
        self.dir = config["dir"]
        self.runtime_root = config["runtime_root"]
        self.bundle = config["bundle"]
        self.terminal = bool(config.get("terminal"))
        self.open_stdin = bool(config.get("stdin"))
        log = config.get("log") or {}
        self.log = JsonLog(os.path.join(self.dir, "container.log"),
                           int(log.get("max_size", 10 << 20)), int(log.get("max_files", 3)))
        restart = config.get("restart") or {}
        self.policy = restart.get("policy", "no")
        self.max_retries = int(restart.get("max_retries", 0))
        self.stop_signal = int(config.get("stop_signal", signal.SIGTERM))
        # An OS container's init powering off (reboot(2) in its pid namespace: the kernel
        # ends it with SIGINT) is a clean exit, 0, as LXC takes it.
        self.halt_is_exit_0 = bool(config.get("halt_is_exit_0"))
        self.status: dict = {"state": "created", "restart_count": 0, "pid": 0}
        self.pid = 0
        self.outputs: dict[int, str] = {}  # fd -> stream name
        self.stdin_w = -1
        self.master = -1
        # Our own open of the pty's slave: with it, the master never reads EIO while
        # no process of the container has its console open (sysvinit opens
        # /dev/console per message), so the console lives as long as the container.
        self.console_peer = -1
        self.clients: list[socket.socket] = []  # attached: get output
        self.control: socket.socket | None = None
        self.user_stopped = False
        self.pending_start = False
        self.stop_deadline: float | None = None
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
        write_json_atomic(os.path.join(self.dir, "status.json"), self.status)

    # -- container --------------------------------------------------------------------

    def start_container(self) -> None:
        from hutch.runtime.container import Container
        from hutch.runtime.launcher import CreateOptions, create

        console_parent = console_child = None
        fds_for_init: list[int] = []
        if self.terminal:
            console_parent, console_child = socket.socketpair()
        else:
            r_out, w_out = os.pipe2(os.O_CLOEXEC)
            r_err, w_err = os.pipe2(os.O_CLOEXEC)
            if self.open_stdin:
                r_in, self.stdin_w = os.pipe2(os.O_CLOEXEC)
            else:
                r_in = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
            fds_for_init = [r_in, w_out, w_err]
            self.outputs = {r_out: "stdout", r_err: "stderr"}
        saved = [os.dup(i) for i in (0, 1, 2)]
        try:
            for i, fd in enumerate(fds_for_init):
                os.dup2(fd, i)  # the container's init inherits our stdio
            record = create(self.runtime_root, self.id,
                            CreateOptions(self.bundle, console_sock=console_child))
            if console_parent is not None:
                from hutch.runtime.console import receive_master
                console_child.close()  # type: ignore[union-attr]
                self.master = receive_master(console_parent)
                console_parent.close()
                self.console_peer = _open_peer(self.master)
                self.outputs = {self.master: "stdout"}
            if self.config.get("start_on_attach") and not self.clients:
                self.pending_start = True  # `hutch run -t`: start once the user is attached
            else:
                Container(self.runtime_root, self.id).start()
        finally:
            for i, fd in enumerate(saved):
                os.dup2(fd, i)
                os.close(fd)
            for fd in fds_for_init:
                os.close(fd)
        self.pid = record["pid"]
        if self.health is not None:
            self.health.container_started()
        self.save(state="running", pid=self.pid, started_at=rfc3339(time.time_ns()),
                  exit_code=None, finished_at=None)

    def container_exited(self, status: int) -> None:
        code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        if self.halt_is_exit_0 and os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGINT:
            code = 0
        self.drain()
        self.log.flush()
        for fd in list(self.outputs):
            os.close(fd)
        self.outputs = {}
        self.master = -1
        if self.console_peer >= 0:
            os.close(self.console_peer)
            self.console_peer = -1
        if self.stdin_w >= 0:
            os.close(self.stdin_w)
            self.stdin_w = -1
        self.pid = 0
        if self.health is not None:
            self.health.container_stopped()
        from hutch.runtime.container import Container
        try:
            Container(self.runtime_root, self.id).delete(force=True)
        except Exception as e:  # noqa: BLE001 - record it, keep supervising
            self.log.write("stderr", f"hutch-shim: cleanup: {e}\n".encode())
        self.save(state="exited", pid=0, exit_code=code, finished_at=rfc3339(time.time_ns()))
        self.stop_deadline = None

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

    # -- output and clients -----------------------------------------------------------

    def drain(self) -> None:
        """Read what the container wrote and has not been logged yet."""
        for fd in list(self.outputs):
            while True:
                ready, _, _ = select.select([fd], [], [], 0)
                if not ready or not self.pump(fd):
                    break

    def pump(self, fd: int) -> bool:
        try:
            data = os.read(fd, 65536)
        except OSError:
            data = b""
        if not data:
            return False
        self.log.write(self.outputs.get(fd, "stdout"), data)
        for c in list(self.clients):
            try:
                c.sendall(data)
            except OSError:
                self.drop(c)
        return True

    def drop(self, client: socket.socket) -> None:
        if client in self.clients:
            self.clients.remove(client)
        client.close()

    def handle_request(self, conn: socket.socket) -> None:
        """One JSON request per connection; attach keeps the connection."""
        conn.settimeout(2)
        try:
            raw = conn.recv(65536)
            req = json.loads(raw.split(b"\n", 1)[0] or b"{}")
        except (OSError, ValueError):
            conn.close()
            return
        if not req:  # a liveness probe: connected and closed
            conn.close()
            return
        op = req.get("op")
        reply: dict = {"ok": True}
        if op == "status":
            reply["status"] = self.status
        elif op == "kill" and self.pid:
            self._signal(int(req.get("signal", signal.SIGKILL)), bool(req.get("all")))
        elif op == "stop":
            self.user_stopped = True
            if self.pid:
                self._signal(self.stop_signal, False)
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
                from hutch.runtime.console import set_winsize
                set_winsize(master, int(req.get("rows", 24)), int(req.get("cols", 80)))
        elif op == "resize" and self.master >= 0:
            from hutch.runtime.console import set_winsize
            set_winsize(self.master, int(req.get("rows", 24)), int(req.get("cols", 80)))
        elif op == "attach":
            conn.settimeout(None)
            conn.sendall(b'{"ok": true}\n')
            self.clients.append(conn)
            if self.pending_start:
                from hutch.runtime.container import Container
                self.pending_start = False
                Container(self.runtime_root, self.id).start()
            return
        elif op == "write" and (self.stdin_w >= 0 or self.master >= 0):
            os.write(self.stdin_w if self.stdin_w >= 0 else self.master,
                     req.get("data", "").encode())
        elif op not in ("kill", "resize", "write"):
            reply = {"ok": False, "error": f"unknown request {op!r}"}
        try:
            conn.sendall((json.dumps(reply) + "\n").encode())
        except OSError:
            pass  # the client went away (a liveness probe does): nothing to tell it
        finally:
            conn.close()

    def client_input(self, client: socket.socket) -> None:
        """Bytes from an attached client go to the container's stdin (or its pty)."""
        try:
            data = client.recv(65536)
        except OSError:
            data = b""
        if not data:
            self.drop(client)
            return
        target = self.master if self.master >= 0 else self.stdin_w
        if target >= 0:
            os.write(target, data)

    def _signal(self, sig: int, all_processes: bool) -> None:
        from hutch.runtime.container import Container
        try:
            Container(self.runtime_root, self.id).kill(sig, all_processes)
        except Exception:  # noqa: BLE001 - it may have just exited
            pass

    # -- main loop ----------------------------------------------------------------------

    def run(self, ready_fd: int) -> int:
        prctl(C.PR_SET_CHILD_SUBREAPER, 1)
        path = os.path.join(self.dir, "control.sock")
        if os.path.exists(path):
            os.unlink(path)
        self.control = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.control.bind(path)
        self.control.listen(16)
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        signal.signal(signal.SIGTERM, lambda *_: None)  # the engine stops containers, not us
        try:
            if self.ttys is not None:
                self.ttys.open()
            self.start_container()
        except Exception as e:  # noqa: BLE001 - the engine reports it
            _report(ready_fd, {"ok": False, "error": str(e)})
            self.save(state="failed", error=str(e))
            return 1
        _report(ready_fd, {"ok": True, "pid": self.pid})
        restart_at: float | None = None
        while True:
            timeout = 1.0
            now = time.monotonic()
            if restart_at is not None:
                timeout = max(0.0, restart_at - now)
            if self.stop_deadline is not None:
                timeout = min(timeout, max(0.0, self.stop_deadline - now))
            health_fds = self.health.fds() if self.health is not None else []
            if self.health is not None and not self.pending_start:
                wait = self.health.wait_time(now)
                timeout = timeout if wait is None else min(timeout, wait)
            tty_fds = self.ttys.fds() if self.ttys is not None else []
            fds = [self.control, wake_r, *self.outputs, *self.clients, *health_fds, *tty_fds]
            ready, _, _ = select.select(fds, [], [], timeout)
            for r in ready:
                if r is self.control:
                    conn, _ = self.control.accept()
                    try:
                        self.handle_request(conn)
                    except Exception as e:  # noqa: BLE001 - one bad request must not end us
                        self.log.write("stderr", f"hutch-shim: request failed: {e}\n".encode())
                        conn.close()
                elif r == wake_r:
                    try:
                        os.read(wake_r, 512)
                    except BlockingIOError:
                        pass
                elif self.ttys is not None and self.ttys.owns(r):
                    self.ttys.ready(r)
                elif r in health_fds:
                    self.health.read()  # type: ignore[union-attr]
                elif isinstance(r, int):
                    if not self.pump(r):
                        self.outputs.pop(r, None)
                        os.close(r)
                else:
                    self.client_input(r)
            self.reap()
            if self.health is not None and self.pid and not self.pending_start:
                self.health.tick(time.monotonic())
            if self.stop_deadline is not None and time.monotonic() >= self.stop_deadline:
                self._signal(signal.SIGKILL, True)
                self.stop_deadline = None
            if self.pid == 0 and restart_at is None and self.status.get("state") == "exited":
                if not self.should_restart():
                    break
                restart_at = time.monotonic() + self.backoff()
                self.save(state="restarting")
            if restart_at is not None and self.user_stopped:
                restart_at = None
                self.save(state="exited")
                break
            if restart_at is not None and time.monotonic() >= restart_at:
                restart_at = None
                self.status["restart_count"] = self.status.get("restart_count", 0) + 1
                try:
                    self.start_container()
                except Exception as e:  # noqa: BLE001
                    self.save(state="exited", error=f"restart failed: {e}")
                    break
        for c in list(self.clients):
            self.drop(c)
        if self.ttys is not None:
            self.ttys.close()
        self.log.close()
        self.control.close()
        os.unlink(path)
        return 0

    def reap(self) -> None:
        while True:
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


def _open_peer(master: int) -> int:
    """The slave side of the pty ``master`` (TIOCGPTPEER), not as our controlling tty."""
    import fcntl
    import termios
    request = getattr(termios, "TIOCGPTPEER", 0x5441)
    try:
        return fcntl.ioctl(master, request, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return -1  # an old kernel: the console ends when the container's last user closes it


def _report(fd: int, message: dict) -> None:
    if fd < 0:
        return
    try:
        os.write(fd, (json.dumps(message) + "\n").encode())
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    with open(args[0]) as f:
        config = json.load(f)
    ready_fd = int(os.environ.pop(READY_FD_ENV, "-1"))
    return Shim(config).run(ready_fd)


if __name__ == "__main__":
    sys.exit(main())
