"""config.json's process: env, cwd, user, umask, rlimits, privileges, capabilities, OOM
score, and the exit codes of ``run``."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from hutch.testing.bundle import Bundle

BundleFactory = Callable[..., Bundle]

PATH = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def proc_status(out: str) -> dict[str, str]:
    """/proc/PID/status text -> {field: value}."""
    return {k: v.strip() for k, v in (line.split(":", 1) for line in out.splitlines())}


# --- env and cwd ------------------------------------------------------------------------------

def test_env_is_passed_exactly(ctr, bundle: BundleFactory) -> None:
    env = [PATH, "TERM=xterm", "FOO=bar baz", "EMPTY=", "EQ=a=b", "HOME=/home/x"]
    b = bundle(["env"], process={"env": env})
    assert sorted(ctr.output(b).splitlines()) == sorted(env)


def test_env_without_home(ctr, bundle: BundleFactory) -> None:
    b = bundle(["env"], process={"env": [PATH, "ONLY=1"]})
    lines = ctr.output(b).splitlines()
    # runc adds HOME from /etc/passwd when the config has none; nothing else may appear
    assert sorted(set(lines) - {"HOME=/root"}) == sorted([PATH, "ONLY=1"]), lines
    assert len(lines) == len(set(lines))


def test_cwd(ctr, bundle: BundleFactory) -> None:
    assert ctr.output(bundle(["pwd"], process={"cwd": "/etc"})) == "/etc\n"


def test_cwd_that_does_not_exist_is_created(ctr, bundle: BundleFactory) -> None:
    b = bundle(["pwd"], process={"cwd": "/new/work/dir"})
    assert ctr.output(b) == "/new/work/dir\n"
    assert (b.rootfs / "new/work/dir").is_dir()


def test_cwd_that_is_a_file_is_refused(ctr, bundle: BundleFactory, cgroups_path: str) -> None:
    b = bundle(["pwd"], process={"cwd": "/etc/passwd"}, linux={"cgroupsPath": cgroups_path})
    res = ctr.run(b)
    assert res.returncode != 0
    assert "/etc/passwd" in res.stderr and "ot a directory" in res.stderr, res.stderr
    assert ctr.runtime.list_ids() == []


def test_stdin_reaches_the_process(ctr, bundle: BundleFactory) -> None:
    res = ctr.run(bundle(["sh", "-c", "cat; echo; echo err >&2"]), input="from-stdin")
    assert (res.returncode, res.stdout) == (0, "from-stdin\n"), res
    assert res.stderr.endswith("err\n"), res.stderr


# --- user -------------------------------------------------------------------------------------

def test_user_uid_gid_and_additional_gids(ctr, bundle: BundleFactory) -> None:
    b = bundle(["cat", "/proc/self/status"],
               process={"user": {"uid": 1000, "gid": 1001, "additionalGids": [5, 2000]}})
    status = proc_status(ctr.output(b))
    assert status["Uid"].split() == ["1000"] * 4
    assert status["Gid"].split() == ["1001"] * 4
    assert status["Groups"].split() == ["5", "2000"]


def test_user_without_additional_gids_has_no_groups(ctr, bundle: BundleFactory) -> None:
    b = bundle(["cat", "/proc/self/status"], process={"user": {"uid": 1000, "gid": 1000}})
    assert proc_status(ctr.output(b))["Groups"] == ""


def test_id_inside(ctr, bundle: BundleFactory) -> None:
    b = bundle(["id"], process={"user": {"uid": 0, "gid": 0, "additionalGids": [5]}})
    assert ctr.output(b) == "uid=0(root) gid=0(root) groups=5(tty)\n"


def test_unprivileged_user_cannot_write_roots_files(ctr, bundle: BundleFactory) -> None:
    b = bundle(["sh", "-c", "echo x >> /etc/passwd; echo rc=$?; id -u"],
               process={"user": {"uid": 1000, "gid": 1000}})
    assert ctr.output(b) == "rc=1\n1000\n"


@pytest.mark.parametrize("umask,expected", [(0o027, "0027"), (0o077, "0077")])
def test_umask(ctr, bundle: BundleFactory, umask: int, expected: str) -> None:
    b = bundle(["sh", "-c", "umask; touch /tmp/f; stat -c %a /tmp/f"],
               process={"user": {"uid": 0, "gid": 0, "umask": umask}})
    mode = oct(0o666 & ~umask)[2:]
    assert ctr.output(b) == f"{expected}\n{mode}\n"


def test_default_umask(ctr, bundle: BundleFactory) -> None:
    assert ctr.output(bundle(["sh", "-c", "umask"])) == "0022\n"


# --- rlimits ----------------------------------------------------------------------------------

def test_rlimits(ctr, bundle: BundleFactory) -> None:
    b = bundle(["sh", "-c", "ulimit -n; ulimit -Hn; grep -E 'open files|processes' "
                            "/proc/self/limits"],
               process={"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 123, "hard": 456},
                                    {"type": "RLIMIT_NPROC", "soft": 77, "hard": 88}]})
    lines = ctr.output(b).splitlines()
    assert lines[:2] == ["123", "456"]
    limits = {" ".join(line.split()[:-3]): line.split()[-3:-1] for line in lines[2:]}
    assert limits == {"Max open files": ["123", "456"], "Max processes": ["77", "88"]}


def test_rlimit_above_what_the_kernel_allows_fails_at_create(ctr, bundle: BundleFactory,
                                                             cgroups_path: str) -> None:
    nr_open = int(Path("/proc/sys/fs/nr_open").read_text())
    b = bundle(["true"], linux={"cgroupsPath": cgroups_path},
               process={"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 1024,
                                     "hard": nr_open + 1}]})
    res = ctr.runtime.run("create", "--bundle", b.path, ctr.id, check=False)
    assert res.returncode != 0
    if ctr.runtime.name == "runc":  # "error setting rlimit type 7: operation not permitted"
        assert "rlimit" in res.stderr, res.stderr
    else:
        assert "RLIMIT_NOFILE" in res.stderr, res.stderr
    assert ctr.runtime.list_ids() == []


def test_rlimit_soft_above_hard_is_refused(ctr, bundle: BundleFactory,
                                          cgroups_path: str) -> None:
    b = bundle(["true"], linux={"cgroupsPath": cgroups_path},
               process={"rlimits": [{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}]})
    res = ctr.runtime.run("create", "--bundle", b.path, ctr.id, check=False)
    assert res.returncode != 0
    if ctr.runtime.name == "runc":  # "error setting rlimit type 7: invalid argument"
        assert "rlimit" in res.stderr, res.stderr
    else:  # the field or the limit
        assert "process.rlimits[0]" in res.stderr or "RLIMIT_NOFILE" in res.stderr, res.stderr
    assert ctr.runtime.list_ids() == []


# --- privileges -------------------------------------------------------------------------------

@pytest.mark.parametrize("nnp,expected", [(True, "1"), (False, "0")])
def test_no_new_privileges(ctr, bundle: BundleFactory, nnp: bool, expected: str) -> None:
    b = bundle(["cat", "/proc/self/status"], process={"noNewPrivileges": nnp})
    assert proc_status(ctr.output(b))["NoNewPrivs"] == expected


CAP_NUMBERS = {
    "CAP_CHOWN": 0, "CAP_DAC_OVERRIDE": 1, "CAP_DAC_READ_SEARCH": 2, "CAP_FOWNER": 3,
    "CAP_FSETID": 4, "CAP_KILL": 5, "CAP_SETGID": 6, "CAP_SETUID": 7, "CAP_SETPCAP": 8,
    "CAP_NET_BIND_SERVICE": 10, "CAP_NET_RAW": 13, "CAP_SYS_CHROOT": 18, "CAP_SYS_ADMIN": 21,
    "CAP_MKNOD": 27, "CAP_AUDIT_WRITE": 29, "CAP_SETFCAP": 31,
}


def cap_mask(names: list[str]) -> int:
    return sum(1 << CAP_NUMBERS[n] for n in names)


def cap_sets(status: dict[str, str]) -> dict[str, int]:
    return {k: int(status[k], 16) for k in ("CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb")}


def test_capabilities_of_root(ctr, bundle: BundleFactory) -> None:
    caps = ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_SETUID", "CAP_SETGID"]
    b = bundle(["cat", "/proc/self/status"],
               process={"capabilities": {"bounding": caps, "effective": caps,
                                         "permitted": caps, "inheritable": ["CAP_KILL"]}})
    assert cap_sets(proc_status(ctr.output(b))) == {
        "CapInh": cap_mask(["CAP_KILL"]), "CapPrm": cap_mask(caps), "CapEff": cap_mask(caps),
        "CapBnd": cap_mask(caps), "CapAmb": 0}


def test_capabilities_of_a_user_with_ambient(ctr, bundle: BundleFactory) -> None:
    bounding = ["CAP_CHOWN", "CAP_NET_BIND_SERVICE", "CAP_NET_RAW"]
    keep = ["CAP_NET_BIND_SERVICE"]
    b = bundle(["cat", "/proc/self/status"],
               process={"user": {"uid": 1000, "gid": 1000},
                        "capabilities": {"bounding": bounding, "effective": keep,
                                         "permitted": keep, "inheritable": keep,
                                         "ambient": keep}})
    # after execve by a non-root user, permitted and effective are the ambient set
    assert cap_sets(proc_status(ctr.output(b))) == {
        "CapInh": cap_mask(keep), "CapPrm": cap_mask(keep), "CapEff": cap_mask(keep),
        "CapBnd": cap_mask(bounding), "CapAmb": cap_mask(keep)}


def test_a_user_without_ambient_capabilities_has_none(ctr, bundle: BundleFactory) -> None:
    b = bundle(["cat", "/proc/self/status"], process={"user": {"uid": 1000, "gid": 1000}})
    sets = cap_sets(proc_status(ctr.output(b)))
    assert (sets["CapPrm"], sets["CapEff"], sets["CapAmb"]) == (0, 0, 0)


def test_a_dropped_capability_is_refused(ctr, bundle: BundleFactory) -> None:
    caps = ["CAP_KILL", "CAP_DAC_OVERRIDE"]
    b = bundle(["sh", "-c", "touch /tmp/f && chown 1000 /tmp/f; echo rc=$?"],
               process={"capabilities": {k: caps for k in ("bounding", "effective",
                                                           "permitted")}})
    res = ctr.run(b)
    assert res.stdout == "rc=1\n", res
    assert "Operation not permitted" in res.stderr
    assert os.stat(b.rootfs / "tmp/f").st_uid == 0


def test_no_capabilities(ctr, bundle: BundleFactory) -> None:
    b = bundle(["cat", "/proc/self/status"])
    b.config["process"]["capabilities"] = {}
    b.write()
    sets = cap_sets(proc_status(ctr.output(b)))
    assert (sets["CapPrm"], sets["CapEff"], sets["CapBnd"]) == (0, 0, 0)


# --- OOM score --------------------------------------------------------------------------------

@pytest.mark.parametrize("adj", [500, 0])
def test_oom_score_adj(ctr, bundle: BundleFactory, adj: int) -> None:
    b = bundle(["cat", "/proc/self/oom_score_adj"], process={"oomScoreAdj": adj})
    assert ctr.output(b) == f"{adj}\n"


# --- exit codes -------------------------------------------------------------------------------

@pytest.mark.parametrize("code", [0, 1, 7, 255])
def test_run_returns_the_exit_code(ctr, bundle: BundleFactory, code: int) -> None:
    res = ctr.run(bundle(["sh", "-c", f"exit {code}"]))
    assert res.returncode == code, res
    assert ctr.runtime.list_ids() == []  # run (without -d) deletes the container


def _start_foreground(ctr, b: Bundle) -> subprocess.Popen[str]:
    proc = ctr.runtime.popen("run", "--bundle", b.path, ctr.id, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
    try:
        ctr.wait_file(b.rootfs / "tmp/ready")
    except AssertionError:
        proc.kill()
        out, err = proc.communicate(timeout=10)
        raise AssertionError(f"the container did not get ready: {out!r} {err!r}") from None
    return proc


def test_run_returns_137_when_killed(ctr, bundle: BundleFactory) -> None:
    b = bundle(["sh", "-c", "echo > /tmp/ready; exec sleep 60"])
    proc = _start_foreground(ctr, b)
    ctr.runtime.run("kill", ctr.id, "KILL")
    assert proc.wait(timeout=10) == 137


def test_run_returns_128_plus_the_signal(ctr, bundle: BundleFactory) -> None:
    # Not PID 1 of a new pid namespace, which would ignore SIGTERM without a handler.
    b = bundle(["sh", "-c", "echo > /tmp/ready; exec sleep 60"])
    b.config["linux"]["namespaces"] = [{"type": t} for t in ("ipc", "uts", "mount", "network")]
    b.write()
    proc = _start_foreground(ctr, b)
    ctr.runtime.run("kill", ctr.id, "TERM")
    assert proc.wait(timeout=10) == 143


def test_run_forwards_signals_to_the_container(ctr, bundle: BundleFactory) -> None:
    b = bundle(["sh", "-c", "trap 'echo got-term; exit 42' TERM; echo > /tmp/ready; "
                            "while :; do sleep 0.05; done"])
    proc = _start_foreground(ctr, b)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=10)
    assert (proc.returncode, out) == (42, "got-term\n")


def test_missing_executable_is_named(ctr, bundle: BundleFactory) -> None:
    res = ctr.run(bundle(["no-such-program", "arg"]))
    assert res.returncode != 0
    assert "no-such-program" in res.stderr, res.stderr
    assert ctr.runtime.list_ids() == []


def test_missing_executable_by_path_is_named(ctr, bundle: BundleFactory) -> None:
    res = ctr.run(bundle(["/bin/no-such-program"]))
    assert res.returncode != 0
    assert "/bin/no-such-program" in res.stderr, res.stderr
    assert ctr.runtime.list_ids() == []


def test_program_that_is_not_executable_is_refused(ctr, bundle: BundleFactory) -> None:
    b = bundle(["/etc/passwd"])
    res = ctr.run(b)
    assert res.returncode != 0
    assert "/etc/passwd" in res.stderr and "ermission denied" in res.stderr, res.stderr
    assert ctr.runtime.list_ids() == []


def test_program_found_through_the_configs_path(ctr, bundle: BundleFactory) -> None:
    b = bundle(["my-tool"], process={"env": ["PATH=/opt/tools:/bin"]})
    tool = b.rootfs / "opt/tools/my-tool"
    tool.parent.mkdir(parents=True)
    tool.write_text("#!/bin/sh\necho from-opt\n")
    tool.chmod(0o755)
    assert ctr.output(b) == "from-opt\n"
