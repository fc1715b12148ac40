"""hutch image ... through the CLI: the store, import/export with umoci and skopeo, tags,
rm and prune, validation, signatures and the trust policy, templates."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import pytest

from hutch.images.templates import build_busybox_rootfs
from hutch.testing.hostnet import SimulatedHost

HUTCH = os.path.join(os.path.dirname(sys.executable), "hutch")


def run(*argv: str) -> str:
    r = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       timeout=120, check=False)
    assert r.returncode == 0, f"{' '.join(argv)}: {r.stderr}"
    return r.stdout


class Hutch:
    """``hutch --root ROOT``, with its own namespace playing the host's network (the
    default bridge, its rules and resolver go there, and go with it)."""

    def __init__(self, root: str) -> None:
        self.root = root
        self.hostnet = SimulatedHost()

    def __call__(self, *args: str, check: bool = True,
                 timeout: float = 60) -> subprocess.CompletedProcess[str]:
        r = subprocess.run([HUTCH, "--root", self.root, *args], capture_output=True,
                           text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                           env=self.hostnet.env())
        if check and r.returncode != 0:
            raise AssertionError(f"hutch {' '.join(args)} -> {r.returncode}\n{r.stderr}")
        return r

    def images(self) -> dict[str, dict]:
        return {r["name"]: r for r in json.loads(self("image", "ls", "--format", "json").stdout)}

    def ids(self) -> list[str]:
        return self("ps", "-a", "-q").stdout.split()


def _cleanup(h: Hutch) -> None:
    left: list[str] = []
    try:
        for cid in h.ids():
            h("rm", "-f", cid, check=False)
        left = h.ids()
    finally:
        h.hostnet.close()
        mounts = [line for line in open("/proc/self/mountinfo") if h.root in line]
        for line in mounts:
            subprocess.run(["umount", "-l", line.split()[4]], check=False)
        shutil.rmtree(h.root, ignore_errors=True)
    assert not left, f"containers left: {left}"
    assert not mounts, f"mounts left: {mounts}"


@pytest.fixture
def hutch():
    h = Hutch(tempfile.mkdtemp(prefix="hutch-e2e-img-"))
    yield h
    _cleanup(h)


@pytest.fixture
def hutch2():
    h = Hutch(tempfile.mkdtemp(prefix="hutch-e2e-img2-"))
    yield h
    _cleanup(h)


@pytest.fixture(scope="module")
def app_archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An OCI archive made by umoci (a busybox root, a config) and skopeo (the archive)."""
    for tool in ("umoci", "skopeo"):
        assert shutil.which(tool), f"{tool} is missing: apt-get install {tool}"
    d = tmp_path_factory.mktemp("app")
    layout, bundle = d / "layout", d / "bundle"
    run("umoci", "init", "--layout", str(layout))
    run("umoci", "new", "--image", f"{layout}:app")
    run("umoci", "unpack", "--image", f"{layout}:app", str(bundle))
    build_busybox_rootfs(str(bundle / "rootfs"), in_place=True)
    (bundle / "rootfs/srv").mkdir()
    (bundle / "rootfs/data").mkdir()
    (bundle / "rootfs/data/seed").write_text("from the image\n")
    run("umoci", "repack", "--image", f"{layout}:app", str(bundle))
    run("umoci", "config", "--image", f"{layout}:app",
        "--config.entrypoint", "/bin/sh", "--config.entrypoint", "-c",
        "--config.cmd", 'echo "$GREETING from $(pwd) as $(id -u)"; cat /data/seed',
        "--config.env", "GREETING=hello", "--config.workingdir", "/srv",
        "--config.user", "1000", "--config.stopsignal", "SIGUSR1",
        "--config.volume", "/data", "--config.label", "org.example.team=images")
    archive = d / "app.tar"
    run("skopeo", "--insecure-policy", "copy", "--quiet", f"oci:{layout}:app",
        f"oci-archive:{archive}:example.org/team/app:1")
    return archive


