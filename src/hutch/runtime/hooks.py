"""OCI lifecycle hooks: each runs with the container's state JSON on its stdin.

A failing prestart, createRuntime, createContainer or startContainer hook fails
the operation; a failing poststart or poststop hook is only reported, as the
spec asks.
"""

from __future__ import annotations

import json
import sys

from hutch.errors import HutchError

FATAL = ("prestart", "createRuntime", "createContainer", "startContainer")


class HookError(HutchError):
    pass


def run_hooks(hooks: dict | None, name: str, state: dict) -> None:
    for hook in (hooks or {}).get(name) or []:
        try:
            run_hook(hook, name, state)
        except HookError as e:
            if name in FATAL:
                raise
            print(f"hutch-runtime: warning: {e}", file=sys.stderr)


def run_hook(hook: dict, name: str, state: dict) -> None:
    import subprocess  # only when there are hooks: it is slow to import

    args = hook.get("args") or [hook["path"]]
    env = dict(e.split("=", 1) for e in hook.get("env") or [] if "=" in e)
    timeout = hook.get("timeout")
    try:
        r = subprocess.run(args, executable=hook["path"], input=json.dumps(state).encode(),
                           env=env, capture_output=True, timeout=timeout, close_fds=True)
    except subprocess.TimeoutExpired:
        raise HookError(f"{name} hook {hook['path']} timed out after {timeout}s") from None
    except OSError as e:
        raise HookError(f"{name} hook {hook['path']}: {e.strerror}") from None
    if r.returncode != 0:
        detail = r.stderr.decode(errors="replace").strip()
        raise HookError(f"{name} hook {hook['path']} failed with exit status {r.returncode}"
                        + (f": {detail}" if detail else ""))
