"""hutch.common.digest: parsing, hashing, verification."""

from __future__ import annotations

import hashlib
import io

import pytest

from hutch.common.digest import Digest, DigestMismatch, VerifyingReader, verify_stream
from hutch.errors import InvalidArgument

HELLO = hashlib.sha256(b"hello").hexdigest()


def test_parse_and_print_round_trip() -> None:
    d = Digest.parse(f"sha256:{HELLO}")
    assert (d.algorithm, d.hex, str(d)) == ("sha256", HELLO, f"sha256:{HELLO}")
    assert Digest.parse(d) is d
    assert d == Digest.from_bytes(b"hello")
    assert len({d, Digest.from_bytes(b"hello")}) == 1
    assert Digest.from_bytes(b"x", "sha512").algorithm == "sha512"


@pytest.mark.parametrize("text, words", [
    (HELLO, "no algorithm"),
    (f"md5:{HELLO}", "unsupported algorithm"),
    (f"sha256:{HELLO.upper()}", "lower-case hex"),
    (f"sha256:{HELLO[:-1]}", "64"),
    ("sha256:", "64"),
    (f"sha256:{HELLO[:-1]}g", "hex"),
])
def test_malformed_digests_are_refused(text: str, words: str) -> None:
    with pytest.raises(InvalidArgument, match=words):
        Digest.parse(text)


def test_stream_hash_counts_bytes() -> None:
    data = b"x" * (3 << 20) + b"tail"
    d, size = Digest.from_stream(io.BytesIO(data))
    assert d == Digest.from_bytes(data) and size == len(data)


def test_verify() -> None:
    d = Digest.from_bytes(b"hello")
    d.verify(b"hello", 5)
    with pytest.raises(DigestMismatch, match="has digest"):
        d.verify(b"hellO")
    with pytest.raises(DigestMismatch, match="expected 6"):
        d.verify(b"hello", 6)
    assert isinstance(DigestMismatch("x"), InvalidArgument)


def test_verifying_reader() -> None:
    d = Digest.from_bytes(b"hello")
    assert verify_stream(io.BytesIO(b"hello"), d, 5) == 5
    with pytest.raises(DigestMismatch, match="longer than the 4 bytes"):
        verify_stream(io.BytesIO(b"hello"), d, 4)
    with pytest.raises(DigestMismatch, match="has 4 bytes"):
        verify_stream(io.BytesIO(b"hell"), d, 5)
    with pytest.raises(DigestMismatch, match="has digest"):
        verify_stream(io.BytesIO(b"jello"), d)
    r = VerifyingReader(io.BytesIO(b"hello"), d)
    assert r.read(2) + r.read() == b"hello" and r.read() == b"" and r.verified
