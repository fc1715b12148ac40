"""The rdma controller: rdma.max, the same file on v1 and v2."""

from __future__ import annotations

import os

from hutch.cgroups import files
from hutch.cgroups.convert import Write, rdma_line


def plan(d: str, rdma: dict) -> list:
    path = os.path.join(d, "rdma.max")
    current = {}
    for line in (files.read_optional(path) or "").splitlines():
        name, _, rest = line.partition(" ")
        current[name] = rest.strip()
    return [Write(path, rdma_line(name, limits),
                  f"{name} {current[name]}" if name in current
                  else f"{name} hca_handle=max hca_object=max")
            for name, limits in rdma.items()]