def test_image_ls_shows_busybox_after_a_first_run(hutch) -> None:
    assert hutch.images() == {}
    assert hutch("run", "--rm", "busybox", "echo", "hi").stdout == "hi\n"
    rows = hutch.images()
    assert list(rows) == ["docker.io/library/busybox:latest"]
    table = hutch("images").stdout.splitlines()
    assert table[0].split() == ["REPOSITORY", "TAG", "IMAGE", "ID", "CREATED", "SIZE"]
    assert table[1].split()[:3] == ["busybox", "latest", rows[
        "docker.io/library/busybox:latest"]["id"].split(":")[1][:12]]
    info = json.loads(hutch("image", "inspect", "busybox").stdout)[0]
    assert info["Config"]["config"]["Cmd"] == ["sh"] and len(info["Layers"]) == 1
    assert info["Manifest"]["layers"][0]["digest"] == info["Layers"][0]["digest"]
    # a second run goes through the same image, unpacked once
    assert hutch("run", "--rm", "docker.io/library/busybox:latest", "true").returncode == 0
    assert "OK" in hutch("image", "validate", "busybox").stdout


def test_an_archive_made_by_umoci_and_skopeo_runs_with_its_config(hutch, app_archive,
                                                                  tmp_path: Path) -> None:
    assert hutch("image", "import", str(app_archive)).stdout.split() == \
        ["example.org/team/app:1"]
    layout = tmp_path / "tag-only"  # its index.json names the image only by a tag
    run("skopeo", "--insecure-policy", "copy", "--quiet", f"oci-archive:{app_archive}",
        f"oci:{layout}:v2")
    r = hutch("image", "import", str(layout), check=False)
    assert r.returncode == 1 and "only by the tag 'v2'" in r.stderr
    assert hutch("image", "import", "--name", "example.org/team/app:2", str(layout)) \
        .stdout.split() == ["example.org/team/app:2"]
    r = hutch("run", "--rm", "example.org/team/app:1")
    assert r.stdout == "hello from /srv as 1000\nfrom the image\n", r.stderr
    # the user's options win over the image's
    r = hutch("run", "--rm", "-e", "GREETING=bye", "-w", "/", "-u", "0",
              "example.org/team/app:1", "echo $GREETING from $(pwd) as $(id -u)")
    assert r.stdout == "bye from / as 0\n"
    cid = hutch("create", "--name", "app", "example.org/team/app:1").stdout.strip()
    info = json.loads(hutch("inspect", "app").stdout)[0]
    assert info["Config"]["stop_signal"] == "SIGUSR1"
    spec = json.load(open(os.path.join(hutch.root, "containers", cid, "config.json")))
    assert spec["annotations"]["io.hutch.label.org.example.team"] == "images"
    [volume] = [m for m in spec["mounts"] if m["destination"] == "/data"]
    assert open(os.path.join(volume["source"], "seed")).read() == "from the image\n"
    hutch("rm", "app")
    assert not os.path.exists(volume["source"])  # an anonymous volume lives as its container


def test_export_and_import_again_both_formats(hutch, hutch2, tmp_path: Path) -> None:
    hutch("run", "--rm", "busybox", "true")
    hutch("image", "tag", "busybox", "localhost/mine:2")
    oci, docker = tmp_path / "oci.tar", tmp_path / "docker.tar"
    hutch("image", "export", "-o", str(oci), "localhost/mine:2")
    hutch("image", "export", "--format", "docker-archive", "-o", str(docker), "busybox")
    with tarfile.open(oci) as tf:
        assert "oci-layout" in tf.getnames() and "index.json" in tf.getnames()
    with tarfile.open(docker) as tf:
        assert "manifest.json" in tf.getnames()
    assert hutch2("image", "import", str(oci)).stdout.split() == ["localhost/mine:2"]
    assert hutch2("image", "import", str(docker)).stdout.split() == \
        ["docker.io/library/busybox:latest"]
    mine = hutch.images()["localhost/mine:2"]
    assert hutch2.images()["localhost/mine:2"]["digest"] == mine["digest"]
    assert hutch2("run", "--rm", "localhost/mine:2", "cat", "/etc/os-release").stdout \
        .startswith('NAME="hutch busybox"')
    # skopeo reads what we wrote
    out = json.loads(run("skopeo", "inspect", f"oci-archive:{oci}"))
    assert out["Digest"] == mine["digest"]


