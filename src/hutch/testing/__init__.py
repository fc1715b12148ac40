"""Helpers for hutch's own tests (and for anyone testing against hutch).

- ``host``: probes of what the host can do, behind the pytest markers
- ``bundle``: OCI bundles with a copied root file system and a default config
- ``runtime``: a runtime's command line with its own state root
- ``cleanup``: reap processes, remove cgroup trees

Stdlib only; nothing here is imported by hutch itself.
"""

from hutch.testing.bundle import Bundle, default_config, make_bundle
from hutch.testing.cleanup import Reaper
from hutch.testing.runtime import RuntimeCLI, RuntimeCommandError, default_runtime_argv

__all__ = ["Bundle", "Reaper", "RuntimeCLI", "RuntimeCommandError", "default_config",
           "default_runtime_argv", "make_bundle"]
