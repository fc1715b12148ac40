"""The v1 hugetlb controller: hugetlb.<size>.limit_in_bytes (and .rsvd. where it exists)."""

from __future__ import annotations

import os

from hutch.cgroups import files
from hutch.cgroups.convert import Write
from hutch.errors import Unsupported

WHERE = "linux.resources.hugepageLimits"


def sizes(d: str, suffix: str) -> list[str]:
    """The huge page sizes the cgroup offers, from its hugetlb.<size>.<suffix> files."""
    try:
        names = os.listdir(d)
    except OSError:
        return []
    return sorted({n[len("hugetlb."):-len(suffix) - 1] for n in names
                   if n.startswith("hugetlb.") and n.endswith("." + suffix)
                   and n.count(".") == 2})


def plan_files(d: str, limits: list[tuple[str, int]], suffix: str, rsvd: str) -> list:
    """Shared with v2: ``suffix`` "limit_in_bytes" (v1) or "max" (v2)."""
    steps: list = []
    for i, (size, limit) in enumerate(limits):
        path = os.path.join(d, f"hugetlb.{size}.{suffix}")
        if not os.path.exists(path):
            have = sizes(d, suffix)
            raise Unsupported(f"{WHERE}[{i}].pageSize: this host has no {size} huge pages"
                              f" ({path} is missing; sizes here: {', '.join(have) or 'none'})")
        # Reservation limits first where the kernel has them (runc does both).
        rsvd_path = os.path.join(d, f"hugetlb.{size}.{rsvd}")
        if os.path.exists(rsvd_path):
            steps.append(Write(rsvd_path, str(limit), files.read_optional(rsvd_path)))
        steps.append(Write(path, str(limit), files.read_optional(path)))
    return steps


def plan(d: str, limits: list[tuple[str, int]]) -> list:
    return plan_files(d, limits, "limit_in_bytes", "rsvd.limit_in_bytes")
