"""Invariant 1 under real crashes: a process running the system on SQLite
files is killed with SIGKILL mid-work; after a restart every order has been
reserved and paid exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from eventsourcing_rs.system import MultiThreadedRunner, SingleThreadedRunner, System

from .system_fixtures import (
    PIPES,
    Orders,
    Payments,
    Reservations,
    numbers,
    use_sqlite_files,
)

CHILD = textwrap.dedent(
    """
    import sys
    from eventsourcing_rs.system import {runner}, System
    from tests.system_fixtures import PIPES, Orders
    runner = {runner}(System(pipes=PIPES))
    runner.start()
    orders = runner.get(Orders)
    i = 0
    while True:
        orders.place(i)
        i += 1
        if i % 50 == 0:
            print(i, flush=True)
    """
)


@pytest.mark.parametrize("runner_cls", [SingleThreadedRunner, MultiThreadedRunner])
def test_killed_mid_work_then_restarted_processes_each_order_once(
    runner_cls: type, tmp_path: Path
) -> None:
    with use_sqlite_files(tmp_path):
        root = Path(__file__).resolve().parent.parent
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD.format(runner=runner_cls.__name__)],
            cwd=root,
            env=dict(os.environ, PYTHONPATH=str(root)),
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        # Let it get well into its work, then kill it without warning.
        for line in child.stdout:
            if int(line) >= 300:
                break
        time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        child.wait(10)

        runner = runner_cls(System(pipes=PIPES))
        runner.start()  # catches up on what the killed process left
        orders = runner.get(Orders)
        placed = numbers(orders)
        payments = runner.get(Payments)
        followers = {cls: runner.get(cls) for cls in (Reservations, Payments)}

        deadline = time.monotonic() + 30
        while payments.recorder.max_notification_id() < len(placed):
            if time.monotonic() > deadline:
                break
            time.sleep(0.01)
        runner.stop()

        assert len(placed) >= 300
        assert placed == list(range(len(placed)))
        for follower in (Reservations, Payments):
            counts = Counter(numbers(followers[follower]))
            assert sorted(counts) == placed, follower.__name__
            assert set(counts.values()) == {1}, f"{follower.__name__} duplicated"
