"""Device rules on cgroup v2: an eBPF program of type BPF_PROG_TYPE_CGROUP_DEVICE.

cgroup v2 has no devices files. The kernel runs the programs attached to a
cgroup (and, attached with BPF_F_ALLOW_MULTI, those of its ancestors) on every
open and mknod of a device node, with a ``struct bpf_cgroup_dev_ctx``::

    u32 access_type;  /* (access << 16) | type; access: BPF_DEVCG_ACC_{MKNOD,READ,WRITE}
                         = 1, 2, 4; type: BPF_DEVCG_DEV_{BLOCK,CHAR} = 1, 2 */
    u32 major;
    u32 minor;

and allows the access when the program returns 1. The rules are first reduced to
the state the v1 kernel would reach (``convert.device_state``: a default and a list
of exceptions), then compiled here into straight-line code: one block per
exception that jumps to the next block at the first field that does not match.

- default deny (allow list): an exception matches when type and numbers match and
  it covers the whole access asked for (``access & ~rule == 0``): return 1.
- default allow (deny list): an exception matches when type and numbers match and
  it shares any access bit with the request (``access & rule != 0``): return 0.

Registers: r1 = ctx, r2 = type, r3 = access, r4 = major, r5 = minor; r1 is reused
as scratch once the fields are loaded.
"""

from __future__ import annotations

import os
import struct
import sys

from hutch.cgroups.convert import DEV_BLOCK, DEV_CHAR, WILDCARD, Call, DeviceRule, device_state

# eBPF instruction classes, sizes, sources and operations (include/uapi/linux/bpf.h,
# Documentation/bpf/standardization/instruction-set.rst)
BPF_LDX, BPF_ALU, BPF_JMP = 0x01, 0x04, 0x05
BPF_W, BPF_MEM = 0x00, 0x60
BPF_K, BPF_X = 0x00, 0x08
BPF_AND, BPF_RSH, BPF_MOV = 0x50, 0x70, 0xB0
BPF_JEQ, BPF_JNE, BPF_EXIT = 0x10, 0x50, 0x90

R0, R1, R2, R3, R4, R5 = range(6)
_TYPE = {"b": DEV_BLOCK, "c": DEV_CHAR}
LICENSE = "Apache-2.0"  # hutch's; the program calls no GPL-only helper


def insn(code: int, dst: int = 0, src: int = 0, off: int = 0, imm: int = 0) -> bytes:
    """One 8-byte ``struct bpf_insn`` in the host's byte order (the regs are a bitfield:
    dst in the low nibble on little-endian hosts, the high one on big-endian)."""
    regs = (src << 4 | dst) if sys.byteorder == "little" else (dst << 4 | src)
    return struct.pack("=BBhi", code, regs, off, imm)


def ldx_w(dst: int, src: int, off: int) -> bytes:
    return insn(BPF_LDX | BPF_MEM | BPF_W, dst, src, off)


def alu32_imm(op: int, dst: int, imm: int) -> bytes:
    return insn(BPF_ALU | op | BPF_K, dst, imm=imm)


def mov32_reg(dst: int, src: int) -> bytes:
    return insn(BPF_ALU | BPF_MOV | BPF_X, dst, src)


def jmp_imm(op: int, dst: int, imm: int, off: int) -> bytes:
    return insn(BPF_JMP | op | BPF_K, dst, off=off, imm=imm)


def exit_with(value: int) -> list[bytes]:
    return [alu32_imm(BPF_MOV, R0, value), insn(BPF_JMP | BPF_EXIT)]


def _block(kind: str, major: int, minor: int, bits: int, default_allow: bool) -> list[bytes]:
    """The code of one exception; every jump goes to the end of the block (the next one)."""
    tests: list[tuple[int, int, int]] = [(BPF_JNE, R2, _TYPE[kind])]  # (op, reg, imm)
    if major != WILDCARD:
        tests.append((BPF_JNE, R4, major))
    if minor != WILDCARD:
        tests.append((BPF_JNE, R5, minor))
    verdict = exit_with(0 if default_allow else 1)
    access: list[bytes] = []
    if default_allow:  # deny if the request shares any bit with the rule
        access = [mov32_reg(R1, R3), alu32_imm(BPF_AND, R1, bits)]
        access_jump = (BPF_JEQ, R1, 0)
    elif bits != 7:  # allow only if the rule covers every bit asked for
        access = [mov32_reg(R1, R3), alu32_imm(BPF_AND, R1, ~bits & 7)]
        access_jump = (BPF_JNE, R1, 0)
    # Lay out: the compare jumps, then the access test, then the verdict; a jump's
    # offset counts the instructions after it up to the end of the block.
    n = len(tests) + len(access) + (1 if access else 0) + len(verdict)
    out: list[bytes] = []
    for op, reg, imm in tests:
        out.append(jmp_imm(op, reg, imm, n - len(out) - 1))
    if access:
        out.extend(access)
        op, reg, imm = access_jump
        out.append(jmp_imm(op, reg, imm, n - len(out) - 1))
    out.extend(verdict)
    assert len(out) == n
    return out


def program(rules: list[DeviceRule]) -> bytes:
    """The instructions for ``rules`` (already checked by ``convert.check``)."""
    state = device_state(rules)
    code = [
        ldx_w(R2, R1, 0), alu32_imm(BPF_AND, R2, 0xFFFF),  # type: low 16 bits of access_type
        ldx_w(R3, R1, 0), alu32_imm(BPF_RSH, R3, 16),  # access: the high 16 bits
        ldx_w(R4, R1, 4),  # major
        ldx_w(R5, R1, 8),  # minor
    ]
    for kind, major, minor, bits in state.exceptions:
        code.extend(_block(kind, major, minor, bits, state.default_allow))
    code.extend(exit_with(1 if state.default_allow else 0))
    return b"".join(code)


def install(d: str, code: bytes) -> None:
    """Attach ``code`` to the cgroup ``d``, replacing the program(s) hutch put there."""
    from hutch.linux import bpf

    fd = os.open(d, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        bpf.replace_device_program(fd, code, LICENSE, where=d)
    finally:
        os.close(fd)


def plan(d: str, rules: list[DeviceRule]) -> list:
    code = program(rules)  # built now, so that a bad list fails before any write
    return [Call(f"attach a BPF device program ({len(code) // 8} instructions) to {d}",
                 lambda: install(d, code))]
