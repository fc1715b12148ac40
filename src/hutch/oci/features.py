"""The `hutch-runtime features` document (runtime-spec features.md).

Shaped like `runc features` output, key for key. What depends on the host or
on optional libraries (seccomp, idmapped mounts, checkpointing) is passed in
by the caller, which knows; this module only knows names.
"""

from __future__ import annotations

from hutch import OCI_VERSION, __version__
from hutch.linux.capabilities import CAPABILITIES
from hutch.linux.mountopts import known_options
from hutch.oci.runtime_spec import (
    HOOK_NAMES,
    NAMESPACE_TYPES,
    SECCOMP_ACTIONS,
    SECCOMP_ARCHS,
    SECCOMP_FLAGS,
    SECCOMP_OPERATORS,
)

ANNOTATION_VERSION = "io.github.hutch.version"
ANNOTATION_CHECKPOINT = "org.opencontainers.runc.checkpoint.enabled"


def features(*, seccomp_enabled: bool, idmap_enabled: bool,
             seccomp_supported_flags: list[str] | None = None,
             checkpoint_enabled: bool = False) -> dict[str, object]:
    """The features document as a JSON-ready dict.

    ``seccomp_enabled``: a seccomp library is there to build filters with.
    ``idmap_enabled``: the kernel can make idmapped mounts.
    ``seccomp_supported_flags``: the filter flags this kernel and library take
    (default: all known flags when seccomp is enabled).
    """
    if seccomp_enabled:
        supported = list(SECCOMP_FLAGS if seccomp_supported_flags is None
                         else seccomp_supported_flags)
        seccomp: dict[str, object] = {
            "enabled": True,
            "actions": sorted(SECCOMP_ACTIONS),
            "operators": sorted(SECCOMP_OPERATORS),
            "archs": sorted(SECCOMP_ARCHS),
            "knownFlags": list(SECCOMP_FLAGS),
            "supportedFlags": supported,
        }
    else:
        seccomp = {"enabled": False}
    return {
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": list(HOOK_NAMES),
        "mountOptions": known_options(),
        "linux": {
            "namespaces": list(NAMESPACE_TYPES),
            "capabilities": sorted(CAPABILITIES, key=CAPABILITIES.__getitem__),
            "cgroup": {
                "v1": True,
                "v2": True,
                "systemd": False,
                "systemdUser": False,
                "rdma": False,
            },
            "seccomp": seccomp,
            "apparmor": {"enabled": False},
            "selinux": {"enabled": False},
            "intelRdt": {"enabled": False},
            "mountExtensions": {"idmap": {"enabled": idmap_enabled}},
        },
        "annotations": {
            ANNOTATION_VERSION: __version__,
            ANNOTATION_CHECKPOINT: "true" if checkpoint_enabled else "false",
        },
    }
