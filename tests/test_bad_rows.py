"""One bad row in a leader's table (a NULL or text version, a NULL topic
or state, a bad originator id): the follower processes every row before
it, then stops at it with an error naming the notification and column;
once the row is repaired it resumes there, exactly once."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Dict, List, Tuple

import pytest
from eventsourcing_rs.application import Application
from eventsourcing_rs.domain import Aggregate, AggregateEvent, event
from eventsourcing_rs.persistence import DataError
from eventsourcing_rs.system import ProcessApplication, ProcessEvent, SingleThreadedRunner, System


class Note(Aggregate):
    @event("Written")
    def __init__(self, text: str):
        self.text = text


class Notes(Application):
    def write(self, text: str) -> Any:
        note = Note(text)
        self.save(note)
        return note.id


class Reader(ProcessApplication):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read: List[str] = []

    def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
        self.read.append(domain_event.text)  # type: ignore[attr-defined]


# Column, the value that breaks it, and what the error says it is.
BREAKAGES: List[Tuple[str, Any, str]] = [
    ("originator_version", None, "originator_version is NULL, not an integer"),
    ("originator_version", "one", "originator_version is text, not an integer"),
    ("topic", None, "topic is NULL, not text"),
    ("state", None, "state is NULL, not bytes"),
    ("originator_id", "not-a-uuid", "originator_id is text, not a UUID"),
    ("originator_id", None, "originator_id is NULL, not a UUID"),
]


def env(tmp_path: Path) -> Dict[str, str]:
    return {
        "INFRASTRUCTURE_FACTORY": "eventsourcing_rs.sqlite:Factory",
        "NOTES_SQLITE_DBNAME": str(tmp_path / "notes.db"),
        "READER_SQLITE_DBNAME": str(tmp_path / "reader.db"),
    }


@pytest.mark.parametrize("batch", [1000, 1], ids=["batched", "one-at-a-time"])
@pytest.mark.parametrize("column,value,says", BREAKAGES, ids=lambda v: str(v)[:20])
def test_a_bad_row_stops_the_follower_at_it_after_the_rows_before(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    batch: int,
    column: str,
    value: Any,
    says: str,
) -> None:
    for key, setting in env(tmp_path).items():
        monkeypatch.setenv(key, setting)
    monkeypatch.setattr(Reader, "pull_batch_size", batch)
    notes = Notes()
    for text in ("one", "two", "three", "four"):
        notes.write(text)
    # Break notification 3 as someone with write access to the table would.
    with notes.recorder.datastore.transaction(commit=True) as t:
        t.execute(f"SELECT {column} FROM stored_events WHERE rowid = 3")
        (original,) = t.fetchall()[0]
        t.execute(f"UPDATE stored_events SET {column} = ? WHERE rowid = 3", (value,))

    runner = SingleThreadedRunner(System(pipes=[[Notes, Reader]]))
    with pytest.raises(DataError) as info:
        runner.start()
    error: Any = info.value
    assert error.notification_id == 3
    assert says in str(error)
    assert "notification 3" in str(error)
    reader = runner.get(Reader)
    assert reader.read == ["one", "two"]
    assert reader.recorder.max_tracking_id("Notes") == 2

    # Repaired, it resumes at the bad row: each note read once.
    with notes.recorder.datastore.transaction(commit=True) as t:
        t.execute(f"UPDATE stored_events SET {column} = ? WHERE rowid = 3", (original,))
    runner.receive_prompt("Notes")
    assert reader.read == ["one", "two", "three", "four"]
    assert reader.recorder.max_tracking_id("Notes") == 4
    runner.stop()


def test_a_bad_row_is_named_by_select_notifications_too(tmp_path: Path) -> None:
    notes = Application(env={**env(tmp_path), "SQLITE_DBNAME": str(tmp_path / "app.db")})
    recorder = notes.recorder
    for _ in range(3):
        notes.save(Note("x"))
    with recorder.datastore.transaction(commit=True) as t:  # type: ignore[attr-defined]
        t.execute("UPDATE stored_events SET topic = NULL WHERE rowid = 2")
    assert [n.id for n in recorder.select_notifications(1, 10)] == [1]
    with pytest.raises(DataError, match="notification 2 .*topic is NULL") as info:
        recorder.select_notifications(2, 10)
    assert info.value.notification_id == 2  # type: ignore[attr-defined]
    assert uuid.UUID(str(recorder.select_notifications(3, 10)[0].originator_id))
