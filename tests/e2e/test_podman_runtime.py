"""hutch-runtime as podman's OCI runtime (podman --runtime $(which hutch-runtime) run ...)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

from hutch.testing import cgroupns
from hutch.testing.runtime import default_runtime_argv

pytestmark = pytest.mark.podman


def test_podman_runs_a_busybox_container_on_hutch_runtime(tmp_path, busybox_rootfs):
    runtime = default_runtime_argv()[0]
    store = Path(tempfile.mkdtemp(prefix="hpm-"))  # podman wants a short runroot
    base = ["podman", "--root", str(store / "storage"), "--runroot", str(store / "run"),
            "--tmpdir", str(store / "tmp"), "--storage-driver", "vfs",
            "--cgroup-manager", "cgroupfs", "--events-backend", "none"]
    image_tar = tmp_path / "busybox.tar"
    with tarfile.open(image_tar, "w") as tar:
        tar.add(busybox_rootfs, arcname=".")
    script = (
        f'{" ".join(base)} import --quiet {image_tar} localhost/hutch-busybox >/dev/null\n'
        f'{" ".join(base)} --runtime {runtime} run --rm --network none '
        '--ulimit nofile=1024:1024 --ulimit nproc=4096:4096 --hostname podman-on-hutch '
        'localhost/hutch-busybox sh -c "echo hello; hostname; echo pid=\\$\\$; exit 3"\n'
        'echo "exit=$?"\n'
        f'{" ".join(base)} rmi -a -f >/dev/null 2>&1 || true\n')
    argv, env = cgroupns.wrap(["sh", "-c", script], leftovers=["libpod_parent"])
    try:
        r = subprocess.run(argv, capture_output=True, text=True, timeout=180,
                           env={**os.environ, **env})
    finally:
        # vfs storage holds plain directories only; nothing is mounted to undo.
        shutil.rmtree(store, ignore_errors=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["hello", "podman-on-hutch", "pid=1", "exit=3"], r.stderr
