"""hutch-runtime exec into a container whose user namespace does not own all of its
namespaces (the engine makes network namespaces as host root): the exec'd process
must join them all, and end in the container's user namespace with its ids."""

from __future__ import annotations

import os

import pytest
from sectools import MAPPING

pytestmark = [pytest.mark.root, pytest.mark.userns]


def test_exec_joins_a_network_namespace_the_host_owns(runtime, open_bundle,
                                                       container_id, reap):
    holder = reap.popen(["unshare", "--net", "sleep", "60"])
    netns = f"/proc/{holder.pid}/ns/net"
    b = open_bundle(["sleep", "30"], userns=True)
    b.config["linux"]["namespaces"] = [ns for ns in b.config["linux"]["namespaces"]
                                       if ns["type"] != "network"]
    b.config["linux"]["namespaces"].append({"type": "network", "path": netns})
    b.write()
    runtime.run("run", "-d", "--bundle", b.path, container_id)
    pid = runtime.state(container_id)["pid"]
    r = runtime.run("exec", container_id, "sh", "-c", "id -u; for ns in net user mnt; do "
                    "readlink /proc/self/ns/$ns; done")
    assert r.stdout.split() == ["0", os.readlink(netns)] + [
        os.readlink(f"/proc/{pid}/ns/{k}") for k in ("user", "mnt")]
    with open(f"/proc/{pid}/uid_map") as f:
        assert f.read().split() == [str(MAPPING[0][k]) for k in ("containerID", "hostID",
                                                                   "size")]
    runtime.run("delete", "--force", container_id)
