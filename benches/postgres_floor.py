"""What a write to PostgreSQL costs at the least, on this machine and server.

A save of one aggregate is one transaction: BEGIN, the events table's
EXCLUSIVE lock (so that readers never skip a notification), the insert,
COMMIT. This library sends them pipelined, in one round trip. Whatever is
done around it, a save cannot take less than that round trip and the
server's work on it; this prints the layers, from the bottom up, so the
ceiling of the save row in ``benches/compare.py`` can be read off:

    python benches/postgres_floor.py [--count 3000]

- ``SELECT 1``: one round trip, through the Rust connections and through
  psycopg (as the reference's psycopg2 makes it, for scale);
- the save's transaction, pipelined, sent with its statement prepared,
  with nothing in Python around it;
- the same through the recorder's ``insert_events``;
- ``Application.save`` of one new aggregate.

The server comes from the ``POSTGRES_*`` variables (by default the test
server ``tests/pg_server.sh`` starts); its fsync and synchronous_commit
are printed. Each figure is the median of five runs of ``--count``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Callable, Iterator

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eventsourcing_rs.application import Application  # noqa: E402
from eventsourcing_rs.domain import Aggregate  # noqa: E402
from eventsourcing_rs.persistence import StoredEvent  # noqa: E402
from eventsourcing_rs.postgres import PostgresApplicationRecorder  # noqa: E402

from benches.processes import POSTGRES, connect, postgres_settings  # noqa: E402

TABLE = "esrs_floor_events"


class Note(Aggregate):
    def __init__(self, text: str):
        self.text = text


class FloorNotes(Application):
    pass


def per_call(call: Callable[[], object], count: int) -> float:
    """Microseconds per call: the median of five runs of ``count``."""
    for _ in range(min(count, 200)):
        call()
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(count):
            call()
        runs.append((time.perf_counter() - started) / count * 1e6)
    return statistics.median(runs)


def fresh_events() -> Iterator[StoredEvent]:
    while True:
        yield StoredEvent(uuid.uuid4(), 1, "benches.postgres_floor:Note.Created", b"{}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=3000)
    count = parser.parse_args().count

    with connect() as conn:
        for table in (TABLE, "floornotes_events"):
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    app = FloorNotes(env=dict(POSTGRES))
    datastore = app.recorder.datastore  # type: ignore[attr-defined]
    recorder = PostgresApplicationRecorder(datastore, TABLE)
    recorder.create_table()
    native = datastore.native
    events = fresh_events()
    statement, _, _ = recorder._guarded_insert([next(events)], None)
    before = f"BEGIN; {recorder.lock_table_statement}"

    def bare_write() -> object:
        e = next(events)
        params = [e.originator_id, e.originator_version, e.topic, e.state]
        return native.write(before, statement, params, "floor", 1)

    rows = []
    rows.append(
        (
            "SELECT 1, Rust connections",
            per_call(lambda: native.query_int("SELECT 1", [], "floor"), count),
        )
    )
    with connect() as conn:
        rows.append(
            ("SELECT 1, psycopg", per_call(lambda: conn.execute("SELECT 1").fetchone(), count))
        )
    rows.append(("BEGIN; LOCK; INSERT one event; COMMIT, pipelined", per_call(bare_write, count)))
    rows.append(
        (
            "recorder.insert_events, one event",
            per_call(lambda: recorder.insert_events([next(events)]), count),
        )
    )
    rows.append(
        ("Application.save, one new aggregate", per_call(lambda: app.save(Note("n")), count))
    )

    print(f"PostgreSQL server: {postgres_settings()}")
    print("| one call | µs |\n| --- | ---: |")
    for label, micros in rows:
        print(f"| {label} | {micros:.0f} |")
    with connect() as conn:
        for table in (TABLE, "floornotes_events"):
            conn.execute(f"DROP TABLE IF EXISTS {table}")


if __name__ == "__main__":
    main()
