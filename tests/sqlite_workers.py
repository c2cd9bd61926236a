"""Code run in child processes by tests/test_sqlite.py (spawned children
import it by name, so it stays small and free of test-only imports)."""

from __future__ import annotations

import sys
from typing import List, Tuple
from uuid import UUID, uuid4

from eventsourcing_rs.persistence import IntegrityError, StoredEvent
from eventsourcing_rs.sqlite import SQLiteApplicationRecorder, SQLiteDatastore


def batch(originator_id: UUID, size: int) -> List[StoredEvent]:
    """``size`` events of one aggregate; the topic records the batch size,
    so a reader can tell a whole batch from part of one."""
    return [StoredEvent(originator_id, v, f"size={size}", b"x" * 64) for v in range(size)]


def write_batches(db_name: str, inserts: int, size: int) -> Tuple[List[int], int]:
    """Inserts ``inserts`` batches, then tries one that conflicts with the
    first; returns the ids given and how many conflicting inserts were
    refused."""
    recorder = SQLiteApplicationRecorder(SQLiteDatastore(db_name))
    ids: List[int] = []
    first = uuid4()
    for i in range(inserts):
        ids.extend(recorder.insert_events(batch(first if i == 0 else uuid4(), size)) or [])
    refused = 0
    try:
        # A fresh aggregate's event, then one already recorded.
        recorder.insert_events(batch(uuid4(), size) + batch(first, 1))
    except IntegrityError:
        refused += 1
    return ids, refused


def insert_forever(db_name: str) -> None:
    """Inserts batches of varied size until killed, saying which insert
    it is starting."""
    recorder = SQLiteApplicationRecorder(SQLiteDatastore(db_name))
    recorder.create_table()
    n = 0
    while True:
        n += 1
        print(n, flush=True)
        recorder.insert_events(batch(uuid4(), 200 + (n * 37) % 1000))


if __name__ == "__main__":
    insert_forever(sys.argv[1])
