"""Fixtures of the attack suite: the static probe and a hutch instance of its own.

The probe (probe.c) is compiled once per session with ``gcc -static`` and
bind-mounted read-only into the containers at /probe; it prints one line per
attack ("NAME RESULT", RESULT "ok" or an errno name), so one container start
runs many attacks. Helpers are in sectools.py.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sectools import BASE, MAPPING, Hutch, open_tempdir

from hutch.testing.bundle import Bundle, make_bundle
from hutch.testing.cleanup import mounts_below

HERE = Path(__file__).parent


@pytest.fixture(scope="session")
def probe_dir() -> Iterator[str]:
    """A directory holding the compiled probe (``probe``), readable by every uid."""
    d = open_tempdir("hutch-probe-")
    try:
        subprocess.run(["gcc", "-static", "-O1", "-Wall", "-Wno-format-truncation", "-o",
                        os.path.join(d, "probe"), str(HERE / "probe.c")],
                       check=True, capture_output=True, text=True)
        yield d
    finally:
        shutil.rmtree(d)


@pytest.fixture(scope="module")
def hutch() -> Iterator[Hutch]:
    """A hutch instance with its own --root, shared by a module; removed after."""
    h = Hutch(tempfile.mkdtemp(prefix="hutch-sec-"))
    yield h
    problems = h.cleanup()
    assert not problems, problems


@pytest.fixture
def open_bundle(runtime, busybox_rootfs: Path) -> Iterator[Callable[..., Bundle]]:
    """Bundles in a directory every uid may traverse; mounts left below it fail the test."""
    top = Path(open_tempdir("hutch-secb-"))
    made = []

    def factory(args: list[str], userns: bool = False) -> Bundle:
        b = make_bundle(top / f"b{len(made)}", busybox_rootfs, args)
        made.append(b)
        os.chmod(b.path, 0o755)
        if userns:
            b.config["linux"]["namespaces"].append({"type": "user"})
            b.config["linux"]["uidMappings"] = MAPPING
            b.config["linux"]["gidMappings"] = MAPPING
            subprocess.run(["chown", "-R", f"{BASE}:{BASE}", str(b.rootfs)], check=True)
        b.write()
        return b

    yield factory
    for cid in runtime.list_ids():
        runtime.run("delete", "--force", cid, check=False)
    leaked = mounts_below([top])
    for target in sorted(leaked, key=len, reverse=True):
        subprocess.run(["umount", "--lazy", target], check=False)
    shutil.rmtree(top)
    assert not leaked, f"mounts leaked into the host's mount namespace: {leaked}"
