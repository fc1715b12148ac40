"""Tests for hutch.oci.state: the OCI state document."""

from __future__ import annotations

import json
import time

import pytest

from hutch import OCI_VERSION
from hutch.errors import InvalidArgument
from hutch.oci.state import Status, format_created, state_document

# 2024-01-02T03:04:05Z
T0 = 1704164645 * 1_000_000_000


def test_status_values() -> None:
    assert Status.ALL == ("creating", "created", "running", "paused", "stopped")
    assert (Status.CREATING, Status.CREATED, Status.RUNNING, Status.PAUSED, Status.STOPPED) \
        == Status.ALL


@pytest.mark.parametrize(("ns", "text"), [
    (T0 + 123456789, "2024-01-02T03:04:05.123456789Z"),
    (T0 + 123456000, "2024-01-02T03:04:05.123456Z"),   # Go's RFC3339Nano drops zeros
    (T0 + 100000000, "2024-01-02T03:04:05.1Z"),
    (T0 + 1, "2024-01-02T03:04:05.000000001Z"),
    (T0, "2024-01-02T03:04:05Z"),
    (0, "1970-01-01T00:00:00Z"),
])
def test_format_created(ns: int, text: str) -> None:
    assert format_created(ns) == text


def test_format_created_is_utc_whatever_the_local_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        assert format_created(T0) == "2024-01-02T03:04:05Z"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_document_keys_and_order() -> None:
    doc = state_document("c1", Status.RUNNING, 4242, "/b", {"a": "b"}, T0 + 5,
                         rootfs="/b/rootfs")
    assert list(doc) == ["ociVersion", "id", "pid", "status", "bundle", "rootfs", "created",
                         "annotations", "owner"]
    assert doc == {
        "ociVersion": OCI_VERSION,
        "id": "c1",
        "pid": 4242,
        "status": "running",
        "bundle": "/b",
        "rootfs": "/b/rootfs",
        "created": "2024-01-02T03:04:05.000000005Z",
        "annotations": {"a": "b"},
        "owner": "",
    }
    json.dumps(doc)  # serialisable as is


def test_empty_annotations_are_omitted() -> None:
    for given in ({}, None):
        doc = state_document("c1", Status.CREATED, 1, "/b", given, T0)
        assert "annotations" not in doc
        assert doc["owner"] == ""


def test_pid_is_zero_when_stopped() -> None:
    assert state_document("c1", Status.STOPPED, 4242, "/b", None, T0)["pid"] == 0
    for status in (Status.CREATING, Status.CREATED, Status.RUNNING, Status.PAUSED):
        assert state_document("c1", status, 4242, "/b", None, T0)["pid"] == 4242


def test_created_defaults_to_now_and_accepts_text() -> None:
    before = time.time_ns()
    doc = state_document("c1", Status.CREATING, 1, "/b", None)
    created = doc["created"]
    assert created.endswith("Z")
    assert created[:19] >= format_created(before)[:19]
    text = "2020-05-06T07:08:09.5Z"
    assert state_document("c1", Status.CREATED, 1, "/b", None, text)["created"] == text


def test_owner_and_version_are_passed_through() -> None:
    doc = state_document("c1", Status.CREATED, 1, "/b", None, T0, owner="alice",
                         version="1.0.2")
    assert doc["owner"] == "alice"
    assert doc["ociVersion"] == "1.0.2"


def test_annotations_are_copied() -> None:
    annotations = {"k": "v"}
    doc = state_document("c1", Status.CREATED, 1, "/b", annotations, T0)
    annotations["k"] = "changed"
    assert doc["annotations"] == {"k": "v"}


def test_unknown_status_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="unknown container status 'exited'"):
        state_document("c1", "exited", 1, "/b", None, T0)
