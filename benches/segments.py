"""Throughput of one follower split into segments, run by several workers.

The follower (Reservations, in benches/segment_workload.py) has a policy
that does a fixed amount of pure-Python CPU work per event (calibrated here
to take ``--policy-us`` microseconds, 200 by default) and then saves one
reservation. For each number of segments S in 1, 2, 4 and of worker
processes W in 1, 2, 4 (``eventsourcing-rs worker`` commands), on a fresh
store:

1. the W workers are started, with ``RESERVATIONS_SEGMENTS=S``;
2. the bench waits until every segment's lease is held and the holders
   are balanced (min(W, S) workers, each with S // W segments or one more);
3. N orders are inserted into the leader from this process, in batches of
   500 (one transaction each), and the clock starts before the first;
4. the clock stops when the follower has recorded N reservations;
   throughput = N / elapsed;
5. the workers are stopped with SIGTERM (each must exit 0), and the
   follower must hold exactly one reservation per order and each segment's
   position must be the leader's last notification.

Printed: a table of events/s by segments and workers, with the speed-up
over one segment in one worker, and per configuration how each worker's
share of the events came out. Worker logs are kept in the run's temporary
directory (printed); the tail of any worker's log that did not exit 0 is
printed.

    python benches/segments.py                       # SQLite files, 40,000 orders
    python benches/segments.py --store both --markdown
    python benches/segments.py --store postgres --orders 20000

PostgreSQL settings come from benches/processes.py (``POSTGRES_*`` in the
environment, else a local server with user, password and database
``eventsourcing``); the bench drops the system's tables before each
configuration.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple
from uuid import UUID

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from eventsourcing_rs.leases import LeaseBook, lease_book_for  # noqa: E402
from eventsourcing_rs.persistence import Notification  # noqa: E402
from eventsourcing_rs.segments import Segment  # noqa: E402

from benches.processes import fresh_postgres_env, postgres_settings  # noqa: E402
from benches.segment_workload import (  # noqa: E402
    POLICY_LOOPS,
    Order,
    Orders,
    Reservation,
    Reservations,
    burn,
)
from tests.process_harness import WorkerProcess  # noqa: E402

TARGET = "benches.segment_workload:system"
FOLLOWER = "Reservations"
LEADER = "Orders"
# Short leases and polls, so that workers share the segments within a
# second or two of starting rather than after the default ten.
FAST = {"WORKER_LEASE_SECONDS": "1", "WORKER_POLL_SECONDS": "0.2"}
TABLES = [
    "orders_events",
    "orders_tracking",
    "reservations_events",
    "reservations_tracking",
    "eventsourcing_leases",
]
SEGMENT_COUNTS = (1, 2, 4)
WORKER_COUNTS = (1, 2, 4)
BATCH = 500
POLL_SECONDS = 0.02
BALANCE_TIMEOUT = 60.0
# Worker log lines worth reporting: rebalancing after the start, lost
# leases, retried errors.
LOG_NOTES = ("handing over", "lease lost", "took over", " ERROR ", " CRITICAL ", " WARNING ")


class BenchError(Exception):
    """A configuration did not run as it should: its figure is not given."""


# --- calibration ------------------------------------------------------


def time_burn(loops: int, calls: int) -> float:
    """Seconds per call of ``burn(loops)``, over ``calls`` calls."""
    started = time.perf_counter()
    for _ in range(calls):
        burn(loops)
    return (time.perf_counter() - started) / calls


def calibrate(target_seconds: float) -> Tuple[int, float]:
    """The number of loops that takes ``target_seconds`` here, and the time
    it was then measured to take. The fastest of several tries: the others
    were slowed by something else on the machine."""
    probe = 200_000
    best = min(time_burn(probe, 1) for _ in range(5))
    loops = max(1, round(probe * target_seconds / best))
    measured = min(time_burn(loops, 500) for _ in range(3))
    return loops, measured


# --- stores -----------------------------------------------------------


def store_env(store: str, directory: Path) -> Dict[str, str]:
    """A fresh, empty store for the system."""
    if store == "postgres":
        return fresh_postgres_env(TABLES)
    return {
        "PERSISTENCE_MODULE": "eventsourcing_rs.sqlite",
        "ORDERS_SQLITE_DBNAME": str(directory / "orders.db"),
        "RESERVATIONS_SQLITE_DBNAME": str(directory / "reservations.db"),
    }


# --- workers ----------------------------------------------------------


class BenchWorker(WorkerProcess):
    """An ``eventsourcing-rs worker`` command for the follower (see
    tests/process_harness.py), remembering where its log stood when the
    clock started."""

    def __init__(self, env: Dict[str, str], log_dir: Path):
        super().__init__(env, FOLLOWER, log_dir, target=TARGET)
        self.marked = 0

    def mark(self) -> None:
        """Notes where the log is now: what the start-up logged (segments
        handed over to workers that joined) is not news."""
        self.marked = len(self.log())

    def tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])


def holders(book: LeaseBook, segments: int) -> Dict[int, int]:
    """The process id of the live holder of each segment's lease."""
    found = {}
    for index in range(segments):
        holder = book.holder(Segment(index, segments).lease_name(FOLLOWER))
        if holder is not None and holder.seconds_left > 0:
            found[index] = int(holder.owner.split(":")[1])
    return found


