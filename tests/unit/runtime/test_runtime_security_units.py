"""Pure parts of the runtime's and engine's security plumbing: the idmapped mount
requests, -v options, and where a user's runtime state goes. No syscalls here:
every case fails (or decides) before anything is made."""

from __future__ import annotations

import os

import pytest

from hutch.engine.spec import _volumes
from hutch.errors import InvalidArgument
from hutch.runtime import idmapped
from hutch.runtime.statedir import DEFAULT_ROOT, default_root

MAP = [{"containerID": 0, "hostID": 100000, "size": 65536}]


def spec_with(mount: dict, userns: bool = True) -> dict:
    linux: dict = {"namespaces": [{"type": "mount"}]}
    if userns:
        linux["namespaces"].append({"type": "user"})
        linux["uidMappings"] = linux["gidMappings"] = MAP
    return {"mounts": [{"destination": "/p", "type": "proc", "source": "proc"},
                       {"destination": "/v", "source": "/srv", **mount}], "linux": linux}


def test_mounts_without_idmap_need_nothing() -> None:
    assert idmapped.prepare(spec_with({"options": ["rbind", "ro"]}), "/b") == {}
    assert not idmapped.wants_idmap({"options": ["rbind"]})
    assert idmapped.wants_idmap({"options": ["ridmap"]})
    assert idmapped.wants_idmap({"uidMappings": MAP})


@pytest.mark.parametrize(("mount", "userns", "message"), [
    ({"type": "tmpfs", "options": ["idmap"]}, True,
     "mounts[1] (/srv on /v): only bind mounts can be idmapped"),
    ({"options": ["rbind", "idmap"]}, False,
     "mounts[1] (/srv on /v): idmap without uidMappings/gidMappings takes the container's, "
     "but it has no user namespace"),
    ({"options": ["rbind", "idmap"], "uidMappings": MAP}, True,
     "mounts[1] (/srv on /v): an idmapped mount needs both uidMappings and gidMappings"),
])
def test_idmap_requests_that_cannot_be_met(mount, userns, message) -> None:
    with pytest.raises(InvalidArgument) as info:
        idmapped.prepare(spec_with(mount, userns), "/b")
    assert str(info.value) == message


def test_volumes_are_idmapped_by_default_in_their_own_user_namespace(tmp_path) -> None:
    d = str(tmp_path)
    assert _volumes([f"{d}:/v"], own_userns=True)[0]["options"] == \
        ["rbind", "rprivate", "rw", "idmap"]
    assert _volumes([f"{d}:/v:ro,noidmap"], own_userns=True)[0]["options"] == \
        ["rbind", "rprivate", "ro"]
    assert _volumes([f"{d}:/v"], own_userns=False)[0]["options"] == ["rbind", "rprivate", "rw"]


@pytest.mark.parametrize(("opts", "userns", "fragment"), [
    ("rx", True, "unknown option 'rx'; use ro or rw, and idmap or noidmap"),
    ("", True, "unknown option ''"),
    ("ro,rw", True, "ro and rw, or idmap and noidmap, contradict"),
    ("idmap,noidmap", True, "contradict"),
    ("idmap", False, "idmap needs the container's own user namespace (not --userns host)"),
])
def test_bad_volume_options_are_named(tmp_path, opts, userns, fragment) -> None:
    with pytest.raises(InvalidArgument) as info:
        _volumes([f"{tmp_path}:/v:{opts}"], own_userns=userns)
    assert fragment in str(info.value)
    assert str(info.value).startswith(f"-v {tmp_path}:/v:{opts}: ")


def test_state_root_of_root_and_of_users(monkeypatch, tmp_path) -> None:
    assert default_root({"HUTCH_RUNTIME_ROOT": "/x"}) == "/x"
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert default_root({"XDG_RUNTIME_DIR": "/run/user/0"}) == DEFAULT_ROOT
    monkeypatch.setattr(os, "geteuid", lambda: 4242)
    assert default_root({"XDG_RUNTIME_DIR": str(tmp_path)}) == f"{tmp_path}/hutch-runtime"
    # no XDG_RUNTIME_DIR and no /run/user/4242 of its own: a private dir in /tmp
    assert default_root({}) == "/tmp/hutch-runtime-4242"
