"""PostgreSQL faults against real servers: wrong credentials, an
unreachable host, a database that does not exist, a server restarted
mid-run (with fsync on): each a clear error naming what failed, or, for a
restart, a reconnect that keeps every notification processed once."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any, Dict, Iterator
from uuid import uuid4

import pytest
from eventsourcing_rs.persistence import InterfaceError, StoredEvent
from eventsourcing_rs.postgres import PostgresApplicationRecorder, PostgresDatastore
from eventsourcing_rs.system import SingleThreadedRunner, System

from . import pg_server
from .system_fixtures import PIPES, Orders, Payments, Reservations, numbers

ROOT = Path(__file__).resolve().parent.parent
PORT = "5439"


def datastore(**overrides: Any) -> PostgresDatastore:
    s = {**pg_server.settings(), **overrides}
    return PostgresDatastore(s["dbname"], s["host"], s["port"], s["user"], s["password"])


def recorder(store: PostgresDatastore) -> PostgresApplicationRecorder:
    return PostgresApplicationRecorder(store, f"esrs_fault_{uuid4().hex[:10]}")


@pytest.fixture
def server() -> None:
    pg_server.require_server()


def test_wrong_credentials_name_the_database_host_and_user(server: None) -> None:
    store = datastore(password="not-the-password")
    with pytest.raises(InterfaceError) as info:
        recorder(store).select_notifications(1, 10)
    message = str(info.value)
    assert "eventsourcing" in message and "127.0.0.1" in message
    assert "password authentication failed" in message


def test_an_unreachable_host_names_the_address(server: None) -> None:
    store = datastore(port="1")
    with pytest.raises(InterfaceError, match=r"127\.0\.0\.1:1 .*refused"):
        recorder(store).max_notification_id()


def test_a_database_that_does_not_exist_is_named(server: None) -> None:
    store = datastore(dbname="no_such_database_here")
    with pytest.raises(InterfaceError, match="no_such_database_here") as info:
        recorder(store).insert_events([StoredEvent(uuid4(), 1, "t", b"x")])
    assert "does not exist" in str(info.value)


def test_a_missing_table_is_named(server: None) -> None:
    missing = recorder(datastore())
    with pytest.raises(Exception, match=missing.events_table_name):
        missing.select_notifications(1, 10)


@pytest.fixture(scope="module")
def durable_server() -> Iterator[Dict[str, str]]:
    """A private server with fsync on, on a port of its own, that a test
    may restart."""
    if shutil.which("pg_ctl") is None and not list(Path("/usr/lib/postgresql").glob("*/bin")):
        if os.environ.get("ESRS_REQUIRE_POSTGRES"):
            pytest.fail("PostgreSQL is not installed")
        pytest.skip("PostgreSQL is not installed")
    data = Path(f"/tmp/esrs-pg-durable-{os.getpid()}")
    env = dict(os.environ, ESRS_PG_DATA=str(data), ESRS_PG_PORT=PORT, ESRS_PG_FSYNC="on")
    script = [str(ROOT / "tests" / "pg_server.sh")]
    subprocess.run(["bash", *script, "start"], env=env, check=True, capture_output=True)
    try:
        yield env
    finally:
        subprocess.run(["bash", *script, "stop"], env=env, capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


def restart(env: Dict[str, str]) -> None:
    script = str(ROOT / "tests" / "pg_server.sh")
    subprocess.run(["bash", script, "stop"], env=env, check=True, capture_output=True)
    subprocess.run(["bash", script, "start"], env=env, check=True, capture_output=True)


def test_a_system_carries_on_across_a_server_restart_exactly_once(
    durable_server: Dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    s = pg_server.settings()
    for key, value in {
        "INFRASTRUCTURE_FACTORY": "eventsourcing_rs.postgres:Factory",
        "POSTGRES_DBNAME": s["dbname"],
        "POSTGRES_HOST": s["host"],
        "POSTGRES_PORT": PORT,
        "POSTGRES_USER": s["user"],
        "POSTGRES_PASSWORD": s["password"],
    }.items():
        monkeypatch.setenv(key, value)
    with pg_server.connect(port=PORT) as admin:
        fsync = admin.execute("SHOW fsync").fetchone()
        assert fsync is not None and fsync[0] == "on"
        for name in ("orders", "reservations", "payments"):
            for kind in ("events", "tracking"):
                admin.execute(f"DROP TABLE IF EXISTS {name}_{kind}")
        admin.execute("DROP TABLE IF EXISTS eventsourcing_leases")
    runner = SingleThreadedRunner(System(pipes=PIPES))
    runner.start()
    orders = runner.get(Orders)
    for i in range(30):
        orders.place(i)
    restart(durable_server)
    # The pooled connections' sessions are gone: each is replaced.
    for i in range(30, 60):
        orders.place(i)
    restart(durable_server)
    for i in range(60, 90):
        orders.place(i)
    assert numbers(runner.get(Reservations)) == list(range(90))
    assert numbers(runner.get(Payments)) == list(range(90))
    assert runner.get(Payments).recorder.max_tracking_id("Reservations") == 90
    runner.stop()
