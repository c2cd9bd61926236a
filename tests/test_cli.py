"""The eventsourcing-rs command line, driven as a user would drive it: real
subprocesses, a pseudo-terminal for --watch, SIGINT to stop."""

from __future__ import annotations

import json
import os
import pty
import select
import signal
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Dict, List

import pytest
from eventsourcing_rs.examples.bank import LARGE_AMOUNT, Accounts, CardPayments, FraudCheck

from .process_harness import ROOT, WORKER_COMMAND

pytestmark = pytest.mark.processes

TARGET = "eventsourcing_rs.examples.bank:system"


def sqlite_env(directory: Path) -> Dict[str, str]:
    env = {"PERSISTENCE_MODULE": "eventsourcing_rs.sqlite"}
    for name in ("Accounts", "CardPayments", "FraudCheck"):
        env[f"{name.upper()}_SQLITE_DBNAME"] = str(directory / f"{name.lower()}.db")
    return env


def command(*args: str, env: Dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [WORKER_COMMAND, *args],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def status(directory: Path) -> List[Dict[str, Any]]:
    done = command(
        "status",
        TARGET,
        "--store",
        "sqlite",
        "--sqlite-dir",
        str(directory),
        "--json",
        "--interval",
        "0.2",
        env={},
    )
    assert done.returncode == 0, done.stderr
    rows: List[Dict[str, Any]] = json.loads(done.stdout)
    return rows


def test_run_status_watch_and_sigint_end_to_end(tmp_path: Path) -> None:
    env = sqlite_env(tmp_path)
    accounts, cards = Accounts(env=env), CardPayments(env=env)
    ids = [accounts.open_account(f"owner {i}") for i in range(40)]
    large = 0
    for i, account_id in enumerate(ids):
        accounts.deposit(account_id, Decimal("5000"))
        amount = Decimal(1500 if i % 4 == 0 else 10)
        accounts.withdraw(account_id, amount)
        large += amount >= LARGE_AMOUNT
        paid = Decimal(600 if i % 5 == 0 else 2000 if i % 7 == 0 else 5)
        cards.pay(account_id, paid, "shop")
        large += paid >= LARGE_AMOUNT

    # Nothing runs yet: the fraud check lags both leaders.
    before = {row["leader_name"]: row for row in status(tmp_path)}
    assert before["Accounts"]["lag"] == 120 and before["Accounts"]["follower_position"] == 0
    assert before["CardPayments"]["lag"] == 40
    assert before["Accounts"]["eta_seconds"] is None

    log = open(tmp_path / "run.log", "wb")  # noqa: SIM115 - closed below
    running = subprocess.Popen(
        [WORKER_COMMAND, "run", TARGET, "--runner", "processes"]
        + ["--store", "sqlite", "--sqlite-dir", str(tmp_path)],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            rows = status(tmp_path)
            if all(row["lag"] == 0 for row in rows):
                break
            assert time.monotonic() < deadline, rows
        assert {row["leader_name"]: row["follower_position"] for row in rows} == {
            "Accounts": 120,
            "CardPayments": 40,
        }
        # More events while it runs are processed too.
        accounts.withdraw(ids[1], Decimal("2000"))
        large += 1

        # --watch in a pseudo-terminal: live bars until SIGINT.
        pid, fd = pty.fork()
        if pid == 0:  # pragma: no cover - the child
            os.chdir(ROOT)
            os.execv(
                WORKER_COMMAND,
                [WORKER_COMMAND, "status", TARGET, "--store", "sqlite"]
                + ["--sqlite-dir", str(tmp_path), "--watch", "--interval", "0.2"],
            )
        screen = b""
        deadline = time.monotonic() + 30
        while b"caught up" not in screen or b"121/121" not in screen:
            assert time.monotonic() < deadline, screen.decode(errors="replace")
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    screen += os.read(fd, 65536)
                except OSError:
                    break
        os.kill(pid, signal.SIGINT)
        _, code = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(code) == 0
        text = screen.decode(errors="replace")
        assert "Accounts -> FraudCheck" in text and "CardPayments -> FraudCheck" in text
        assert "\x1b[" in text, "no terminal control sequences: not drawn live"
    finally:
        running.send_signal(signal.SIGINT)
        code = running.wait(60)
        log.close()
    assert code == 0, (tmp_path / "run.log").read_text()
    fraud = FraudCheck(env=env)
    alerts = sum(len(fraud.alerts(account_id)) for account_id in ids)
    assert alerts == large
    assert fraud.recorder.max_tracking_id("Accounts") == 121
    assert "Running" in (tmp_path / "run.log").read_text()


@pytest.mark.parametrize(
    "args, env, said, code",
    [
        (["status", "no_such_module:system"], {}, "cannot import module 'no_such_module'", 2),
        (["run", f"{TARGET}x"], {}, "has no attribute 'systemx'", 2),
        (["run", TARGET, "--runner", "fast"], {}, "unknown runner 'fast'", 2),
        (["run", TARGET, "--store", "sqlite"], {}, "--store sqlite needs --sqlite-dir", 2),
        (
            ["status", TARGET, "--store", "postgres"],
            {},
            "key 'POSTGRES_DBNAME'",
            1,
        ),
        (
            ["status", TARGET, "--store", "postgres"],
            {
                "POSTGRES_DBNAME": "eventsourcing",
                "POSTGRES_HOST": "127.0.0.1",
                "POSTGRES_PORT": "1",
                "POSTGRES_USER": "u",
                "POSTGRES_PASSWORD": "p",
            },
            "cannot open the store of application 'Accounts'",
            1,
        ),
        (
            ["run", TARGET, "--runner", "processes", "--store", "memory"],
            {},
            "in-memory store",
            1,
        ),
    ],
)
def test_errors_are_one_line_and_exit_non_zero(
    args: List[str], env: Dict[str, str], said: str, code: int
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("POSTGRES_")}
    done = subprocess.run(
        [WORKER_COMMAND, *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stderr.strip().splitlines()
    assert done.returncode == code, done.stderr
    assert len(lines) == 1 and said in lines[0], done.stderr
    assert lines[0].startswith("eventsourcing-rs: error:")
    debug = subprocess.run(
        [WORKER_COMMAND, *args, "--debug"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert debug.returncode != 0 and "Traceback" in debug.stderr


def test_help_at_every_level() -> None:
    for args in ([], ["run"], ["status"], ["worker"]):
        done = command(*args, "--help", env={})
        assert done.returncode == 0, done.stderr
        assert "Usage: eventsourcing-rs" in done.stdout
    assert "--runner" in command("run", "--help", env={}).stdout
    assert "--watch" in command("status", "--help", env={}).stdout


@pytest.mark.parametrize("runner", ["single", "multi", "processes"])
def test_the_bank_example_runs_with_python_m(runner: str, tmp_path: Path) -> None:
    env = {**os.environ, **sqlite_env(tmp_path)} if runner == "processes" else dict(os.environ)
    done = subprocess.run(
        [sys.executable, "-m", "eventsourcing_rs.examples.bank", "--runner", runner],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "Alice: balance 3500, alerts:",
        "  - large withdrawal of 1500",
        "Bob: balance 50, alerts:",
        "  - large card payment of 2500",
    ]
