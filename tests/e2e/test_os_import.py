"""The dir and tar templates: a root file system the user has, imported (safely) into the
image store, booting its own init; made here from the busybox template's tree."""

from __future__ import annotations

import io
import json
import os
import tarfile
import time

import pytest

from hutch.images.templates import build_busybox_rootfs
from test_engine_cli import Hutch, hutch  # noqa: F401 - the fixture


@pytest.fixture(scope="module")
def rootfs(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = build_busybox_rootfs(str(tmp_path_factory.mktemp("import") / "rootfs"))
    with open(os.path.join(root, "etc/marker"), "w") as f:
        f.write("from the host's tree\n")
    return root


@pytest.fixture(scope="module")
def rootfs_tar(rootfs: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    path = str(tmp_path_factory.mktemp("import-tar") / "rootfs.tar.gz")
    with tarfile.open(path, "w:gz") as tf:
        tf.add(rootfs, arcname=".")
    return path


def _state(hutch: Hutch, name: str) -> dict:  # noqa: F811
    return json.loads(hutch("inspect", name).stdout)[0]["State"]


def _wait_running_init(hutch: Hutch, name: str) -> None:  # noqa: F811
    deadline = time.monotonic() + 20
    while "init" not in hutch("attach", name, "--", "cat", "/proc/1/cmdline",
                              check=False).stdout:
        assert time.monotonic() < deadline, "init did not come up"
        time.sleep(0.1)


def test_tar_template_boots_its_init_and_is_imported_once(hutch, rootfs_tar):  # noqa: F811
    hutch("create", "-t", "tar", "-n", "t1", "--", "--file", rootfs_tar)
    hutch("create", "-t", "tar", "-n", "t2", "--", "--file", rootfs_tar)
    images = [line.split() for line in hutch("image", "ls").stdout.splitlines()[1:]]
    tar_images = [i for i in images if i[0] == "localhost/hutch/rootfs"]
    assert len(tar_images) == 1 and tar_images[0][1].startswith("tar-")
    hutch("start", "-d", "t1")
    _wait_running_init(hutch, "t1")
    assert hutch("attach", "t1", "--", "readlink", "/proc/1/exe").stdout == "/bin/busybox\n"
    # init got the console as a kernel gives it: as stdio, not as its controlling tty
    # (busybox init makes its own session; its shells take the console)
    stat = hutch("attach", "t1", "--", "cat", "/proc/1/stat").stdout.rsplit(")", 1)[1].split()
    assert stat[4] == "0"  # tty_nr
    assert hutch("attach", "t1", "--", "readlink", "/proc/1/fd/0").stdout.startswith(
        "/dev/pts/")
    assert hutch("attach", "t1", "--", "cat", "/etc/marker").stdout == "from the host's tree\n"
    assert hutch("attach", "t1", "--", "hostname").stdout.strip() == "t1"
    hutch("attach", "t1", "--", "sh", "-c", "echo mine > /etc/marker")
    hutch("stop", "-t", "10", "t1")  # SIGPWR, the default: busybox init powers off
    assert (_state(hutch, "t1")["Status"], _state(hutch, "t1")["ExitCode"]) == ("exited", 0)
    hutch("start", "-d", "t2")  # its own copy: t1's write is not there
    _wait_running_init(hutch, "t2")
    assert hutch("attach", "t2", "--", "cat", "/etc/marker").stdout == "from the host's tree\n"
    hutch("stop", "t2")
    hutch("destroy", "t1")
    hutch("destroy", "t2")


def test_dir_template_copies_the_tree_and_takes_init_and_stop_signal(hutch, rootfs):  # noqa: F811
    hutch("create", "-t", "dir", "-n", "d1", "--", "--path", rootfs, "--init",
          "/bin/sh -c 'echo custom init; exec /sbin/init'", "--stop-signal", "SIGUSR2")
    hutch("start", "-d", "d1")
    _wait_running_init(hutch, "d1")
    assert hutch("logs", "d1").stdout.startswith("custom init")
    assert hutch("attach", "d1", "--", "readlink", "/proc/1/exe").stdout == "/bin/busybox\n"
    hutch("attach", "d1", "--", "sh", "-c", "echo changed > /etc/marker; touch /new")
    with open(os.path.join(rootfs, "etc/marker")) as f:
        assert f.read() == "from the host's tree\n"  # a copy: the host's tree is untouched
    assert not os.path.exists(os.path.join(rootfs, "new"))
    t0 = time.monotonic()
    hutch("stop", "-t", "10", "d1")
    assert time.monotonic() - t0 < 8  # SIGUSR2 reached busybox init: no SIGKILL at 10 s
    assert _state(hutch, "d1")["ExitCode"] == 0
    hutch("destroy", "d1")


def test_bad_imports_are_refused_and_leave_nothing(hutch, tmp_path):  # noqa: F811
    r = hutch("create", "-t", "tar", "-n", "x", "--", "--file", str(tmp_path / "nope.tar"),
              check=False)
    assert r.returncode == 125 and "no such file" in r.stderr
    r = hutch("create", "-t", "dir", "-n", "x", "--", "--path", "/", check=False)
    assert r.returncode == 125 and "host's own root" in r.stderr
    r = hutch("create", "-t", "dir", "-n", "x", "--", "--path", str(tmp_path),
              "--stop-signal", "SIGNOPE", check=False)
    assert r.returncode == 125 and "--stop-signal SIGNOPE" in r.stderr
    hostile = tmp_path / "hostile.tar"
    with tarfile.open(hostile, "w") as tf:
        data = b"escaped\n"
        info = tarfile.TarInfo("../../escaped")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    r = hutch("create", "-t", "tar", "-n", "x", "--", "--file", str(hostile), check=False)
    assert r.returncode == 125 and "../../escaped" in r.stderr
    assert hutch.ids() == []
    assert not os.path.exists(os.path.join(os.path.dirname(hutch.root), "escaped"))


def test_a_symlink_in_the_imported_tree_cannot_aim_the_template_files_at_the_host(
        hutch, rootfs, tmp_path):  # noqa: F811
    victim = tmp_path / "victim"
    victim.write_text("the host's\n")
    tree = tmp_path / "tree"
    os.system(f"cp -a {rootfs} {tree}")
    os.unlink(tree / "etc/hostname")
    os.symlink(str(victim), tree / "etc/hostname")  # absolute: inside, it is <root>/tmp/...
    hutch("create", "-t", "dir", "-n", "s1", "--", "--path", str(tree))
    assert victim.read_text() == "the host's\n"
    hutch("destroy", "s1")
