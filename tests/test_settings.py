"""Every numeric and boolean setting is checked when the application is
constructed, with an error naming the variable and the value (an
EnvironmentError and a ValueError at once, as 9.1 raises one or the other)."""

from __future__ import annotations

from pathlib import Path
from typing import Dict

import pytest
from eventsourcing_rs.application import Application
from eventsourcing_rs.persistence import InvalidSetting

POSTGRES = {
    "INFRASTRUCTURE_FACTORY": "eventsourcing_rs.postgres:Factory",
    "POSTGRES_DBNAME": "db",
    "POSTGRES_HOST": "127.0.0.1",
    "POSTGRES_USER": "u",
    "POSTGRES_PASSWORD": "p",
    # Never reached: the checks come first.
    "CREATE_TABLE": "no",
}


def sqlite(tmp_path: Path) -> Dict[str, str]:
    return {
        "INFRASTRUCTURE_FACTORY": "eventsourcing_rs.sqlite:Factory",
        "SQLITE_DBNAME": str(tmp_path / "db.sqlite"),
    }


@pytest.mark.parametrize(
    "value", ["9" * 300, "-1", "1e300", "nan", "1.5", "abc", "10000000000000000000000"]
)
def test_an_absurd_sqlite_lock_timeout_is_refused_naming_it(tmp_path: Path, value: str) -> None:
    with pytest.raises(InvalidSetting, match="SQLITE_LOCK_TIMEOUT") as info:
        Application(env={**sqlite(tmp_path), "SQLITE_LOCK_TIMEOUT": value})
    assert isinstance(info.value, EnvironmentError) and isinstance(info.value, ValueError)
    assert value[:20] in str(info.value)


@pytest.mark.parametrize(
    "key",
    [
        "POSTGRES_LOCK_TIMEOUT",
        "POSTGRES_IDLE_IN_TRANSACTION_SESSION_TIMEOUT",
        "POSTGRES_CONN_MAX_AGE",
    ],
)
@pytest.mark.parametrize("value", ["nan", "1e300", "-5", "inf", "abc", "9" * 400])
def test_postgres_timeouts_are_checked_at_construction(key: str, value: str) -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(InvalidSetting, match=key):
        Application(env={**POSTGRES, key: value})


@pytest.mark.parametrize("value", ["0", "65536", "http", "-1", "9" * 50])
def test_a_bad_postgres_port_is_named(value: str) -> None:
    pytest.importorskip("psycopg")
    with pytest.raises(InvalidSetting, match=f"POSTGRES_PORT='{value[:10]}"):
        Application(env={**POSTGRES, "POSTGRES_PORT": value})


@pytest.mark.parametrize("key", ["IS_SNAPSHOTTING_ENABLED", "CREATE_TABLE", "POSTGRES_PRE_PING"])
def test_a_bad_truth_value_is_named(tmp_path: Path, key: str) -> None:
    env = {**POSTGRES} if key == "POSTGRES_PRE_PING" else sqlite(tmp_path)
    if key == "POSTGRES_PRE_PING":
        pytest.importorskip("psycopg")
    with pytest.raises(InvalidSetting, match=f"{key}='maybe'"):
        Application(env={**env, key: "maybe"})


def test_a_per_application_variable_is_named_as_set(tmp_path: Path) -> None:
    with pytest.raises(InvalidSetting, match="APPLICATION_IS_SNAPSHOTTING_ENABLED='perhaps'"):
        Application(env={**sqlite(tmp_path), "APPLICATION_IS_SNAPSHOTTING_ENABLED": "perhaps"})


def test_good_values_still_work(tmp_path: Path) -> None:
    app = Application(
        env={**sqlite(tmp_path), "SQLITE_LOCK_TIMEOUT": "7", "IS_SNAPSHOTTING_ENABLED": "yes"}
    )
    assert app.snapshots is not None
