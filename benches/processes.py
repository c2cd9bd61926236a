"""A system across processes against one process, in one run.

For each store that processes share (SQLite files, PostgreSQL), runs the
Orders -> Reservations -> Payments pipeline of tests/process_system.py:

- throughput: orders placed from several threads of this process, timed
  until every order is reserved and paid, under MultiThreadedRunner and
  under MultiProcessRunner (each follower in its own worker process);
- latency: orders placed one at a time with pauses, and for each the time
  from the leader's commit (its save returning) to the follower's
  processing of it (the reservation's timestamp), p50 and p99, under
  MultiProcessRunner with NOTIFY and with polling only (and, for scale,
  under MultiThreadedRunner, whose followers are prompted in-process).

    python benches/processes.py             # both stores
    python benches/processes.py --orders 2000 --store postgres
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eventsourcing_rs.system import MultiProcessRunner, MultiThreadedRunner  # noqa: E402

from tests.process_system import Orders, Reservations, system  # noqa: E402

POSTGRES = {
    "PERSISTENCE_MODULE": "eventsourcing_rs.postgres",
    "POSTGRES_DBNAME": os.environ.get("POSTGRES_DBNAME", "eventsourcing"),
    "POSTGRES_HOST": os.environ.get("POSTGRES_HOST", "127.0.0.1"),
    "POSTGRES_PORT": os.environ.get("POSTGRES_PORT", "5432"),
    "POSTGRES_USER": os.environ.get("POSTGRES_USER", "eventsourcing"),
    "POSTGRES_PASSWORD": os.environ.get("POSTGRES_PASSWORD", "eventsourcing"),
}
TABLES = [
    f"{a}_{k}" for a in ("orders", "reservations", "payments") for k in ("events", "tracking")
] + ["eventsourcing_leases"]


def connect() -> Any:
    """A psycopg connection to the benchmark's server."""
    import psycopg

    return psycopg.connect(
        dbname=POSTGRES["POSTGRES_DBNAME"],
        host=POSTGRES["POSTGRES_HOST"],
        port=POSTGRES["POSTGRES_PORT"],
        user=POSTGRES["POSTGRES_USER"],
        password=POSTGRES["POSTGRES_PASSWORD"],
        autocommit=True,
    )


def postgres_settings() -> str:
    with connect() as conn:
        said = []
        for name in ("fsync", "synchronous_commit"):
            row = conn.execute(f"SHOW {name}").fetchone()
            said.append(f"{name}={row[0] if row else '?'}")
        return ", ".join(said)


def fresh_postgres_env(tables: List[str]) -> Dict[str, str]:
    """The benchmark server's environment, with ``tables`` dropped."""
    with connect() as conn:
        for table in tables:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    return dict(POSTGRES)


def fresh_env(store: str, directory: str) -> Dict[str, str]:
    if store == "postgres":
        return fresh_postgres_env(TABLES)
    sub = tempfile.mkdtemp(dir=directory)
    env = {"PERSISTENCE_MODULE": "eventsourcing_rs.sqlite"}
    for app in ("ORDERS", "RESERVATIONS", "PAYMENTS"):
        env[f"{app}_SQLITE_DBNAME"] = os.path.join(sub, f"{app.lower()}.db")
    return env


def start(runner_name: str, env: Dict[str, str]) -> Any:
    if runner_name == "processes":
        runner: Any = MultiProcessRunner(system, env=env)
    else:
        os.environ.update(env)
        runner = MultiThreadedRunner(system)
    runner.start()
    return runner


def caught_up(runner: Any, orders: int) -> bool:
    reservations = runner.get(Reservations)
    payments = runner.get(system.follower_cls("Payments"))
    return (
        reservations.recorder.max_tracking_id("Orders") >= orders
        and payments.recorder.max_tracking_id("Reservations") >= orders
    )


def throughput(store: str, runner_name: str, orders: int, threads: int, directory: str) -> float:
    """Processed events per second (two per order) from the first order
    placed to the last payment."""
    env = fresh_env(store, directory)
    runner = start(runner_name, env)
    try:
        app = runner.get(Orders)
        # Workers up and listening before the clock starts.
        app.place(-1)
        wait(lambda: caught_up(runner, 1))
        per_thread = orders // threads

        def place(k: int) -> None:
            for i in range(per_thread):
                app.place(k * per_thread + i)

        started = time.perf_counter()
        workers = [threading.Thread(target=place, args=(k,)) for k in range(threads)]
        for t in workers:
            t.start()
        for t in workers:
            t.join()
        wait(lambda: caught_up(runner, per_thread * threads + 1))
        return 2 * per_thread * threads / (time.perf_counter() - started)
    finally:
        runner.stop()
        for key in env:
            os.environ.pop(key, None)


def latencies(
    store: str, runner_name: str, notify: bool, count: int, directory: str
) -> Tuple[float, float]:
    """p50 and p99, in milliseconds, from an order's commit to its
    reservation being made by the follower's policy."""
    env = {**fresh_env(store, directory), "WORKER_NOTIFY": "yes" if notify else "no"}
    runner = start(runner_name, env)
    try:
        app = runner.get(Orders)
        app.place(-1)
        wait(lambda: caught_up(runner, 1))
        committed: Dict[Any, float] = {}
        rng = random.Random(7)
        for i in range(count):
            time.sleep(rng.uniform(0.005, 0.05))
            order_id = app.place(i)
            committed[order_id] = time.time()
        wait(lambda: caught_up(runner, count + 1))
        reservations = runner.get(Reservations)
        delays = []
        for n in reservations.recorder.select_notifications(1, 10**9):
            event = reservations.mapper.to_domain_event(n)
            if event.order_id in committed:
                delays.append((event.timestamp.timestamp() - committed[event.order_id]) * 1000)
        delays.sort()
        return statistics.median(delays), delays[min(len(delays) - 1, int(len(delays) * 0.99))]
    finally:
        runner.stop()
        for key in env:
            os.environ.pop(key, None)


def wait(predicate: Any, timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("the system did not catch up")
        time.sleep(0.002)


def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=4000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--latency-orders", type=int, default=200)
    parser.add_argument("--store", choices=["sqlite-file", "postgres"], action="append")
    args = parser.parse_args(argv)
    stores = args.store or ["sqlite-file", "postgres"]
    print(f"machine: {os.cpu_count()} cores; orders: {args.orders} from {args.threads} threads")
    with tempfile.TemporaryDirectory() as directory:
        for store in stores:
            extra = f" ({postgres_settings()})" if store == "postgres" else ""
            print(f"\n{store}{extra}")
            multi = throughput(store, "multi", args.orders, args.threads, directory)
            procs = throughput(store, "processes", args.orders, args.threads, directory)
            print(f"  throughput, MultiThreadedRunner:  {multi:10,.0f} events/s")
            print(
                f"  throughput, MultiProcessRunner:   {procs:10,.0f} events/s "
                f"({procs / multi:.2f}x)"
            )
            rows = [("MultiThreadedRunner (in-process prompt)", "multi", True)]
            if store == "postgres":
                rows.append(("MultiProcessRunner, NOTIFY + poll", "processes", True))
            rows.append(("MultiProcessRunner, polling only", "processes", False))
            for label, runner_name, notify in rows:
                p50, p99 = latencies(store, runner_name, notify, args.latency_orders, directory)
                print(f"  latency, {label:48s} p50 {p50:7.2f} ms   p99 {p99:7.2f} ms")


if __name__ == "__main__":
    main()
