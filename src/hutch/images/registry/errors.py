"""Errors of the registry client, in hutch's one tree (hutch.errors)."""

from __future__ import annotations

from hutch.errors import HutchError


class RegistryError(HutchError):
    """The registry could not be reached, or answered with an error we cannot map
    to a more precise class (NotFound, InvalidArgument...)."""

    http_status = 502


class AuthError(RegistryError):
    """The registry (or its token server) refused our credentials, or we have none."""

    http_status = 401


class InterruptedTransfer(RegistryError):
    """A download broke off; what arrived is kept, and a new attempt resumes it."""
