"""hutch.storage.metastore: keys, kinds, parent chains, removal rules, rollback."""

from __future__ import annotations

from pathlib import Path

import pytest

from hutch.errors import AlreadyExists, InvalidArgument, NotFound, WrongState
from hutch.storage.metastore import MetaStore
from hutch.storage.snapshotter import Kind, Usage


@pytest.fixture
def ms(tmp_path: Path) -> MetaStore:
    store = MetaStore(str(tmp_path / "metadata.db"))
    yield store
    store.close()


def test_chain_of_commits(ms: MetaStore) -> None:
    with ms.transaction():
        a = ms.create(Kind.ACTIVE, "a", None, {"x": "1"})
    assert (a.kind, a.parent_ids, a.info.labels) == (Kind.ACTIVE, (), {"x": "1"})
    with ms.transaction():
        ms.commit("A", "a", Usage(10, 2), None)
        b = ms.create(Kind.ACTIVE, "b", "A", None)
        ms.commit("B", "b", Usage(5, 1), {"y": "2"})
        v = ms.create(Kind.VIEW, "v", "B", None)
    assert v.parent_ids == (b.id, a.id) and v.info.parent == "B"
    got = ms.get("B")
    assert got.id == b.id and got.kind is Kind.COMMITTED and got.usage == Usage(5, 1)
    assert got.info.labels == {"y": "2"} and got.info.parent == "A"
    assert [(i.name, i.kind) for i in ms.walk()] == [
        ("A", Kind.COMMITTED), ("B", Kind.COMMITTED), ("v", Kind.VIEW)]
    assert [i.name for i in ms.walk([Kind.VIEW])] == ["v"]
    assert ms.children("B") == ["v"]


def test_rules(ms: MetaStore) -> None:
    with ms.transaction():
        ms.create(Kind.ACTIVE, "a", None, None)
        with pytest.raises(AlreadyExists):
            ms.create(Kind.ACTIVE, "a", None, None)
        with pytest.raises(WrongState, match="only a committed snapshot can be a parent"):
            ms.create(Kind.ACTIVE, "b", "a", None)
        with pytest.raises(NotFound, match="parent snapshot 'zz'"):
            ms.create(Kind.ACTIVE, "b", "zz", None)
        with pytest.raises(InvalidArgument):
            ms.create(Kind.ACTIVE, "", None, None)
        ms.commit("A", "a", Usage(), None)
        with pytest.raises(WrongState, match="only an active snapshot"):
            ms.commit("A2", "A", Usage(), None)
        ms.create(Kind.ACTIVE, "c", "A", None)
        with pytest.raises(AlreadyExists):
            ms.commit("A", "c", Usage(), None)
        with pytest.raises(WrongState, match="has 1 children"):
            ms.remove("A")
        ms.remove("c")
        ms.remove("A")
    assert ms.walk() == []


def test_a_failed_transaction_leaves_no_record(ms: MetaStore) -> None:
    with pytest.raises(RuntimeError), ms.transaction():
        ms.create(Kind.ACTIVE, "a", None, None)
        raise RuntimeError("the driver's file system work failed")
    with pytest.raises(NotFound):
        ms.get("a")
    with ms.transaction():
        first = ms.create(Kind.ACTIVE, "a", None, None)
        ms.remove("a")
        second = ms.create(Kind.ACTIVE, "a", None, None)
    assert second.id == first.id + 1  # the id of a removed snapshot is never reused
