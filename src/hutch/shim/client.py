"""The engine's side of a shim: start one, and talk to it over its control socket."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

from hutch.common.atomicfile import write_json_atomic
from hutch.errors import HutchError, NotFound, Unsupported
from hutch.shim.main import READY_FD_ENV

START_TIMEOUT = 60.0


class ShimError(HutchError):
    pass


def spawn(config: dict) -> dict:
    """Write the config, start the shim detached, wait until the container runs.

    Returns ``{"pid": <container init pid>, "shim_pid": <shim pid>}``; raises
    ShimError with the shim's message when the container could not start.
    """
    directory = config["dir"]
    os.makedirs(directory, mode=0o700, exist_ok=True)
    path = os.path.join(directory, "shim.json")
    write_json_atomic(path, config, 0o600)
    r, w = os.pipe2(os.O_CLOEXEC)
    env = dict(os.environ)
    env[READY_FD_ENV] = str(w)
    proc = subprocess.Popen([sys.executable, "-m", "hutch.shim", path], stdin=subprocess.DEVNULL,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True, pass_fds=(w,), env=env, close_fds=True)
    os.close(w)
    data = b""
    deadline = time.monotonic() + START_TIMEOUT
    try:
        while not data.endswith(b"\n"):
            import select
            ready, _, _ = select.select([r], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                proc.kill()
                raise ShimError(f"container {config['id']}: the shim did not report within "
                                f"{START_TIMEOUT:g}s")
            chunk = os.read(r, 4096)
            if not chunk:
                break
            data += chunk
    finally:
        os.close(r)
    if not data:
        code = proc.wait()
        raise ShimError(f"container {config['id']}: the shim exited ({code}) before reporting")
    msg = json.loads(data)
    if not msg.get("ok"):
        proc.wait()
        raise ShimError(msg.get("error", "the container could not start"))
    proc.returncode = 0  # detached on purpose: do not let Popen wait for it
    return {"pid": msg["pid"], "shim_pid": proc.pid}


class ShimClient:
    def __init__(self, directory: str) -> None:
        self.dir = directory
        self.sock_path = os.path.join(directory, "control.sock")

    def alive(self) -> bool:
        """Whether a shim answers (its socket file can outlive a killed shim)."""
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.sock_path)
            return True
        except OSError:
            return False
        finally:
            s.close()

    def _connect(self) -> socket.socket:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            s.connect(self.sock_path)
        except (FileNotFoundError, ConnectionRefusedError):
            s.close()
            raise NotFound(f"no shim answers at {self.sock_path}: the container is not "
                           "running") from None
        return s

    def request(self, op: str, **fields: object) -> dict:
        s = self._connect()
        try:
            s.sendall((json.dumps({"op": op, **fields}) + "\n").encode())
            data = b""
            while not data.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
        except (ConnectionResetError, BrokenPipeError):
            raise NotFound(f"the shim at {self.dir} went away (the container ended)") from None
        finally:
            s.close()
        if not data:
            raise NotFound(f"the shim at {self.dir} went away (the container ended)")
        reply = json.loads(data or b"{}")
        if not reply.get("ok"):
            raise Unsupported(reply.get("error", f"the shim refused {op}"))
        return reply

    def status(self) -> dict:
        """The shim's status, or the last one it wrote when it is gone."""
        try:
            return self.request("status")["status"]
        except NotFound:
            try:
                with open(os.path.join(self.dir, "status.json")) as f:
                    return json.load(f)
            except FileNotFoundError:
                return {"state": "unknown"}

    def kill(self, sig: int, all_processes: bool = False) -> None:
        self.request("kill", signal=sig, all=all_processes)

    def stop(self, timeout: float = 10.0) -> None:
        self.request("stop", timeout=timeout)

    def resize(self, rows: int, cols: int, tty: int = 0) -> None:
        self.request("resize", rows=rows, cols=cols, **({"tty": tty} if tty else {}))

    def attach(self, tty: int = 0) -> socket.socket:
        """A socket that gets the container's output from now on; what is sent goes
        to its stdin (when the container was started with one). ``tty``: one of an
        OS container's /dev/ttyN instead of its console."""
        s = self._connect()
        s.sendall((json.dumps({"op": "attach", **({"tty": tty} if tty else {})}) + "\n")
                  .encode())
        line = b""
        while not line.endswith(b"\n"):
            chunk = s.recv(1)
            if not chunk:
                raise NotFound("the shim closed the attach connection")
            line += chunk
        reply = json.loads(line)
        if not reply.get("ok"):
            s.close()
            raise Unsupported(reply.get("error", "the shim refused to attach"))
        return s
