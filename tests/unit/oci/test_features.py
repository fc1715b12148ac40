"""Tests for hutch.oci.features: the `features` document."""

from __future__ import annotations

import json

from hutch import OCI_VERSION, __version__
from hutch.linux.capabilities import CAPABILITIES
from hutch.linux.mountopts import parse_mount_options
from hutch.oci.features import features
from hutch.oci.runtime_spec import HOOK_NAMES as VALID_HOOKS


def test_shape_and_key_order() -> None:
    doc = features(seccomp_enabled=True, idmap_enabled=True)
    assert list(doc) == ["ociVersionMin", "ociVersionMax", "hooks", "mountOptions", "linux",
                         "annotations"]
    assert list(doc["linux"]) == ["namespaces", "capabilities", "cgroup", "seccomp",
                                  "apparmor", "selinux", "intelRdt", "mountExtensions"]
    json.dumps(doc)


def test_versions_and_annotations() -> None:
    doc = features(seccomp_enabled=False, idmap_enabled=False)
    assert doc["ociVersionMin"] == "1.0.0"
    assert doc["ociVersionMax"] == OCI_VERSION
    assert doc["annotations"] == {"io.github.hutch.version": __version__,
                                  "org.opencontainers.runc.checkpoint.enabled": "false"}
    doc = features(seccomp_enabled=False, idmap_enabled=False, checkpoint_enabled=True)
    assert doc["annotations"]["org.opencontainers.runc.checkpoint.enabled"] == "true"


def test_hooks_are_the_ones_validate_accepts() -> None:
    doc = features(seccomp_enabled=False, idmap_enabled=False)
    assert doc["hooks"] == ["prestart", "createRuntime", "createContainer", "startContainer",
                            "poststart", "poststop"]
    assert tuple(doc["hooks"]) == VALID_HOOKS


def test_namespaces_and_capabilities() -> None:
    linux = features(seccomp_enabled=False, idmap_enabled=False)["linux"]
    assert linux["namespaces"] == ["cgroup", "ipc", "mount", "network", "pid", "time", "user",
                                   "uts"]
    assert len(linux["capabilities"]) == 41
    assert linux["capabilities"][0] == "CAP_CHOWN"
    assert linux["capabilities"][-1] == "CAP_CHECKPOINT_RESTORE"
    assert [CAPABILITIES[c] for c in linux["capabilities"]] == list(range(41))


def test_cgroup_and_lsm_flags() -> None:
    linux = features(seccomp_enabled=False, idmap_enabled=False)["linux"]
    assert linux["cgroup"] == {"v1": True, "v2": True, "systemd": False, "systemdUser": False,
                               "rdma": False}
    assert linux["apparmor"] == {"enabled": False}
    assert linux["selinux"] == {"enabled": False}
    assert linux["intelRdt"] == {"enabled": False}


def test_mount_options_are_the_known_ones() -> None:
    options = features(seccomp_enabled=False, idmap_enabled=False)["mountOptions"]
    assert options == sorted(options)
    for name in ("ro", "rw", "rbind", "rprivate", "nosymfollow", "tmpcopyup", "idmap",
                 "ridmap", "rro", "defaults", "strictatime"):
        assert name in options
    # Every listed option is understood: none ends up in the kernel's data string.
    assert parse_mount_options(options).data == ""


def test_seccomp_enabled() -> None:
    seccomp = features(seccomp_enabled=True, idmap_enabled=False)["linux"]["seccomp"]
    assert seccomp["enabled"] is True
    assert list(seccomp) == ["enabled", "actions", "operators", "archs", "knownFlags",
                             "supportedFlags"]
    assert "SCMP_ACT_ALLOW" in seccomp["actions"] and "SCMP_ACT_NOTIFY" in seccomp["actions"]
    assert seccomp["actions"] == sorted(seccomp["actions"])
    assert seccomp["operators"] == ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE",
                                    "SCMP_CMP_LT", "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"]
    assert "SCMP_ARCH_X86_64" in seccomp["archs"] and "SCMP_ARCH_AARCH64" in seccomp["archs"]
    assert seccomp["knownFlags"] == ["SECCOMP_FILTER_FLAG_TSYNC",
                                     "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_LOG"]
    assert seccomp["supportedFlags"] == seccomp["knownFlags"]


def test_seccomp_supported_flags_come_from_the_caller() -> None:
    seccomp = features(seccomp_enabled=True, idmap_enabled=False,
                       seccomp_supported_flags=["SECCOMP_FILTER_FLAG_LOG"])["linux"]["seccomp"]
    assert seccomp["supportedFlags"] == ["SECCOMP_FILTER_FLAG_LOG"]


def test_seccomp_disabled_says_only_that() -> None:
    linux = features(seccomp_enabled=False, idmap_enabled=False)["linux"]
    assert linux["seccomp"] == {"enabled": False}


def test_idmap_flag_is_passed_through() -> None:
    for flag in (True, False):
        linux = features(seccomp_enabled=False, idmap_enabled=flag)["linux"]
        assert linux["mountExtensions"] == {"idmap": {"enabled": flag}}


def test_seccomp_lists_match_what_validate_accepts() -> None:
    from hutch.oci import runtime_spec

    seccomp = features(seccomp_enabled=True, idmap_enabled=False)["linux"]["seccomp"]
    assert set(seccomp["actions"]) == runtime_spec.SECCOMP_ACTIONS
    assert set(seccomp["operators"]) == runtime_spec.SECCOMP_OPERATORS


def test_each_call_returns_fresh_lists() -> None:
    a = features(seccomp_enabled=True, idmap_enabled=False)
    a["hooks"].clear()
    a["linux"]["seccomp"]["actions"].clear()
    b = features(seccomp_enabled=True, idmap_enabled=False)
    assert b["hooks"] and b["linux"]["seccomp"]["actions"]
