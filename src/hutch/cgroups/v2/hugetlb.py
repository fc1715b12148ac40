"""The v2 hugetlb controller: hugetlb.<size>.max (and .rsvd.max where it exists)."""

from __future__ import annotations

from hutch.cgroups.v1.hugetlb import plan_files


def plan(d: str, limits: list[tuple[str, int]]) -> list:
    return plan_files(d, limits, "max", "rsvd.max")
