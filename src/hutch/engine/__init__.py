"""The engine: "run this image with these options" as snapshot + bundle + shim + runtime.

The composition layer of DESIGN.md: the only package that imports images,
storage, network and the runtime together. ``hutch.engine.Engine`` is its typed
Python API; the CLI uses it in-process (daemonless), hutchd will serve it.
"""

from hutch.engine.api import Engine, RunOptions

__all__ = ["Engine", "RunOptions"]
