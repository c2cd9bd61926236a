"""Leases: which worker is the active instance of a follower.

Two workers may be started for one follower (a standby, an overlapping
deploy, a process wrongly thought dead). The one holding the follower's
lease processes; the others wait, and take the lease over once it has not
been renewed for its duration. Each takeover raises the lease's *epoch*,
and the active worker's process recorder checks its epoch in the same
transaction as every tracking write (its *fence*): a worker paused past its
lease, and replaced, cannot commit when it resumes, and steps down.

The leases live in the follower's own database, in one table
(``eventsourcing_leases``: name, owner, epoch, expiry), so the check and the
write it guards are in one transaction. Time is the database server's on
PostgreSQL; on SQLite, which is one machine's, it is that machine's clock.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, List, Optional

from eventsourcing_rs.persistence import ProcessRecorder

LEASES_TABLE = "eventsourcing_leases"


def new_owner_name() -> str:
    """A name for a worker: host, process id and a random part, so that a
    restarted process with a reused pid is another owner."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class LeaseHolder:
    """Who holds a lease, at which epoch, and for how much longer."""

    owner: str
    epoch: int
    seconds_left: float


class LeaseBook(ABC):
    """The leases table of one database."""

    table = LEASES_TABLE

    @abstractmethod
    def create_table(self) -> None:
        """Creates the table if it does not exist."""

    @abstractmethod
    def acquire(self, name: str, owner: str, seconds: float) -> Optional[int]:
        """Takes (or renews) lease ``name`` for ``owner`` for ``seconds``
        if it is free, lapsed or already the owner's; returns its epoch,
        raised by one when the lease changes hands, or None if another
        owner holds it."""

    @abstractmethod
    def renew(self, name: str, owner: str, epoch: int, seconds: float) -> bool:
        """Extends the lease if ``owner`` still holds it at ``epoch``;
        False if it was taken over."""

    @abstractmethod
    def release(self, name: str, owner: str, epoch: int) -> None:
        """Ends the lease now (if still held), so a standby need not wait
        for it to lapse."""

    @abstractmethod
    def holder(self, name: str) -> Optional[LeaseHolder]:
        """The lease's holder, or None if it was never taken."""

    @abstractmethod
    def live_holders(self, prefix: str) -> List[str]:
        """The owner of each lease held whose name starts with ``prefix``."""

    @abstractmethod
    def _read_epoch(self, name: str) -> Optional[int]:
        """The epoch of row ``name``, or None."""

    @abstractmethod
    def _write_epoch(self, name: str, owner: str, epoch: int) -> None:
        """Sets row ``name`` to ``epoch`` for ever."""

    def recorded_segments(self, follower_name: str) -> Optional[int]:
        """The number of segments the follower last ran with, if recorded."""
        return self._read_epoch(f"{follower_name}/segments")

    def record_segments(self, follower_name: str, count: int) -> None:
        self._write_epoch(f"{follower_name}/segments", "segments", count)


