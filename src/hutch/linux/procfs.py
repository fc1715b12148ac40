"""Readers of /proc that status derivation and process handling need."""

from __future__ import annotations


class ProcStat:
    """The few fields of /proc/PID/stat that hutch uses."""

    __slots__ = ("pid", "state", "ppid", "start_time")

    def __init__(self, pid: int, state: str, ppid: int, start_time: int) -> None:
        self.pid = pid
        self.state = state
        self.ppid = ppid
        self.start_time = start_time


def parse_stat(text: str) -> ProcStat:
    # The command name (field 2) may hold spaces and parentheses: split after the last ')'.
    head, _, rest = text.rpartition(")")
    pid = int(head.split(" (", 1)[0])
    fields = rest.split()
    # rest starts at field 3 (state); start time is field 22 -> index 19.
    return ProcStat(pid, fields[0], int(fields[1]), int(fields[19]))


def read_stat(pid: int) -> ProcStat | None:
    """The stat of ``pid``, or None when there is no such process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return parse_stat(f.read())
    except (FileNotFoundError, ProcessLookupError):
        return None


def is_alive(pid: int, start_time: int | None) -> bool:
    """True when ``pid`` runs and is the same process (same start time), not a zombie."""
    if pid <= 0:
        return False
    st = read_stat(pid)
    if st is None or st.state in ("Z", "X", "x"):
        return False
    return start_time is None or st.start_time == start_time
