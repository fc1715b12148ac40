"""How error messages name the JSON type of a value ("must be a list, not an object")."""

from __future__ import annotations


def json_kind(value: object) -> str:
    """The JSON type of ``value``, with an article."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
