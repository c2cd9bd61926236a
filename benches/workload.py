"""Workloads measured on both `eventsourcing` 9.1.0 and `eventsourcing_rs`.

Everything here uses only the public API the two share, imported from the
package named on the command line, so the same code runs on either:

    python benches/workload.py --lib eventsourcing_rs --workload pipeline ...

It prints one JSON object: the workload, its parameters, the number of
events processed and the events per second.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
from decimal import Decimal
from typing import Any, Callable, Dict, List, Optional, Tuple


def load(lib: str) -> Dict[str, Any]:
    """Defines the example domain and applications against ``lib``."""
    domain = importlib.import_module(f"{lib}.domain")
    application = importlib.import_module(f"{lib}.application")
    system = importlib.import_module(f"{lib}.system")
    Aggregate, event = domain.Aggregate, domain.event

    class Order(Aggregate):
        @event("Placed")
        def __init__(self, customer: str, amount: Decimal):
            self.customer = customer
            self.amount = amount

    class Reservation(Aggregate):
        @event("Made")
        def __init__(self, order_id: Any, amount: Decimal):
            self.order_id = order_id
            self.amount = amount

    class Payment(Aggregate):
        @event("Taken")
        def __init__(self, reservation_id: Any, amount: Decimal):
            self.reservation_id = reservation_id
            self.amount = amount

    class Orders(application.Application):
        def place(self, i: int) -> Any:
            order = Order(customer=f"c{i}", amount=Decimal("9.99"))
            self.save(order)
            return order.id

    class Reservations(system.ProcessApplication):
        def policy(self, domain_event: Any, process_event: Any) -> None:
            if isinstance(domain_event, Order.Placed):
                process_event.save(
                    Reservation(order_id=domain_event.originator_id, amount=domain_event.amount)
                )

    class Payments(system.ProcessApplication):
        def policy(self, domain_event: Any, process_event: Any) -> None:
            if isinstance(domain_event, Reservation.Made):
                process_event.save(
                    Payment(
                        reservation_id=domain_event.originator_id,
                        amount=domain_event.amount,
                    )
                )

    # Topics must resolve: register the classes in an importable module.
    module = sys.modules[__name__]
    for cls in (Order, Reservation, Payment, Orders, Reservations, Payments):
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
        setattr(module, cls.__name__, cls)
    for cls in (Order, Reservation, Payment):
        for name in dir(cls):
            attr = getattr(cls, name)
            if isinstance(attr, type) and attr.__qualname__.startswith(
                f"load.<locals>.{cls.__name__}."
            ):
                attr.__qualname__ = f"{cls.__name__}.{name}"
                attr.__module__ = __name__
    return {
        "lib": lib,
        "system": system,
        "persistence": importlib.import_module(f"{lib}.persistence"),
        "Orders": Orders,
        "Reservations": Reservations,
        "Payments": Payments,
    }


POSTGRES_DEFAULTS = {
    "POSTGRES_DBNAME": "eventsourcing",
    "POSTGRES_HOST": "127.0.0.1",
    "POSTGRES_PORT": "5432",
    "POSTGRES_USER": "eventsourcing",
    "POSTGRES_PASSWORD": "eventsourcing",
}
APPLICATION_TABLES = [
    f"{name}_{kind}"
    for name in ("orders", "reservations", "payments")
    for kind in ("events", "tracking", "snapshots")
] + [
    # Where workers of the same applications (benches/processes.py,
    # benches/segments.py) left their leases and number of segments.
    "eventsourcing_leases"
]


def postgres_execute(statements: List[str]) -> List[Any]:
    """Runs statements on the benchmark's server with whichever client this
    interpreter has (psycopg here, psycopg2 beside the reference); returns
    the last one's first row."""
    settings = {k: os.environ.get(k, v) for k, v in POSTGRES_DEFAULTS.items()}
    kwargs = dict(
        dbname=settings["POSTGRES_DBNAME"],
        host=settings["POSTGRES_HOST"],
        port=settings["POSTGRES_PORT"],
        user=settings["POSTGRES_USER"],
        password=settings["POSTGRES_PASSWORD"],
    )
    try:
        import psycopg

        conn: Any = psycopg.connect(autocommit=True, **kwargs)
    except ImportError:
        import psycopg2  # type: ignore[import-not-found]

        conn = psycopg2.connect(**kwargs)
        conn.autocommit = True
    try:
        cursor = conn.cursor()
        row: List[Any] = []
        for statement in statements:
            cursor.execute(statement)
            if cursor.description is not None:
                row = list(cursor.fetchone() or [])
        return row
    finally:
        conn.close()