def test_a_root_file_system_tar_becomes_a_one_layer_image(hutch, tmp_path: Path) -> None:
    rootfs = build_busybox_rootfs(str(tmp_path / "rootfs"))
    tar = tmp_path / "rootfs.tar.gz"
    with tarfile.open(tar, "w:gz") as tf:
        tf.add(rootfs, arcname=".")
    r = hutch("image", "import", str(tar), check=False)
    assert r.returncode == 1 and "--name" in r.stderr
    hutch("image", "import", "--name", "local/fromtar", "--cmd", "echo from a tar",
          "--user", "nobody", str(tar))
    hutch("image", "import", "--name", "local/fromdir", "--entrypoint", '["/bin/echo"]',
          str(rootfs))
    assert hutch("run", "--rm", "local/fromtar", "sh", "-c", "id -u; id -g").stdout == \
        "65534\n65534\n"  # the image's User by name, from its own /etc/passwd
    assert hutch("run", "--rm", "local/fromdir", "dir").stdout == "dir\n"
    hostile = tmp_path / "hostile.tar"
    with tarfile.open(hostile, "w") as tf:
        ti = tarfile.TarInfo("../../outside")
        tf.addfile(ti)
    r = hutch("image", "import", "--name", "local/bad", str(hostile), check=False)
    assert r.returncode == 1 and "'..'" in r.stderr
    assert "docker.io/local/bad:latest" not in hutch.images()


def test_tag_rm_refused_while_in_use_and_prune(hutch) -> None:
    hutch("run", "--rm", "busybox", "true")
    hutch("image", "tag", "busybox", "example.org/copy:1")
    assert set(hutch.images()) == {"docker.io/library/busybox:latest", "example.org/copy:1"}
    hutch("create", "--name", "user", "example.org/copy:1", "true")
    # another name of the same image: untagging it is fine
    assert hutch("rmi", "busybox").stdout.strip() == "Untagged: docker.io/library/busybox:latest"
    r = hutch("image", "rm", "example.org/copy:1", check=False)
    assert r.returncode == 1 and "used by container(s) user" in r.stderr
    assert "example.org/copy:1" in hutch.images()
    hutch("rm", "user")  # removing the container keeps the image and its layers
    from hutch.storage import drivers
    storage = Path(hutch.root) / "storage"
    with drivers.load("overlay", str(storage / "overlay")) as snaps:
        assert [i.name for i in snaps.walk()] == \
            [json.loads(hutch("image", "inspect", "example.org/copy:1").stdout)[0]
             ["Layers"][0]["diff_id"]]  # one layer: its chain id is its diff_id
    assert hutch("run", "--rm", "example.org/copy:1", "echo", "still").stdout == "still\n"
    out = hutch("image", "rm", "example.org/copy:1").stdout
    assert "Untagged: example.org/copy:1" in out and out.count("Deleted: sha256:") == 3
    assert hutch.images() == {}
    hutch("create", "--name", "held", "busybox", "true")  # built again, unpacked again
    assert "0 blob(s), 0 snapshot(s)" in hutch("image", "prune").stdout  # all still named
    r = hutch("image", "rm", "-f", "busybox")  # forced: the name and blobs go, not the layer
    assert "Untagged: docker.io/library/busybox:latest" in r.stdout
    assert not list((Path(hutch.root) / "content/blobs/sha256").iterdir())
    assert hutch("start", "-a", "held").returncode == 0  # its root is still there
    hutch("rm", "held")
    assert "0 blob(s), 1 snapshot(s)" in hutch("image", "prune").stdout
    with drivers.load("overlay", str(storage / "overlay")) as snaps:
        assert snaps.walk() == []


