"""JSON for the shim's steady state without the ``json`` package.

``import json`` pulls in ``re`` and ``enum`` (about 0.3 MiB of private memory in
every shim, which is kept for the container's whole life). The C accelerator
``_json``, which ``json`` itself uses, has what the shim needs: a string escaper
and a scanner. The output is the same as ``json.dumps`` with its defaults
(``", "`` and ``": "`` separators, ASCII only), so files and replies do not change.
"""

from __future__ import annotations

import _json

quote = _json.encode_basestring_ascii  # a str as a JSON string literal, ASCII only


def dumps(obj: object) -> str:
    """``json.dumps(obj)`` for dicts, lists, tuples, strings, numbers, booleans, None."""
    out: list[str] = []
    _encode(obj, out)
    return "".join(out)


def _encode(obj: object, out: list[str]) -> None:
    if isinstance(obj, str):
        out.append(quote(obj))
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    elif isinstance(obj, int):
        out.append(int.__repr__(obj))
    elif isinstance(obj, float):
        if obj != obj or obj in (float("inf"), float("-inf")):
            raise ValueError(f"not JSON: {obj!r}")
        out.append(float.__repr__(obj))
    elif isinstance(obj, dict):
        out.append("{")
        first = True
        for key, value in obj.items():
            if not first:
                out.append(", ")
            first = False
            if not isinstance(key, str):
                key = _key(key)
            out.append(quote(key))
            out.append(": ")
            _encode(value, out)
        out.append("}")
    elif isinstance(obj, (list, tuple)):
        out.append("[")
        for i, value in enumerate(obj):
            if i:
                out.append(", ")
            _encode(value, out)
        out.append("]")
    else:
        raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def _key(key: object) -> str:
    """Non-string keys as ``json.dumps`` writes them."""
    if key is True or key is False or key is None:
        return {True: "true", False: "false", None: "null"}[key]  # type: ignore[index]
    if isinstance(key, (int, float)):
        return repr(key)
    raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")


class _Context:
    """What ``_json.make_scanner`` reads from a ``json.JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    memo: dict = {}

    @staticmethod
    def parse_constant(name: str) -> float:
        return {"NaN": float("nan"), "Infinity": float("inf"),
                "-Infinity": float("-inf")}[name]


_scan = _json.make_scanner(_Context())
_SPACE = " \t\n\r"


def loads(text: str | bytes) -> object:
    """``json.loads(text)``; ValueError when it is not one JSON document."""
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8")
    start = len(text) - len(text.lstrip(_SPACE))
    try:
        obj, end = _scan(text, start)
    except StopIteration as e:
        raise ValueError(f"not JSON at character {e.value}") from None
    if text[end:].strip(_SPACE):
        raise ValueError(f"extra data after the JSON document at character {end}")
    return obj
