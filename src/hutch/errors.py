"""The one exception tree of hutch.

Every error hutch raises on purpose is a ``HutchError``. Each class says what kind
of failure it is, and maps once to an HTTP status (for hutchd) and an exit code
(for the command lines)::

    HutchError                      500 / 1
    ├── InvalidArgument(ValueError) 400 / 1   bad input: a malformed config, a bad flag
    ├── NotFound(LookupError)       404 / 1   no such container, image, file
    ├── AlreadyExists               409 / 1   an id or name that is taken
    ├── WrongState                  409 / 1   the object is in the wrong state for the verb
    ├── Conflict                    409 / 1   someone else holds the object
    ├── Unsupported                 501 / 1   the host cannot do what was asked
    └── SystemFailure(OSError)      500 / 1   a system call failed; carries errno

Messages are lower case, without a final period, and say what failed, on what,
and what to do where that is not obvious. Cleanup failures are attached to the
first error as notes (``add_note``), never swallowed.
"""

from __future__ import annotations


class HutchError(Exception):
    """Base of every error hutch raises on purpose."""

    http_status = 500
    exit_code = 1


class InvalidArgument(HutchError, ValueError):
    """The caller gave something malformed or inconsistent."""

    http_status = 400


class NotFound(HutchError, LookupError):
    """The named object does not exist."""

    http_status = 404


class AlreadyExists(HutchError):
    """An object with that id or name exists already."""

    http_status = 409


class WrongState(HutchError):
    """The object exists but is in a state where the verb makes no sense."""

    http_status = 409


class Conflict(HutchError):
    """The object is busy: another process holds it."""

    http_status = 409


class Unsupported(HutchError):
    """The host (kernel, configuration, privileges) cannot honour the request."""

    http_status = 501


class SystemFailure(HutchError, OSError):
    """A system call failed. ``errno`` is that of the call."""

    def __init__(self, errno: int, message: str) -> None:
        OSError.__init__(self, errno, message)
        self.message = message

    def __str__(self) -> str:
        return self.message
