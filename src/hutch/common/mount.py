"""The mount record that storage produces and the execution layer consumes.

A snapshotter never mounts a container's root itself: it says how, as a list
of ``Mount`` records (containerd's ``mount.Mount``). The engine mounts them on
a bundle's rootfs, or puts them in config.json's ``mounts``. Pure data.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Mount:
    """One mount: ``mount -t TYPE -o OPTIONS SOURCE TARGET``.

    ``target`` is relative to where the list is mounted (None or "" for that
    place itself). ``options`` are fstab/OCI names (``ro``, ``rbind``,
    ``lowerdir=...``), in order.
    """

    type: str
    source: str
    target: str | None = None
    options: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not isinstance(self.options, tuple):
            object.__setattr__(self, "options", tuple(self.options))

    @property
    def readonly(self) -> bool:
        ro = False
        for opt in self.options:
            if opt == "ro":
                ro = True
            elif opt == "rw":
                ro = False
        return ro

    @property
    def is_bind(self) -> bool:
        return self.type == "bind" or "bind" in self.options or "rbind" in self.options

    def option(self, name: str) -> str | None:
        """The value of the last ``name=value`` option, or None."""
        value = None
        for opt in self.options:
            key, sep, val = opt.partition("=")
            if sep and key == name:
                value = val
        return value

    def to_oci(self, destination: str) -> dict[str, object]:
        """An OCI runtime-spec ``mounts[]`` entry that mounts this at ``destination``."""
        return {"destination": destination, "type": self.type, "source": self.source,
                "options": list(self.options)}

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {"type": self.type, "source": self.source,
                                "options": list(self.options)}
        if self.target:
            d["target"] = self.target
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Mount:
        options = d.get("options") or []
        if not isinstance(options, list):
            raise TypeError("mount options must be a list")
        target = d.get("target")
        return cls(str(d["type"]), str(d["source"]), str(target) if target else None,
                   tuple(str(o) for o in options))
