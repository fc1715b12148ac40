"""Run a built seccomp filter without loading it: its BPF program, interpreted here.

``evaluate(filt, name, *args, arch=...)`` answers what the kernel would do with
that call: ("ALLOW", 0), ("ERRNO", 1), ("KILL_PROCESS", 0)... The interpreter
knows the classic BPF that libseccomp emits (loads from seccomp_data, ALU,
jumps, scratch memory, returns); anything else fails the test.
"""

from __future__ import annotations

import struct
import tempfile
from collections.abc import Callable

import pytest

from hutch.runtime import seccomp
from hutch.runtime.seccomp import ARCHITECTURES, PreparedFilter

ACTION_NAMES = {
    0x80000000: "KILL_PROCESS", 0x00000000: "KILL_THREAD", 0x00030000: "TRAP",
    0x00050000: "ERRNO", 0x7FC00000: "NOTIFY", 0x7FF00000: "TRACE", 0x7FFC0000: "LOG",
    0x7FFF0000: "ALLOW",
}
X32_SYSCALL_BIT = 0x40000000


def bpf_program(filt: PreparedFilter) -> list[tuple[int, int, int, int]]:
    with tempfile.TemporaryFile() as f:
        filt.export_bpf(f)
        f.seek(0)
        raw = f.read()
    return [struct.unpack_from("=HBBI", raw, i) for i in range(0, len(raw), 8)]


def run_bpf(prog: list[tuple[int, int, int, int]], data: bytes) -> int:
    a = x = 0
    mem = [0] * 16
    pc = 0
    m32 = 0xFFFFFFFF
    while True:
        code, jt, jf, k = prog[pc]
        pc += 1
        cls = code & 0x07
        if cls == 0x00:  # LD
            mode = code & 0xE0
            if mode == 0x20 and code & 0x18 == 0:  # ABS, W
                a = struct.unpack_from("<I", data, k)[0]
            elif mode == 0x00:
                a = k
            elif mode == 0x60:
                a = mem[k]
            elif mode == 0x80:
                a = len(data)
            else:
                raise AssertionError(f"unknown BPF load {code:#x}")
        elif cls == 0x01:  # LDX
            mode = code & 0xE0
            x = {0x00: k, 0x60: mem[k] if k < 16 else 0, 0x80: len(data)}[mode]
        elif cls == 0x02:
            mem[k] = a
        elif cls == 0x03:
            mem[k] = x
        elif cls == 0x04:  # ALU
            op, src = code & 0xF0, (x if code & 0x08 else k)
            a = {0x00: lambda: a + src, 0x10: lambda: a - src, 0x20: lambda: a * src,
                 0x30: lambda: a // src, 0x40: lambda: a | src, 0x50: lambda: a & src,
                 0x60: lambda: a << src, 0x70: lambda: a >> src, 0x80: lambda: -a,
                 0x90: lambda: a % src, 0xA0: lambda: a ^ src}[op]() & m32
        elif cls == 0x05:  # JMP
            op, src = code & 0xF0, (x if code & 0x08 else k)
            if op == 0x00:
                pc += k
                continue
            taken = {0x10: a == src, 0x20: a > src, 0x30: a >= src, 0x40: bool(a & src)}[op]
            pc += jt if taken else jf
        elif cls == 0x06:  # RET
            return a if code & 0x18 == 0x10 else k
        elif cls == 0x07:  # MISC
            if code & 0xF8 == 0x00:
                x = a
            else:
                a = x
        else:
            raise AssertionError(f"unknown BPF instruction {code:#x}")


def seccomp_data(nr: int, arch: int, args: tuple[int, ...]) -> bytes:
    full = list(args) + [0] * (6 - len(args))
    return struct.pack("<iIQ6Q", nr, arch, 0, *[a & ((1 << 64) - 1) for a in full])


def syscall_number(name: str, arch: str) -> int:
    nr = seccomp.binding().resolve_syscall(ARCHITECTURES[arch], name)
    assert nr >= 0, f"{name} has no number on {arch}"
    return nr


Evaluate = Callable[..., tuple[str, int]]


@pytest.fixture
def evaluate() -> Evaluate:
    cache: dict[int, tuple[PreparedFilter, list[tuple[int, int, int, int]]]] = {}

    def run(filt: PreparedFilter, name: str | int, *args: int,
            arch: str = "SCMP_ARCH_X86_64", x32: bool = False) -> tuple[str, int]:
        """``x32``: the call as an x32 program makes it (x86_64's arch, bit 30 set)."""
        if id(filt) not in cache:  # the filter is kept too, so its id stays its own
            cache[id(filt)] = (filt, bpf_program(filt))
        prog = cache[id(filt)][1]
        nr = name if isinstance(name, int) else syscall_number(name, arch)
        if x32:
            nr |= X32_SYSCALL_BIT
        ret = run_bpf(prog, seccomp_data(nr, ARCHITECTURES[arch], args))
        return ACTION_NAMES[ret & 0xFFFF0000], ret & 0xFFFF

    return run
