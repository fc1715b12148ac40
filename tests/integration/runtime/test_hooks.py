"""OCI hooks: which run, in what order, where, with what state; failures and timeouts."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hutch.testing.bundle import Bundle
from hutch.testing.cleanup import cgroup_candidates

BundleFactory = Callable[..., Bundle]

HOOK_NAMES = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart",
              "poststop"]

# Each hook saves the state it got on stdin and the namespaces it ran in, then appends its
# name to the order file. $1: hook name, $2: log directory.
HOOK_SCRIPT = """\
#!/bin/sh
cat > "$2/$1.json"
for ns in mnt pid; do readlink /proc/self/ns/$ns >> "$2/$1.ns"; done
echo "$1" >> "$2/order"
"""


class HookedBundle:
    """A bundle whose six hooks log to ``log``: host hooks to the host path, the
    startContainer hook (run inside the container) to the same directory bind-mounted
    at /hooklog."""

    def __init__(self, b: Bundle, log: Path) -> None:
        self.bundle = b
        self.log = log

    def order(self) -> list[str]:
        try:
            return (self.log / "order").read_text().split()
        except FileNotFoundError:
            return []

    def state(self, hook: str) -> dict[str, Any]:
        result: dict[str, Any] = json.loads((self.log / f"{hook}.json").read_text())
        return result

    def namespaces(self, hook: str) -> list[str]:
        return (self.log / f"{hook}.ns").read_text().split()


def hooked_bundle(bundle: BundleFactory, tmp_path: Path, args: list[str],
                  **overrides: Any) -> HookedBundle:
    log = tmp_path / "hooklog"
    log.mkdir()
    b = bundle(args, **overrides)
    script = b.path / "hook.sh"
    script.write_text(HOOK_SCRIPT)
    (b.rootfs / "hook.sh").write_text(HOOK_SCRIPT)
    b.config["mounts"].append({"destination": "/hooklog", "type": "bind", "source": str(log),
                               "options": ["rbind", "rw"]})
    hooks: dict[str, list[dict[str, Any]]] = {}
    for name in HOOK_NAMES:
        if name == "startContainer":  # runs inside the container: its paths
            hooks[name] = [{"path": "/bin/sh", "args": ["sh", "/hook.sh", name, "/hooklog"]}]
        else:
            hooks[name] = [{"path": "/bin/sh", "args": ["sh", str(script), name, str(log)]}]
    b.config["hooks"] = hooks
    b.write()
    return HookedBundle(b, log)


def ns(pid: int | str, kind: str) -> str:
    return os.readlink(f"/proc/{pid}/ns/{kind}")


def expected_order(runtime_name: str) -> tuple[list[str], list[str], list[str]]:
    """The hooks run by create, start and delete. runc < 1.5 runs poststart at create
    (runc issue #1710, fixed by runc PR #5186); the spec says after the program started."""
    if runtime_name == "runc":
        return (["prestart", "createRuntime", "createContainer", "poststart"],
                ["startContainer"], ["poststop"])
    return ["prestart", "createRuntime", "createContainer"], ["startContainer", "poststart"], \
        ["poststop"]


def test_hooks_run_in_order_with_the_state(ctr, bundle: BundleFactory, tmp_path: Path) -> None:
    at_create, at_start, at_delete = expected_order(ctr.runtime.name)
    h = hooked_bundle(bundle, tmp_path, ["sleep", "60"], annotations={"org.hutch.test": "yes"})
    pid = ctr.create(h.bundle)
    assert h.order() == at_create
    ctr.runtime.run("start", ctr.id)
    ctr.wait_until(lambda: len(h.order()) == 5, what="the hooks of start")
    assert h.order() == at_create + at_start
    ctr.runtime.run("kill", ctr.id, "KILL")
    ctr.wait_stopped()
    ctr.runtime.run("delete", ctr.id)
    assert h.order() == at_create + at_start + at_delete

    for name in HOOK_NAMES:
        state = h.state(name)
        assert state["id"] == ctr.id, (name, state)
        assert state["bundle"] == str(h.bundle.path), (name, state)
        assert state["ociVersion"], (name, state)
        assert state.get("annotations") == {"org.hutch.test": "yes"}, (name, state)
        if name in ("createContainer", "startContainer") and ctr.runtime.name == "runc":
            assert state["pid"] in (1, pid)  # runc 1.1 gives the pid inside the container
        elif name != "poststop":
            assert state["pid"] == pid, (name, state)
    statuses = {name: h.state(name)["status"] for name in HOOK_NAMES}
    assert statuses["prestart"] == statuses["createRuntime"] == "creating", statuses
    assert statuses["createContainer"] in ("creating", "created"), statuses
    assert statuses["startContainer"] in ("created", "running"), statuses
    assert statuses["poststart"] == ("created" if "poststart" in at_create else "running"), \
        statuses
    assert statuses["poststop"] == "stopped", statuses


def test_poststart_waits_for_a_slow_start_container_hook(ctr, bundle: BundleFactory,
                                                         tmp_path: Path) -> None:
    h = hooked_bundle(bundle, tmp_path, ["sleep", "60"])
    slow = h.bundle.config["hooks"]["startContainer"][0]
    slow["args"] = ["sh", "-c", "sleep 0.3; exec sh /hook.sh startContainer /hooklog"]
    h.bundle.write()
    at_create, at_start, _ = expected_order(ctr.runtime.name)
    ctr.create(h.bundle)
    ctr.runtime.run("start", ctr.id)
    ctr.wait_until(lambda: len(h.order()) == 5, what="the hooks of start")
    assert h.order() == at_create + at_start


def test_hooks_run_where_the_spec_says(ctr, bundle: BundleFactory, tmp_path: Path) -> None:
    h = hooked_bundle(bundle, tmp_path, ["sleep", "60"])
    pid = ctr.create(h.bundle)
    ctr.runtime.run("start", ctr.id)
    ctr.wait_until(lambda: len(h.order()) == 5, what="the poststart hook")
    host = [ns("self", "mnt"), ns("self", "pid")]
    container = [ns(pid, "mnt"), ns(pid, "pid")]
    # runtime namespace
    for name in ("prestart", "createRuntime", "poststart"):
        assert h.namespaces(name) == host, name
    # the container's namespaces, before pivot_root
    assert h.namespaces("createContainer") == container
    # inside the container
    assert h.namespaces("startContainer") == container


def test_hooks_of_a_foreground_run(ctr, bundle: BundleFactory, tmp_path: Path) -> None:
    h = hooked_bundle(bundle, tmp_path, ["echo", "hello"])
    assert ctr.output(h.bundle) == "hello\n"
    assert h.order() == sum(expected_order(ctr.runtime.name), [])
    assert h.state("poststop")["status"] == "stopped"


def test_hook_gets_its_args_and_env(ctr, bundle: BundleFactory, tmp_path: Path) -> None:
    out = tmp_path / "hook.out"
    b = bundle(["true"], hooks={"prestart": [{
        "path": "/bin/sh",
        "args": ["my-argv0", "-c", f'echo "$0 $1 $HOOK_VAR" > {out}; '
                                   f"tr '\\0' ' ' < /proc/$$/cmdline >> {out}", "zero", "a1"],
        "env": ["HOOK_VAR=from-config"]}]})
    ctr.output(b)
    first, cmdline = out.read_text().split("\n")
    assert first == "zero a1 from-config"
    assert cmdline.startswith("my-argv0 -c ") and cmdline.endswith(" zero a1 "), cmdline


def test_hook_env_is_only_the_configs(ctr, bundle: BundleFactory, tmp_path: Path) -> None:
    out = tmp_path / "hook.env"
    b = bundle(["true"], hooks={"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", f"env > {out}"], "env": ["ONLY=this"]}]})
    ctr.output(b)
    env = {line.split("=", 1)[0] for line in out.read_text().splitlines()}
    assert env - {"PWD", "SHLVL", "_", "OLDPWD"} == {"ONLY"}, env


