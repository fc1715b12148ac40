"""The last steps before the container's process runs, shared by init and exec.

Everything here acts on the calling process: limits, identity, capabilities,
working directory, environment, and finally the execve of the user's program.
This code runs inside the container's root, where Python cannot import
anything: every module it needs is imported at the top, and files are read and
written in binary mode (a text codec may be a lazy import).
"""

from __future__ import annotations

import errno
import os
import resource

from hutch.errors import InvalidArgument
from hutch.linux import constants as C
from hutch.linux.capabilities import apply_capabilities, capset, current_capabilities, names_to_mask
from hutch.linux.syscalls import execveat, prctl
from hutch.linux.trampoline import MAGIC, sealed_trampoline

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hutch.runtime.seccomp import PreparedFilter

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def set_rlimits(process: dict) -> None:
    for rl in process.get("rlimits") or []:
        name = rl["type"]
        number = getattr(resource, name, None)
        if number is None:
            raise InvalidArgument(f"rlimit {name}: not known to this system")
        try:
            resource.setrlimit(number, (rl["soft"], rl["hard"]))
        except (ValueError, OSError) as e:
            hard = resource.getrlimit(number)[1]
            raise InvalidArgument(
                f"rlimit {name} soft {rl['soft']} hard {rl['hard']}: cannot be set ({e}); "
                f"the host allows a hard limit of at most {hard}") from None


def set_oom_score_adj(process: dict) -> None:
    value = process.get("oomScoreAdj")
    if value is None:
        return
    try:
        with open("/proc/self/oom_score_adj", "wb") as f:
            f.write(str(value).encode())
    except OSError as e:
        raise OSError(e.errno, f"oomScoreAdj {value}: {e.strerror}") from None


def lookup_path(args0: str, env: list[str]) -> str:
    """Find the program like execvp would, in the current root; errors as runc words them."""
    if "/" in args0:
        _check_executable(args0, args0)
        return args0
    path = DEFAULT_PATH
    for item in env:
        if item.startswith("PATH="):
            path = item[5:]
    for directory in path.split(":"):
        candidate = os.path.join(directory or ".", args0)
        try:
            _check_executable(candidate, args0)
            return candidate
        except (FileNotFoundError, PermissionError, IsADirectoryError):
            continue
    raise FileNotFoundError(errno.ENOENT,
                            f'exec: "{args0}": executable file not found in $PATH')


def _check_executable(path: str, name: str) -> None:
    if not os.path.exists(path):
        raise FileNotFoundError(errno.ENOENT, f'exec: "{name}": no such file or directory')
    if os.path.isdir(path):
        raise IsADirectoryError(errno.EISDIR, f'exec: "{name}": is a directory')
    if not os.access(path, os.X_OK):
        raise PermissionError(errno.EACCES, f'exec: "{name}": permission denied')


def build_env(process: dict) -> list[str]:
    env = list(process.get("env") or [])
    if not any(e.startswith("HOME=") for e in env):
        env.append("HOME=" + _home_of((process.get("user") or {}).get("uid", 0)))
    return env


def _home_of(uid: int) -> str:
    try:
        with open("/etc/passwd", "rb") as f:
            for raw in f:
                fields = raw.decode("utf-8", "replace").rstrip("\n").split(":")
                if len(fields) >= 6 and fields[2] == str(uid):
                    return fields[5] or "/"
    except OSError:
        pass
    return "/"


def set_identity(process: dict, setgroups_allowed: bool = True) -> None:
    """Switch to the spec's user and apply its capability sets.

    KEEPCAPS carries the permitted set across setuid so the capability sets
    asked for can be applied afterwards, as runc's finalizeNamespace does.
    """
    user = process.get("user") or {}
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    groups = [int(g) for g in user.get("additionalGids") or []]
    caps = process.get("capabilities") or {}
    prctl(C.PR_SET_KEEPCAPS, 1)
    if setgroups_allowed:
        os.setgroups(groups)
    elif groups:
        raise InvalidArgument("process.user.additionalGids: setgroups is denied in this "
                              "user namespace (rootless); remove the additional groups")
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    prctl(C.PR_SET_KEEPCAPS, 0)
    if uid != 0:
        # setuid cleared the effective set; take back what is permitted so the
        # bounding set can still be dropped (that needs CAP_SETPCAP).
        cur = current_capabilities()
        capset(names_to_mask(cur["permitted"]), names_to_mask(cur["permitted"]),
                names_to_mask(cur["inheritable"]))
    apply_capabilities(caps.get("bounding") or [], caps.get("effective") or [],
                       caps.get("permitted") or [], caps.get("inheritable") or [],
                       caps.get("ambient") or [])
    if "umask" in user:
        os.umask(int(user["umask"]))


def set_no_new_privileges(process: dict) -> None:
    if process.get("noNewPrivileges"):
        prctl(C.PR_SET_NO_NEW_PRIVS, 1)


def close_other_fds(keep_upto: int) -> None:
    """Mark every descriptor above ``keep_upto`` close-on-exec (preserve-fds keeps 3..N)."""
    for fd in range(keep_upto + 1):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass
    try:
        fds = [int(x) for x in os.listdir("/proc/self/fd")]
    except OSError:
        fds = list(range(keep_upto + 1, 1024))
    for fd in fds:
        if fd > keep_upto:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass


def exec_process(path: str, args: list[str], env: list[str], preserve_fds: int,
                 seccomp: PreparedFilter | None = None) -> None:
    """Replace the calling process with the container's program; never returns.

    The exec goes through the sealed trampoline (see hutch.linux.trampoline) so
    that the host's interpreter is never what /proc/self/exe names at that
    moment; where memfds cannot be executed, it falls back to a plain execve.
    """
    close_other_fds(2 + preserve_fds)
    fd = sealed_trampoline() if seccomp is None or seccomp.allows_execveat else None
    if seccomp is not None and not seccomp.loaded:
        seccomp.load()  # the last thing before the exec (see hutch.runtime.seccomp)
    if fd is not None:
        try:
            execveat(fd, [MAGIC.decode(), path, *args], env)
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EPERM, errno.ENOSYS):
                raise
        os.close(fd)
    environ = dict(e.split("=", 1) if "=" in e else (e, "") for e in env)
    os.execve(path, args, environ)
