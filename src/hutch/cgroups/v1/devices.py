"""The v1 devices controller: the rules go to devices.allow / devices.deny in order.

A list that starts with a deny of everything ("a") first empties the cgroup's
list and makes it deny by default, then each allow adds an exception, as runc's
spec conversion sets it up. The kernel applies each line the way
``convert.DeviceState`` models.
"""

from __future__ import annotations

import os

from hutch.cgroups.convert import DeviceRule, Write


def plan(d: str, rules: list[DeviceRule]) -> list:
    allow, deny = os.path.join(d, "devices.allow"), os.path.join(d, "devices.deny")
    return [Write(allow if r.allow else deny, r.v1()) for r in rules]
