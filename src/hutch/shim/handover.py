"""A shim re-executing itself into its other image, with its state.

The shim switches between two images of the same process (shim/supervisor.py says
why): the pid stays, so the shim remains the container's parent and subreaper
(PR_SET_CHILD_SUBREAPER survives execve), and children it has not reaped yet are
still its own. What must survive:

- open files (control socket, attached clients, pipes or pty master, ttys, log,
  a health probe's pipe): their fds are made inheritable just before execve and
  non-inheritable again by the new image, so nothing it starts later inherits them;
- the rest of the state: JSON in a memfd whose number is passed on the command
  line (``--resume FD``); it has no size limit and leaves nothing on disk.

SIGTERM is ignored across the execve (an ignored signal stays ignored; a handler
would fall back to the default, which ends the process) until the new image
installs its handler.
"""

from __future__ import annotations

import os

import _signal

from hutch.shim import minijson

RESUME = "--resume"


def exec_image(argv: list[str], env: dict[str, str], state: dict, fds: list[int]) -> None:
    """Replace this process's image by ``argv`` + ``--resume FD``.

    Returns only when execve failed, with everything as it was before the call (the
    caller goes on in the current image); the OSError is raised.
    """
    data = minijson.dumps(state).encode()
    memfd = os.memfd_create("hutch-shim-state", 0)  # no MFD_CLOEXEC: the next image reads it
    old_term = _signal.signal(_signal.SIGTERM, _signal.SIG_IGN)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(memfd, view):]
        os.lseek(memfd, 0, os.SEEK_SET)
        for fd in fds:
            os.set_inheritable(fd, True)
        os.execve(argv[0], [*argv, RESUME, str(memfd)], env)
    except BaseException:
        for fd in fds:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass
        os.close(memfd)
        _signal.signal(_signal.SIGTERM, old_term)
        raise


def receive(memfd: int) -> dict:
    """The state the previous image handed over (the memfd is closed). Its fds are
    still inheritable: the caller passes them to ``seal`` once it knows them."""
    chunks = []
    while True:
        chunk = os.read(memfd, 1 << 16)
        if not chunk:
            break
        chunks.append(chunk)
    os.close(memfd)
    state = minijson.loads(b"".join(chunks))
    if not isinstance(state, dict):
        raise ValueError("the handed-over shim state is not a JSON object")
    return state


def seal(fds: list[int]) -> None:
    """Inherited fds back to close-on-exec: a container process, a probe or a helper
    started from now on must not get the shim's sockets and ptys."""
    for fd in fds:
        os.set_inheritable(fd, False)


def resume_fd(args: list[str]) -> int | None:
    """The memfd of ``--resume FD`` in a shim's arguments, or None for a fresh start."""
    if RESUME in args:
        return int(args[args.index(RESUME) + 1])
    return None
