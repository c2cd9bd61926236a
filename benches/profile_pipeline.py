"""Where each processed event's time goes, by layer.

Runs the Orders -> Reservations -> Payments pipeline (in memory, single-
threaded runner) under cProfile and adds up the time spent in each layer's
own code: the domain model, the mapper, the recorders, the log reader, the
runner and follower plumbing, and the policies and commands of the example.
cProfile inflates Python calls more than native ones, so read the shares as
an upper bound on what is left in Python.

    python benches/profile_pipeline.py --orders 5000
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from collections import defaultdict
from pathlib import Path
from typing import Dict

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benches import workload  # noqa: E402

LAYERS = [
    # The single-threaded runner's loop and the followers' pulls from a
    # local leader, with the decoding, encoding and recording they do
    # inside (see FollowerPull and PullKernel); the policies they call are
    # counted in their own layers.
    ("runner loop and follower pulls (Rust)", ("drain_prompts", "FollowerPull", "PullKernel")),
    # Application.save: collecting, encoding, the insert and notifying.
    ("application save (Rust)", ("ApplicationSave",)),
    ("mapper (Rust)", ("EventMapper",)),
    ("recorder (Rust)", ("MemoryRecorder", "SQLiteRecorder")),
    ("log reader (Rust)", ("SelectReader", "SectionReader")),
    ("prompt queue / tracking / guards (Rust)", ("PromptQueue", "TrackingBook", "MethodGuard")),
    (
        "domain model (Python, and its Rust helpers)",
        (
            "eventsourcing_rs/domain.py",
            "eventsourcing_rs/utils.py",
            "<string>",
            "instance_with_dict",
            "_core.now",
            "uuid4",
        ),
    ),
    (
        "runner and follower (Python)",
        (
            "eventsourcing_rs/system.py",
            "eventsourcing_rs/group_commit.py",
            "eventsourcing_rs/shortcuts.py",
        ),
    ),
    (
        "application and persistence glue (Python)",
        (
            "eventsourcing_rs/application.py",
            "eventsourcing_rs/persistence.py",
            "eventsourcing_rs/popo.py",
        ),
    ),
    ("example commands and policies (user code)", ("benches/workload.py",)),
    ("uuid, datetime and other builtins", ("uuid", "datetime", "built-in", "posix")),
]


def layer_of(filename: str, name: str) -> str:
    where = f"{filename}:{name}"
    for layer, needles in LAYERS:
        if any(n in where for n in needles):
            return layer
    return "other"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=5000)
    args = parser.parse_args()
    workload.configure("eventsourcing_rs", "memory", "")
    env = workload.load("eventsourcing_rs")
    act, close = workload.prepare(env, "pipeline", args.orders, "single")
    profiler = cProfile.Profile()
    profiler.enable()
    processed = act()
    profiler.disable()
    close()
    stats = pstats.Stats(profiler)
    totals: Dict[str, float] = defaultdict(float)
    for (filename, _line, name), (_cc, _nc, tottime, _ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        totals[layer_of(filename, name)] += tottime
    grand = sum(totals.values())
    print(f"{processed} processed events; profiled total {grand:.2f}s")
    print(f"{'layer':45s} {'share':>6s} {'µs/event (profiled)':>20s}")
    for layer, seconds in sorted(totals.items(), key=lambda kv: -kv[1]):
        print(f"{layer:45s} {seconds / grand:>6.0%} {seconds / processed * 1e6:>20.1f}")


if __name__ == "__main__":
    main()
