"""The engine's default container is unprivileged: its root is an unprivileged id range."""

from __future__ import annotations

import json
import os
import tempfile
import time

from test_engine_cli import hutch  # noqa: F401 - the fixture


def _host_uid(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return int([line for line in f if line.startswith("Uid:")][0].split()[1])


def test_root_inside_is_an_unprivileged_id_outside(hutch):  # noqa: F811
    hutch("run", "-d", "--name", "a", "busybox", "sleep", "60")
    hutch("run", "-d", "--name", "b", "busybox", "sleep", "60")
    a, b = (json.loads(hutch("inspect", n).stdout)[0] for n in ("a", "b"))
    assert a["UsernsMode"] == b["UsernsMode"] == "private"
    assert _host_uid(a["State"]["Pid"]) == a["IdMapBase"] >= 100000
    assert _host_uid(b["State"]["Pid"]) == b["IdMapBase"]
    # Two containers get disjoint ranges.
    assert abs(a["IdMapBase"] - b["IdMapBase"]) >= 65536
    inside = hutch("exec", "a", "sh", "-c", "id -u; cat /proc/self/uid_map").stdout.split()
    assert inside == ["0", "0", str(a["IdMapBase"]), "65536"]


def test_image_files_keep_their_owners_through_the_idmapped_root(hutch):  # noqa: F811
    r = hutch("run", "--rm", "busybox", "sh", "-c",
              "stat -c '%u %g' /bin/busybox; touch /made && stat -c '%u' /made")
    assert r.stdout.split() == ["0", "0", "0"]


def test_a_host_root_file_bound_in_is_not_writable_by_the_containers_root(hutch):  # noqa: F811
    """Without idmapping (``noidmap``); an idmapped volume (the default) shows host
    root's files as the container root's, writable: see tests/security."""
    d = tempfile.mkdtemp(prefix="hutch-vol-")
    os.chmod(d, 0o755)
    try:
        with open(os.path.join(d, "f"), "w") as f:
            f.write("host\n")
        r = hutch("run", "--rm", "-v", f"{d}:/vol:noidmap", "busybox", "sh", "-c",
                  "cat /vol/f; echo evil > /vol/f && echo WROTE || echo refused", check=False)
        assert r.stdout.split() == ["host", "refused"], r.stderr
        with open(os.path.join(d, "f")) as f:
            assert f.read() == "host\n"
    finally:
        os.unlink(os.path.join(d, "f"))
        os.rmdir(d)


def test_userns_host_opts_out(hutch):  # noqa: F811
    r = hutch("run", "--rm", "--userns", "host", "busybox", "cat", "/proc/self/uid_map")
    assert r.stdout.split() == ["0", "0", "4294967295"]
    hutch("run", "-d", "--userns", "host", "--name", "priv", "busybox", "sleep", "60")
    info = json.loads(hutch("inspect", "priv").stdout)[0]
    assert info["UsernsMode"] == "host" and _host_uid(info["State"]["Pid"]) == 0


def test_without_idmapped_mounts_the_owners_are_shifted_once(hutch):  # noqa: F811
    """Where the kernel cannot idmap (forced here with HUTCH_IDMAP=off), the container's
    own layer gets the owners shifted into its range; the image's layer is untouched."""
    hutch.env = {**(hutch.env or os.environ), "HUTCH_IDMAP": "off"}
    hutch("run", "-d", "--name", "shifted", "--network", "none", "busybox", "sh", "-c",
          "stat -c '%u %g' /bin/busybox; id -u; touch /made && stat -c '%u' /made; "
          "sleep 300")
    data = json.loads(hutch("inspect", "shifted").stdout)[0]
    base = data["IdMapBase"]
    deadline = time.monotonic() + 10
    while len(hutch("logs", "shifted").stdout.split()) < 4 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert hutch("logs", "shifted").stdout.split() == ["0", "0", "0", "0"]
    rootfs = os.path.join(hutch.root, "containers", data["Id"], "rootfs")
    assert os.stat(os.path.join(rootfs, "bin", "busybox")).st_uid == base
    assert os.stat(os.path.join(rootfs, "made")).st_uid == base
    # the image's own layer (the lowest snapshot holding busybox) still says 0
    layers = [os.path.join(dirpath, "busybox") for dirpath, _, files in
              os.walk(os.path.join(hutch.root, "storage")) if "busybox" in files
              and dirpath.endswith(os.path.join("fs", "bin"))]
    assert sorted(os.stat(p).st_uid for p in layers) == [0, base]
