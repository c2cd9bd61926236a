"""Resident memory while a follower processes many events.

A leader records N events (in inserts of 1,000) into an SQLite file; a
follower pulls and processes them in rounds, recording one new event each
in its own file, and the peak resident set size is printed after every
round. Storage is on disk, so any growth in RSS would be per-event state
kept by the runner, the reader or the recorders.

    python benches/memory_flat.py --events 1000000 --rounds 20
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benches import workload  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="esrs-memory-") as directory:
        workload.configure("eventsourcing_rs", "sqlite-file", directory)
        env = workload.load("eventsourcing_rs")
        orders = env["Orders"]()
        reservations = env["Reservations"]()
        reservations.follow("Orders", orders.log)
        per_round = args.events // args.rounds
        Order = sys.modules["benches.workload"].Order
        started = time.perf_counter()
        print(f"{'processed':>10} {'rss MiB':>8} {'peak MiB':>9} {'events/s':>9}")
        for round_ in range(1, args.rounds + 1):
            for _ in range(per_round // 1000):
                orders.save(*[Order(customer="c", amount=Decimal("9.99")) for _ in range(1000)])
            round_started = time.perf_counter()
            reservations.pull_and_process("Orders")
            rate = per_round / (time.perf_counter() - round_started)
            done = reservations.recorder.max_tracking_id("Orders")
            assert done == round_ * per_round, (done, round_ * per_round)
            print(
                f"{done:>10,} {rss_mib():>8.1f} {peak_mib():>9.1f} {rate:>9,.0f}",
                flush=True,
            )
        size = sum(f.stat().st_size for f in Path(directory).iterdir()) / 2**20
        print(f"total {time.perf_counter() - started:.1f}s; database files {size:.0f} MiB")
    os.environ.pop("INFRASTRUCTURE_FACTORY", None)


if __name__ == "__main__":
    main()
