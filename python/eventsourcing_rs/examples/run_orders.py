"""Command line for the Orders -> Reservations -> Payments example.

By default each application keeps its events in its own SQLite file in the
directory given by ``--dir`` (``./var/example``), emptied first, and the
system runs under both runners in turn.
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from decimal import Decimal
from pathlib import Path
from typing import Dict, List, Type

from eventsourcing_rs.examples.orders import PIPES, Orders, Payments, Reservations
from eventsourcing_rs.system import (
    MultiThreadedRunner,
    Runner,
    SingleThreadedRunner,
    System,
)

RUNNERS: Dict[str, Type[Runner]] = {
    "single": SingleThreadedRunner,
    "multi": MultiThreadedRunner,
}


def configure_store(store: str, directory: Path, runner_name: str) -> None:
    """Points every application at its store through the environment, the
    way a user would configure a deployment."""
    for key in [k for k in os.environ if k.endswith("SQLITE_DBNAME")]:
        del os.environ[key]
    if store == "memory":
        os.environ["INFRASTRUCTURE_FACTORY"] = "eventsourcing_rs.popo:Factory"
        return
    os.environ["INFRASTRUCTURE_FACTORY"] = "eventsourcing_rs.sqlite:Factory"
    target = directory / runner_name
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    for cls in (Orders, Reservations, Payments):
        name = cls.__name__.upper()
        os.environ[f"{name}_SQLITE_DBNAME"] = str(target / f"{cls.__name__}.db")


def wait_until_processed(payments: Payments, expected: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while payments.recorder.max_notification_id() < expected:
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"Payments processed {payments.recorder.max_notification_id()} "
                f"of {expected} payments within {timeout}s"
            )
        time.sleep(0.005)


def run_once(runner_name: str, store: str, directory: Path, count: int) -> float:
    configure_store(store, directory, runner_name)
    runner = RUNNERS[runner_name](System(pipes=PIPES))
    runner.start()
    try:
        orders = runner.get(Orders)
        reservations = runner.get(Reservations)
        payments = runner.get(Payments)
        started = time.perf_counter()
        for i in range(count):
            orders.place_order(customer=f"customer-{i}", amount=Decimal("9.99"))
        wait_until_processed(payments, count, timeout=60 + count / 50)
        elapsed = time.perf_counter() - started
    finally:
        runner.stop()
    where = "in memory" if store == "memory" else f"in {directory / runner_name}"
    processed = 2 * count  # each order is processed twice: reserved, then paid
    print(
        f"{runner_name}-threaded runner, {store} store ({where}): placed {count} "
        f"orders; {reservations.recorder.max_notification_id()} reservations, "
        f"{payments.recorder.max_notification_id()} payments recorded; "
        f"{processed / elapsed:,.0f} processed events/s "
        f"({elapsed / processed * 1e6:.0f} µs per processed event)"
    )
    return elapsed


def main(argv: List[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--runner", choices=["single", "multi", "both"], default="both")
    parser.add_argument("--store", choices=["sqlite", "memory"], default="sqlite")
    parser.add_argument("--dir", type=Path, default=Path("var/example"))
    args = parser.parse_args(argv)
    names = ["single", "multi"] if args.runner == "both" else [args.runner]
    for name in names:
        run_once(name, args.store, args.dir, args.orders)


if __name__ == "__main__":
    main()