class SQLiteLeaseBook(LeaseBook):
    """Leases in an SQLite database, through its datastore's connections."""

    def __init__(self, datastore: Any):
        self.datastore = datastore

    def _run(self, sql: str, params: tuple[Any, ...] = ()) -> Any:
        """A write: its first row."""
        with self.datastore.transaction(commit=True) as c:
            c.execute(sql, params)
            return c.fetchone()

    def _read(self, sql: str, params: tuple[Any, ...] = ()) -> List[Any]:
        """A read, on a reader connection (runners' lag polls read leases
        often, and must not queue behind writers for the write lock)."""
        with self.datastore.transaction(commit=False) as c:
            c.execute(sql, params)
            return list(c.fetchall())

    def create_table(self) -> None:
        self._run(
            f"CREATE TABLE IF NOT EXISTS {self.table} (name TEXT PRIMARY KEY, "
            "owner TEXT NOT NULL, epoch INTEGER NOT NULL, expires_at REAL NOT NULL)"
        )

    def acquire(self, name: str, owner: str, seconds: float) -> Optional[int]:
        now = time.time()
        row = self._run(
            f"INSERT INTO {self.table} AS l (name, owner, epoch, expires_at) "
            "VALUES (?1, ?2, 1, ?3 + ?4) ON CONFLICT (name) DO UPDATE SET "
            "epoch = CASE WHEN l.owner = excluded.owner THEN l.epoch ELSE l.epoch + 1 END, "
            "owner = excluded.owner, expires_at = excluded.expires_at "
            "WHERE l.owner = excluded.owner OR l.expires_at < ?3 RETURNING epoch",
            (name, owner, now, float(seconds)),
        )
        return None if row is None else int(row[0])

    def renew(self, name: str, owner: str, epoch: int, seconds: float) -> bool:
        row = self._run(
            f"UPDATE {self.table} SET expires_at = ?4 WHERE name = ?1 AND owner = ?2 "
            "AND epoch = ?3 RETURNING epoch",
            (name, owner, epoch, time.time() + float(seconds)),
        )
        return row is not None

    def release(self, name: str, owner: str, epoch: int) -> None:
        self._run(
            f"UPDATE {self.table} SET expires_at = 0 WHERE name = ?1 AND owner = ?2 AND epoch = ?3",
            (name, owner, epoch),
        )

    def holder(self, name: str) -> Optional[LeaseHolder]:
        rows = self._read(
            f"SELECT owner, epoch, expires_at FROM {self.table} WHERE name = ?1", (name,)
        )
        if not rows:
            return None
        row = rows[0]
        return LeaseHolder(str(row[0]), int(row[1]), max(0.0, float(row[2]) - time.time()))

    def live_holders(self, prefix: str) -> List[str]:
        rows = self._read(
            f"SELECT owner FROM {self.table} WHERE substr(name, 1, ?2) = ?1 AND expires_at >= ?3",
            (prefix, len(prefix), time.time()),
        )
        return [str(row[0]) for row in rows]

    def _read_epoch(self, name: str) -> Optional[int]:
        rows = self._read(f"SELECT epoch FROM {self.table} WHERE name = ?1", (name,))
        return int(rows[0][0]) if rows else None

    def _write_epoch(self, name: str, owner: str, epoch: int) -> None:
        self._run(
            f"INSERT INTO {self.table} (name, owner, epoch, expires_at) VALUES (?1, ?2, ?3, 1e300) "
            "ON CONFLICT (name) DO UPDATE SET epoch = excluded.epoch",
            (name, owner, epoch),
        )


