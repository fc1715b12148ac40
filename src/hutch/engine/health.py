"""Health checks: what the user's --health-* flags and the image's Healthcheck ask for.

The engine resolves them once, at create, into the plain dict the shim runs
(``shim/health.py``)::

    {"test": ["CMD-SHELL", "cmd"] | ["CMD", arg...], "interval": s, "timeout": s,
     "retries": n, "start_period": s, "argv": [what runs inside the container]}

Docker's rules: the flags override the image's Healthcheck field by field;
``--no-healthcheck`` (or a Test of ["NONE"]) turns any check off; the defaults
are an interval and timeout of 30 s, 3 retries and no start period.
"""

from __future__ import annotations

import re

from hutch.errors import InvalidArgument

DEFAULTS = {"interval": 30.0, "timeout": 30.0, "retries": 3, "start_period": 0.0}
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")


def parse_duration(text: str, flag: str = "duration") -> float:
    """Seconds from a Go duration ("1m30s", "500ms") or a plain number of seconds."""
    text = str(text).strip()
    try:
        value = float(text)
    except ValueError:
        pos, value = 0, 0.0
        for m in _PART.finditer(text):
            if m.start() != pos:
                break
            value += float(m.group(1)) * _UNITS[m.group(2)]
            pos = m.end()
        if pos != len(text) or not text:
            raise InvalidArgument(f"{flag} {text!r}: expected a duration like 30s, 1m30s or "
                                  "500ms") from None
    if value < 0:
        raise InvalidArgument(f"{flag} {text!r}: must not be negative")
    return value


def _from_image(image_config: dict) -> dict:
    """The image config's Healthcheck (durations in nanoseconds, 0 = default)."""
    hc = image_config.get("Healthcheck") or {}
    out: dict = {}
    if hc.get("Test"):
        out["test"] = list(hc["Test"])
    for key, field in (("Interval", "interval"), ("Timeout", "timeout"),
                       ("StartPeriod", "start_period")):
        if hc.get(key):
            out[field] = int(hc[key]) / 1e9
    if hc.get("Retries"):
        out["retries"] = int(hc["Retries"])
    return out


def resolve(options: dict, image_config: dict) -> dict | None:
    """The check to run for a container made with ``options`` (RunOptions as a dict)."""
    if options.get("no_healthcheck"):
        if options.get("health_cmd"):
            raise InvalidArgument("--no-healthcheck conflicts with --health-cmd")
        return None
    check = {**DEFAULTS, **_from_image(image_config)}
    if options.get("health_cmd"):
        check["test"] = ["CMD-SHELL", options["health_cmd"]]
    for field in ("interval", "timeout", "start_period"):
        value = options.get(f"health_{field}")
        if value is not None:
            check[field] = parse_duration(value, "--health-" + field.replace("_", "-"))
    if options.get("health_retries") is not None:
        retries = int(options["health_retries"])
        if retries < 1:
            raise InvalidArgument(f"--health-retries {retries}: must be at least 1")
        check["retries"] = retries
    test = check.get("test") or []
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD-SHELL" and len(test) == 2:
        pass
    elif test[0] == "CMD" and len(test) > 1:
        pass
    else:
        raise InvalidArgument(f"health check test {test!r}: expected [\"CMD\", arg...], "
                              "[\"CMD-SHELL\", command] or [\"NONE\"]")
    if check["interval"] <= 0 or check["timeout"] <= 0:
        raise InvalidArgument("--health-interval and --health-timeout must be more than 0")
    # What the shim runs inside the container.
    check["argv"] = ["/bin/sh", "-c", test[1]] if test[0] == "CMD-SHELL" else list(test[1:])
    return check
