"""The v2 pids controller: pids.max."""

from __future__ import annotations

import os

from hutch.cgroups import files
from hutch.cgroups.convert import Write, v2_value


def plan(d: str, pids: dict) -> list:
    path = os.path.join(d, "pids.max")
    return [Write(path, v2_value(pids["limit"]), files.read_optional(path))]
