"""A process that forks while it has a SQLite transaction open: the child
inherits no lock (its copy of the transaction is ended), can write at once
once the parent commits, and can neither use nor commit the parent's
transaction."""

from __future__ import annotations

import os
import time
import uuid
from pathlib import Path

import pytest
from eventsourcing_rs.persistence import StoredEvent
from eventsourcing_rs.sqlite import SQLiteApplicationRecorder, SQLiteDatastore

INSERT = (
    "INSERT INTO stored_events (originator_id, originator_version, topic, state) "
    "VALUES (?, ?, ?, ?)"
)


def child_outcome(read_fd: int) -> str:
    with os.fdopen(read_fd) as pipe:
        return pipe.read()


@pytest.mark.parametrize("commit", [True, False], ids=["write-transaction", "read-transaction"])
def test_a_child_forked_inside_a_transaction_can_write_once_the_parent_is_done(
    tmp_path: Path, commit: bool
) -> None:
    datastore = SQLiteDatastore(str(tmp_path / "db.sqlite"), lock_timeout=5)
    recorder = SQLiteApplicationRecorder(datastore)
    recorder.create_table()
    recorder.insert_events([StoredEvent(uuid.uuid4(), 1, "t", b"first")])
    read_fd, write_fd = os.pipe()
    with datastore.transaction(commit=commit) as transaction:
        transaction.execute(INSERT, (uuid.uuid4().hex, 1, "t", b"parent"))
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child reports through the pipe
            os.close(read_fd)
            time.sleep(0.1)  # the parent ends its transaction meanwhile
            started = time.monotonic()
            try:
                recorder.insert_events([StoredEvent(uuid.uuid4(), 1, "t", b"child")])
                outcome = f"wrote {time.monotonic() - started:.2f}"
            except BaseException as error:
                outcome = f"failed {type(error).__name__}: {error}"
            os.write(write_fd, outcome.encode())
            os._exit(0)
    os.close(write_fd)
    outcome = child_outcome(read_fd)
    os.waitpid(pid, 0)
    assert outcome.startswith("wrote"), outcome
    # Well under the lock timeout: nothing inherited held the child up.
    assert float(outcome.split()[1]) < 2.0
    states = [n.state for n in recorder.select_notifications(1, 10)]
    assert states == ([b"first", b"parent", b"child"] if commit else [b"first", b"child"])


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
