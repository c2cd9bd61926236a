"""What the multi-process tests share: stores that processes can share,
worker commands started as a user would start them, and the check that
every leader event was processed exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Dict, List, Optional, Tuple

from eventsourcing_rs.application import Application
from eventsourcing_rs.leases import lease_book_for
from eventsourcing_rs.persistence import PersistenceError

from . import pg_server
from .process_system import Orders, Payments, Reservations

ROOT = Path(__file__).resolve().parent.parent
APPS = ("orders", "reservations", "payments")
WORKER_COMMAND = str(Path(sys.executable).parent / "eventsourcing-rs")


def sqlite_env(directory: Path) -> Dict[str, str]:
    env = {"PERSISTENCE_MODULE": "eventsourcing_rs.sqlite"}
    for app in APPS:
        env[f"{app.upper()}_SQLITE_DBNAME"] = str(directory / f"{app}.db")
    return env


def postgres_env(port: Optional[str] = None) -> Dict[str, str]:
    s = pg_server.settings()
    port = port or s["port"]
    with pg_server.connect(port=port) as admin:
        for app in APPS:
            for kind in ("events", "tracking"):
                admin.execute(f"DROP TABLE IF EXISTS {app}_{kind}")
        admin.execute("DROP TABLE IF EXISTS eventsourcing_leases")
    return pg_server.application_env(port)


def store_env(kind: str, directory: Path) -> Dict[str, str]:
    if kind == "postgres":
        pg_server.require_server()
        return postgres_env()
    return sqlite_env(directory)


@dataclass
class Outcome:
    """What the system recorded, read back from the store."""

    order_ids: List[str]
    reservations: Dict[str, List[int]] = field(default_factory=dict)  # order id -> pids
    payments: Dict[str, int] = field(default_factory=dict)  # reservation id -> count
    reservation_ids: List[str] = field(default_factory=list)
    reservation_pids: List[int] = field(default_factory=list)
    payment_pids: List[int] = field(default_factory=list)
    positions: Dict[str, int] = field(default_factory=dict)
    last_ids: Dict[str, int] = field(default_factory=dict)


def read_outcome(env: Dict[str, str]) -> Outcome:
    orders, reservations, payments = (cls(env=env) for cls in (Orders, Reservations, Payments))
    # Positions first, logs after: a log read later holds at least what
    # the positions say was processed (read the other way round, a
    # follower could commit between the two, and the outcome would show a
    # position past events it does not hold).
    positions = {
        "Reservations": reservations.recorder.max_tracking_id("Orders"),
        "Payments": payments.recorder.max_tracking_id("Reservations"),
    }
    last_order, order_log = _events(orders)
    outcome = Outcome(order_ids=[str(e.originator_id) for e in order_log])
    last_reservation, reservation_log = _events(reservations)
    for e in reservation_log:
        outcome.reservations.setdefault(str(e.order_id), []).append(e.pid)
        outcome.reservation_ids.append(str(e.originator_id))
        outcome.reservation_pids.append(e.pid)
    counts: Counter[str] = Counter()
    for e in _events(payments)[1]:
        counts[str(e.reservation_id)] += 1
        outcome.payment_pids.append(e.pid)
    outcome.payments = dict(counts)
    outcome.positions = positions
    outcome.last_ids = {"Orders": last_order, "Reservations": last_reservation}
    return outcome


def _events(app: Application) -> Tuple[int, List[Any]]:
    """The application's last notification id, and its events."""
    notifications = app.recorder.select_notifications(1, 10**9)
    last = notifications[-1].id if notifications else 0
    return last, [app.mapper.to_domain_event(n) for n in notifications]


def assert_exactly_once(outcome: Outcome, orders: Optional[int] = None) -> None:
    """Every order reserved once, every reservation paid once, each
    follower's position at its leader's last notification."""
    if orders is not None:
        assert len(outcome.order_ids) == orders
    assert len(set(outcome.order_ids)) == len(outcome.order_ids)
    twice = {o: pids for o, pids in outcome.reservations.items() if len(pids) != 1}
    assert not twice, f"orders reserved more than once: {list(twice.items())[:5]}"
    assert set(outcome.reservations) == set(outcome.order_ids), "an order was not reserved"
    assert len(outcome.reservation_ids) == len(outcome.order_ids)
    paid_twice = {r: n for r, n in outcome.payments.items() if n != 1}
    assert not paid_twice, f"reservations paid more than once: {list(paid_twice.items())[:5]}"
    assert set(outcome.payments) == set(outcome.reservation_ids), "a reservation was not paid"
    assert outcome.positions["Reservations"] == outcome.last_ids["Orders"]
    assert outcome.positions["Payments"] == outcome.last_ids["Reservations"]


