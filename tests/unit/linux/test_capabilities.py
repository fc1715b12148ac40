"""Tests for hutch.linux.capabilities: the table, /proc parsing and applying sets."""

from __future__ import annotations

import json
import os

import pytest

from hutch.errors import InvalidArgument
from hutch.linux import capabilities as caps
from hutch.linux.capabilities import (
    CAPABILITIES,
    apply_capabilities,
    cap_number,
    current_capabilities,
    last_cap,
    mask_to_names,
    names_to_mask,
)


def test_table_has_all_41_in_order() -> None:
    assert len(CAPABILITIES) == 41
    assert sorted(CAPABILITIES.values()) == list(range(41))
    assert CAPABILITIES["CAP_CHOWN"] == 0
    assert CAPABILITIES["CAP_KILL"] == 5
    assert CAPABILITIES["CAP_NET_BIND_SERVICE"] == 10
    assert CAPABILITIES["CAP_SYS_ADMIN"] == 21
    assert CAPABILITIES["CAP_AUDIT_WRITE"] == 29
    assert CAPABILITIES["CAP_SETFCAP"] == 31
    assert CAPABILITIES["CAP_MAC_OVERRIDE"] == 32
    assert CAPABILITIES["CAP_AUDIT_READ"] == 37
    assert CAPABILITIES["CAP_PERFMON"] == 38
    assert CAPABILITIES["CAP_BPF"] == 39
    assert CAPABILITIES["CAP_CHECKPOINT_RESTORE"] == 40
    assert all(name.startswith("CAP_") and name.isupper() for name in CAPABILITIES)


def test_cap_number() -> None:
    assert cap_number("CAP_SYS_PTRACE") == 19
    with pytest.raises(InvalidArgument, match="unknown capability 'CAP_FLY'"):
        cap_number("CAP_FLY")
    with pytest.raises(InvalidArgument, match="'cap_kill'"):
        cap_number("cap_kill")  # the spec spells them in upper case


def test_masks() -> None:
    assert names_to_mask(["CAP_CHOWN", "CAP_KILL"]) == 0b100001
    assert mask_to_names(0b100001) == {"CAP_CHOWN", "CAP_KILL"}
    assert mask_to_names(0) == set()
    assert mask_to_names(1 << 45) == {"CAP_45"}
    every = names_to_mask(list(CAPABILITIES))
    assert every == (1 << 41) - 1
    assert mask_to_names(every) == set(CAPABILITIES)


def test_last_cap_matches_proc_and_is_cached() -> None:
    with open("/proc/sys/kernel/cap_last_cap") as f:
        expected = int(f.read())
    assert last_cap() == expected
    assert caps._last_cap == expected


def test_current_capabilities_reads_status() -> None:
    current = current_capabilities()
    assert set(current) == {"effective", "permitted", "inheritable", "bounding", "ambient"}
    with open("/proc/self/status") as f:
        status = dict(line.split(":\t", 1) for line in f if line.startswith("Cap"))
    assert names_to_mask([n for n in current["bounding"] if n in CAPABILITIES]) == \
        int(status["CapBnd"], 16) & ((1 << 41) - 1)
    assert current["effective"] <= current["permitted"]


def test_unknown_name_is_refused_before_anything_changes() -> None:
    before = current_capabilities()
    with pytest.raises(InvalidArgument, match="CAP_NOPE"):
        apply_capabilities(["CAP_KILL"], [], [], [], ["CAP_NOPE"])
    assert current_capabilities() == before