class PostgresLeaseBook(LeaseBook):
    """Leases in a PostgreSQL database, timed by the server's clock."""

    def __init__(self, datastore: Any):
        self.datastore = datastore

    def _int(self, sql: str, params: list[Any], doing: str) -> int:
        return int(
            self.datastore.native.query_int(sql, params, f"{doing} in table '{self.table}' failed")
        )

    def create_table(self) -> None:
        # CREATE ... IF NOT EXISTS races with itself: workers starting at
        # once take turns through the advisory lock.
        self.datastore.native.execute_batch(
            "BEGIN; SELECT pg_advisory_xact_lock(hashtext('eventsourcing_rs.create_table:"
            f"{self.table}')); CREATE TABLE IF NOT EXISTS {self.table} ("
            "name text PRIMARY KEY, owner text NOT NULL, epoch bigint NOT NULL, "
            "expires_at timestamptz NOT NULL); COMMIT",
            f"Creating table '{self.table}' failed",
        )

    def acquire(self, name: str, owner: str, seconds: float) -> Optional[int]:
        epoch = self._int(
            f"INSERT INTO {self.table} AS l (name, owner, epoch, expires_at) "
            "VALUES ($1::text, $2::text, 1, "
            "clock_timestamp() + make_interval(secs => $3::bigint / 1000.0)) "
            "ON CONFLICT (name) DO UPDATE SET "
            "epoch = CASE WHEN l.owner = excluded.owner THEN l.epoch ELSE l.epoch + 1 END, "
            "owner = excluded.owner, expires_at = excluded.expires_at "
            "WHERE l.owner = excluded.owner OR l.expires_at < clock_timestamp() "
            "RETURNING epoch",
            [name, owner, _milliseconds(seconds)],
            f"Taking the lease of '{name}'",
        )
        return epoch or None

    def renew(self, name: str, owner: str, epoch: int, seconds: float) -> bool:
        found = self._int(
            f"UPDATE {self.table} SET expires_at = clock_timestamp() + "
            "make_interval(secs => $4::bigint / 1000.0) WHERE name = $1::text AND owner = $2::text "
            "AND epoch = $3::bigint RETURNING epoch",
            [name, owner, epoch, _milliseconds(seconds)],
            f"Renewing the lease of '{name}'",
        )
        return found == epoch

    def release(self, name: str, owner: str, epoch: int) -> None:
        self._int(
            f"UPDATE {self.table} SET expires_at = clock_timestamp() - interval '1 second' "
            "WHERE name = $1::text "
            "AND owner = $2::text AND epoch = $3::bigint RETURNING epoch",
            [name, owner, epoch],
            f"Releasing the lease of '{name}'",
        )

    def holder(self, name: str) -> Optional[LeaseHolder]:
        epoch = self._int(
            f"SELECT epoch FROM {self.table} WHERE name = $1::text",
            [name],
            f"Reading the lease of '{name}'",
        )
        if not epoch:
            return None
        left = self._int(
            "SELECT GREATEST(0, EXTRACT(EPOCH FROM GREATEST(LEAST(expires_at, clock_timestamp() "
            "+ interval '100 years'), clock_timestamp()) - clock_timestamp()) * 1000)"
            f"::bigint FROM {self.table} WHERE name = $1::text",
            [name],
            f"Reading the lease of '{name}'",
        )
        owner = self.datastore.native.query_text(
            f"SELECT owner FROM {self.table} WHERE name = $1::text",
            [name],
            f"Reading the lease of '{name}' in table '{self.table}' failed",
        )
        return LeaseHolder(owner or "", epoch, left / 1000.0)

    def live_holders(self, prefix: str) -> List[str]:
        # One text of all owners, newline-separated: the Rust client's
        # queries give single values.
        owners = self.datastore.native.query_text(
            f"SELECT string_agg(owner, E'\\n') FROM {self.table} "
            "WHERE left(name, length($1::text)) = $1::text AND expires_at >= clock_timestamp()",
            [prefix],
            f"Reading the leases in table '{self.table}' failed",
        )
        return owners.split("\n") if owners else []

    def _read_epoch(self, name: str) -> Optional[int]:
        epoch = self._int(
            f"SELECT epoch FROM {self.table} WHERE name = $1::text",
            [name],
            f"Reading '{name}'",
        )
        return epoch or None

    def _write_epoch(self, name: str, owner: str, epoch: int) -> None:
        self._int(
            f"INSERT INTO {self.table} (name, owner, epoch, expires_at) "
            "VALUES ($1::text, $2::text, $3::bigint, 'infinity') "
            "ON CONFLICT (name) DO UPDATE SET epoch = excluded.epoch RETURNING epoch",
            [name, owner, epoch],
            f"Writing '{name}'",
        )


def _milliseconds(seconds: float) -> int:
    # The Rust client sends integers; the server divides.
    return max(1, round(seconds * 1000))


def lease_book_for(recorder: ProcessRecorder) -> Optional[LeaseBook]:
    """The lease book of the database ``recorder`` writes to, or None for a
    store that processes cannot share (in memory)."""
    from eventsourcing_rs.postgres import PostgresProcessRecorder
    from eventsourcing_rs.sqlite import SQLiteProcessRecorder

    if isinstance(recorder, PostgresProcessRecorder):
        return PostgresLeaseBook(recorder.datastore)
    if isinstance(recorder, SQLiteProcessRecorder):
        if recorder.datastore.is_sqlite_memory_mode:
            return None
        return SQLiteLeaseBook(recorder.datastore)
    return None