def wait_caught_up(env: Dict[str, str], orders: int, timeout: float) -> Outcome:
    """Polls the store until each follower has processed every
    notification of its leader (and there are ``orders`` orders)."""
    deadline = time.monotonic() + timeout
    while True:
        outcome = read_outcome(env)
        done = (
            len(outcome.order_ids) >= orders
            and outcome.positions["Reservations"] == outcome.last_ids["Orders"]
            and outcome.positions["Payments"] == outcome.last_ids["Reservations"]
            and len(outcome.payment_pids) == len(outcome.reservation_ids)
        )
        if done:
            return outcome
        if time.monotonic() > deadline:
            raise AssertionError(
                f"not caught up in {timeout} s: positions {outcome.positions}, "
                f"last ids {outcome.last_ids}"
            )
        time.sleep(0.1)


class WorkerProcess:
    """An ``eventsourcing-rs worker`` command, started as a user would, for
    application ``app`` of the system ``target`` names; its stderr is kept
    in a file of ``log_dir``."""

    def __init__(
        self,
        env: Dict[str, str],
        app: str,
        log_dir: Path,
        target: str = "tests.process_system:system",
    ):
        self.app = app
        self.log_path = log_dir / f"worker-{app}-{time.monotonic_ns()}.log"
        self._log: IO[bytes] = open(self.log_path, "wb")  # noqa: SIM115 - closed in wait()
        self.process = subprocess.Popen(
            [WORKER_COMMAND, "worker", target, app],
            cwd=ROOT,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def started(self) -> bool:
        return "starting:" in self.log()

    def signal(self, signum: int) -> None:
        if self.process.poll() is None:
            os.kill(self.pid, signum)

    def stop(self, timeout: float = 30.0) -> int:
        """SIGTERM once the worker has started (a supervisor's SIGTERM
        before the interpreter is up ends it by the default action), then
        the exit status."""
        deadline = time.monotonic() + timeout
        while not self.started() and self.process.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        self.signal(signal.SIGTERM)
        return self.wait(timeout)

    def wait(self, timeout: float = 30.0) -> int:
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired as error:
            self.process.kill()
            self.process.wait()
            raise AssertionError(
                f"worker {self.app} did not exit:\n{self.log()[-3000:]}"
            ) from error
        finally:
            self._log.close()
        return code


def active_pid(env: Dict[str, str], app_cls: type, follower: str) -> Optional[int]:
    """The process id of the worker holding the follower's lease. Reads
    only (a SQLite worker stopped inside its write transaction keeps every
    other writer out of the file until it resumes)."""
    app = app_cls(env={**env, "CREATE_TABLE": "no"})
    book = lease_book_for(app.recorder)
    assert book is not None
    try:
        holder = book.holder(follower)
    except PersistenceError:
        return None  # no lease table yet: no worker has started
    if holder is None or holder.seconds_left <= 0:
        return None
    return int(holder.owner.split(":")[1])


class OrderFeed(threading.Thread):
    """Places numbered orders from a thread, a few at a time, retrying a
    failed save (the database may be restarting); a retried save whose
    outcome was unknown may record an order twice, which the checks allow
    for by reading the leader's log rather than counting placements."""

    def __init__(self, env: Dict[str, str], count: int, pause: float = 0.0):
        super().__init__(daemon=True)
        self.orders = Orders(env=env)
        self.count = count
        self.pause = pause
        self.placed = 0
        self.errors = 0

    def run(self) -> None:
        for number in range(self.count):
            while True:
                try:
                    self.orders.place(number)
                    break
                except Exception:
                    self.errors += 1
                    time.sleep(0.2)
            self.placed += 1
            if self.pause:
                time.sleep(self.pause)