def test_hooks_of_one_kind_run_in_the_listed_order(ctr, bundle: BundleFactory,
                                                   tmp_path: Path) -> None:
    out = tmp_path / "hook.out"
    b = bundle(["true"], hooks={"createRuntime": [
        {"path": "/bin/sh", "args": ["sh", "-c", f"echo {n} >> {out}"]} for n in range(4)]})
    ctr.output(b)
    assert out.read_text().split() == ["0", "1", "2", "3"]


def _assert_nothing_left(ctr, cid: str, cgroups_path: str | None = None) -> None:
    assert ctr.runtime.list_ids() == []
    if os.path.isdir(ctr.runtime.root):
        assert cid not in os.listdir(ctr.runtime.root)
    if cgroups_path:
        left = [d for d in cgroup_candidates(cgroups_path) if os.path.isdir(d)]
        assert left == [], left


@pytest.mark.parametrize("kind", ["prestart", "createRuntime", "createContainer"])
def test_failing_create_hook_fails_create_and_leaves_nothing(
        ctr, bundle: BundleFactory, tmp_path: Path, cgroups_path: str, kind: str) -> None:
    pidfile = tmp_path / "init.pid"  # the state on stdin names the init
    get_pid = f"sed -n 's/.*\"pid\": *\\([0-9]*\\).*/\\1/p' > {pidfile}; exit 3"
    b = bundle(["true"], linux={"cgroupsPath": cgroups_path}, hooks={kind: [
        {"path": "/bin/sh", "args": ["sh", "-c", get_pid]}]})
    res = ctr.runtime.run("create", "--bundle", b.path, ctr.id, check=False)
    assert res.returncode != 0
    if ctr.runtime.name == "runc":  # 'error running hook #0: exit status 3, stdout: ...'
        assert "hook" in res.stderr and "exit status 3" in res.stderr, res.stderr
    else:
        assert kind in res.stderr and "3" in res.stderr, res.stderr
    _assert_nothing_left(ctr, ctr.id, cgroups_path)
    init = int(pidfile.read_text().split()[0])
    if init != 1:  # runc 1.1 gives createContainer the pid inside the container
        ctr.wait_dead(init)