def test_sign_verify_and_a_policy_for_imports_and_runs(hutch, hutch2, app_archive,
                                                       tmp_path: Path) -> None:
    key = tmp_path / "key.pem"
    hutch("image", "keygen", "--out", str(key))
    policy = {"default": "insecureAcceptAnything",
              "registries": {"example.org/team": {"keys": [str(key) + ".pub"]}}}
    (Path(hutch2.root)).mkdir(exist_ok=True)
    (Path(hutch2.root) / "policy.json").write_text(json.dumps(policy))
    # unsigned: refused, and nothing named
    r = hutch2("image", "import", str(app_archive), check=False)
    assert r.returncode == 1 and "is not signed" in r.stderr
    assert hutch2.images() == {}
    # signed in another instance and exported with its signature: accepted
    hutch("image", "import", str(app_archive))
    r = hutch("image", "verify", "--key", str(key) + ".pub", "example.org/team/app:1",
              check=False)
    assert r.returncode == 1 and "no signatures" in r.stderr
    hutch("image", "sign", "--key", str(key), "example.org/team/app:1")
    assert "valid" in hutch("image", "verify", "--key", str(key) + ".pub",
                            "example.org/team/app:1").stdout
    out = tmp_path / "signed.tar"
    hutch("image", "export", "-o", str(out), "example.org/team/app:1")
    assert (tmp_path / "signed.tar.sig").exists()
    assert hutch2("image", "import", str(out)).stdout.split() == ["example.org/team/app:1"]
    assert "accepted by the policy" in hutch2("image", "verify", "example.org/team/app:1").stdout
    assert hutch2("run", "--rm", "example.org/team/app:1").stdout.startswith("hello")
    # a key the policy does not trust is refused at run as well
    other = tmp_path / "other.pem"
    hutch("image", "keygen", "--out", str(other))
    policy["registries"]["example.org/team"]["keys"] = [str(other) + ".pub"]
    (Path(hutch2.root) / "policy.json").write_text(json.dumps(policy))
    r = hutch2("run", "--rm", "example.org/team/app:1", check=False)
    assert r.returncode == 125 and "none is a valid one by a key" in r.stderr
    # the built-in image is made here: a reject-all default does not stop it
    (Path(hutch2.root) / "policy.json").write_text(json.dumps({"default": "reject"}))
    assert hutch2("run", "--rm", "busybox", "echo", "local").stdout == "local\n"


def test_validate_a_broken_archive_lists_every_problem(hutch, tmp_path: Path) -> None:
    hutch("run", "--rm", "busybox", "true")
    layout = tmp_path / "layout"
    hutch("image", "export", "--format", "oci-dir", "-o", str(layout), "busybox")
    info = json.loads(hutch("image", "inspect", "busybox").stdout)[0]
    layer = layout / "blobs/sha256" / info["Layers"][0]["digest"].split(":")[1]
    config = layout / "blobs/sha256" / info["Id"].split(":")[1]
    layer.unlink()
    config.write_bytes(config.read_bytes().replace(b"amd64", b"AMD64"))
    r = hutch("image", "validate", str(layout), check=False)
    assert r.returncode == 1
    assert "2 problem(s)" in r.stdout, r.stdout
    assert "is missing" in r.stdout and "blob content has digest" in r.stdout
    report = json.loads(hutch("image", "validate", "--format", "json", str(layout),
                              check=False).stdout)
    assert not report["ok"] and len(report["problems"]) == 2


def test_template_ls_lists_the_templates(hutch) -> None:
    out = hutch("template", "ls").stdout.splitlines()
    assert out[0].split()[:3] == ["NAME", "KIND", "IMAGE"]
    rows = json.loads(hutch("template", "ls", "--format=json").stdout)
    assert {"busybox", "debian", "dir", "tar"} <= {r["name"] for r in rows}
    assert {r["kind"] for r in rows if r["name"] == "busybox"} == {"image", "os"}
