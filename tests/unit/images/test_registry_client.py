"""hutch.images.registry.client: the settings that make blob downloads cheap."""

from __future__ import annotations

from pathlib import Path

import httpx
from httpcore._sync.http11 import HTTP11Connection

from hutch.common.digest import Digest
from hutch.images.content import ContentStore
from hutch.images.registry.client import READ_CHUNK, RegistryClient
from hutch.oci.image_spec import OCI_LAYER_GZIP, Descriptor


def test_responses_are_read_in_large_chunks_over_kept_alive_connections() -> None:
    with RegistryClient("127.0.0.1:5000", max_connections=6) as client:
        assert HTTP11Connection.READ_NUM_BYTES == READ_CHUNK
        pool = client.http._transport._pool  # type: ignore[attr-defined]
        assert pool._max_connections == 6 and pool._max_keepalive_connections == 6


def test_a_blob_streams_into_the_store_verified(tmp_path: Path) -> None:
    data = bytes(range(256)) * 12_000  # 3 MB: several reads
    desc = Descriptor(OCI_LAYER_GZIP, Digest.from_bytes(data), len(data))

    def registry(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=data if request.url.path.endswith(
            str(desc.digest)) else b"nope")

    store = ContentStore(str(tmp_path / "content"))
    with RegistryClient("127.0.0.1:5000", transport=httpx.MockTransport(registry)) as client:
        result = client.fetch_blob("app", desc, store, sync_dir=False)
    assert result.downloaded == len(data) and result.attempts == 1
    assert store.read(desc.digest) == data and store.ingests() == []
