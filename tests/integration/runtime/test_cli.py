"""hutch-runtime's informational verbs and its log output."""

from __future__ import annotations

import json
import os

from hutch.oci.runtime_spec import validate


def test_spec_writes_a_config_that_validates_and_runs(runtime, bundle, container_id):
    b = bundle(["true"])
    os.unlink(b.config_path)
    runtime.run("spec", "--bundle", b.path)
    config = json.loads(b.config_path.read_text())
    validate(config, str(b.path))
    assert config["process"]["args"] == ["sh"]
    config["process"]["terminal"] = False
    config["process"]["args"] = ["sh", "-c", "echo from-spec"]
    b.config_path.write_text(json.dumps(config))
    assert runtime.run("run", "--bundle", b.path, container_id).stdout == "from-spec\n"
    r = runtime.run("spec", "--bundle", b.path, check=False)
    assert r.returncode != 0 and "exists" in r.stderr


def test_spec_rootless_maps_the_caller(runtime, tmp_path):
    runtime.run("spec", "--rootless", "--bundle", tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    types = [ns["type"] for ns in config["linux"]["namespaces"]]
    assert "user" in types and "network" not in types
    assert config["linux"]["uidMappings"] == [{"containerID": 0, "hostID": os.geteuid(),
                                               "size": 1}]


def test_features_is_runc_shaped_json(runtime):
    f = json.loads(runtime.run("features").stdout)
    assert f["ociVersionMin"].startswith("1.")
    assert {"pid", "network", "mount", "user"} <= set(f["linux"]["namespaces"])
    assert "CAP_SYS_ADMIN" in f["linux"]["capabilities"]
    assert "rbind" in f["mountOptions"]
    assert "prestart" in f["hooks"]


def test_errors_go_to_the_log_in_json(runtime, tmp_path):
    log = tmp_path / "log.json"
    r = runtime.run("--log", log, "--log-format", "json", "state", "no-such-container",
                    check=False)
    assert r.returncode != 0
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    errors = [e for e in entries if e.get("level") == "error"]
    assert errors and "no-such-container" in errors[-1]["msg"]


def test_version(runtime):
    out = runtime.run("--version").stdout
    assert "version" in out and "spec" in out


def test_preserve_fds_passes_exactly_the_extra_descriptors(runtime, bundle, container_id,
                                                          tmp_path):
    import subprocess
    secret = tmp_path / "passed.txt"
    secret.write_text("through fd 3\n")
    b = bundle(["sh", "-c", "cat <&3; ls /proc/self/fd | sort -n | tr '\\n' ' '"])
    cmd = runtime.command("run", "--preserve-fds", "1", "--bundle", b.path, container_id)
    # The shell opens fd 3 and execs the runtime with it, as a caller would.
    r = subprocess.run(["sh", "-c", 'exec 3<"$0"; exec "$@"', str(secret), *cmd],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "through fd 3"
    # 0-2, the preserved 3, and the one ls opens for /proc/self/fd: nothing else leaked.
    assert lines[1].split() == ["0", "1", "2", "3", "4"]
