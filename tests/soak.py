#!/usr/bin/env python3
"""A soak with faults: a system of four applications run for minutes
while its policies fail at random and its process is killed at random.

    python tests/soak.py [--minutes 10 | --seconds S] [--kill-every S]
                         [--failure-rate P] [--dir DIR] [--rss-bound-mib N]

The system (SQLite files in DIR, a temporary directory by default):
Orders -> Reservations -> Payments, and Audit following both Orders and
Payments (a follower with two leaders). A child process runs it under the
MultiThreadedRunner, fed by four threads placing orders. Policies raise at
random (``--failure-rate`` per event); a runner whose follower failed is
stopped and started again, which retries the notification. The parent
SIGKILLs the child at random intervals (``--kill-every`` on average) and
starts a new one, which catches up on start.

At the end a last child, without faults, catches every follower up, and
the database is checked: each order reserved once, paid once, and audited
once per leader event. Printed: events processed, failures injected,
kills, duplicates (must be 0), lost (must be 0), and the resident memory
of the children after their first seconds and at their end (must stay
within ``--rss-bound-mib``). Exits non-zero if any check fails.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Tuple
from uuid import UUID

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from eventsourcing_rs.application import Application  # noqa: E402
from eventsourcing_rs.domain import Aggregate, AggregateEvent, event  # noqa: E402
from eventsourcing_rs.system import (  # noqa: E402
    MultiThreadedRunner,
    ProcessApplication,
    ProcessEvent,
    SingleThreadedRunner,
    System,
)

# The aggregates and the leader of the system tests.
from tests.system_fixtures import Order, Orders, Payment, Reservation  # noqa: E402


class InjectedFailure(Exception):
    """Raised at random by a policy."""


FAILURE_RATE = float(os.environ.get("SOAK_FAILURE_RATE", "0"))


def maybe_fail(where: str) -> None:
    if FAILURE_RATE and random.random() < FAILURE_RATE:
        print(f"failure {where}", flush=True)
        raise InjectedFailure(where)


class Entry(Aggregate):
    @event("Logged")
    def __init__(self, leader: str, origin: UUID, number: int):
        self.leader = leader
        self.origin = origin
        self.number = number


class Reservations(ProcessApplication):
    def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
        if isinstance(domain_event, Order.Placed):
            maybe_fail("Reservations")
            process_event.save(Reservation(domain_event.originator_id, domain_event.number))


class Payments(ProcessApplication):
    def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
        if isinstance(domain_event, Reservation.Made):
            maybe_fail("Payments")
            process_event.save(Payment(domain_event.originator_id, domain_event.number))


class Audit(ProcessApplication):
    def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
        maybe_fail("Audit")
        leader = type(domain_event).__qualname__.split(".")[0]
        number = domain_event.number  # type: ignore[attr-defined]
        process_event.save(Entry(leader, domain_event.originator_id, number))


PIPES = [[Orders, Reservations, Payments, Audit], [Orders, Audit]]
APPS = [Orders, Reservations, Payments, Audit]


def configure(directory: Path) -> None:
    os.environ["INFRASTRUCTURE_FACTORY"] = "eventsourcing_rs.sqlite:Factory"
    for cls in APPS:
        os.environ[f"{cls.__name__.upper()}_SQLITE_DBNAME"] = str(directory / f"{cls.__name__}.db")


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def child(seconds: float) -> None:
    """Runs the system, fed from four threads, for ``seconds``; restarts the
    runner when a follower failed; reports memory as it goes."""
    stop = threading.Event()
    next_number = [Orders().recorder.max_notification_id()]
    lock = threading.Lock()
    runner: Optional[MultiThreadedRunner] = None
    runner_lock = threading.Lock()

    def feed() -> None:
        while not stop.is_set():
            with runner_lock:
                current = runner
            if current is None:
                time.sleep(0.01)
                continue
            with lock:
                number = next_number[0]
                next_number[0] += 1
            try:
                current.get(Orders).place(number)
            except Exception as error:  # pragma: no cover - reported
                print(f"feed error {error!r}", flush=True)
            time.sleep(0.001)

    def start() -> MultiThreadedRunner:
        fresh = MultiThreadedRunner(System(pipes=PIPES))
        fresh.start()
        return fresh

    with runner_lock:
        runner = start()
    feeders = [threading.Thread(target=feed, daemon=True) for _ in range(4)]
    for feeder in feeders:
        feeder.start()
    started = time.monotonic()
    reported_start = False
    ending = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: ending.set())
    while time.monotonic() - started < seconds and not ending.is_set():
        time.sleep(0.2)
        if not reported_start and time.monotonic() - started > 3:
            print(f"rss-start {rss_mib():.1f}", flush=True)
            reported_start = True
        if runner is not None and runner.errors:
            # Retry: a new runner starts from each follower's position.
            with runner_lock:
                failed, runner = runner, None
            try:
                failed.stop()
            except Exception:
                pass
            with runner_lock:
                runner = start()
    stop.set()
    for feeder in feeders:
        feeder.join()
    if runner is not None:
        try:
            runner.stop()
        except Exception:
            pass
    print(f"rss-end {rss_mib():.1f}", flush=True)


def catch_up() -> None:
    """Processes whatever is left, without faults."""
    runner = SingleThreadedRunner(System(pipes=PIPES))
    runner.start()
    runner.stop()


def check(directory: Path) -> Dict[str, int]:
    """Counts, by aggregate id, what each follower made of each event of
    its leaders: exactly one each, none missing."""
    configure(directory)
    apps = {cls: cls() for cls in APPS}

    def notifications(app: Application) -> Iterator[Any]:
        start = 1
        while True:
            page = app.recorder.select_notifications(start, 10_000)
            if not page:
                return
            yield from page
            start = page[-1].id + 1

    def events(app: Application) -> Iterator[Any]:
        for notification in notifications(app):
            yield app.mapper.to_domain_event(notification)

    orders = {n.originator_id for n in notifications(apps[Orders])}
    reserved: Counter[UUID] = Counter()
    reservations = set()
    for e in events(apps[Reservations]):
        reserved[e.order_id] += 1
        reservations.add(e.originator_id)
    paid: Counter[UUID] = Counter()
    payments = set()
    for e in events(apps[Payments]):
        paid[e.reservation_id] += 1
        payments.add(e.originator_id)
    audited: Counter[Tuple[str, UUID]] = Counter((e.leader, e.origin) for e in events(apps[Audit]))
    expected_audit = {("Order", i) for i in orders} | {("Payment", i) for i in payments}
    counts = [
        (reserved, orders),
        (paid, reservations),
        (audited, expected_audit),
    ]
    duplicates = sum(c - 1 for counter, _ in counts for c in counter.values() if c > 1)
    lost = sum(1 for counter, expected in counts for key in expected if key not in counter)
    strays = sum(1 for counter, expected in counts for key in counter if key not in expected)
    return {
        "orders": len(orders),
        "events processed": sum(reserved.values()) + sum(paid.values()) + sum(audited.values()),
        "duplicates": duplicates,
        "lost": lost + strays,
    }


def run(args: argparse.Namespace) -> int:
    directory = Path(args.dir or tempfile.mkdtemp(prefix="esrs-soak-"))
    directory.mkdir(parents=True, exist_ok=True)
    configure(directory)
    deadline = time.monotonic() + args.seconds
    env = dict(os.environ, SOAK_FAILURE_RATE=str(args.failure_rate), PYTHONPATH=str(ROOT))
    kills = failures = 0
    rss_start: List[float] = []
    rss_end: List[float] = []
    rng = random.Random(args.seed)
    while time.monotonic() < deadline:
        remaining = deadline - time.monotonic()
        life = (
            min(remaining, rng.expovariate(1 / args.kill_every)) if args.kill_every else remaining
        )
        life = max(life, 0.5)
        proc = subprocess.Popen(
            [sys.executable, __file__, "child", "--seconds", str(remaining + 5)],
            env=env,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        lines: List[str] = []
        reader = threading.Thread(
            target=lambda p=proc, into=lines: into.extend(p.stdout), daemon=True
        )
        reader.start()
        time.sleep(life)
        if time.monotonic() < deadline - 0.5:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        else:
            proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        reader.join(5)
        for line in lines:
            if line.startswith("failure"):
                failures += 1
            elif line.startswith("rss-start"):
                rss_start.append(float(line.split()[1]))
            elif line.startswith("rss-end"):
                rss_end.append(float(line.split()[1]))
    # A last run without faults catches every follower up.
    subprocess.run(
        [sys.executable, __file__, "catch-up"],
        env=dict(env, SOAK_FAILURE_RATE="0"),
        check=True,
        timeout=600,
    )
    counts = check(directory)
    peak = max(rss_start + rss_end, default=0.0)
    print(f"directory:          {directory}")
    print(f"duration:           {args.seconds:.0f} s")
    print(f"orders placed:      {counts['orders']}")
    print(f"events processed:   {counts['events processed']}")
    print(f"failures injected:  {failures}")
    print(f"kills:              {kills}")
    print(f"duplicates:         {counts['duplicates']} (must be 0)")
    print(f"lost:               {counts['lost']} (must be 0)")
    print(
        "resident memory:    "
        f"start {min(rss_start, default=0):.1f} MiB, end {max(rss_end, default=0):.1f} MiB, "
        f"peak {peak:.1f} MiB (bound {args.rss_bound_mib} MiB)"
    )
    ok = counts["duplicates"] == 0 and counts["lost"] == 0 and counts["orders"] > 0
    ok = ok and peak <= args.rss_bound_mib
    print("soak: PASSED" if ok else "soak: FAILED")
    return 0 if ok else 1


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        # The injected failures are expected: not logged here.
        logging.getLogger("eventsourcing_rs").setLevel(logging.CRITICAL)
        configure(Path(os.environ["ORDERS_SQLITE_DBNAME"]).parent)
        child(float(sys.argv[3]))
        return 0
    if len(sys.argv) > 1 and sys.argv[1] == "catch-up":
        catch_up()
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--kill-every", type=float, default=8.0)
    parser.add_argument("--failure-rate", type=float, default=0.002)
    parser.add_argument("--rss-bound-mib", type=float, default=200.0)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    if args.seconds is None:
        args.seconds = args.minutes * 60
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
