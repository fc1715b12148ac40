"""A health probe: a short-lived child that runs the runtime's exec for the shim.

    python -m hutch.shim.probe RUNTIME_ROOT CONTAINER_ID ARGV...

The shim's lean image does not import the runtime (shim/supervisor.py says why),
so each probe is a process of its own that does, and costs only while it runs.
Its exit code is the command's; what the command writes, and our errors, go to
stdout and stderr (a pipe the shim reads). A SIGTERM (the probe's timeout) is
forwarded to the command inside the container by the runtime's exec.

``spawn()`` is the shim's side (stdlib only; posix_spawn, no fork of the shim).
"""

from __future__ import annotations

import os
import sys

import _signal

# Signals the shim handles or ignores: the probe starts with their default action.
_DEFAULT_SIGNALS = (_signal.SIGTERM, _signal.SIGINT, _signal.SIGCHLD, _signal.SIGPIPE,
                    _signal.SIGXFSZ)


def spawn(runtime_root: str, container_id: str, argv: list[str], output: int) -> int:
    """Start a probe of ``argv``; its pid (the caller reaps it). stdin is /dev/null,
    stdout and stderr go to ``output``."""
    actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
               (os.POSIX_SPAWN_DUP2, output, 1), (os.POSIX_SPAWN_DUP2, output, 2)]
    return os.posix_spawn(sys.executable,
                          [sys.executable, "-m", "hutch.shim.probe", runtime_root,
                           container_id, *argv],
                          os.environ, file_actions=actions, setsigdef=_DEFAULT_SIGNALS)


def main(args: list[str]) -> int:
    root, container_id, *argv = args
    try:
        from hutch.runtime.exec import ExecOptions, exec_process
        return exec_process(root, container_id, ExecOptions(args=argv)) & 0xFF
    except BaseException as e:  # noqa: BLE001 - reported as the probe's output
        os.write(2, f"health check: {e}\n".encode())
        return 126


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
