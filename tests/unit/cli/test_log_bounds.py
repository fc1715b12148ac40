"""hutch logs --since/--until: the forms docker takes, as the log's RFC 3339 times."""

from __future__ import annotations

import time

import pytest

from hutch.cli.engine_extra import log_bound
from hutch.errors import InvalidArgument


def test_forms():
    assert log_bound(None, "--since") == ""
    assert log_bound("2024-05-01T10:00:00Z", "--since") == "2024-05-01T10:00:00.000000000Z"
    assert log_bound("2024-05-01T10:00:00.123456789Z", "--since") == \
        "2024-05-01T10:00:00.123456789Z"
    assert log_bound("2024-05-01T12:00:00+02:00", "--since") == \
        "2024-05-01T10:00:00.000000000Z"
    assert log_bound("1714557600", "--since") == "2024-05-01T10:00:00.000000000Z"
    before = time.time_ns() - 600_000_000_000
    got = log_bound("10m", "--since")
    after = time.time_ns() - 600_000_000_000
    from hutch.shim.logs import rfc3339
    assert rfc3339(before) <= got <= rfc3339(after)


@pytest.mark.parametrize("text", ["yesterday", "2024-05-01", "10 minutes"])
def test_bad_forms(text):
    with pytest.raises(InvalidArgument, match="--until"):
        log_bound(text, "--until")
