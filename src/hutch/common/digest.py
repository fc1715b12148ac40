"""Content digests: the ``algorithm:hex`` names of blobs (OCI image-spec "digests").

``Digest`` is a small immutable value: parse it from text, compute it over bytes
or a stream, and verify content against it. ``Digester`` hashes incrementally
and counts bytes, for readers that hash what passes through them, and
``VerifyingReader`` wraps a stream and refuses it at its end when the digest or
the size is not the expected one. Stdlib only.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import BinaryIO

from hutch.errors import InvalidArgument

# algorithm -> length of its lower-case hex encoding
ALGORITHMS: dict[str, int] = {"sha256": 64, "sha512": 128}
DEFAULT_ALGORITHM = "sha256"
CHUNK = 1 << 20

_HEX = re.compile(r"[0-9a-f]+")


class DigestMismatch(InvalidArgument):
    """Content does not have the digest (or the size) it was announced with."""


@dataclass(frozen=True, slots=True, order=True)
class Digest:
    """``sha256:<64 lower-case hex>`` (or sha512). Compares and hashes by value."""

    algorithm: str
    hex: str

    def __post_init__(self) -> None:
        length = ALGORITHMS.get(self.algorithm)
        if length is None:
            raise InvalidArgument(f"digest {self.algorithm}:{self.hex}: unsupported algorithm "
                                  f"{self.algorithm!r} (supported: {', '.join(ALGORITHMS)})")
        if len(self.hex) != length or not _HEX.fullmatch(self.hex):
            raise InvalidArgument(f"digest {self.algorithm}:{self.hex}: the {self.algorithm} "
                                  f"part must be {length} lower-case hex digits")

    @classmethod
    def parse(cls, text: str | Digest) -> Digest:
        """``"sha256:abc..."`` -> Digest; InvalidArgument naming the text otherwise."""
        if isinstance(text, Digest):
            return text
        if not isinstance(text, str):
            raise InvalidArgument(f"digest must be a string like 'sha256:<hex>', "
                                  f"not {type(text).__name__}")
        algorithm, sep, encoded = text.partition(":")
        if not sep:
            raise InvalidArgument(f"digest {text!r} has no algorithm: expected 'sha256:<hex>'")
        return cls(algorithm, encoded)

    @classmethod
    def from_bytes(cls, data: bytes, algorithm: str = DEFAULT_ALGORITHM) -> Digest:
        h = _new_hash(algorithm)
        h.update(data)
        return cls(algorithm, h.hexdigest())

    @classmethod
    def from_stream(cls, stream: BinaryIO, algorithm: str = DEFAULT_ALGORITHM) -> tuple[Digest, int]:
        """Hash ``stream`` to its end; returns the digest and the number of bytes read."""
        d = Digester(algorithm)
        while chunk := stream.read(CHUNK):
            d.update(chunk)
        return d.digest(), d.size

    @classmethod
    def from_file(cls, path: str, algorithm: str = DEFAULT_ALGORITHM) -> tuple[Digest, int]:
        with open(path, "rb") as f:
            return cls.from_stream(f, algorithm)

    @property
    def encoded(self) -> str:
        """The hex part (the file name of a blob below ``blobs/<algorithm>/``)."""
        return self.hex

    def short(self, n: int = 12) -> str:
        return self.hex[:n]

    def verify(self, data: bytes, size: int | None = None, what: str = "content") -> None:
        """Raise DigestMismatch unless ``data`` has this digest (and ``size``, if given)."""
        if size is not None and len(data) != size:
            raise DigestMismatch(f"{what} has {len(data)} bytes, expected {size} ({self})")
        actual = Digest.from_bytes(data, self.algorithm)
        if not hmac.compare_digest(actual.hex, self.hex):
            raise DigestMismatch(f"{what} has digest {actual}, expected {self}")

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def _new_hash(algorithm: str) -> hashlib._Hash:
    if algorithm not in ALGORITHMS:
        raise InvalidArgument(f"unsupported digest algorithm {algorithm!r} "
                              f"(supported: {', '.join(ALGORITHMS)})")
    return hashlib.new(algorithm)


class Digester:
    """An incremental hash that also counts the bytes it was given."""

    __slots__ = ("_hash", "algorithm", "size")

    def __init__(self, algorithm: str = DEFAULT_ALGORITHM) -> None:
        self.algorithm = algorithm
        self._hash = _new_hash(algorithm)
        self.size = 0

    def update(self, data: bytes | bytearray | memoryview) -> None:
        self._hash.update(data)
        self.size += len(data)

    def digest(self) -> Digest:
        return Digest(self.algorithm, self._hash.hexdigest())


class HashingReader:
    """A read-only stream that hashes (and counts) every byte read through it."""

    def __init__(self, stream: BinaryIO, algorithm: str = DEFAULT_ALGORITHM) -> None:
        self._stream = stream
        self.digester = Digester(algorithm)

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        if data:
            self.digester.update(data)
        return data

    def readable(self) -> bool:
        return True

    def drain(self) -> None:
        """Read (and hash) whatever is left of the stream."""
        while self.read(CHUNK):
            pass

    @property
    def size(self) -> int:
        return self.digester.size

    def digest(self) -> Digest:
        return self.digester.digest()


class VerifyingReader(HashingReader):
    """A HashingReader that checks, at the end of the stream, the expected digest and size.

    Reading past ``size`` bytes fails at once (a server or file that sends more
    than announced), and the end of the stream with the wrong digest or too few
    bytes raises DigestMismatch naming ``what``.
    """

    def __init__(self, stream: BinaryIO, expected: Digest, size: int | None = None,
                 what: str = "content") -> None:
        super().__init__(stream, expected.algorithm)
        self.expected = expected
        self.expected_size = size
        self.what = what
        self.verified = False

    def read(self, n: int = -1) -> bytes:
        data = super().read(n)
        if self.expected_size is not None and self.size > self.expected_size:
            raise DigestMismatch(f"{self.what} ({self.expected}) is longer than the "
                                 f"{self.expected_size} bytes announced")
        if not data and (n is None or n != 0) and not self.verified:
            self.check()
        return data

    def check(self) -> None:
        if self.expected_size is not None and self.size != self.expected_size:
            raise DigestMismatch(f"{self.what} ({self.expected}) has {self.size} bytes, "
                                 f"expected {self.expected_size}")
        actual = self.digest()
        if actual != self.expected:
            raise DigestMismatch(f"{self.what} has digest {actual}, expected {self.expected}")
        self.verified = True


def verify_stream(stream: BinaryIO, expected: Digest, size: int | None = None,
                  what: str = "content") -> int:
    """Read ``stream`` to its end and check it against ``expected``; returns its size."""
    reader = VerifyingReader(stream, expected, size, what)
    reader.drain()
    return reader.size
