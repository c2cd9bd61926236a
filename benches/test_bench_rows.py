"""One pytest-benchmark per row of the comparison (`compare.ROWS`), on this
project alone, at a fifth of the comparison's counts (as `--quick`).

Each round prepares its workload afresh (new stores, new applications) and
times only the workload's measured part; `extra_info` holds the events it
processed and the events per second of the fastest round.
"""

import shutil
import tempfile
from typing import Any, Callable, List, Tuple

import pytest

from benches import workload
from benches.compare import ROWS


@pytest.mark.parametrize("row", ROWS, ids=[row[0] for row in ROWS])
def test_row(benchmark: Any, row: Tuple[str, str, str, str, int]) -> None:
    _label, name, store, runner, full_count = row
    count = max(100, full_count // 5)
    cleanups: List[Callable[[], None]] = []

    def setup() -> Tuple[Tuple[Callable[[], int]], dict]:
        directory = tempfile.mkdtemp(prefix="esrs-bench-")
        cleanups.append(lambda: shutil.rmtree(directory, ignore_errors=True))
        workload.configure("eventsourcing_rs", store, directory)
        env = workload.load("eventsourcing_rs")
        act, close = workload.prepare(env, name, count, runner)
        cleanups.append(close)
        return (act,), {}

    try:
        events = benchmark.pedantic(lambda act: act(), setup=setup, rounds=3, iterations=1)
    finally:
        for cleanup in reversed(cleanups):
            cleanup()
    expected = 2 * count if name == "pipeline" else count
    assert events == expected
    benchmark.extra_info["events"] = events
    if benchmark.stats is not None:  # None under --benchmark-disable
        benchmark.extra_info["events_per_second"] = round(events / benchmark.stats.stats.min)
