"""Attacks from inside a container against the host: they must fail.

These tests give the container a Python (a copy of the host's interpreter, its
libraries, and the standard library bind-mounted read-only) so the attacks can
be written plainly.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
import uuid

import pytest

HOST_PYTHON = os.path.realpath(sys.executable)
STDLIB = os.path.dirname(os.__file__)


def _shared_libs(binary: str) -> list[str]:
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=True).stdout
    libs = []
    for line in out.splitlines():
        parts = line.split()
        for p in parts:
            if p.startswith("/"):
                libs.append(p)
                break
    return libs


def add_python(b) -> str:
    """Copy the host's interpreter and its libraries into the bundle; bind the stdlib."""
    root = str(b.rootfs)
    for path in [HOST_PYTHON, *_shared_libs(HOST_PYTHON)]:
        dest = os.path.join(root, path.lstrip("/"))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        shutil.copy2(os.path.realpath(path), dest)
    b.config["mounts"].append({"destination": STDLIB, "type": "bind", "source": STDLIB,
                               "options": ["rbind", "ro"]})
    return HOST_PYTHON


def _run(runtime, b, cid, check=False):
    b.write()
    return runtime.run("run", "--bundle", b.path, cid, check=check, timeout=60)


@pytest.mark.parametrize("no_pivot", [False, True], ids=["pivot_root", "no-pivot"])
def test_second_chroot_does_not_reach_the_host(runtime, bundle, container_id, tmp_path,
                                               no_pivot):
    marker = tmp_path / f"host-marker-{uuid.uuid4().hex}"
    marker.write_text("host")
    b = bundle()
    py = add_python(b)
    (b.rootfs / "container-marker").write_text("container")
    script = f"""
import os
os.mkdir("/jail")
os.chroot("/jail")          # the cwd stays outside the new root
for _ in range(256):
    os.chdir("..")
os.chroot(".")              # the classic escape
print("host-visible" if os.path.exists({str(marker)!r}) else "host-hidden")
print("in-container" if os.path.exists("/container-marker") else "elsewhere")
"""
    b.config["process"]["args"] = [py, "-S", "-c", script]
    caps = b.config["process"]["capabilities"]
    for s in ("bounding", "effective", "permitted"):
        caps[s] = sorted(set(caps[s]) | {"CAP_SYS_CHROOT"})
    b.write()
    args = ["run"] + (["--no-pivot"] if no_pivot else []) + ["--bundle", str(b.path),
                                                            container_id]
    r = runtime.run(*args, check=False, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["host-hidden", "in-container"]


def _sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def test_exec_of_proc_self_exe_script_cannot_reach_the_runtime_binary(runtime, bundle,
                                                                      container_id):
    """CVE-2019-5736: a "#!/proc/self/exe" program exec'd by the runtime must not start
    the runtime's own (host) binary inside the container, and no process in the
    container may get hold of that binary through /proc/PID/exe."""
    before = _sha256(HOST_PYTHON)
    b = bundle()
    py = add_python(b)
    # If the host's interpreter ever runs this file, it runs it as Python: the
    # code records that it ran and tries to open its own binary for writing.
    evil = b.rootfs / "bin" / "evil"
    evil.write_text("#!/proc/self/exe\n"
                    "import os\n"
                    "open('/pwned', 'w').write(os.readlink('/proc/self/exe'))\n"
                    "try:\n"
                    "    open('/proc/self/exe', 'r+b').write(b'x')\n"
                    "except OSError as e:\n"
                    "    open('/pwned-write', 'w').write(str(e))\n")
    evil.chmod(0o755)
    host = os.stat(HOST_PYTHON)
    # The watcher stands in for the attacker's long-running process: it opens every
    # /proc/PID/exe it can and records which files it got hold of.
    watcher = f"""
import os, time
seen = set()
end = time.time() + 30
while time.time() < end and not os.path.exists("/stop"):
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            fd = os.open(f"/proc/{{pid}}/exe", os.O_PATH)
        except OSError:
            continue
        st = os.fstat(fd)
        os.close(fd)
        seen.add(f"{{st.st_dev}}:{{st.st_ino}}")
    with open("/seen.tmp", "w") as f:
        f.write("\\n".join(sorted(seen)))
    os.replace("/seen.tmp", "/seen")
"""
    b.config["process"]["args"] = [py, "-S", "-c", watcher]
    b.write()
    runtime.run("run", "-d", "--bundle", b.path, container_id)
    try:
        deadline = time.monotonic() + 10
        while not (b.rootfs / "seen").exists():
            assert time.monotonic() < deadline, "watcher did not start"
            time.sleep(0.02)
        for _ in range(10):
            r = runtime.run("exec", container_id, "/bin/evil", check=False, timeout=30)
            assert r.returncode != 0
            r = runtime.run("exec", container_id, "/bin/true", check=False, timeout=30)
            assert r.returncode == 0, r.stderr
        (b.rootfs / "stop").write_text("")
        time.sleep(0.2)
        seen = set((b.rootfs / "seen").read_text().split())
    finally:
        runtime.run("delete", "--force", container_id, check=False)
    assert not (b.rootfs / "pwned").exists(), "the host's interpreter ran inside the container"
    assert f"{host.st_dev}:{host.st_ino}" not in seen, \
        "a container process got hold of the runtime's binary through /proc/PID/exe"
    assert _sha256(HOST_PYTHON) == before


def test_mknod_of_a_host_disk_cannot_be_read(runtime, bundle, container_id):
    """Even with CAP_MKNOD, a block device node made inside cannot be opened: the
    device cgroup only allows the default set."""
    disk = os.stat("/").st_dev
    major, minor = os.major(disk), os.minor(disk)
    b = bundle(["sh", "-c", f"mknod /dev/hostdisk b {major} {minor} && echo made; "
                            "head -c 512 /dev/hostdisk > /dev/null && echo READ || echo denied; "
                            "echo ok > /dev/null && echo null-works"])
    caps = b.config["process"]["capabilities"]
    for s in ("bounding", "effective", "permitted"):
        caps[s] = sorted(set(caps[s]) | {"CAP_MKNOD"})
    b.write()
    r = runtime.run("run", "--bundle", b.path, container_id, check=False)
    assert r.stdout.split() == ["made", "denied", "null-works"], r.stderr
