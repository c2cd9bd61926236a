"""Group commit across concurrent writers: saves from many threads share
commits, each keeps its own outcome, every save that returned survives a
SIGKILL, and a reader following the writers never sees ids out of order."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple
from uuid import UUID

import pytest
from eventsourcing_rs.application import Application
from eventsourcing_rs.domain import Aggregate, event
from eventsourcing_rs.persistence import IntegrityError

from . import pg_server

ROOT = Path(__file__).resolve().parent.parent


class Item(Aggregate):
    @event("Made")
    def __init__(self, n: int):
        self.n = n

    @event("Changed")
    def change(self) -> None:
        pass


class Items(Application):
    pass


def store_env(kind: str, directory: Path) -> Dict[str, str]:
    if kind == "postgres":
        pg_server.require_server()
        pg_server.drop_tables(["items_events", "items_snapshots"])
        return pg_server.application_env()
    return {
        "PERSISTENCE_MODULE": "eventsourcing_rs.sqlite",
        "SQLITE_DBNAME": str(directory / "items.db"),
    }


def commit_counts(app: Application) -> Optional[Tuple[int, int]]:
    datastore: Any = getattr(app.recorder, "datastore", None)
    native = getattr(datastore, "_datastore", None) or getattr(datastore, "_native", None)
    counts = getattr(native, "group_commit_counts", None)
    return None if counts is None else tuple(counts)  # type: ignore[return-value]


@pytest.fixture(params=["sqlite", "postgres"])
def env(request: pytest.FixtureRequest, tmp_path: Path) -> Dict[str, str]:
    return store_env(request.param, tmp_path)


def test_a_conflicting_save_fails_alone_and_the_others_of_its_group_commit(
    env: Dict[str, str],
) -> None:
    app = Items(env=env)
    stale = []
    for n in range(40):
        item = Item(n)
        app.save(item)
        copy = app.repository.get(item.id)
        item.change()
        app.save(item)
        copy.change()  # the same version as the one just saved
        stale.append(copy)
    before = app.recorder.max_notification_id()
    start = threading.Barrier(9)
    failures: List[BaseException] = []
    saved: List[UUID] = []
    lock = threading.Lock()

    def save_new(k: int) -> None:
        start.wait()
        for n in range(50):
            item = Item(1000 * k + n)
            app.save(item)
            with lock:
                saved.append(item.id)

    def save_stale() -> None:
        start.wait()
        for copy in stale:
            try:
                app.save(copy)
            except IntegrityError as error:
                with lock:
                    failures.append(error)

    threads = [threading.Thread(target=save_new, args=(k,)) for k in range(8)]
    threads.append(threading.Thread(target=save_stale))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(failures) == 40
    assert len(saved) == 400
    for item_id in saved:
        assert app.repository.get(item_id).version == 1
    for copy in stale:
        assert app.repository.get(copy.id).version == 2
    assert app.recorder.max_notification_id() == before + 400
    counts = commit_counts(app)
    assert counts is not None
    commits, writes = counts
    assert commits < writes, "no two saves shared a commit"


def test_a_reader_following_the_writers_never_sees_ids_out_of_order(
    env: Dict[str, str],
) -> None:
    app = Items(env=env)
    reader = Items(env=env)
    done = threading.Event()
    seen: List[int] = []
    problems: List[str] = []

    def follow() -> None:
        last = 0
        while True:
            finished = done.is_set()
            page = reader.recorder.select_notifications(last + 1, 1000)
            for notification in page:
                if notification.id != last + 1:
                    problems.append(f"after {last} came {notification.id}")
                last = notification.id
                seen.append(last)
            if finished and not page:
                return

    def write(k: int) -> None:
        for n in range(150):
            app.save(Item(1000 * k + n))

    follower = threading.Thread(target=follow)
    follower.start()
    writers = [threading.Thread(target=write, args=(k,)) for k in range(8)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    done.set()
    follower.join()
    assert problems == []
    assert seen == list(range(1, 1201))


CRASHING_WRITER = """
import os, sys, threading
sys.path.insert(0, {root!r})
from tests.test_concurrent_writers import Item, Items
app = Items()
app.save(Item(-1))
print("ready", flush=True)
lock = threading.Lock()
def write(k):
    n = 0
    while True:
        item = Item(n)
        app.save(item)
        with lock:
            os.write(1, (str(item.id) + "\\n").encode())
        n += 1
for k in range(16):
    threading.Thread(target=write, args=(k,), daemon=True).start()
threading.Event().wait()
"""


def test_every_save_that_returned_survives_a_sigkill(env: Dict[str, str]) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", CRASHING_WRITER.format(root=str(ROOT))],
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == b"ready"
    time.sleep(1.0)
    process.send_signal(signal.SIGKILL)
    out, _ = process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    lines = out.decode().split("\n")
    # The last line may have been cut short by the kill.
    returned = [UUID(line) for line in lines[:-1] if line]
    assert len(returned) > 100
    app = Items(env=env)
    for item_id in returned:
        assert app.repository.get(item_id).version == 1