def configure(lib: str, store: str, directory: str) -> None:
    """Sets the environment both libraries read their persistence from."""
    for key in [k for k in os.environ if k.endswith("SQLITE_DBNAME")]:
        del os.environ[key]
    if store == "memory":
        os.environ["INFRASTRUCTURE_FACTORY"] = f"{lib}.popo:Factory"
        return
    if store == "postgres":
        os.environ["INFRASTRUCTURE_FACTORY"] = f"{lib}.postgres:Factory"
        for key, value in POSTGRES_DEFAULTS.items():
            os.environ.setdefault(key, value)
        # The two libraries share table names: each run starts empty.
        postgres_execute([f"DROP TABLE IF EXISTS {t}" for t in APPLICATION_TABLES])
        return
    os.environ["INFRASTRUCTURE_FACTORY"] = f"{lib}.sqlite:Factory"
    for name in ("ORDERS", "RESERVATIONS", "PAYMENTS"):
        if store == "sqlite-memory":
            value = f"file:{name.lower()}-{time.monotonic_ns()}?mode=memory&cache=shared"
        else:
            value = os.path.join(directory, f"{name.lower()}.db")
        os.environ[f"{name}_SQLITE_DBNAME"] = value


def wait_until(predicate: Callable[[], bool], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("workload did not finish")
        time.sleep(0.001)


# Each workload is prepared (stores filled, applications made), then its
# measured part is run once: the `act` returned by `prepare` returns the
# number of events it processed, and `close` releases what was prepared.
Prepared = Tuple[Callable[[], int], Callable[[], None]]


def prepare_pipeline(env: Dict[str, Any], runner_name: str, count: int) -> Prepared:
    """Places ``count`` orders one at a time; each is processed twice
    (reserved, then paid)."""
    system = env["system"]
    runner_cls = {
        "single": system.SingleThreadedRunner,
        "multi": system.MultiThreadedRunner,
    }[runner_name]
    runner = runner_cls(
        system.System(pipes=[[env["Orders"], env["Reservations"], env["Payments"]]])
    )
    runner.start()
    orders = runner.get(env["Orders"])
    payments = runner.get(env["Payments"])

    def act() -> int:
        for i in range(count):
            orders.place(i)
        wait_until(lambda: payments.recorder.max_notification_id() >= count)
        return 2 * count

    return act, runner.stop


def prepare_catch_up(env: Dict[str, Any], count: int) -> Prepared:
    """A follower processes ``count`` waiting events in one pull."""
    orders = env["Orders"]()
    for i in range(count):
        orders.place(i)
    reservations = env["Reservations"]()
    reservations.follow("Orders", orders.log)

    def act() -> int:
        reservations.pull_and_process("Orders")
        assert reservations.recorder.max_tracking_id("Orders") == count
        return count

    return act, lambda: None


def prepare_reader(env: Dict[str, Any], count: int, sections: bool = False) -> Prepared:
    """Reads ``count`` notifications through NotificationLogReader.select
    (100 at a time), or with ``sections`` through its read(), following
    the log's default sections of 10."""
    orders = env["Orders"]()
    batch = 500
    persistence = env["persistence"]
    import uuid

    for start in range(0, count, batch):
        orders.recorder.insert_events(
            [
                persistence.StoredEvent(
                    originator_id=uuid.uuid4(),
                    originator_version=1,
                    topic="benches.workload:Order.Placed",
                    state=b'{"customer": "c", "amount": "9.99"}',
                )
                for _ in range(min(batch, count - start))
            ]
        )
    log_cls = type(orders.log)
    if sections:
        reader_ = env["system"].NotificationLogReader(orders.log)
        read = reader_.read
    else:
        log = log_cls(orders.recorder, section_size=100)
        reader_ = env["system"].NotificationLogReader(log, section_size=100)
        read = reader_.select

    def act() -> int:
        seen = sum(1 for _ in read(start=1))
        assert seen == count, seen
        return count

    return act, lambda: None


def prepare_repository_get(env: Dict[str, Any], count: int) -> Prepared:
    """Gets ``count`` one-event aggregates from the repository."""
    orders = env["Orders"]()
    ids = [orders.place(i) for i in range(count)]

    def act() -> int:
        for aggregate_id in ids:
            orders.repository.get(aggregate_id)
        return count

    return act, lambda: None


def prepare_save(env: Dict[str, Any], count: int) -> Prepared:
    """Creates and saves ``count`` one-event aggregates."""
    orders = env["Orders"]()

    def act() -> int:
        for i in range(count):
            orders.place(i)
        return count

    return act, lambda: None


def commit_counts(app: Any) -> Optional[Tuple[int, int]]:
    """(commits, writes) of this project's group commit, if the store
    counts them (the reference's do not)."""
    datastore = getattr(app.recorder, "datastore", None)
    native = getattr(datastore, "_datastore", None) or getattr(datastore, "_native", None)
    counts = getattr(native, "group_commit_counts", None)
    return None if counts is None else (int(counts[0]), int(counts[1]))


def prepare_save_threads(env: Dict[str, Any], count: int, threads: int) -> Prepared:
    """``threads`` threads each create and save one-event aggregates, one
    at a time, ``count`` in all, on one application."""
    import threading

    orders = env["Orders"]()
    orders.place(-1)  # tables made, connections warmed, before timing
    per_thread = count // threads

    def work(offset: int) -> None:
        for i in range(per_thread):
            orders.place(offset + i)

    before = commit_counts(orders)

    def act() -> int:
        workers = [threading.Thread(target=work, args=(n * per_thread,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        after = commit_counts(orders)
        if before is not None and after is not None and after[0] > before[0]:
            env["writes_per_commit"] = (after[1] - before[1]) / (after[0] - before[0])
        return per_thread * threads

    return act, lambda: None


def prepare(env: Dict[str, Any], workload: str, count: int, runner: str = "single") -> Prepared:
    """The named workload, prepared."""
    if workload == "pipeline":
        return prepare_pipeline(env, runner, count)
    if workload == "catch-up":
        return prepare_catch_up(env, count)
    if workload == "reader":
        return prepare_reader(env, count)
    if workload == "reader-sections":
        return prepare_reader(env, count, sections=True)
    if workload == "repository-get":
        return prepare_repository_get(env, count)
    if workload == "save":
        return prepare_save(env, count)
    if workload.startswith("save-threads-"):
        return prepare_save_threads(env, count, int(workload.rsplit("-", 1)[1]))
    raise ValueError(f"unknown workload '{workload}'")


def run(lib: str, workload: str, store: str, count: int, runner: str = "single") -> Dict[str, Any]:
    directory = tempfile.mkdtemp(prefix="esrs-bench-")
    try:
        configure(lib, store, directory)
        env = load(lib)
        act, close = prepare(env, workload, count, runner)
        try:
            started = time.perf_counter()
            events = act()
            seconds = time.perf_counter() - started
        finally:
            close()
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    return {
        "lib": lib,
        "workload": workload,
        "store": store,
        "runner": runner,
        "events": events,
        "seconds": seconds,
        "events_per_second": events / seconds,
        "writes_per_commit": env.get("writes_per_commit"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lib", required=True)
    parser.add_argument("--workload", required=True)
    parser.add_argument(
        "--store",
        default="memory",
        choices=["memory", "sqlite-memory", "sqlite-file", "postgres"],
    )
    parser.add_argument("--runner", default="single", choices=["single", "multi"])
    parser.add_argument("--count", type=int, default=1000)
    args = parser.parse_args()
    print(json.dumps(run(args.lib, args.workload, args.store, args.count, args.runner)))


if __name__ == "__main__":
    main()
