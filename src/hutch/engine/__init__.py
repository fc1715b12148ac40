"""The engine: "run this image with these options" as snapshot + bundle + shim + runtime.

The composition layer of DESIGN.md: the only package that imports images,
storage, network and the runtime together. ``hutch.engine.Engine`` is its typed
Python API; the CLI uses it in-process (daemonless), hutchd will serve it.

``Engine`` and ``RunOptions`` are loaded on first use, so that importing one small
module of the package (``hutch.engine.paths``) does not import all of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hutch.engine.api import Engine
    from hutch.engine.spec import RunOptions

__all__ = ["Engine", "RunOptions"]


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from hutch.engine.api import Engine
        return Engine
    if name == "RunOptions":
        from hutch.engine.spec import RunOptions
        return RunOptions
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
