"""The v1 memory controller.

OCI memory.swap is memory+swap, which is what memory.memsw.limit_in_bytes holds.
The kernel keeps limit <= memsw at every moment, so the order of the two writes
depends on the direction (runc's setMemoryAndSwap): when the new memsw is above
the current limit (raising) memsw goes first, else (lowering) the limit goes first.
"""

from __future__ import annotations

import errno
import os

from hutch.cgroups import files
from hutch.cgroups.convert import UNLIMITED, Write, v1_value, warn_ignored
from hutch.errors import InvalidArgument, Unsupported

WHERE = "linux.resources.memory"
LIMIT = "memory.limit_in_bytes"
MEMSW = "memory.memsw.limit_in_bytes"
HUGE = 1 << 62  # v1 shows "no limit" as a number near 2^63 (PAGE_COUNTER_MAX pages)


def _int_or_unlimited(text: str | None) -> int | None:
    if text is None:
        return None
    n = int(text.strip())
    return UNLIMITED if n < 0 or n >= HUGE else n


def _usage_hint(d: str):  # type: ignore[no-untyped-def]
    def explain(err: int) -> str | None:
        if err != errno.EBUSY:
            return None
        usage = files.read_optional(os.path.join(d, "memory.usage_in_bytes"))
        peak = files.read_optional(os.path.join(d, "memory.max_usage_in_bytes"))
        return (f"the cgroup uses {usage} bytes (peak {peak}) and the kernel could not reclaim"
                " enough to go below the new limit")
    return explain


def plan(d: str, mem: dict, updating: bool = False) -> list:
    steps: list = []

    def f(name: str) -> str:
        return os.path.join(d, name)

    limit, swap = mem.get("limit"), mem.get("swap")
    has_swap = os.path.exists(f(MEMSW))
    if limit == UNLIMITED and swap is None and has_swap:
        swap = UNLIMITED  # "memory unlimited" lifts memory+swap too (runc)
    if swap is not None and not has_swap:
        if swap != UNLIMITED:
            raise Unsupported(f"{WHERE}.swap: this host has no swap accounting"
                              f" (memory.memsw.* missing in {d}; boot with swapaccount=1 or a"
                              " kernel with CONFIG_MEMCG_SWAP), so memory+swap cannot be"
                              " limited")
        swap = None  # nothing to lift
    cur_limit_text = files.read_optional(f(LIMIT))
    cur_limit = _int_or_unlimited(cur_limit_text)
    cur_swap_text = files.read_optional(f(MEMSW)) if has_swap else None
    cur_swap = _int_or_unlimited(cur_swap_text)
    if updating and mem.get("checkBeforeUpdate") and limit not in (None, UNLIMITED):
        usage = int(files.read(f("memory.usage_in_bytes")))
        if usage > limit:  # type: ignore[operator]
            raise InvalidArgument(f"{WHERE}.limit: {limit} is below the current usage of"
                                  f" {usage} bytes (checkBeforeUpdate is set)")
    new_limit = limit if limit is not None else cur_limit
    new_swap = swap if swap is not None else cur_swap
    if (new_swap is not None and new_swap != UNLIMITED and new_limit is not None
            and (new_limit == UNLIMITED or new_limit > new_swap)):
        if swap is None:
            raise InvalidArgument(f"{WHERE}.limit: {limit} is above the current memory+swap"
                                  f" limit of {cur_swap} ({d}/{MEMSW}); give memory.swap too")
        raise InvalidArgument(f"{WHERE}.swap: {swap} (memory+swap) is below the memory limit"
                              f" {'-1' if new_limit == UNLIMITED else new_limit}"
                              f"{' in force' if limit is None else ''}; give a memory.limit"
                              " no larger than it")
    limit_w = None if limit is None else Write(f(LIMIT), v1_value(limit), cur_limit_text,
                                               _usage_hint(d))
    swap_w = None if swap is None else Write(f(MEMSW), v1_value(swap), cur_swap_text,
                                             _usage_hint(d))
    raising = swap is not None and (swap == UNLIMITED or cur_limit is None
                                    or (cur_limit != UNLIMITED and cur_limit < swap))
    order = [swap_w, limit_w] if raising else [limit_w, swap_w]
    steps.extend(w for w in order if w is not None)

    if "reservation" in mem:
        path = f("memory.soft_limit_in_bytes")
        steps.append(Write(path, v1_value(mem["reservation"]), files.read_optional(path)))
    if "kernel" in mem:
        warn_ignored(f"{WHERE}.kernel: kernel memory limits are obsolete (Linux 5.4 stopped"
                     " enforcing memory.kmem.limit_in_bytes); ignored, as runc does")
    if "kernelTCP" in mem:
        path = f("memory.kmem.tcp.limit_in_bytes")
        if not os.path.exists(path):
            raise Unsupported(f"{WHERE}.kernelTCP: this kernel cannot limit TCP buffer memory"
                              f" ({path} is missing)")
        steps.append(Write(path, v1_value(mem["kernelTCP"]), files.read_optional(path)))
    if "swappiness" in mem:
        path = f("memory.swappiness")
        steps.append(Write(path, str(mem["swappiness"]), files.read_optional(path)))
    if "disableOOMKiller" in mem:
        path = f("memory.oom_control")
        old = files.read_keyed(path).get("oom_kill_disable") if os.path.exists(path) else None
        steps.append(Write(path, "1" if mem["disableOOMKiller"] else "0", old))
    if "useHierarchy" in mem:
        path = f("memory.use_hierarchy")
        current = (files.read_optional(path) or "").strip()
        wanted = "1" if mem["useHierarchy"] else "0"
        if current != wanted:
            if wanted == "0":
                raise Unsupported(f"{WHERE}.useHierarchy: false is not possible here ({path}"
                                  " is 1; current kernels always account hierarchically and"
                                  " refuse 0)")
            steps.append(Write(path, wanted, current or None))
    return steps
