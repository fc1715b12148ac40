"""A tiny static program, sealed in a memfd, that execs the container's program.

Why: at the execve of the container's program, the calling process runs the
host's Python interpreter. A program whose "#!" line names /proc/self/exe would
make the kernel start that interpreter again inside the container, where a
hostile root can hold /proc/PID/exe open and later overwrite the host's binary
(CVE-2019-5736). Execing through this trampoline first means /proc/self/exe
at that moment is a sealed, unwritable memfd copy, never a host file.

The trampoline takes argv = [MAGIC, path, argv0, args...] and calls
execve(path, &argv[2], envp); when argv[0] is not MAGIC (the kernel replaced it
for a "#!/proc/self/exe" script) it exits 126 rather than exec anything, and
when execve fails it exits with the errno.

x86_64 code (assembled by hand from this listing):
    mov    rax, [rsp+8]            ; argv[0]
    movabs rcx, MAGIC (8 bytes)
    cmp    [rax], rcx
    jne    fail
    mov    rdi, [rsp+16]           ; path = argv[1]
    lea    rsi, [rsp+24]           ; argv = &argv[2]
    mov    rdx, [rsp]              ; argc
    lea    rdx, [rsp+rdx*8+16]     ; envp = &argv[argc+1]
    mov    eax, 59                 ; execve
    syscall
    neg    eax
    mov    edi, eax                ; exit code = errno
    jmp    out
fail:
    mov    edi, 126
out:
    mov    eax, 231                ; exit_group
    syscall
"""

from __future__ import annotations

import fcntl
import os
import struct

MAGIC = b"[hutch]"  # 7 bytes + NUL compared as one 8-byte word
_BASE = 0x400000


def _code_x86_64() -> bytes:
    return (bytes.fromhex("488b442408" "48b9") + MAGIC + b"\0" + bytes.fromhex(
        "483908" "7520" "488b7c2410" "488d742418" "488b1424" "488d54d410"
        "b83b000000" "0f05" "f7d8" "89c7" "eb05" "bf7e000000" "b8e7000000" "0f05"))


def elf_image() -> bytes | None:
    """The trampoline as a static ELF file, or None on an architecture we lack code for."""
    if os.uname().machine != "x86_64":
        return None
    code = _code_x86_64()
    ehsize, phsize = 64, 56
    entry = _BASE + ehsize + phsize
    ident = b"\x7fELF" + bytes([2, 1, 1]) + bytes(9)
    ehdr = struct.pack("<16sHHIQQQIHHHHHH", ident, 2, 0x3E, 1, entry, ehsize, 0, 0,
                       ehsize, phsize, 1, 64, 0, 0)
    size = ehsize + phsize + len(code)
    phdr = struct.pack("<IIQQQQQQ", 1, 5, 0, _BASE, _BASE, size, size, 0x1000)
    return ehdr + phdr + code


def sealed_trampoline() -> int | None:
    """A close-on-exec memfd holding the trampoline, sealed against any change."""
    image = elf_image()
    if image is None:
        return None
    try:
        fd = os.memfd_create("hutch-exec", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    except OSError:
        return None
    try:
        os.write(fd, image)
        fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK
                    | fcntl.F_SEAL_GROW | fcntl.F_SEAL_WRITE)
    except OSError:
        os.close(fd)
        return None
    return fd