def balanced(held: Dict[int, int], segments: int, workers: int) -> bool:
    """Every segment held, by min(W, S) workers, each with a fair share."""
    if len(held) != segments:
        return False
    shares = Counter(held.values())
    least, most = segments // workers, -(-segments // workers)
    return len(shares) == min(workers, segments) and all(
        least <= count <= most for count in shares.values()
    )


def wait_until(condition: Callable[[], bool], timeout: float, what: str, pause: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s: {what}")
        time.sleep(pause)


def wait_for_balance(book: LeaseBook, workers: List[BenchWorker], segments: int) -> Dict[int, int]:
    """Waits for the workers to start and share the segments fairly; the
    holders then. Fails if a worker exits or they do not settle in time."""

    def settled() -> bool:
        for worker in workers:
            if worker.process.poll() is not None:
                raise BenchError(f"worker {worker.pid} exited early ({worker.process.returncode})")
        if not all(worker.started() for worker in workers):
            return False
        held = holders(book, segments)
        ours = {worker.pid for worker in workers}
        return set(held.values()) <= ours and balanced(held, segments, len(workers))

    wait_until(settled, BALANCE_TIMEOUT, "the workers did not share the segments fairly", 0.1)
    # Seen twice, a lease-renewal apart: not a moment in a handover.
    time.sleep(float(FAST["WORKER_LEASE_SECONDS"]) / 2)
    wait_until(settled, BALANCE_TIMEOUT, "the segments' holders did not settle", 0.1)
    return holders(book, segments)


def stop_workers(workers: List[BenchWorker]) -> List[str]:
    """SIGTERM to all (they stop in parallel), then the problems: each
    worker that did not exit 0, with its log's tail."""
    for worker in workers:
        worker.signal(signal.SIGTERM)
    problems = []
    for worker in workers:
        try:
            code = worker.wait(60)
        except AssertionError as error:  # killed: it did not stop in time
            problems.append(str(error))
            continue
        if code != 0:
            problems.append(
                f"worker {worker.pid} exited {code}; the end of {worker.log_path}:\n"
                + worker.tail()
            )
    return problems


def log_notes(workers: List[BenchWorker]) -> List[str]:
    """Lines of the workers' logs, since the clock started, worth a look
    (see LOG_NOTES)."""
    notes = []
    for worker in workers:
        for line in worker.log()[worker.marked :].splitlines():
            if any(mark in line for mark in LOG_NOTES):
                notes.append(f"[{worker.pid}] {line}")
    return notes


# --- one configuration ------------------------------------------------


@dataclass
class Result:
    store: str
    segments: int
    workers: int
    orders: int
    rate: Optional[float] = None
    elapsed: float = 0.0
    inserting: float = 0.0
    balancing: float = 0.0
    shares: List[int] = field(default_factory=list)
    notes: List[str] = field(default_factory=list)
    error: Optional[str] = None


def prepare_orders(count: int) -> List[List[Order]]:
    """The orders, made before the clock starts, in batches."""
    orders = [Order(number) for number in range(count)]
    return [orders[i : i + BATCH] for i in range(0, count, BATCH)]


def count_events(reader: Reservations) -> int:
    return sum(1 for _ in all_notifications(reader))


def all_notifications(reader: Reservations) -> List[Notification]:
    found: List[Notification] = []
    start = 1
    while True:
        page = reader.recorder.select_notifications(start, 5000)
        if not page:
            return found
        found.extend(page)
        start = page[-1].id + 1


def processed(reader: Reservations, count: int) -> bool:
    """Whether the follower has recorded ``count`` reservations. Its last
    notification id says so, unless ids were skipped (a PostgreSQL sequence
    skips the ids of rolled back inserts): then the events are counted."""
    last = reader.recorder.max_notification_id()
    return last == count or (last > count and count_events(reader) >= count)


def check_exactly_once(
    reader: Reservations, leader: Orders, batches: List[List[Order]], segments: int
) -> Counter[int]:
    """One reservation per order, each once, and every segment's position
    at the leader's end; how many events each worker process made."""
    notifications = all_notifications(reader)
    expected = {Reservation.id_for(order.id) for batch in batches for order in batch}
    seen: List[UUID] = [n.originator_id for n in notifications]
    if len(seen) != len(expected) or set(seen) != expected:
        raise BenchError(
            f"not exactly once: {len(seen)} reservations ({len(set(seen))} distinct) "
            f"for {len(expected)} orders"
        )
    end = leader.recorder.max_notification_id()
    for index in range(segments):
        key = Segment(index, segments).tracking_name(LEADER)
        at = reader.recorder.max_tracking_id(key)
        if at != end:
            raise BenchError(f"segment {key} is at {at}, the leader at {end}")
    pids: Counter[int] = Counter()
    for notification in notifications:
        pids[reader.mapper.to_domain_event(notification).pid] += 1
    return pids


def run_configuration(
    store: str, segments: int, workers: int, orders: int, loops: int, directory: Path
) -> Result:
    result = Result(store, segments, workers, orders)
    env = {
        **store_env(store, directory),
        **FAST,
        f"{FOLLOWER.upper()}_SEGMENTS": str(segments),
        POLICY_LOOPS: str(loops),
    }
    # Made first, so their tables exist before the workers start.
    leader = Orders(env=env)
    reader = Reservations(env=env)
    book = lease_book_for(reader.recorder)
    assert book is not None
    book.create_table()
    batches = prepare_orders(orders)
    started = time.perf_counter()
    running = [BenchWorker(env, directory) for _ in range(workers)]
    try:
        before = wait_for_balance(book, running, segments)
        result.balancing = time.perf_counter() - started
        for worker in running:
            worker.mark()
        started = time.perf_counter()
        for batch in batches:
            leader.save(*batch)
        result.inserting = time.perf_counter() - started
        wait_until(lambda: processed(reader, orders), 1200, "the follower did not catch up", 0.02)
        result.elapsed = time.perf_counter() - started
        result.rate = orders / result.elapsed
        after = holders(book, segments)
        if after != before:
            result.notes.append(f"holders changed during the run: {before} -> {after}")
    except BenchError as error:
        result.error = str(error)
    finally:
        problems = stop_workers(running)
    result.notes += log_notes(running)
    if problems:
        result.error = "; ".join(filter(None, [result.error, *problems]))
    if result.error is None:
        try:
            pids = check_exactly_once(reader, leader, batches, segments)
        except BenchError as error:
            result.error = str(error)
        else:
            result.shares = [pids.get(worker.pid, 0) for worker in running]
            stray = set(pids) - {worker.pid for worker in running}
            if stray:
                result.error = f"events made by processes not started here: {sorted(stray)}"
    if result.error is not None:
        result.rate = None
    return result


# --- reporting --------------------------------------------------------


def describe(result: Result) -> str:
    where = f"{result.segments} segment(s), {result.workers} worker(s)"
    if result.error is not None:
        return f"  {where}: FAILED: {result.error}"
    shares = " / ".join(f"{share:,}" for share in result.shares)
    return (
        f"  {where}: {result.rate:,.0f} events/s ({result.orders:,} in {result.elapsed:.2f} s, "
        f"inserted in {result.inserting:.2f} s; balanced after {result.balancing:.1f} s); "
        f"events per worker: {shares}"
    )


def cell(result: Result, baseline: Optional[float]) -> str:
    if result.rate is None:
        return "failed"
    speed_up = f" ({result.rate / baseline:.2f}x)" if baseline else ""
    return f"{result.rate:,.0f}{speed_up}"


def table(results: List[Result], markdown: bool) -> str:
    """Events/s by segments (rows) and workers (columns), with the
    speed-up over one segment in one worker."""
    by_key = {(r.segments, r.workers): r for r in results}
    base = by_key.get((1, 1))
    baseline = base.rate if base is not None else None
    header = ["segments \\ workers", *[str(w) for w in WORKER_COUNTS]]
    rows = [
        [str(s), *[cell(by_key[(s, w)], baseline) for w in WORKER_COUNTS]] for s in SEGMENT_COUNTS
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(row) + " |" for row in rows]
        return "\n".join(lines)
    widths = [max(len(line[i]) for line in [header, *rows]) for i in range(len(header))]
    return "\n".join(
        "  ".join(text.rjust(width) for text, width in zip(line, widths, strict=True))
        for line in [header, *rows]
    )


# --- main -------------------------------------------------------------


def run_store(store: str, orders: int, loops: int, run_dir: Path, markdown: bool) -> List[Result]:
    extra = f" ({postgres_settings()})" if store == "postgres" else ""
    print(f"\n{store}{extra}: {orders:,} orders", flush=True)
    results = []
    for segments in SEGMENT_COUNTS:
        for workers in WORKER_COUNTS:
            directory = run_dir / f"{store}-s{segments}-w{workers}"
            directory.mkdir()
            result = run_configuration(store, segments, workers, orders, loops, directory)
            print(describe(result), flush=True)
            for note in result.notes:
                print(f"      {note}")
            results.append(result)
    print(f"\n{store}: events/s (speed-up over 1 segment, 1 worker)")
    print(table(results, markdown), flush=True)
    return results


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=40_000)
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="sqlite")
    parser.add_argument("--policy-us", type=float, default=200.0)
    parser.add_argument("--markdown", action="store_true", help="print tables in markdown")
    args = parser.parse_args(argv)
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    loops, measured = calibrate(args.policy_us / 1e6)
    run_dir = Path(tempfile.mkdtemp(prefix="bench-segments-"))
    print(f"machine: {os.cpu_count()} cores (os.cpu_count()); load {os.getloadavg()[0]:.2f}")
    print(f"policy: {loops:,} loops per event, measured {measured * 1e6:.0f} µs per event")
    print(f"stores and worker logs in {run_dir}")
    begun = time.perf_counter()
    failed = 0
    for store in stores:
        results = run_store(store, args.orders, loops, run_dir, args.markdown)
        failed += sum(1 for r in results if r.error is not None)
    print(f"\ntook {time.perf_counter() - begun:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
