"""hutch.images.gc: mark from names and leases, sweep the rest."""

from __future__ import annotations

from pathlib import Path

import pytest
from layertools import TarBuilder, add_image, add_index

from hutch.images import gc
from hutch.images.content import ContentStore
from hutch.images.metadata import MetadataStore
from hutch.images.walk import resolve, walk
from hutch.oci.image_spec import Platform


@pytest.fixture
def stores(tmp_path: Path) -> tuple[ContentStore, MetadataStore]:
    content = ContentStore(str(tmp_path / "content"))
    with MetadataStore(str(tmp_path / "meta.db")) as meta:
        yield content, meta


def digests(content: ContentStore) -> set:
    return {i.digest for i in content.walk()}


def test_gc_keeps_what_names_reach_and_sweeps_the_rest(stores: tuple) -> None:
    content, meta = stores
    base = TarBuilder().dir("etc").file("etc/os-release", b"ID=test\n")
    amd = add_image(content, [base, TarBuilder().file("amd", b"a")])
    arm = add_image(content, [base, TarBuilder().file("arm", b"b")],
                    platform=Platform("linux", "arm64"))
    index = add_index(content, [amd, arm])
    meta.put("multi:1", index)
    orphan = content.ingest_bytes(b"nobody wants me").digest
    reachable = {d.digest for d in walk(content, [index])}
    assert len(reachable) == 1 + 2 * 2 + 3  # index, 2 manifests + 2 configs, 3 distinct layers
    assert digests(content) == reachable | {orphan}

    dry = gc.collect(content, meta, dry_run=True)
    assert dry.removed == [orphan] and content.exists(orphan)
    result = gc.collect(content, meta)
    assert result.removed == [orphan] and result.freed == len(b"nobody wants me")
    assert digests(content) == reachable
    assert resolve(content, index, Platform("linux", "arm64")).manifest_descriptor == arm

    meta.put("single:1", amd)
    meta.delete("multi:1")
    gc.collect(content, meta)
    assert digests(content) == {d.digest for d in walk(content, [amd])}
    meta.delete("single:1")
    gc.collect(content, meta)
    assert digests(content) == set()


def test_leases_protect_blobs_without_a_name(stores: tuple) -> None:
    content, meta = stores
    with meta.lease() as lease:
        d = content.ingest_bytes(b"in flight").digest
        meta.add_to_lease(lease, d)
        assert gc.collect(content, meta).removed == []
    assert gc.collect(content, meta).removed == [d]


def test_min_age_spares_young_blobs(stores: tuple) -> None:
    content, meta = stores
    content.ingest_bytes(b"young")
    assert gc.collect(content, meta, min_age=3600).removed == []


def test_gc_waits_for_writers(stores: tuple) -> None:
    content, meta = stores
    with gc.store_lock(content, exclusive=False), pytest.raises(Exception, match="busy"):
        gc.collect(content, meta, timeout=0.2)
