"""The bpf(2) system call, for cgroup device programs (the only user of it in hutch).

``union bpf_attr`` is passed as a zero-filled buffer of ATTR_SIZE bytes with the
fields of one command at their offsets (include/uapi/linux/bpf.h). The kernel
takes a shorter or longer attr as long as the bytes it does not know are zero.
The buffer is kept large because Linux 6.17+ writes BPF_PROG_QUERY's ``revision``
field (offset 56) whatever size it is given.
"""

from __future__ import annotations

import ctypes
import errno
import os
import struct

from hutch.linux.libc import syscall

_ARCH = os.uname().machine
SYS_BPF = {"x86_64": 321, "aarch64": 280, "ppc64le": 361, "s390x": 351,
           "riscv64": 280}.get(_ARCH)

# commands
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_GET_FD_BY_ID = 13
BPF_PROG_QUERY = 16

BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6  # attach type

BPF_F_ALLOW_OVERRIDE = 1 << 0
BPF_F_ALLOW_MULTI = 1 << 1
BPF_F_REPLACE = 1 << 2

ATTR_SIZE = 128
LOAD_RETRIES = 30  # the verifier returns EAGAIN when a signal interrupts it
LOG_SIZE = 1 << 16


def _call(cmd: int, attr: ctypes.Array[ctypes.c_char], what: str) -> int:
    if SYS_BPF is None:
        raise OSError(errno.ENOSYS, f"bpf: hutch does not know the bpf syscall number on {_ARCH}")
    return syscall(SYS_BPF, ctypes.c_int(cmd), attr, ctypes.c_uint(ATTR_SIZE), call="bpf",
                   detail=what)


def _attr(fmt: str, *values: object) -> ctypes.Array[ctypes.c_char]:
    buf = ctypes.create_string_buffer(ATTR_SIZE)
    struct.pack_into(fmt, buf, 0, *values)
    return buf


def _keep_above_zero(fd: int) -> int:
    """bpf(2) reads fd 0 as "none" in some fields, so never keep fd 0 (stdin was closed)."""
    if fd != 0:
        return fd
    import fcntl
    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 1)
    finally:
        os.close(fd)


def load_device_program(code: bytes, license: str) -> int:
    """BPF_PROG_LOAD a BPF_PROG_TYPE_CGROUP_DEVICE program; returns its fd.

    When the verifier refuses it, the load is repeated with the verifier log on and
    the log goes into the error.
    """
    insns = ctypes.create_string_buffer(code, len(code))
    lic = ctypes.create_string_buffer(license.encode())
    fmt = "=IIQQIIQ"  # prog_type, insn_cnt, insns, license, log_level, log_size, log_buf

    def load(log: ctypes.Array[ctypes.c_char] | None) -> int:
        attr = _attr(fmt, BPF_PROG_TYPE_CGROUP_DEVICE, len(code) // 8,
                     ctypes.addressof(insns), ctypes.addressof(lic),
                     1 if log is not None else 0, len(log) if log is not None else 0,
                     ctypes.addressof(log) if log is not None else 0)
        for attempt in range(LOAD_RETRIES + 1):
            try:
                return _keep_above_zero(_call(BPF_PROG_LOAD, attr,
                                              f"BPF_PROG_LOAD, {len(code) // 8} instructions"))
            except OSError as e:
                if e.errno != errno.EAGAIN or attempt == LOAD_RETRIES:
                    raise
        raise AssertionError("unreachable")

    try:
        return load(None)
    except OSError as first:
        if first.errno not in (errno.EINVAL, errno.EACCES):
            raise
        log = ctypes.create_string_buffer(LOG_SIZE)
        try:
            fd = load(log)
        except OSError:
            text = log.value.decode(errors="replace").strip()
            raise OSError(first.errno, f"{first.strerror}; verifier log: {text}") from first
        return fd  # refused once, accepted with the log on: keep it


