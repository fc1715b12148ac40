"""hutch-runtime's mounts under attack: symlinked targets, and idmapped bind mounts
(runtime-spec 1.1: a mount's uidMappings/gidMappings, options "idmap"/"ridmap")."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sectools import BASE, open_tempdir


pytestmark = [pytest.mark.root, pytest.mark.userns]

def _host_mounts_under(prefix: str) -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4] for line in f if line.split()[4].startswith(prefix)]


def test_mount_targets_through_symlinks_never_reach_the_host(runtime, open_bundle,
                                                            container_id):
    """A destination through an absolute symlink to a host path is resolved inside the
    rootfs (the link means the container's /etc); one whose relative symlink climbs out
    of the rootfs is refused, naming it, and nothing is left."""
    host_src = open_tempdir("hutch-secsrc-")
    Path(host_src, "from-host").write_text("x")
    name = f"hutch-sec-{container_id}"
    host_hostname = Path("/etc/hostname").read_bytes()
    try:
        b = open_bundle(["sh", "-c", f"grep -c {name} /proc/self/mountinfo; "
                                     f"ls /etc/{name}-dir; cat /etc/hostname"])
        root = b.rootfs
        os.symlink("/etc", root / "evil_abs")
        os.symlink("/etc/hostname", root / "evil_file")
        (root / "etc" / "hostname").write_text("container-hostname\n")
        b.config["mounts"] += [
            {"destination": f"/evil_abs/{name}-tmpfs", "type": "tmpfs", "source": "tmpfs"},
            {"destination": f"/evil_abs/{name}-dir", "type": "bind", "source": host_src,
             "options": ["rbind", "ro"]},
            {"destination": "/evil_file", "type": "bind", "source": "/dev/null",
             "options": ["bind"]},
        ]
        b.write()
        out = runtime.run("run", "--bundle", b.path, container_id).stdout.split()
        # both directory mounts are in the container's /etc; the file mount hid its
        # own /etc/hostname (/dev/null now: nothing printed)
        assert out == ["2", "from-host"]
        assert (root / "etc" / f"{name}-tmpfs").is_dir()

        b2 = open_bundle(["true"])
        os.symlink("../../../../../../../../../etc", b2.rootfs / "evil_rel")
        b2.config["mounts"].append({"destination": f"/evil_rel/{name}-rel", "type": "bind",
                                    "source": host_src, "options": ["rbind"]})
        b2.write()
        r = runtime.run("run", "--bundle", b2.path, container_id + "-rel", check=False)
        assert r.returncode != 0
        assert "evil_rel" in r.stderr and "points outside the root file system" in r.stderr
        assert runtime.list_ids() == []
        for suffix in ("tmpfs", "dir", "rel"):
            assert not os.path.exists(f"/etc/{name}-{suffix}")
        assert Path("/etc/hostname").read_bytes() == host_hostname
        assert _host_mounts_under("/etc") == []
    finally:
        shutil.rmtree(host_src)


@pytest.fixture
def host_dir() -> Iterator[str]:
    """A host dir: a host-root file, a uid 1000 file, and a tmpfs submount (host root's)."""
    d = open_tempdir("hutch-secvol-")
    Path(d, "rootfile").write_text("root\n")
    Path(d, "userfile").write_text("user\n")
    os.chown(os.path.join(d, "userfile"), 1000, 1000)
    os.mkdir(os.path.join(d, "sub"))
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=755", "tmpfs", os.path.join(d, "sub")],
                   check=True)
    try:
        Path(d, "sub", "subfile").write_text("sub\n")
        yield d
    finally:
        subprocess.run(["umount", "--lazy", os.path.join(d, "sub")], check=False)
        shutil.rmtree(d)


def test_idmapped_bind_mounts(runtime, open_bundle, container_id, host_dir):
    """idmap: the container's own mapping (host root's files are its root's); explicit
    uidMappings/gidMappings: their own; ridmap: the submounts too; plain: unmapped."""
    show = "stat -c '%n %u:%g' {0}/rootfile {0}/userfile {0}/sub/subfile"
    b = open_bundle(["sh", "-c", "; ".join([
        show.format("/own"), show.format("/explicit"), show.format("/rec"),
        show.format("/plain"),
        "echo c > /own/made && stat -c '%n %u:%g' /own/made",
        "echo c > /plain/made 2>/dev/null || echo plain-refused"])], userns=True)
    other = [{"containerID": 0, "hostID": BASE + 1000, "size": 1},
             {"containerID": 1000, "hostID": BASE, "size": 1}]  # swaps root and 1000
    b.config["mounts"] += [
        {"destination": "/own", "type": "bind", "source": host_dir,
         "options": ["rbind", "idmap"]},
        {"destination": "/explicit", "type": "bind", "source": host_dir,
         "options": ["rbind", "idmap"], "uidMappings": other, "gidMappings": other},
        {"destination": "/rec", "type": "bind", "source": host_dir,
         "options": ["rbind", "ridmap"]},
        {"destination": "/plain", "type": "bind", "source": host_dir, "options": ["rbind"]},
    ]
    b.write()
    out = runtime.run("run", "--bundle", b.path, container_id).stdout.splitlines()
    assert out == [
        "/own/rootfile 0:0", "/own/userfile 1000:1000", "/own/sub/subfile 65534:65534",
        "/explicit/rootfile 1000:1000", "/explicit/userfile 0:0",
        "/explicit/sub/subfile 65534:65534",
        "/rec/rootfile 0:0", "/rec/userfile 1000:1000", "/rec/sub/subfile 0:0",
        "/plain/rootfile 65534:65534", "/plain/userfile 65534:65534",
        "/plain/sub/subfile 65534:65534",
        "/own/made 0:0", "plain-refused"]
    st = os.stat(os.path.join(host_dir, "made"))
    assert (st.st_uid, st.st_gid) == (0, 0)  # the container's root writes as host root


def test_idmap_errors_are_clear_and_leave_nothing(runtime, open_bundle, container_id,
                                                  host_dir):
    from hutch.testing.host import cgroup_mounts, own_cgroup_dir
    pids = next(m for m in cgroup_mounts() if "pids" in m.options)
    shared = os.path.join(own_cgroup_dir(pids) or "", "hutch")
    had_shared = os.path.exists(shared)
    b = open_bundle(["true"])  # no user namespace
    b.config["mounts"].append({"destination": "/v", "type": "bind", "source": host_dir,
                               "options": ["rbind", "idmap"]})
    b.write()
    r = runtime.run("run", "--bundle", b.path, container_id, check=False)
    assert r.returncode != 0
    assert "mounts[6]" in r.stderr and "has no user namespace" in r.stderr, r.stderr
    assert runtime.list_ids() == []
    b.config["mounts"][-1]["options"] = ["idmap"]
    b.config["mounts"][-1]["type"] = "tmpfs"
    b.write()
    r = runtime.run("run", "--bundle", b.path, container_id, check=False)
    assert "only bind mounts can be idmapped" in r.stderr, r.stderr
    assert runtime.list_ids() == []
    if "cgroupsPath" not in b.config.get("linux", {}) and not had_shared:
        assert not os.path.exists(shared), "the failed create left the shared hutch cgroup"


def test_features_announce_idmapped_mounts(runtime):
    doc = json.loads(runtime.run("features").stdout)
    assert doc["linux"]["mountExtensions"] == {"idmap": {"enabled": True}}
    assert {"idmap", "ridmap"} <= set(doc["mountOptions"])
