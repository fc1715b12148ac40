"""The `hutch-runtime features` document (runtime-spec features.md).

Shaped like `runc features` output, key for key. What depends on the host or
on optional libraries (seccomp, idmapped mounts, checkpointing) is passed in
by the caller, which knows; this module only knows names.
"""

from __future__ import annotations

from hutch import OCI_VERSION, __version__
from hutch.linux.capabilities import CAPABILITIES
from hutch.linux.constants import NAMESPACES
from hutch.linux.mountopts import known_options

HOOK_NAMES: tuple[str, ...] = (
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
)

SECCOMP_ACTIONS: tuple[str, ...] = (
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
)

SECCOMP_OPERATORS: tuple[str, ...] = (
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
)

SECCOMP_ARCHS: tuple[str, ...] = (
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
)

# Filter flags hutch knows. TSYNC is accepted and ignored, as runc does: the
# runtime is single-threaded when it loads the filter.
SECCOMP_FLAGS: tuple[str, ...] = (
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_LOG",
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
            "actions": list(SECCOMP_ACTIONS),
            "operators": list(SECCOMP_OPERATORS),
            "archs": list(SECCOMP_ARCHS),
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
            "namespaces": sorted(NAMESPACES),
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
