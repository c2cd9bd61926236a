"""The Orders -> Reservations -> Payments pipeline under each runner, and a
follower catching up, on the in-memory store."""

from typing import Any

import pytest

from benches import workload


@pytest.fixture(autouse=True)
def in_memory() -> None:
    workload.configure("eventsourcing_rs", "memory", "")


@pytest.mark.parametrize("runner", ["single", "multi"])
def test_pipeline_1000_orders(benchmark: Any, runner: str) -> None:
    env = workload.load("eventsourcing_rs")
    events, _ = benchmark.pedantic(
        lambda: workload.pipeline(env, runner, 1000), rounds=3, iterations=1
    )
    assert events == 2000


def test_catch_up_5000(benchmark: Any) -> None:
    env = workload.load("eventsourcing_rs")
    events, _ = benchmark.pedantic(lambda: workload.catch_up(env, 5000), rounds=3, iterations=1)
    assert events == 5000
