"""The per-container supervisor: ``python -m hutch.shim CONFIG``.

One shim per container, started by the engine and left running when the engine's
process exits (daemonless), so a container outlives the command that started it.
The shim is the container's parent (a child subreaper), holds its stdio pipes or
its pty master, writes its output to a JSON-lines log with rotation, serves a
control socket (status, attach, resize, kill, stop), records the exit status and
applies the restart policy. It imports the standard library and hutch's runtime
only: it is on the start path of every container.

This is the shim's full image: it creates and starts the container in-process
(the runtime's modules are loaded anyway; a child process would cost one more
process start on every container's start path), handles its exit and restarts
it. Once the container has run for a while, the shim re-executes into its lean
image (shim/supervisor.py, which says why) and comes back here when the
container exits.

Files in the shim's directory (``config["dir"]``)::

    shim.json      the config the engine wrote
    status.json    what the shim knows: state, pid, exit code, restarts (atomic writes)
    control.sock   the control socket
    container.log  the log (container.log.1 ... after rotation)
"""

from __future__ import annotations

import os
import sys
import time

import _signal
from _socket import AF_UNIX, SOCK_STREAM, socket

from hutch.shim import handover, minijson
from hutch.shim.logs import JsonLog, rfc3339
from hutch.shim.supervisor import LEAN_AFTER, LEAN_CODE, Supervisor, read_config

READY_FD_ENV = "HUTCH_SHIM_READY_FD"


class Shim(Supervisor):
    """The full image: a Supervisor with the runtime at hand."""

    lean = False
    stay_full = False  # until the next start: the container is ending, or a switch failed

    # -- container --------------------------------------------------------------------

    def start_container(self) -> None:
        from socket import socketpair  # the runtime's console code takes socket.socket

        from hutch.runtime.container import Container
        from hutch.runtime.launcher import CreateOptions, create

        console_parent = console_child = None
        fds_for_init: list[int] = []
        if self.terminal:
            console_parent, console_child = socketpair()
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
        self.started = time.monotonic()
        self.stay_full = False
        if self.health is not None:
            self.health.container_started()
        self.save(state="running", pid=self.pid, started_at=rfc3339(time.time_ns()),
                  exit_code=None, finished_at=None)

    def start_pending(self) -> None:
        from hutch.runtime.container import Container
        Container(self.runtime_root, self.id).start()
        self.started = time.monotonic()

    def container_exited(self, status: int) -> None:
        code = 128 + os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        if self.halt_is_exit_0 and os.WIFSIGNALED(status) \
                and os.WTERMSIG(status) == _signal.SIGINT:
            code = 0
        self.drain(settle=0.05)
        assert self.log is not None
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
            self.log_error(f"cleanup: {e}")
        self.save(state="exited", pid=0, exit_code=code, finished_at=rfc3339(time.time_ns()))
        self.stop_deadline = None

    def kill(self, sig: int, all_processes: bool) -> None:
        from hutch.runtime.container import Container
        try:
            Container(self.runtime_root, self.id).kill(sig, all_processes)
        except Exception:  # noqa: BLE001 - it may have just exited
            pass

    # -- switching to the lean image ----------------------------------------------------

    def ready_to_hand_over(self, now: float) -> bool:
        """Once the container has run for LEAN_AFTER seconds and nothing pending needs
        the runtime (a start on attach, a restart, a stop, the end of the container)."""
        return bool(self.pid) and not self.stay_full and not self.pending_start \
            and self.restart_at is None and self.stop_deadline is None \
            and now - self.started >= LEAN_AFTER

    def hand_over(self) -> None:
        # -S: no site (its .pth files and imports); hutch is found through PYTHONPATH.
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))))
        env = dict(os.environ)
        path = env.get("PYTHONPATH", "")
        if path.split(os.pathsep)[0] != package_root:
            env["PYTHONPATH"] = package_root + (os.pathsep + path if path else "")
        argv = [sys.executable, "-S", "-c", LEAN_CODE, self.config_path]
        try:
            handover.exec_image(argv, env, self.handover_state(), self.handover_fds())
        except OSError as e:
            self.log_error(f"cannot re-execute the shim into its lean image: {e}")
            self.stay_full = True

    # -- start ----------------------------------------------------------------------------

    def run(self, ready_fd: int) -> int:
        """A fresh shim: control socket, the container, the report to the engine, serve."""
        from hutch.linux import constants as C
        from hutch.linux.syscalls import prctl

        prctl(C.PR_SET_CHILD_SUBREAPER, 1)
        self.log = JsonLog(self.log_path, self.log_max_size, self.log_max_files)
        path = os.path.join(self.dir, "control.sock")
        if os.path.exists(path):
            os.unlink(path)
        self.control = socket(AF_UNIX, SOCK_STREAM)
        self.control.bind(path)
        self.control.listen(16)
        self.install_signals()
        try:
            if self.ttys is not None:
                self.ttys.open()
            self.start_container()
        except Exception as e:  # noqa: BLE001 - the engine reports it
            _report(ready_fd, {"ok": False, "error": str(e)})
            self.save(state="failed", error=str(e))
            return 1
        _report(ready_fd, {"ok": True, "pid": self.pid})
        return self.serve()

    def resume(self, state: dict) -> int:
        """Back from the lean image: the container exited, or every process of it is
        to be killed; this image stays until the container has ended for good."""
        self.install_signals()
        self.restore(state)
        sig, self.pending_kill = self.pending_kill, None
        if sig is not None:
            self.kill(sig, True)
            self.stay_full = True  # its exit is near: no switch back and forth
        status, self.exited_status = self.exited_status, None
        if status is not None:
            self.container_exited(status)
        return self.serve()


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
        os.write(fd, (minijson.dumps(message) + "\n").encode())
    finally:
        os.close(fd)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    shim = Shim(read_config(args[0]), args[0])
    memfd = handover.resume_fd(args)
    if memfd is not None:
        return shim.resume(handover.receive(memfd))
    ready_fd = int(os.environ.pop(READY_FD_ENV, "-1"))
    return shim.run(ready_fd)


if __name__ == "__main__":
    sys.exit(main())
