"""What the lean shim writes and reads without the json package (shim/minijson.py), and
the log writer's state across a switch of images (no container needed)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from hutch.shim import minijson
from hutch.shim.logs import JsonLog, read_entries

VALUES = [
    {"state": "running", "pid": 42, "exit_code": None, "restart_count": 0,
     "health": {"Status": "healthy", "FailingStreak": 0,
                "Log": [{"ExitCode": 1, "Output": "é \u2028 \"quoted\" \\ \n\t\x00"}]}},
    [1, -2.5, 1e300, True, False, None, "", [], {}],
    {"1": [0.1, 10**30], "nested": [[["deep"]]]},
    "plain",
    7,
]


@pytest.mark.parametrize("value", VALUES)
def test_dumps_writes_what_json_writes_and_loads_reads_it(value):
    assert minijson.dumps(value) == json.dumps(value)
    assert minijson.loads(minijson.dumps(value)) == value
    assert minijson.loads(json.dumps(value, indent=2).encode()) == value


def test_non_string_keys_and_unsupported_values():
    assert minijson.dumps({1: True, None: 2}) == json.dumps({1: True, None: 2})
    with pytest.raises(TypeError, match="set"):
        minijson.dumps({"x": {1, 2}})
    with pytest.raises(ValueError):
        minijson.dumps(float("nan"))


@pytest.mark.parametrize("text", ["", "{", '{"op": }', "{} {}", "nul", "[1,]"])
def test_bad_documents_raise_value_error(text):
    with pytest.raises(ValueError):
        minijson.loads(text)


def test_the_lean_modules_do_not_import_json_re_enum_or_the_runtime():
    code = ("import sys; import hutch.shim.supervisor, hutch.shim.health, hutch.shim.ttys; "
            "print(' '.join(sorted(sys.modules)))")
    modules = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True,
                             text=True, check=True,
                             env={"PYTHONPATH": _package_root()}).stdout.split()
    assert "hutch.shim.supervisor" in modules
    for heavy in ("json", "re", "enum", "socket", "signal", "ctypes", "hutch.runtime",
                  "hutch.linux"):
        assert heavy not in modules, heavy


def _package_root() -> str:
    import os

    import hutch
    return os.path.dirname(os.path.dirname(hutch.__file__))


def test_the_log_goes_on_in_the_next_image_with_its_unfinished_lines(tmp_path):
    path = str(tmp_path / "container.log")
    log = JsonLog(path, 1 << 20, 2)
    log.write("stdout", b"done\npart \xff")
    log.write("stderr", b"err-part")
    state = minijson.loads(minijson.dumps(log.handover_state()))  # as it crosses execve
    again = JsonLog.restore(path, 1 << 20, 2, state)
    again.write("stdout", b"rest\n")
    again.close()
    assert [(e["stream"], e["log"]) for e in read_entries(path, 2)] == [
        ("stdout", "done\n"), ("stdout", "part \ufffdrest\n"), ("stderr", "err-part")]
