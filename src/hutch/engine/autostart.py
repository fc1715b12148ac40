"""``hutch autostart`` (lxc-autostart): start the containers marked autostart, in order.

A container is marked at create (``--autostart [--autostart-order N]
[--autostart-delay S]``, LXC's lxc.start.auto, lxc.start.order and
lxc.start.delay). They start by ascending order (the name breaks ties), with
each one's delay waited after it starts; ``--stop`` and ``--kill`` go the
other way round, as a shutdown should.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

from hutch.errors import HutchError, InvalidArgument

if TYPE_CHECKING:
    from hutch.engine.api import Engine


def marked(engine: Engine) -> list[dict]:
    """The autostart containers in start order: name, id, order, delay, status."""
    out = []
    for row in engine.db.all():
        config = json.loads(row["config"])
        if config.get("autostart"):
            out.append({"name": row["name"], "id": row["id"],
                        "order": int(config.get("autostart_order") or 0),
                        "delay": float(config.get("autostart_delay") or 0),
                        "status": engine.status(row["id"])})
    return sorted(out, key=lambda c: (c["order"], c["name"]))


def set_marks(engine: Engine, ref: str, auto: bool | None = None, order: int | None = None,
              delay: float | None = None) -> None:
    """Change a container's autostart settings (``hutch set NAME autostart=1``)."""
    if delay is not None and delay < 0:
        raise InvalidArgument(f"autostart delay {delay:g}: must not be negative")
    row = engine.db.find(ref)
    changes = {k: v for k, v in (("autostart", auto), ("autostart_order", order),
                                 ("autostart_delay", delay)) if v is not None}
    engine.db.update_config(row["id"], changes)


def run(engine: Engine, action: str = "start", timeout: float = 10.0,
        sleep=time.sleep) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    """Start (or stop, or kill) the marked containers; returns (name, what happened).

    One container that fails does not keep the others from starting: its error
    is in the result, and the caller fails at the end."""
    todo = marked(engine)
    if action != "start":
        todo.reverse()
    done: list[tuple[str, str]] = []
    for c in todo:
        try:
            if action == "start":
                if c["status"] in ("running", "restarting"):
                    done.append((c["name"], "already running"))
                    continue
                engine.start(c["id"])
                done.append((c["name"], "started"))
                if c["delay"]:
                    sleep(c["delay"])
            elif c["status"] not in ("running", "restarting"):
                done.append((c["name"], "not running"))
            elif action == "stop":
                engine.stop(c["id"], timeout)
                done.append((c["name"], "stopped"))
            else:
                engine.kill(c["id"], "SIGKILL")
                engine.wait(c["id"], timeout + 10)
                done.append((c["name"], "killed"))
        except HutchError as e:
            done.append((c["name"], f"failed: {e}"))
    return done