def test_hook_that_runs_past_its_timeout_fails(ctr, bundle: BundleFactory, tmp_path: Path,
                                               cgroups_path: str) -> None:
    pidfile = tmp_path / "hook.pid"
    b = bundle(["true"], linux={"cgroupsPath": cgroups_path}, hooks={"prestart": [
        {"path": "/bin/sh", "args": ["sh", "-c", f"echo $$ > {pidfile}; exec sleep 30"],
         "timeout": 1}]})
    started = time.monotonic()
    res = ctr.runtime.run("create", "--bundle", b.path, ctr.id, check=False)
    assert time.monotonic() - started < 10
    assert res.returncode != 0
    assert "timeout" in res.stderr or "timed out" in res.stderr, res.stderr
    if ctr.runtime.name != "runc":
        assert "prestart" in res.stderr, res.stderr
    _assert_nothing_left(ctr, ctr.id, cgroups_path)
    ctr.wait_dead(int(pidfile.read_text()))  # the hook was killed


def test_hook_that_does_not_exist(ctr, bundle: BundleFactory, tmp_path: Path,
                                  cgroups_path: str) -> None:
    missing = tmp_path / "no-such-hook"
    b = bundle(["true"], linux={"cgroupsPath": cgroups_path},
               hooks={"createRuntime": [{"path": str(missing)}]})
    res = ctr.runtime.run("create", "--bundle", b.path, ctr.id, check=False)
    assert res.returncode != 0
    assert str(missing) in res.stderr, res.stderr
    _assert_nothing_left(ctr, ctr.id, cgroups_path)


@pytest.mark.parametrize("kind", ["createRuntime", "createContainer"])
def test_timeout_of_other_create_hooks(ctr, bundle: BundleFactory, cgroups_path: str,
                                       kind: str) -> None:
    b = bundle(["true"], linux={"cgroupsPath": cgroups_path}, hooks={kind: [
        {"path": "/bin/sh", "args": ["sh", "-c", "exec sleep 30"], "timeout": 1}]})
    started = time.monotonic()
    res = ctr.runtime.run("create", "--bundle", b.path, ctr.id, check=False)
    assert time.monotonic() - started < 10
    assert res.returncode != 0
    assert "timeout" in res.stderr or "timed out" in res.stderr, res.stderr
    _assert_nothing_left(ctr, ctr.id, cgroups_path)  # the cgroup, and the hook in it, gone


def test_hook_within_its_timeout_succeeds(ctr, bundle: BundleFactory, tmp_path: Path) -> None:
    b = bundle(["true"], hooks={"prestart": [
        {"path": "/bin/sh", "args": ["sh", "-c", "sleep 0.1"], "timeout": 5}]})
    ctr.output(b)


def test_failing_poststop_hook_does_not_keep_the_container(
        ctr, bundle: BundleFactory, tmp_path: Path) -> None:
    b = bundle(["true"], hooks={"poststop": [{"path": "/bin/false"}]})
    ctr.create(b)
    ctr.runtime.run("start", ctr.id)
    ctr.wait_stopped()
    res = ctr.runtime.run("delete", ctr.id, check=False)
    # The spec: a failing poststop hook is logged; the container is deleted anyway.
    assert ctr.runtime.list_ids() == [], res
