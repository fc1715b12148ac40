"""The v1 blkio controller: weights (CFQ or BFQ) and throttling per device."""

from __future__ import annotations

import os

from hutch.cgroups import files
from hutch.cgroups.convert import THROTTLES, Write
from hutch.errors import InvalidArgument, Unsupported

WHERE = "linux.resources.blockIO"
SYS_DEV_BLOCK = "/sys/dev/block"  # MAJ:MIN links of the host's block devices
THROTTLE_FILES = {
    "throttleReadBpsDevice": "blkio.throttle.read_bps_device",
    "throttleWriteBpsDevice": "blkio.throttle.write_bps_device",
    "throttleReadIOPSDevice": "blkio.throttle.read_iops_device",
    "throttleWriteIOPSDevice": "blkio.throttle.write_iops_device",
}


def check_block_device(dev: tuple[int, int], where: str) -> str:
    """ "MAJ:MIN" of a block device this host has (else the kernel says only ENODEV)."""
    name = f"{dev[0]}:{dev[1]}"
    if not os.path.exists(os.path.join(SYS_DEV_BLOCK, name)):
        raise InvalidArgument(f"{where}: there is no block device {name} on this host"
                              f" (see {SYS_DEV_BLOCK})")
    return name


def keyed_value(path: str, key: str) -> str | None:
    """The value of ``key`` in a "key value" per-line file (blkio per-device files)."""
    for line in (files.read_optional(path) or "").splitlines():
        k, _, v = line.partition(" ")
        if k == key:
            return v.strip()
    return None


def _weight_files(d: str) -> tuple[str, str] | None:
    """(weight, weight_device) of CFQ (blkio.weight) or else BFQ (blkio.bfq.weight), as runc."""
    for prefix in ("blkio.", "blkio.bfq."):
        if os.path.exists(os.path.join(d, prefix + "weight")):
            return os.path.join(d, prefix + "weight"), os.path.join(d, prefix + "weight_device")
    return None


def _no_weights(what: str, d: str) -> Unsupported:
    return Unsupported(f"{WHERE}.{what}: this host has no proportional-weight I/O scheduler for"
                       f" cgroups (neither blkio.weight nor blkio.bfq.weight in {d}; needs CFQ,"
                       " or BFQ with CONFIG_BFQ_GROUP_IOSCHED)")


def plan(d: str, bio: dict) -> list:
    steps: list = []
    weights = _weight_files(d)
    if "weight" in bio:
        if weights is None:
            raise _no_weights("weight", d)
        steps.append(Write(weights[0], str(bio["weight"]), files.read_optional(weights[0])))
    if "leafWeight" in bio:
        path = os.path.join(d, "blkio.leaf_weight")
        if not os.path.exists(path):
            raise Unsupported(f"{WHERE}.leafWeight: only CFQ had leaf weights (gone since Linux"
                              f" 5.0; {path} is missing)")
        steps.append(Write(path, str(bio["leafWeight"]), files.read_optional(path)))
    for i, (dev, weight, leaf) in enumerate(bio.get("weightDevice", ())):
        name = check_block_device(dev, f"{WHERE}.weightDevice[{i}]")
        if weight is not None:
            if weights is None:
                raise _no_weights(f"weightDevice[{i}].weight", d)
            old = keyed_value(weights[1], name)
            steps.append(Write(weights[1], f"{name} {weight}", f"{name} {old or 0}"))
        if leaf is not None:
            path = os.path.join(d, "blkio.leaf_weight_device")
            if not os.path.exists(path):
                raise Unsupported(f"{WHERE}.weightDevice[{i}].leafWeight: only CFQ had leaf"
                                  f" weights ({path} is missing)")
            old = keyed_value(path, name)
            steps.append(Write(path, f"{name} {leaf}", f"{name} {old or 0}"))
    for key in THROTTLES:
        for i, (dev, rate) in enumerate(bio.get(key, ())):
            name = check_block_device(dev, f"{WHERE}.{key}[{i}]")
            path = os.path.join(d, THROTTLE_FILES[key])
            if not os.path.exists(path):
                raise Unsupported(f"{WHERE}.{key}: this kernel has no I/O throttling"
                                  f" (CONFIG_BLK_DEV_THROTTLING; {path} is missing)")
            old = keyed_value(path, name)
            # 0 removes the rule, in v1 as in OCI
            steps.append(Write(path, f"{name} {rate}", f"{name} {old or 0}"))
    return steps
