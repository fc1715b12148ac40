"""The v2 io controller: weights (io.bfq.weight, else io.weight) and io.max."""

from __future__ import annotations

import os

from hutch.cgroups.convert import THROTTLES, Write, blkio_weight_to_io_weight
from hutch.cgroups.v1.blkio import check_block_device, keyed_value
from hutch.errors import Unsupported

WHERE = "linux.resources.blockIO"
IO_MAX_KEYS = {"throttleReadBpsDevice": "rbps", "throttleWriteBpsDevice": "wbps",
               "throttleReadIOPSDevice": "riops", "throttleWriteIOPSDevice": "wiops"}


def _weight_file(d: str, what: str) -> tuple[str, bool]:
    """(file, converts): io.bfq.weight takes the v1 value as it is, io.weight converted."""
    bfq = os.path.join(d, "io.bfq.weight")
    if os.path.exists(bfq):
        return bfq, False
    path = os.path.join(d, "io.weight")
    if not os.path.exists(path):
        raise Unsupported(f"{WHERE}.{what}: this host has no proportional-weight I/O control"
                          f" (neither io.bfq.weight nor io.weight in {d}; needs BFQ or"
                          " CONFIG_BLK_CGROUP_IOCOST)")
    return path, True


def plan(d: str, bio: dict) -> list:
    steps: list = []
    if "leafWeight" in bio or any(leaf is not None for _, _, leaf in bio.get("weightDevice", ())):
        raise Unsupported(f"{WHERE}.leafWeight: cgroup v2 has no leaf weights (a CFQ feature"
                          " of v1)")
    if "weight" in bio:
        path, conv = _weight_file(d, "weight")
        w = blkio_weight_to_io_weight(bio["weight"]) if conv else bio["weight"]
        old = keyed_value(path, "default")
        steps.append(Write(path, f"default {w}", f"default {old}" if old else None))
    for i, (dev, weight, _) in enumerate(bio.get("weightDevice", ())):
        name = check_block_device(dev, f"{WHERE}.weightDevice[{i}]")
        if weight is None:
            continue
        path, conv = _weight_file(d, f"weightDevice[{i}].weight")
        w = blkio_weight_to_io_weight(weight) if conv else weight
        old = keyed_value(path, name)
        steps.append(Write(path, f"{name} {w}", f"{name} {old or 'default'}"))
    io_max = os.path.join(d, "io.max")
    per_device: dict[str, list[str]] = {}
    for key in THROTTLES:
        for i, (dev, rate) in enumerate(bio.get(key, ())):
            name = check_block_device(dev, f"{WHERE}.{key}[{i}]")
            if not os.path.exists(io_max):
                raise Unsupported(f"{WHERE}.{key}: this kernel has no I/O throttling"
                                  f" (CONFIG_BLK_DEV_THROTTLING; {io_max} is missing)")
            # 0 removes a v1 throttle rule; v2 says "max"
            per_device.setdefault(name, []).append(f"{IO_MAX_KEYS[key]}={rate or 'max'}")
    for name, settings in per_device.items():
        old = keyed_value(io_max, name)
        steps.append(Write(io_max, f"{name} {' '.join(settings)}",
                           f"{name} {old or 'rbps=max wbps=max riops=max wiops=max'}"))
    return steps
