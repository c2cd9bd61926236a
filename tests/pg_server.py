"""The PostgreSQL server the tests use: where it is, whether it answers, and
throwaway tables on it. ``tests/pg_server.sh start`` starts one.

Tests that need the server skip when none answers, unless
``ESRS_REQUIRE_POSTGRES`` is set (as CI does once it has started one), in
which case they fail.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Dict, List, Optional
from uuid import uuid4

import psycopg
import pytest
from eventsourcing_rs.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    ProcessRecorder,
)
from eventsourcing_rs.postgres import (
    PostgresAggregateRecorder,
    PostgresApplicationRecorder,
    PostgresDatastore,
    PostgresProcessRecorder,
)
from psycopg.conninfo import make_conninfo


def settings() -> Dict[str, str]:
    """Connection settings, from the POSTGRES_* environment variables,
    defaulting to the server tests/pg_server.sh starts."""
    return {
        "dbname": os.environ.get("POSTGRES_DBNAME", "eventsourcing"),
        "host": os.environ.get("POSTGRES_HOST", "127.0.0.1"),
        "port": os.environ.get("POSTGRES_PORT", "5432"),
        "user": os.environ.get("POSTGRES_USER", "eventsourcing"),
        "password": os.environ.get("POSTGRES_PASSWORD", "eventsourcing"),
    }


def application_env(port: Optional[str] = None) -> Dict[str, str]:
    """The environment that puts applications on the test server."""
    s = settings()
    return {
        "PERSISTENCE_MODULE": "eventsourcing_rs.postgres",
        "POSTGRES_DBNAME": s["dbname"],
        "POSTGRES_HOST": s["host"],
        "POSTGRES_PORT": port or s["port"],
        "POSTGRES_USER": s["user"],
        "POSTGRES_PASSWORD": s["password"],
    }


@functools.lru_cache(maxsize=1)
def unavailable() -> Optional[str]:
    """Why the server can't be used, or None when it answers."""
    s = settings()
    try:
        psycopg.connect(make_conninfo(**s), connect_timeout=3).close()
    except psycopg.Error as error:
        return (
            f"no PostgreSQL server at {s['host']}:{s['port']} (database "
            f"{s['dbname']!r}, user {s['user']!r}); start one with "
            f"'tests/pg_server.sh start': {str(error).strip()}"
        )
    return None


def require_server() -> None:
    """Skips the calling test when no server answers (fails instead when
    ESRS_REQUIRE_POSTGRES is set)."""
    reason = unavailable()
    if reason is None:
        return
    if os.environ.get("ESRS_REQUIRE_POSTGRES"):
        pytest.fail(reason)
    pytest.skip(reason)


def connect(**overrides: Any) -> psycopg.Connection[Any]:
    """A plain psycopg connection (autocommit) to the test database."""
    conninfo = make_conninfo(**{**settings(), **overrides})
    return psycopg.connect(conninfo, autocommit=True)


def datastore(**options: Any) -> PostgresDatastore:
    s = settings()
    return PostgresDatastore(s["dbname"], s["host"], s["port"], s["user"], s["password"], **options)


def drop_tables(names: List[str]) -> None:
    with connect() as conn:
        for name in names:
            conn.execute(f"DROP TABLE IF EXISTS {name}")


def drop_application_tables(applications: List[str]) -> None:
    """The tables of these applications, and the leases table, where
    workers of any system on this database (a benchmark's, another test's)
    keep their leases and the number of segments they ran followers in."""
    drop_tables(
        [
            f"{name.lower()}_{kind}"
            for name in applications
            for kind in ("events", "snapshots", "tracking")
        ]
        + ["eventsourcing_leases"]
    )


class PostgresStore:
    """Recorders on tables of their own, with names no other test uses
    (so tests may run side by side on one database), dropped by close()."""

    def __init__(self) -> None:
        self.datastore = datastore()
        self.tables: List[str] = []

    def table(self, suffix: str) -> str:
        name = f"esrs_test_{uuid4().hex[:12]}_{suffix}"
        self.tables.append(name)
        return name

    def aggregate_recorder(self) -> AggregateRecorder:
        recorder = PostgresAggregateRecorder(self.datastore, self.table("snapshots"))
        recorder.create_table()
        return recorder

    def application_recorder(self) -> ApplicationRecorder:
        recorder = PostgresApplicationRecorder(self.datastore, self.table("events"))
        recorder.create_table()
        return recorder

    def process_recorder(self) -> ProcessRecorder:
        recorder = PostgresProcessRecorder(
            self.datastore, self.table("events"), self.table("tracking")
        )
        recorder.create_table()
        return recorder

    def close(self) -> None:
        self.datastore.close_all_connections()
        drop_tables(self.tables)
