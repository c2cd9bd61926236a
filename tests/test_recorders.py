"""The recorder contract, run for every store."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Iterator

import pytest
from eventsourcing_rs.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    ProcessRecorder,
    StoredEvent,
)
from eventsourcing_rs.popo import (
    POPOAggregateRecorder,
    POPOApplicationRecorder,
    POPOProcessRecorder,
)
from eventsourcing_rs.sqlite import (
    SQLiteAggregateRecorder,
    SQLiteApplicationRecorder,
    SQLiteDatastore,
    SQLiteProcessRecorder,
)

from .recorder_contract import RecorderContract, Store


class POPOStore:
    def aggregate_recorder(self) -> AggregateRecorder:
        return POPOAggregateRecorder()

    def application_recorder(self) -> ApplicationRecorder:
        return POPOApplicationRecorder()

    def process_recorder(self) -> ProcessRecorder:
        return POPOProcessRecorder()


class SQLiteStore:
    """Each recorder gets a database of its own: a new file in
    ``directory``, or a new in-memory database when there is none."""

    def __init__(self, directory: Path | None):
        self.directory = directory
        self.count = itertools.count()

    def datastore(self) -> SQLiteDatastore:
        if self.directory is None:
            return SQLiteDatastore(":memory:")
        return SQLiteDatastore(str(self.directory / f"db{next(self.count)}.sqlite"))

    def aggregate_recorder(self) -> AggregateRecorder:
        recorder = SQLiteAggregateRecorder(self.datastore(), "stored_snapshots")
        recorder.create_table()
        return recorder

    def application_recorder(self) -> ApplicationRecorder:
        recorder = SQLiteApplicationRecorder(self.datastore())
        recorder.create_table()
        return recorder

    def process_recorder(self) -> ProcessRecorder:
        recorder = SQLiteProcessRecorder(self.datastore())
        recorder.create_table()
        return recorder


@pytest.fixture(params=["popo", "sqlite-file", "sqlite-memory", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    if request.param == "popo":
        yield POPOStore()
    elif request.param == "sqlite-file":
        yield SQLiteStore(tmp_path)
    elif request.param == "sqlite-memory":
        yield SQLiteStore(None)
    elif request.param == "postgres":
        pytest.importorskip("psycopg", reason="the 'postgres' extra is not installed")
        from .pg_server import PostgresStore, require_server

        require_server()
        postgres = PostgresStore()
        yield postgres
        postgres.close()
    else:  # pragma: no cover
        raise AssertionError(request.param)


class TestRecorders(RecorderContract):
    pass


def test_the_memory_store_keeps_its_events_off_the_garbage_collectors_lists() -> None:
    import gc
    import uuid

    from eventsourcing_rs.persistence import IntegrityError

    recorder = POPOApplicationRecorder()
    stored = StoredEvent(originator_id=uuid.uuid4(), originator_version=1, topic="t", state=b"{}")
    assert gc.is_tracked(stored)
    recorder.insert_events([stored])
    assert not gc.is_tracked(stored)
    # A refused event stays tracked.
    again = StoredEvent(stored.originator_id, 1, "t", b"{}")
    with pytest.raises(IntegrityError):
        recorder.insert_events([again])
    assert gc.is_tracked(again)

    # A subclass's instance can be in a cycle (it has a __dict__): it stays
    # tracked, and a cycle through it is collected.
    class Annotated(StoredEvent):
        pass

    cyclic = Annotated(uuid.uuid4(), 1, "t", b"{}")
    cyclic.me = cyclic  # type: ignore[attr-defined]
    recorder.insert_events([cyclic])
    assert gc.is_tracked(cyclic)

    del stored
    gc.collect()
    kept = recorder.select_notifications(1, 10)
    assert [(k.originator_version, k.topic, k.state) for k in kept] == [(1, "t", b"{}")] * 2
