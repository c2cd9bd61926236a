"""CPU instructions per processed event, for both libraries.

Timings on a shared machine drift by tens of percent from run to run; the
number of instructions a workload executes does not (to a fraction of a
percent). This runs a workload of benches/workload.py under `perf stat`
at two counts and prints the instructions per processed event (the
difference between the two runs, so start-up and set-up cancel out):

    python benches/instructions.py [--workload pipeline] [--store memory]

It needs Linux `perf` with access to the hardware counters, and runs the
reference in the environment `compare.py` uses. Instructions are not
time (a cache miss costs many), so the comparison table stays the measure;
this is for telling small changes apart.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from compare import reference_python

WORKLOAD = str(Path(__file__).with_name("workload.py"))


def instructions(python: str, lib: str, args: argparse.Namespace, count: int) -> int:
    command = [
        "perf",
        "stat",
        "-x,",
        "-e",
        "instructions",
        python,
        WORKLOAD,
        "--lib",
        lib,
        "--workload",
        args.workload,
        "--store",
        args.store,
        "--runner",
        args.runner,
        "--count",
        str(count),
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    for line in done.stderr.splitlines():
        fields = line.split(",")
        if len(fields) > 2 and fields[2].startswith("instructions"):
            return int(fields[0])
    raise RuntimeError(f"perf printed no instruction count:\n{done.stderr}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workload", default="pipeline")
    parser.add_argument("--store", default="memory")
    parser.add_argument("--runner", default="single")
    parser.add_argument("--count", type=int, default=5000)
    args = parser.parse_args()
    sides = [("eventsourcing 9.1.0", reference_python(), "eventsourcing")]
    sides.append(("eventsourcing_rs", sys.executable, "eventsourcing_rs"))
    per_event = {}
    for label, python, lib in sides:
        small, large = args.count // 10, args.count
        extra = instructions(python, lib, args, large) - instructions(python, lib, args, small)
        # The pipeline counts two processed events per order.
        events = (large - small) * (2 if args.workload == "pipeline" else 1)
        per_event[label] = extra / events
        print(f"{label:22} {per_event[label]:12,.0f} instructions per event")
    ours, theirs = per_event["eventsourcing_rs"], per_event["eventsourcing 9.1.0"]
    print(f"{'ratio':22} {theirs / ours:12.1f}x")


if __name__ == "__main__":
    main()
