"""Rootless: an unprivileged user runs hutch-runtime on a busybox bundle it owns.

A user is made for the module (useradd, a temp home) and removed after, with its
/etc/subuid and /etc/subgid lines, whatever happens. Its state goes to
$XDG_RUNTIME_DIR/hutch-runtime as runc's does; with nothing delegated to it the
container runs without a cgroup (as runc and crun do when cgroupsPath is unset).
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sectools import open_tempdir

from hutch.testing.bundle import copy_rootfs

pytestmark = [pytest.mark.root, pytest.mark.userns]

SUB_START, SUB_SIZE = 4_100_000, 65536


@dataclass
class User:
    name: str
    uid: int
    home: Path

    @property
    def xdg(self) -> Path:
        return self.home / "xdg"

    def run(self, *args: str, check: bool = True,
            xdg: bool = True) -> subprocess.CompletedProcess[str]:
        """``hutch-runtime ARGS`` as this user, from its home."""
        # The checkout (and its venv) may sit below a directory the user cannot enter
        # (/root): the user runs a copy of hutch with the host's interpreter.
        runtime = [os.path.realpath(sys.executable), "-c",
                   "import sys; from hutch.cli.runtime import main; sys.exit(main())"]
        # files, not pipes: a detached container would hold a pipe open until it ends
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            env = [f"XDG_RUNTIME_DIR={self.xdg}"] if xdg else []
            p = subprocess.run(["runuser", "-u", self.name, "--", "env", "-u",
                                "XDG_RUNTIME_DIR", f"HOME={self.home}",
                                f"PYTHONPATH={self.home / 'code'}", *env, *runtime, *args],
                               cwd=self.home, stdout=out, stderr=err, timeout=60,
                               stdin=subprocess.DEVNULL)
            out.seek(0)
            err.seek(0)
            r = subprocess.CompletedProcess(p.args, p.returncode, out.read(), err.read())
        if check and r.returncode != 0:
            raise AssertionError(f"hutch-runtime {' '.join(args)} -> {r.returncode}\n"
                                 f"stdout: {r.stdout}\nstderr: {r.stderr}")
        return r


def _edit_subids(line: str, add: bool) -> None:
    for path in ("/etc/subuid", "/etc/subgid"):
        with open(path, "a+") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            f.seek(0)
            lines = [x for x in f.read().splitlines() if x != line]
            if add:
                lines.append(line)
            f.seek(0)
            f.truncate()
            f.write("".join(x + "\n" for x in lines))


def _copy_code(dest: Path) -> None:
    """hutch and what its runtime imports beyond the stdlib, readable by anyone."""
    import hutch
    import pyseccomp
    skip = shutil.ignore_patterns("__pycache__")
    shutil.copytree(os.path.dirname(hutch.__file__), dest / "hutch", ignore=skip)
    origin = pyseccomp.__file__
    if os.path.basename(origin) == "__init__.py":
        shutil.copytree(os.path.dirname(origin), dest / "pyseccomp", ignore=skip)
    else:
        shutil.copy(origin, dest)
    for root, dirs, files in os.walk(dest):
        os.chmod(root, 0o755)
        for f in files:
            os.chmod(os.path.join(root, f), 0o644)


@pytest.fixture(scope="module")
def user() -> Iterator[User]:
    name = f"hutchrl{os.getpid() % 100000}"
    home = Path(open_tempdir("hutch-rootless-"))
    subprocess.run(["useradd", "--no-create-home", "--home-dir", str(home), "--shell",
                    "/bin/sh", name], check=True, capture_output=True)
    line = f"{name}:{SUB_START}:{SUB_SIZE}"
    try:
        uid = pwd.getpwnam(name).pw_uid
        shutil.chown(home, name, name)
        os.mkdir(home / "xdg", 0o700)
        shutil.chown(home / "xdg", name, name)
        _copy_code(home / "code")
        yield User(name, uid, home)
    finally:
        _edit_subids(line, add=False)
        # whatever the user still runs (a failed test's container) goes first
        subprocess.run(["pkill", "-KILL", "-U", name], check=False)
        subprocess.run(["userdel", name], check=False, capture_output=True)
        shutil.rmtree(home, ignore_errors=True)
        with open("/etc/passwd") as f:
            assert f"\n{name}:" not in "\n" + f.read(), f"user {name} was not removed"


@pytest.fixture
def bundle_of(user: User, busybox_rootfs: Path):  # type: ignore[no-untyped-def]
    """A bundle the user owns, from `hutch-runtime spec --rootless`, running ``args``."""
    made = []

    def make(args: list[str], **linux: object) -> Path:
        path = user.home / f"bundle{len(made)}"
        made.append(path)
        copy_rootfs(busybox_rootfs, path / "rootfs")
        subprocess.run(["chown", "-R", f"{user.name}:{user.name}", str(path)], check=True)
        user.run("spec", "--rootless", "--bundle", str(path))
        config = json.loads((path / "config.json").read_text())
        config["process"].update(terminal=False, args=args)
        config["root"]["readonly"] = False
        for caps in config["process"]["capabilities"].values():
            caps.append("CAP_CHOWN")
        config["linux"].update(linux)
        (path / "config.json").write_text(json.dumps(config))
        return path

    yield make
    for path in made:
        shutil.rmtree(path, ignore_errors=True)


def test_a_user_runs_a_container_mapping_only_its_own_uid(user, bundle_of):
    b = bundle_of(["sh", "-c", "id -u; cat /proc/self/uid_map; hostname; echo hi > /made"])
    r = user.run("run", "--bundle", str(b), "c1")
    assert r.stdout.split() == ["0", "0", str(user.uid), "1", "hutch"], r.stderr
    assert (b / "rootfs" / "made").stat().st_uid == user.uid
    assert user.run("list", "-q").stdout == ""  # run deleted it


def test_state_goes_to_xdg_runtime_dir_and_no_cgroup_is_needed(user, bundle_of):
    b = bundle_of(["sleep", "30"])
    user.run("run", "-d", "--bundle", str(b), "c2")
    try:
        state_dir = user.xdg / "hutch-runtime" / "c2"
        assert (state_dir / "state.json").stat().st_uid == user.uid
        state = json.loads(user.run("state", "c2").stdout)
        assert state["status"] == "running"
        # no cgroup of its own: it stays in the one it was started from (ours)
        assert Path(f"/proc/{state['pid']}/cgroup").read_text() == \
            Path("/proc/self/cgroup").read_text()
        # exec joins its namespaces: the user namespace first, as the user is not
        # privileged in the others before it
        assert user.run("exec", "c2", "sh", "-c", "id -u; readlink /proc/self/ns/mnt") \
            .stdout.split() == ["0", os.readlink(f"/proc/{state['pid']}/ns/mnt")]
        r = user.run("pause", "c2", check=False)
        assert r.returncode != 0 and "has no cgroup" in r.stderr, r.stderr
    finally:
        user.run("delete", "--force", "c2")
    assert not state_dir.exists()


def test_a_state_dir_in_tmp_that_is_not_the_users_is_refused(user, bundle_of):
    squatted = f"/tmp/hutch-runtime-{user.uid}"  # made first by someone else (root here)
    os.mkdir(squatted, 0o777)
    try:
        r = user.run("run", "--bundle", str(bundle_of(["true"])), "c6", check=False, xdg=False)
        assert r.returncode != 0
        assert f"state directory {squatted} is not a directory of yours" in r.stderr, r.stderr
        assert os.listdir(squatted) == []
    finally:
        os.rmdir(squatted)


def test_a_cgroups_path_without_delegation_is_a_clear_error(user, bundle_of):
    b = bundle_of(["true"], cgroupsPath="hutch-rootless/c3")
    r = user.run("run", "--bundle", str(b), "c3", check=False)
    assert r.returncode != 0
    assert "linux.cgroupsPath hutch-rootless/c3" in r.stderr
    assert "delegated" in r.stderr and "leave cgroupsPath out" in r.stderr, r.stderr
    assert user.run("list", "-q").stdout == ""


def test_subordinate_ranges_through_newuidmap(user, bundle_of):
    _edit_subids(f"{user.name}:{SUB_START}:{SUB_SIZE}", add=True)
    try:
        maps = [{"containerID": 0, "hostID": user.uid, "size": 1},
                {"containerID": 1, "hostID": SUB_START, "size": SUB_SIZE}]
        b = bundle_of(["sh", "-c", "cat /proc/self/uid_map; echo hi > /made; "
                                   "chown 1000:1000 /made"],
                      uidMappings=maps, gidMappings=maps)
        r = user.run("run", "--bundle", str(b), "c4")
        assert r.stdout.split() == ["0", str(user.uid), "1", "1", str(SUB_START),
                                    str(SUB_SIZE)]
        st = (b / "rootfs" / "made").stat()
        assert (st.st_uid, st.st_gid) == (SUB_START + 999, SUB_START + 999)
        # a range that /etc/subuid does not give is refused by newuidmap, clearly
        bad = [{"containerID": 0, "hostID": user.uid, "size": 1},
               {"containerID": 1, "hostID": SUB_START + SUB_SIZE, "size": 10}]
        b2 = bundle_of(["true"], uidMappings=bad, gidMappings=bad)
        r = user.run("run", "--bundle", str(b2), "c5", check=False)
        assert r.returncode != 0 and "newgidmap" in r.stderr, r.stderr
        assert user.run("list", "-q").stdout == ""
    finally:
        _edit_subids(f"{user.name}:{SUB_START}:{SUB_SIZE}", add=False)
