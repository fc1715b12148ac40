"""A manager that manages nothing, for --no-cgroups and rootless without delegation."""

from __future__ import annotations


class NullCgroupManager:
    version = 0
    path = ""

    def create(self) -> None:
        pass

    def add_pid(self, pid: int) -> None:
        pass

    def freeze(self) -> None:
        pass

    def thaw(self) -> None:
        pass

    def is_frozen(self) -> bool:
        return False

    def pids(self, recursive: bool = True) -> list[int]:
        return []

    def kill_all(self, sig: int) -> None:
        pass

    def exists(self) -> bool:
        return False

    def remove(self, timeout: float = 5.0) -> None:
        pass

    def state(self) -> dict[str, object]:
        return {"version": 0, "path": "", "paths": {}}

    def __repr__(self) -> str:
        return "NullCgroupManager()"
