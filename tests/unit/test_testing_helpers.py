"""hutch.testing: bundles, host probes' parsing, the runtime command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hutch.testing import host
from hutch.testing.bundle import default_config, make_bundle, merge
from hutch.testing.cleanup import Reaper, pid_alive
from hutch.testing.runtime import RuntimeCLI, RuntimeCommandError, default_runtime_argv


def test_default_config_is_runc_like_and_fresh_each_time() -> None:
    a, b = default_config(["echo", "hi"]), default_config()
    assert a["process"]["args"] == ["echo", "hi"] and b["process"]["args"] == ["sh"]
    assert a["process"]["terminal"] is False and a["root"] == {"path": "rootfs", "readonly": False}
    assert a["hostname"] == "hutch-test" and a["process"]["noNewPrivileges"] is True
    assert [n["type"] for n in a["linux"]["namespaces"]] == ["pid", "ipc", "uts", "mount",
                                                              "network"]
    assert [m["destination"] for m in a["mounts"]] == ["/proc", "/dev", "/dev/pts", "/dev/shm",
                                                       "/dev/mqueue", "/sys"]
    caps = a["process"]["capabilities"]
    assert "CAP_SYS_CHROOT" in caps["bounding"] and "CAP_SYS_ADMIN" not in caps["bounding"]
    caps["bounding"].append("CAP_SYS_ADMIN")
    assert "CAP_SYS_ADMIN" not in caps["effective"]  # no shared lists inside one config
    assert "CAP_SYS_ADMIN" not in default_config()["process"]["capabilities"]["bounding"]


def test_merge_recurses_into_dicts_replaces_the_rest_and_deletes_on_none() -> None:
    config = default_config()
    merge(config, {"hostname": "x", "linux": {"cgroupsPath": "a/b", "maskedPaths": None},
                   "mounts": []})
    assert config["hostname"] == "x" and config["mounts"] == []
    assert config["linux"]["cgroupsPath"] == "a/b" and "maskedPaths" not in config["linux"]
    assert config["linux"]["namespaces"]  # kept


def test_make_bundle_copies_the_template_and_writes_config(tmp_path: Path) -> None:
    template = tmp_path / "template"
    (template / "bin").mkdir(parents=True)
    (template / "bin/busybox").write_text("binary")
    (template / "bin/sh").symlink_to("busybox")
    b = make_bundle(tmp_path / "b", template, ["true"], hostname="h")
    assert b.rootfs == tmp_path / "b/rootfs" and b.path == tmp_path / "b"
    assert os.readlink(b.rootfs / "bin/sh") == "busybox"
    copied = (b.rootfs / "bin/busybox").stat()
    assert copied.st_ino != (template / "bin/busybox").stat().st_ino and copied.st_nlink == 1
    on_disk = json.loads(b.config_path.read_text())
    assert on_disk["process"]["args"] == ["true"] and on_disk["hostname"] == "h"
    b.config["hostname"] = "changed"
    b.write()
    assert json.loads(b.config_path.read_text())["hostname"] == "changed"
    assert sorted(os.listdir(b.path)) == ["config.json", "rootfs"]


MOUNTINFO = r"""22 1 8:1 / / rw,relatime - ext4 /dev/vda rw
32 31 0:29 / /sys/fs/cgroup/cpu\040x rw,relatime - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 /outer /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate
"""

PROC_CGROUP = """4:cpu,cpuacct:/a
3:memory:/outer/b
2:name=systemd:/c
0::/d
"""


def test_cgroup_mounts_and_own_dirs(tmp_path: Path) -> None:
    (tmp_path / "mountinfo").write_text(MOUNTINFO)
    (tmp_path / "cgroup").write_text(PROC_CGROUP)
    mounts = host.cgroup_mounts(str(tmp_path / "mountinfo"))
    assert [(m.mountpoint, m.version) for m in mounts] == [
        ("/sys/fs/cgroup/cpu x", 1), ("/sys/fs/cgroup/memory", 1),
        ("/sys/fs/cgroup/systemd", 1), ("/sys/fs/cgroup/unified", 2)]
    own = [host.own_cgroup_dir(m, str(tmp_path / "cgroup")) for m in mounts]
    assert own == ["/sys/fs/cgroup/cpu x/a", "/sys/fs/cgroup/memory/b",
                   "/sys/fs/cgroup/systemd/c", "/sys/fs/cgroup/unified/d"]


def test_probes_answer_none_or_a_reason() -> None:
    for name, probe in host.PROBES.items():
        reason = probe()
        assert reason is None or (isinstance(reason, str) and reason), name
    assert (host.probe_cgroup_v1() is None) != (host.probe_cgroup_v2() is None)


def test_runtime_argv_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HUTCH_TEST_RUNTIME", "sh --flag")
    assert default_runtime_argv()[1:] == ["--flag"]
    assert os.path.basename(default_runtime_argv()[0]) == "sh"
    monkeypatch.setenv("HUTCH_TEST_RUNTIME", "no-such-runtime-here")
    with pytest.raises(FileNotFoundError, match="no-such-runtime-here"):
        default_runtime_argv()
    monkeypatch.delenv("HUTCH_TEST_RUNTIME")
    assert default_runtime_argv() == [os.path.join(os.path.dirname(sys.executable),
                                                   "hutch-runtime")]


def fake_runtime(tmp_path: Path, body: str) -> RuntimeCLI:
    script = tmp_path / "fake-runtime"
    script.write_text("#!/bin/sh\n" + body)
    script.chmod(0o755)
    return RuntimeCLI([str(script)], str(tmp_path / "root"))


def test_run_puts_root_before_the_verb_and_does_not_wait_for_inherited_output(
        tmp_path: Path) -> None:
    # Like `create`: the command exits while a child it leaves keeps stdout open.
    cli = fake_runtime(tmp_path, 'echo "$@"; echo err >&2; sleep 30 & echo $! > "$2/pid"\n')
    os.mkdir(cli.root)
    res = cli.run("create", "--bundle", tmp_path, "c1", timeout=10)
    pid = int((tmp_path / "root/pid").read_text())
    try:
        assert res.stdout == f"--root {cli.root} create --bundle {tmp_path} c1\n"
        assert res.stderr == "err\n"
    finally:
        os.kill(pid, 9)


def test_run_check_raises_with_the_output(tmp_path: Path) -> None:
    cli = fake_runtime(tmp_path, "echo 'container xyz does not exist' >&2; exit 3\n")
    with pytest.raises(RuntimeCommandError, match="does not exist") as info:
        cli.run("state", "xyz")
    assert info.value.returncode == 3
    assert cli.run("state", "xyz", check=False).returncode == 3


def test_cleanup_deletes_what_list_shows(tmp_path: Path) -> None:
    # "list" shows c1 until "delete --force c1" ran; runc prints null for no containers.
    cli = fake_runtime(tmp_path, '''
case "$3" in
  list) if [ -e "$2/deleted" ]; then echo null; else echo '[{"id": "c1"}]'; fi ;;
  delete) [ "$4 $5" = "--force c1" ] && touch "$2/deleted" ;;
esac
''')
    os.mkdir(cli.root)
    assert cli.list_ids() == ["c1"]
    assert cli.cleanup() == []
    assert not os.path.exists(cli.root)


def test_cleanup_reports_what_cannot_be_deleted(tmp_path: Path) -> None:
    cli = fake_runtime(tmp_path, '''
case "$3" in
  list) echo '[{"id": "stuck"}]' ;;
  delete) echo "cannot delete" >&2; exit 1 ;;
esac
''')
    problems = cli.cleanup()
    assert any("delete --force stuck failed: cannot delete" in p for p in problems), problems


def test_reaper_kills_and_reaps_its_processes() -> None:
    reaper = Reaper()
    proc = reaper.popen(["sh", "-c", "sleep 60 & sleep 60"])
    loose = subprocess.Popen(["sleep", "60"])
    reaper.add(loose.pid)
    assert pid_alive(proc.pid) and pid_alive(loose.pid)
    assert reaper.close() == []
    assert proc.returncode is not None and not pid_alive(proc.pid) and not pid_alive(loose.pid)
    loose.wait(timeout=5)
