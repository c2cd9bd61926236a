"""Selecting the store: PERSISTENCE_MODULE (the setting of the reference's
later versions) as an alias of INFRASTRUCTURE_FACTORY's module, and a
missing client library named, with the package to install, in the error's
first line."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from eventsourcing_rs.application import Application
from eventsourcing_rs.popo import POPOApplicationRecorder
from eventsourcing_rs.sqlite import SQLiteApplicationRecorder


def test_persistence_module_selects_the_store(tmp_path: Path) -> None:
    app = Application(
        env={
            "PERSISTENCE_MODULE": "eventsourcing_rs.sqlite",
            "SQLITE_DBNAME": str(tmp_path / "app.db"),
        }
    )
    assert isinstance(app.recorder, SQLiteApplicationRecorder)
    same = Application(
        env={
            "PERSISTENCE_MODULE": "eventsourcing_rs.sqlite",
            "INFRASTRUCTURE_FACTORY": "eventsourcing_rs.sqlite:Factory",
            "SQLITE_DBNAME": str(tmp_path / "app.db"),
        }
    )
    assert isinstance(same.recorder, SQLiteApplicationRecorder)
    assert isinstance(
        Application(env={"PERSISTENCE_MODULE": "eventsourcing_rs.popo"}).recorder,
        POPOApplicationRecorder,
    )


def test_persistence_module_naming_another_store_than_the_factory_is_refused() -> None:
    with pytest.raises(EnvironmentError, match="PERSISTENCE_MODULE.*different stores"):
        Application(
            env={
                "PERSISTENCE_MODULE": "eventsourcing_rs.sqlite",
                "INFRASTRUCTURE_FACTORY": "eventsourcing_rs.popo:Factory",
            }
        )


def test_an_unknown_persistence_module_is_named() -> None:
    with pytest.raises(EnvironmentError, match="'no_such_store:Factory'.*PERSISTENCE_MODULE"):
        Application(env={"PERSISTENCE_MODULE": "no_such_store"})


@pytest.mark.parametrize("variable", ["INFRASTRUCTURE_FACTORY", "PERSISTENCE_MODULE"])
def test_the_postgres_store_loads_without_psycopg(variable: str) -> None:
    value = (
        "eventsourcing_rs.postgres:Factory"
        if variable == "INFRASTRUCTURE_FACTORY"
        else "eventsourcing_rs.postgres"
    )
    # A process in which psycopg cannot be imported, as without the extra:
    # the store's client is Rust, so what is missing is its configuration.
    program = textwrap.dedent(
        f"""
        import sys
        sys.modules["psycopg"] = None
        from eventsourcing_rs.application import Application
        try:
            Application(env={{{variable!r}: {value!r}}})
        except OSError as error:
            print(str(error).splitlines()[0])
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    first_line = out.stdout.strip()
    assert "POSTGRES_DBNAME" in first_line, first_line
    assert "psycopg" not in first_line
