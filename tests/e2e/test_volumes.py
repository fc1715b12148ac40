"""Named volumes through the CLI: create, ls, inspect, use with -v NAME:/path, rm, prune."""

from __future__ import annotations

import json
import os

from test_engine_cli import hutch  # noqa: F401 - the fixture


def test_named_volume_is_shared_owned_by_the_containers_root_and_guarded(hutch):  # noqa: F811
    assert hutch("volume", "create", "data").stdout == "data\n"
    info = json.loads(hutch("volume", "inspect", "data").stdout)[0]
    mountpoint = info["Mountpoint"]
    assert mountpoint.startswith(hutch.root) and os.path.isdir(mountpoint)
    # an unprivileged container (its own id range) sees it as its root's
    r = hutch("run", "--rm", "--network", "none", "-v", "data:/data", "busybox", "sh", "-c",
              "echo hi > /data/f; id -u; stat -c %u:%g /data /data/f")
    assert r.stdout.split() == ["0", "0:0", "0:0"]
    st = os.stat(os.path.join(mountpoint, "f"))
    assert (st.st_uid, st.st_gid) == (0, 0)  # stored as the host's root (idmapped)
    # another container, another id range: the same data
    assert hutch("run", "--rm", "--network", "none", "-v", "data:/v:ro", "busybox",
                 "sh", "-c", "cat /v/f; touch /v/g 2>/dev/null || echo read-only").stdout \
        == "hi\nread-only\n"
    # made on first use
    hutch("run", "--rm", "--network", "none", "-v", "scratch:/s", "busybox", "true")
    assert hutch("volume", "ls", "-q").stdout.split() == ["data", "scratch"]
    assert hutch("volume", "ls").stdout.splitlines()[0].split() == ["DRIVER", "VOLUME", "NAME"]
    # a volume a container names cannot go, running or not
    hutch("create", "--name", "keeper", "--network", "none", "-v", "data:/data", "busybox",
          "true")
    r = hutch("volume", "rm", "data", check=False)
    assert r.returncode == 125 and "in use by container keeper" in r.stderr
    assert json.loads(hutch("volume", "inspect", "data").stdout)[0]["UsedBy"] == ["keeper"]
    r = hutch("volume", "create", "data", check=False)
    assert r.returncode == 125 and "exists already" in r.stderr
    assert hutch("volume", "prune").stdout.startswith("Deleted Volumes:\nscratch\n")
    assert hutch("volume", "ls", "-q").stdout.split() == ["data"]
    hutch("rm", "keeper")
    hutch("volume", "rm", "data")
    assert not os.path.exists(mountpoint)
    assert hutch("volume", "ls", "-q").stdout == ""


def test_volume_names_and_missing_volumes(hutch):  # noqa: F811
    r = hutch("run", "--rm", "-v", "bad name:/x", "busybox", "true", check=False)
    assert r.returncode == 125 and "neither an absolute host path nor a volume name" in r.stderr
    r = hutch("volume", "create", ".hidden", check=False)
    assert r.returncode == 125 and "volume name '.hidden'" in r.stderr
    r = hutch("volume", "rm", "ghost", check=False)
    assert r.returncode == 125 and "no such volume: ghost" in r.stderr
    assert hutch("volume", "rm", "-f", "ghost").returncode == 0
    name = hutch("volume", "create").stdout.strip()  # a random name
    assert len(name) == 64 and hutch("volume", "ls", "-q").stdout.split() == [name]
    hutch("volume", "rm", name)
    assert hutch.ids() == []
