"""What one durable commit costs on this machine's disk.

The durable SQLite rows of the comparison (saving one aggregate at a time,
and the pipelines fed that way) commit once per save, and each commit
waits for the disk to sync the log. Whatever the library does around it,
a save cannot take less than that sync; this prints it, measured three
ways, so the ceiling of those rows can be read off:

    python benches/commit_floor.py [--commits 2000] [--dir DIR]

- a bare 12 KiB write and fsync, appended to a file, and overwriting it;
  the same with fdatasync, which is what SQLite calls here (built with
  HAVE_FDATASYNC, as its configure script does on Linux);
- one event inserted by the SQLite process recorder (``synchronous=FULL``),
  first while the log grows, then again once checkpoints have let SQLite
  write the log from its start.

A save of one aggregate in the reference took about 260-340 µs on this
machine; the best possible ratio for a durable row is that time divided by
the floor printed here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
import uuid
from typing import Callable

from eventsourcing_rs.persistence import StoredEvent
from eventsourcing_rs.sqlite import SQLiteDatastore, SQLiteProcessRecorder


def bare_sync(path: str, count: int, append: bool, sync: Callable[[int], None]) -> float:
    block = b"x" * (12 * 1024)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    try:
        if not append:
            for _ in range(count):
                os.write(fd, block)
            os.fsync(fd)
        started = time.perf_counter()
        for i in range(count):
            if append:
                os.write(fd, block)
            else:
                os.pwrite(fd, block, i * len(block))
            sync(fd)
        return (time.perf_counter() - started) / count
    finally:
        os.close(fd)
        os.unlink(path)


def recorder_commits(directory: str, count: int) -> tuple[float, float]:
    datastore = SQLiteDatastore(os.path.join(directory, "floor.db"))
    recorder = SQLiteProcessRecorder(datastore)
    recorder.create_table()

    def insert(n: int) -> float:
        started = time.perf_counter()
        for _ in range(n):
            recorder.insert_events(
                [
                    StoredEvent(
                        originator_id=uuid.uuid4(),
                        originator_version=1,
                        topic="floor:Event",
                        state=b'{"a": 1}',
                    )
                ]
            )
        return (time.perf_counter() - started) / n

    # A few pages of log per commit: the first hundred commits stay well
    # inside the first 1000 pages, before any checkpoint.
    growing = insert(100)
    # Enough commits for checkpoints to have let the log start over.
    insert(count)
    reused = insert(100)
    datastore.close_all_connections()
    return growing, reused


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--commits", type=int, default=2000)
    parser.add_argument("--dir", default=None, help="where to write (a temporary directory)")
    args = parser.parse_args()
    directory = tempfile.mkdtemp(prefix="esrs-floor-", dir=args.dir)
    try:
        path = os.path.join(directory, "fsync.bin")
        rows = [
            (f"write+{sync.__name__}, {how}", bare_sync(path, args.commits, append, sync))
            for sync in (os.fsync, os.fdatasync)
            for how, append in (("appending", True), ("overwriting", False))
        ]
        growing, reused = recorder_commits(directory, args.commits)
        rows += [
            ("SQLite insert of one event, log growing", growing),
            ("SQLite insert of one event, log reused", reused),
        ]
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    for label, seconds in rows:
        print(f"{label:45} {seconds * 1e6:8.1f} µs")


if __name__ == "__main__":
    main()
