"""Drive an OCI runtime's command line from tests: hutch-runtime, or runc to check
the tests themselves (``HUTCH_TEST_RUNTIME=runc``)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
from typing import IO, Any

from hutch.testing.cleanup import Reaper

ENV_RUNTIME = "HUTCH_TEST_RUNTIME"


def default_runtime_argv() -> list[str]:
    """``$HUTCH_TEST_RUNTIME`` (split like a shell would, e.g. "crun --debug"), else
    the hutch-runtime script next to this interpreter (the venv's)."""
    override = os.environ.get(ENV_RUNTIME, "").strip()
    if override:
        argv = shlex.split(override)
        found = shutil.which(argv[0])
        if found is None:
            raise FileNotFoundError(f"{ENV_RUNTIME}={override!r}: {argv[0]} not found")
        return [found, *argv[1:]]
    return [os.path.join(os.path.dirname(sys.executable), "hutch-runtime")]


class RuntimeCommandError(subprocess.CalledProcessError):
    """A runtime command failed; the message carries its output."""

    def __str__(self) -> str:
        return (f"{shlex.join(self.cmd)} exited with {self.returncode}\n"
                f"stdout: {self.stdout!r}\nstderr: {self.stderr!r}")


def _read(f: IO[bytes]) -> str:
    f.seek(0)
    return f.read().decode(errors="replace")


class RuntimeCLI:
    """One runtime command line with its own state directory (``--root``)."""

    def __init__(self, argv: list[str], root: str) -> None:
        self.argv = argv
        self.root = root
        self._reaper = Reaper()

    @property
    def name(self) -> str:
        return os.path.basename(self.argv[0])

    def command(self, *args: str | os.PathLike[str]) -> list[str]:
        return [*self.argv, "--root", self.root, *(os.fspath(a) for a in args)]

    def run(self, *args: str | os.PathLike[str], check: bool = True, input: str | None = None,
            timeout: float = 30, **kw: Any) -> subprocess.CompletedProcess[str]:
        """Run one command and wait for it (not for what it leaves running).

        Output goes to temporary files rather than pipes: a detached container
        (``create``, ``run -d``) inherits them, and a pipe would only reach EOF
        when the container exits.
        """
        cmd = self.command(*args)
        if kw.pop("capture_output", False):  # pipes asked for: the caller knows it is safe
            kw.update(stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
            kw.setdefault("stdout", out)
            kw.setdefault("stderr", err)
            if input is None:
                kw.setdefault("stdin", subprocess.DEVNULL)
            proc = subprocess.run(cmd, input=input, timeout=timeout, text=True, **kw)
            stdout = _read(out) if kw["stdout"] is out else proc.stdout
            stderr = _read(err) if kw["stderr"] is err else proc.stderr
        if check and proc.returncode != 0:
            raise RuntimeCommandError(proc.returncode, cmd, stdout, stderr)
        return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)

    def popen(self, *args: str | os.PathLike[str], **kw: Any) -> subprocess.Popen[Any]:
        """Start a command without waiting; it is killed and reaped at teardown."""
        kw.setdefault("text", True)
        return self._reaper.popen(self.command(*args), **kw)

    def list_ids(self) -> list[str]:
        out = self.run("list", "--format", "json").stdout.strip()
        return [c["id"] for c in json.loads(out or "null") or []]

    def state(self, container_id: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads(self.run("state", container_id).stdout)
        return result

    def cleanup(self) -> list[str]:
        """Delete every container of this root, end the processes ``popen`` started,
        remove the root. Returns what could not be cleaned up (empty when all went)."""
        problems: list[str] = []
        for attempt in range(2):  # twice: a popen'd create may finish after the first pass
            try:
                ids = self.list_ids()
            except (RuntimeCommandError, ValueError, subprocess.TimeoutExpired) as e:
                problems.append(f"cannot list containers: {e}")
                ids = []
            for cid in ids:
                res = self.run("delete", "--force", cid, check=False)
                if res.returncode != 0 and attempt == 1:
                    problems.append(f"delete --force {cid} failed: {res.stderr.strip()}")
            if attempt == 0:
                problems += self._reaper.close()
        if not problems:
            try:
                leftover = self.list_ids()
            except (RuntimeCommandError, ValueError, subprocess.TimeoutExpired) as e:
                leftover = [f"(cannot list: {e})"]
            if leftover:
                problems.append(f"containers remain after delete --force: {leftover}")
        shutil.rmtree(self.root, ignore_errors=True)
        return problems
