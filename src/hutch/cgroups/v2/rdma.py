"""The v2 rdma controller: rdma.max, as in v1."""

from __future__ import annotations

from hutch.cgroups.v1.rdma import plan

__all__ = ["plan"]