def _in_child(func: object) -> dict:
    """Run ``func`` in a forked child; return the JSON it produced (or its error)."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(read_fd)
        try:
            result = {"ok": func()}  # type: ignore[operator]
        except BaseException as e:  # noqa: BLE001 - reported to the parent
            result = {"error": f"{type(e).__name__}: {e}"}
        with os.fdopen(write_fd, "w") as out:
            json.dump(result, out, default=sorted)
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        data = f.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    return json.loads(data)


@pytest.mark.root
def test_apply_reduced_set_in_child() -> None:
    def child() -> dict:
        skipped = apply_capabilities(
            bounding=["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
            effective=["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            permitted=["CAP_KILL", "CAP_NET_BIND_SERVICE"],
            inheritable=["CAP_KILL"],
            ambient=["CAP_KILL"],
        )
        return {"skipped": skipped, "caps": current_capabilities()}

    result = _in_child(child)
    assert "error" not in result, result
    got = {k: set(v) for k, v in result["ok"]["caps"].items()}
    assert got == {
        "bounding": {"CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"},
        "effective": {"CAP_KILL", "CAP_NET_BIND_SERVICE"},
        "permitted": {"CAP_KILL", "CAP_NET_BIND_SERVICE"},
        "inheritable": {"CAP_KILL"},
        "ambient": {"CAP_KILL"},
    }
    assert result["ok"]["skipped"] == []


@pytest.mark.root
def test_apply_empty_sets_in_child() -> None:
    result = _in_child(lambda: (apply_capabilities([], [], [], [], []),
                                current_capabilities()))
    assert "error" not in result, result
    skipped, got = result["ok"]
    assert skipped == []
    assert all(not names for names in got.values()), got


@pytest.mark.root
def test_ambient_cap_not_inheritable_is_reported_not_raised() -> None:
    def child() -> dict:
        skipped = apply_capabilities(["CAP_KILL", "CAP_CHOWN"], ["CAP_KILL", "CAP_CHOWN"],
                                     ["CAP_KILL", "CAP_CHOWN"], ["CAP_KILL"],
                                     ["CAP_KILL", "CAP_CHOWN"])
        return {"skipped": skipped, "ambient": current_capabilities()["ambient"]}

    result = _in_child(child)
    assert "error" not in result, result
    assert result["ok"]["skipped"] == ["CAP_CHOWN"]
    assert set(result["ok"]["ambient"]) == {"CAP_KILL"}


@pytest.mark.root
def test_caps_above_kernel_last_cap_are_skipped(monkeypatch: pytest.MonkeyPatch) -> None:
    # Pretend the kernel stops at CAP_BPF (39): CAP_CHECKPOINT_RESTORE is then unknown to it.
    monkeypatch.setattr(caps, "_last_cap", 39)

    def child() -> dict:
        skipped = apply_capabilities(["CAP_KILL", "CAP_CHECKPOINT_RESTORE"], ["CAP_KILL"],
                                     ["CAP_KILL", "CAP_CHECKPOINT_RESTORE"], [], [])
        return {"skipped": skipped, "caps": current_capabilities()}

    result = _in_child(child)
    assert "error" not in result, result
    assert result["ok"]["skipped"] == ["CAP_CHECKPOINT_RESTORE"]
    assert set(result["ok"]["caps"]["permitted"]) == {"CAP_KILL"}
    # Bit 40 was left alone in the bounding set (the "kernel" does not know it).
    bounding = set(result["ok"]["caps"]["bounding"])
    assert "CAP_KILL" in bounding and "CAP_CHOWN" not in bounding


@pytest.mark.root
def test_capset_failure_names_the_call() -> None:
    # Asking for a permitted cap that the bounding set no longer allows raising is fine
    # (capset keeps old permitted), but one we never had must fail with EPERM.
    def child() -> object:
        apply_capabilities(["CAP_KILL"], ["CAP_KILL"], ["CAP_KILL"], [], [])
        # Now try to get CAP_CHOWN back: not in permitted any more.
        apply_capabilities(["CAP_KILL"], ["CAP_CHOWN"], ["CAP_CHOWN"], [], [])
        return None

    result = _in_child(child)
    assert "error" in result
    assert "capset(" in result["error"]
    assert "Operation not permitted" in result["error"]
