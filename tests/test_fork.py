"""A process that forks while it has a SQLite transaction open. SQLite
keeps each process's locks in that process's memory, so the child holds a
copy of the parent's, which it cannot release without writing to the WAL
index the parent shares: it says so at once when it would write (no wait
for the lock timeout), reads as usual, and can neither use nor commit the
parent's transaction. A child forked outside transactions writes as any
process does."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from eventsourcing_rs.persistence import OperationalError, StoredEvent
from eventsourcing_rs.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

INSERT = (
    "INSERT INTO stored_events (originator_id, originator_version, topic, state) "
    "VALUES (?, ?, ?, ?)"
)


def child_outcome(read_fd: int) -> str:
    with os.fdopen(read_fd) as pipe:
        return pipe.read()


def run_in_child(work: Any) -> str:
    """Forks; the child runs ``work`` and reports its result or error."""
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        os.close(read_fd)
        started = time.monotonic()
        try:
            outcome = f"ok {work()} {time.monotonic() - started:.2f}"
        except BaseException as error:
            outcome = f"{type(error).__name__} {time.monotonic() - started:.2f} {error}"
        os.write(write_fd, outcome.encode())
        os._exit(0)
    os.close(write_fd)
    outcome = child_outcome(read_fd)
    os.waitpid(pid, 0)
    return outcome


def make_recorder(tmp_path: Path) -> SQLiteApplicationRecorder:
    datastore = SQLiteDatastore(str(tmp_path / "db.sqlite"), lock_timeout=5)
    recorder = SQLiteApplicationRecorder(datastore)
    recorder.create_table()
    recorder.insert_events([StoredEvent(uuid.uuid4(), 1, "t", b"first")])
    return recorder


def test_a_child_forked_outside_transactions_writes(tmp_path: Path) -> None:
    recorder = make_recorder(tmp_path)
    outcome = run_in_child(
        lambda: recorder.insert_events([StoredEvent(uuid.uuid4(), 1, "t", b"child")])
    )
    assert outcome.startswith("ok [2]"), outcome
    assert [n.state for n in recorder.select_notifications(1, 10)] == [b"first", b"child"]


@pytest.mark.parametrize("commit", [True, False], ids=["write-transaction", "read-transaction"])
def test_a_child_forked_inside_a_transaction_says_it_cannot_write(
    tmp_path: Path, commit: bool
) -> None:
    recorder = make_recorder(tmp_path)
    datastore = recorder.datastore
    with datastore.transaction(commit=commit) as transaction:
        transaction.execute(INSERT, (uuid.uuid4().hex, 1, "t", b"parent"))

        def write_and_read() -> Any:
            try:
                recorder.insert_events([StoredEvent(uuid.uuid4(), 1, "t", b"child")])
            except OperationalError as error:
                assert "forked while a transaction" in str(error)
                return len(recorder.select_notifications(1, 10))
            return "wrote"

        outcome = run_in_child(write_and_read)
    # Refused at once (well within the lock timeout), reading still works,
    # and the parent's own transaction was untouched by the child.
    assert outcome.startswith("ok 1 "), outcome
    assert float(outcome.split()[2]) < 2.0
    states = [n.state for n in recorder.select_notifications(1, 10)]
    assert states == ([b"first", b"parent"] if commit else [b"first"])
    # The parent goes on writing.
    recorder.insert_events([StoredEvent(uuid.uuid4(), 1, "t", b"after")])


def test_the_child_cannot_commit_the_parents_transaction(tmp_path: Path) -> None:
    datastore = SQLiteDatastore(str(tmp_path / "db.sqlite"), lock_timeout=5)
    recorder = SQLiteApplicationRecorder(datastore)
    recorder.create_table()
    read_fd, write_fd = os.pipe()
    pid = -1
    try:
        with datastore.transaction(commit=True) as transaction:
            transaction.execute(INSERT, (uuid.uuid4().hex, 1, "t", b"parent"))
            pid = os.fork()
            if pid == 0:  # pragma: no cover - the child reports through the pipe
                os.close(read_fd)
                try:
                    transaction.execute("SELECT 1")
                    outcome = "used"
                except Exception as error:
                    outcome = type(error).__name__
                os.write(write_fd, outcome.encode())
                # Leaving the block in the child must not commit.
                raise SystemExit
    except SystemExit:  # pragma: no cover - the child only
        os._exit(0)
    except Exception as error:  # pragma: no cover - the child only
        os.write(write_fd, f" exit:{type(error).__name__}".encode())
        os._exit(0)
    os.close(write_fd)
    outcome = child_outcome(read_fd)
    os.waitpid(pid, 0)
    assert outcome.startswith("ProgrammingError"), outcome
    # The parent's transaction committed once, by the parent.
    assert [n.state for n in recorder.select_notifications(1, 10)] == [b"parent"]