def query_device_programs(cgroup_fd: int) -> tuple[list[int], int]:
    """The ids of the device programs attached to the cgroup itself, and their flags."""
    count = 64
    for _ in range(10):
        ids = (ctypes.c_uint32 * count)()
        # target_fd, attach_type, query_flags, attach_flags, prog_ids, prog_cnt
        attr = _attr("=IIIIQI", cgroup_fd, BPF_CGROUP_DEVICE, 0, 0, ctypes.addressof(ids), count)
        try:
            _call(BPF_PROG_QUERY, attr, "BPF_PROG_QUERY, BPF_CGROUP_DEVICE")
        except OSError as e:
            if e.errno == errno.ENOSPC:
                count = struct.unpack_from("=I", attr, 24)[0]
                continue
            raise
        flags, n = struct.unpack_from("=I", attr, 12)[0], struct.unpack_from("=I", attr, 24)[0]
        return list(ids[:n]), flags
    raise OSError(errno.EAGAIN, "bpf(BPF_PROG_QUERY): the list of device programs kept changing")


def prog_fd_by_id(prog_id: int) -> int:
    attr = _attr("=I", prog_id)
    return _keep_above_zero(_call(BPF_PROG_GET_FD_BY_ID, attr, f"BPF_PROG_GET_FD_BY_ID {prog_id}"))


def attach_device_program(cgroup_fd: int, prog_fd: int, flags: int, replace_fd: int = 0) -> None:
    # target_fd, attach_bpf_fd, attach_type, attach_flags, replace_bpf_fd
    attr = _attr("=IIIII", cgroup_fd, prog_fd, BPF_CGROUP_DEVICE, flags, replace_fd)
    _call(BPF_PROG_ATTACH, attr, f"BPF_PROG_ATTACH, BPF_CGROUP_DEVICE, flags {flags:#x}")


def detach_device_program(cgroup_fd: int, prog_fd: int) -> None:
    attr = _attr("=III", cgroup_fd, prog_fd, BPF_CGROUP_DEVICE)
    _call(BPF_PROG_DETACH, attr, "BPF_PROG_DETACH, BPF_CGROUP_DEVICE")


def replace_device_program(cgroup_fd: int, code: bytes, license: str, where: str = "") -> None:
    """Load ``code`` and make it the one device program of the cgroup.

    With exactly one old program it is swapped atomically (BPF_F_REPLACE, Linux
    5.6+); otherwise the new one is attached next to the old ones
    (BPF_F_ALLOW_MULTI) and they are detached after, so there is no moment
    without a filter. Programs of parent cgroups keep applying either way.
    """
    on = f" on {where}" if where else ""
    try:
        old_ids, _ = query_device_programs(cgroup_fd)
        old_fds: list[int] = []
        try:
            for prog_id in old_ids:
                try:
                    old_fds.append(prog_fd_by_id(prog_id))
                except OSError as e:
                    if e.errno not in (errno.ENOENT, errno.EPERM, errno.EACCES):
                        raise  # gone meanwhile, or hidden by an LSM: leave it be, as runc
            prog_fd = load_device_program(code, license)
            try:
                replaced = False
                if len(old_fds) == 1:
                    try:
                        attach_device_program(cgroup_fd, prog_fd,
                                              BPF_F_ALLOW_MULTI | BPF_F_REPLACE, old_fds[0])
                        replaced = True
                    except OSError as e:
                        if e.errno != errno.EINVAL:  # EINVAL: a kernel without BPF_F_REPLACE
                            raise
                if not replaced:
                    attach_device_program(cgroup_fd, prog_fd, BPF_F_ALLOW_MULTI)
                    for fd in old_fds:
                        detach_device_program(cgroup_fd, fd)
            finally:
                os.close(prog_fd)
        finally:
            for fd in old_fds:
                os.close(fd)
    except OSError as e:
        from hutch.errors import SystemFailure
        hint = ""
        if e.errno == errno.EPERM:
            hint = " (needs CAP_BPF and CAP_SYS_ADMIN, or CAP_SYS_ADMIN alone before Linux 5.8)"
        raise SystemFailure(e.errno or errno.EIO, f"device rules{on}: {e.strerror}{hint}") from e
