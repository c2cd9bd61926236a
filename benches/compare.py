"""Side-by-side comparison with the reference library, in one run.

Installs `eventsourcing==9.1.0` into its own virtual environment (cached in
~/.cache/eventsourcing-rs/reference-venv, or $ESRS_REFERENCE_VENV), then runs
each workload of benches/workload.py on the reference and on this project,
alternating, and prints events per second for each and their ratio.

    python benches/compare.py            # every row
    python benches/compare.py --quick    # smaller counts
    python benches/compare.py --markdown # a table for RESULTS.md
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Tuple

HERE = Path(__file__).resolve().parent
REFERENCE = "eventsourcing==9.1.0"
# The reference's PostgreSQL client (9.1 uses psycopg2).
REFERENCE_POSTGRES = "psycopg2-binary>=2.9,<2.10"

# (label, workload, store, runner, count). Counts are set so that this
# project's side of each row runs for a few tenths of a second at least:
# shorter runs measured mostly the machine's noise (and, on PostgreSQL,
# the first use of each connection and statement).
ROWS: List[Tuple[str, str, str, str, int]] = [
    ("pipeline, single-threaded, in memory", "pipeline", "memory", "single", 20000),
    (
        "pipeline, single-threaded, SQLite in memory",
        "pipeline",
        "sqlite-memory",
        "single",
        5000,
    ),
    (
        "pipeline, single-threaded, SQLite files",
        "pipeline",
        "sqlite-file",
        "single",
        1000,
    ),
    ("pipeline, multi-threaded, in memory", "pipeline", "memory", "multi", 20000),
    (
        "pipeline, multi-threaded, SQLite files",
        "pipeline",
        "sqlite-file",
        "multi",
        1000,
    ),
    ("catch-up 20k, in memory", "catch-up", "memory", "single", 20000),
    ("catch-up 20k, SQLite files", "catch-up", "sqlite-file", "single", 20000),
    ("reader, in memory", "reader", "memory", "single", 100000),
    ("reader read(), sections of 10, in memory", "reader-sections", "memory", "single", 100000),
    ("reader, SQLite files", "reader", "sqlite-file", "single", 100000),
    ("repository.get, in memory", "repository-get", "memory", "single", 50000),
    ("repository.get, SQLite files", "repository-get", "sqlite-file", "single", 5000),
    ("Application.save, in memory", "save", "memory", "single", 50000),
    ("Application.save, SQLite files", "save", "sqlite-file", "single", 2000),
    ("pipeline, single-threaded, PostgreSQL", "pipeline", "postgres", "single", 4000),
    ("pipeline, multi-threaded, PostgreSQL", "pipeline", "postgres", "multi", 4000),
    ("catch-up 20k, PostgreSQL", "catch-up", "postgres", "single", 20000),
    ("reader, PostgreSQL", "reader", "postgres", "single", 50000),
    ("repository.get, PostgreSQL", "repository-get", "postgres", "single", 3000),
    ("Application.save, PostgreSQL", "save", "postgres", "single", 3000),
    ("Application.save, 8 threads, PostgreSQL", "save-threads-8", "postgres", "single", 4000),
    ("Application.save, 32 threads, PostgreSQL", "save-threads-32", "postgres", "single", 8000),
    ("Application.save, 8 threads, SQLite files", "save-threads-8", "sqlite-file", "single", 8000),
    (
        "Application.save, 32 threads, SQLite files",
        "save-threads-32",
        "sqlite-file",
        "single",
        16000,
    ),
]

# Writes per commit of this project's side, by row label (group commit).
WRITES_PER_COMMIT: Dict[str, List[float]] = {}


def reference_python() -> str:
    default = Path.home() / ".cache" / "eventsourcing-rs" / "reference-venv"
    venv = Path(os.environ.get("ESRS_REFERENCE_VENV", default))
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    probe = subprocess.run(
        [str(python), "-c", "import eventsourcing, sys; sys.exit(0)"],
        capture_output=True,
    )
    if probe.returncode != 0:
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", REFERENCE, REFERENCE_POSTGRES],
            check=True,
        )
    probe = subprocess.run([str(python), "-c", "import psycopg2"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run(
            [str(python), "-m", "pip", "install", "--quiet", REFERENCE_POSTGRES], check=True
        )
    return str(python)


def postgres_settings() -> str:
    """The benchmark server's durability settings, printed with the table."""
    sys.path.insert(0, str(HERE))
    from workload import postgres_execute

    fsync, synchronous_commit = postgres_execute(
        ["SELECT current_setting('fsync'), current_setting('synchronous_commit')"]
    )
    return f"PostgreSQL server: fsync={fsync}, synchronous_commit={synchronous_commit}"


def measure(python: str, lib: str, row: Tuple[str, str, str, str, int], count: int) -> float:
    _, workload, store, runner, _ = row
    out = subprocess.run(
        [
            python,
            str(HERE / "workload.py"),
            "--lib",
            lib,
            "--workload",
            workload,
            "--store",
            store,
            "--runner",
            runner,
            "--count",
            str(count),
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=HERE.parent,
        env=dict(os.environ, PYTHONPATH=str(HERE.parent)),
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    if result.get("writes_per_commit"):
        WRITES_PER_COMMIT.setdefault(row[0], []).append(result["writes_per_commit"])
    return float(result["events_per_second"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a fifth of the counts")
    parser.add_argument("--repeat", type=int, default=3, help="runs per side (median)")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--only", help="run rows whose label contains this text")
    args = parser.parse_args()
    ref_python = reference_python()
    results: Dict[str, Tuple[float, float]] = {}
    rows = [r for r in ROWS if not args.only or args.only in r[0]]
    for row in rows:
        count = max(100, row[4] // 5) if args.quick else row[4]
        ref, ours = [], []
        for _ in range(args.repeat):
            # Alternate the two sides so drifts in machine load hit both.
            ref.append(measure(ref_python, "eventsourcing", row, count))
            ours.append(measure(sys.executable, "eventsourcing_rs", row, count))
        results[row[0]] = (statistics.median(ref), statistics.median(ours))
        r, o = results[row[0]]
        per_commit = WRITES_PER_COMMIT.get(row[0])
        said = f"  ({statistics.median(per_commit):.1f} saves per commit)" if per_commit else ""
        print(f"{row[0]:45s} {r:>12,.0f} {o:>12,.0f} {o / r:>7.1f}x{said}", file=sys.stderr)
    if any(row[2] == "postgres" for row in rows):
        print(postgres_settings())
    if args.markdown:
        header = ["workload", "eventsourcing 9.1.0", "eventsourcing_rs", "ratio"]
        print("| " + " | ".join(header) + " |  (events per second)")
        print("| --- | ---: | ---: | ---: |")
        for label, (r, o) in results.items():
            print(f"| {label} | {r:,.0f} | {o:,.0f} | {o / r:.1f}x |")
        for label, per_commit in WRITES_PER_COMMIT.items():
            print(f"{label}: {statistics.median(per_commit):.1f} saves per commit (ours)")
    else:
        print(f"{'workload':45s} {'reference/s':>12s} {'ours/s':>12s} {'ratio':>8s}")
        for label, (r, o) in results.items():
            print(f"{label:45s} {r:>12,.0f} {o:>12,.0f} {o / r:>7.1f}x")


if __name__ == "__main__":
    main()
