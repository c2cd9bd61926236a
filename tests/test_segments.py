"""Segments: a follower split by a stable hash of the originator id, each
segment with its own position, run by several worker processes that
share the segments fairly; exactly once and per-aggregate order hold when
workers join and when one is SIGKILLed."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Dict, List
from uuid import UUID, uuid4

import pytest
from eventsourcing_rs.leases import lease_book_for
from eventsourcing_rs.segments import (
    Segment,
    SegmentsChanged,
    prepare,
    pull_segment,
    segment_of,
)

from . import pg_server
from .process_harness import ROOT, WORKER_COMMAND, WorkerProcess
from .segment_system import Orders, Reservation, Reservations

pytestmark = pytest.mark.processes

TARGET = "tests.segment_system:system"
FAST = {"WORKER_LEASE_SECONDS": "1", "WORKER_POLL_SECONDS": "0.2"}


def store_env(kind: str, directory: Path) -> Dict[str, str]:
    if kind == "postgres":
        pg_server.require_server()
        pg_server.drop_tables(
            ["orders_events", "orders_tracking", "reservations_events"]
            + ["reservations_tracking", "eventsourcing_leases"]
        )
        return pg_server.application_env()
    return {
        "PERSISTENCE_MODULE": "eventsourcing_rs.sqlite",
        "ORDERS_SQLITE_DBNAME": str(directory / "orders.db"),
        "RESERVATIONS_SQLITE_DBNAME": str(directory / "reservations.db"),
    }


def test_the_segment_of_an_aggregate_is_the_documented_hash() -> None:
    for _ in range(200):
        originator_id = uuid4()
        digest = hashlib.md5(originator_id.bytes).digest()
        for count in (1, 2, 3, 4, 7, 16):
            expected = int.from_bytes(digest[:4], "big") % count
            assert segment_of(originator_id, count) == expected
    # Fixed points, so a change of the function is seen.
    fixed = UUID("12345678-1234-5678-1234-567812345678")
    assert [segment_of(fixed, n) for n in (2, 3, 4, 5, 1000)] == [
        int.from_bytes(hashlib.md5(fixed.bytes).digest()[:4], "big") % n for n in (2, 3, 4, 5, 1000)
    ]


def test_postgresql_computes_the_same_segment() -> None:
    pg_server.require_server()
    ids = [uuid4() for _ in range(50)]
    with pg_server.connect() as conn:
        for originator_id in ids:
            row = conn.execute(
                "SELECT ('x' || left(md5(uuid_send(%s::uuid)), 8))::bit(32)::bigint %% 7",
                (str(originator_id),),
            ).fetchone()
            assert row is not None and row[0] == segment_of(originator_id, 7)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_segments_in_one_process_process_each_event_once_in_order(
    kind: str, tmp_path: Path
) -> None:
    env = store_env(kind, tmp_path)
    orders = Orders(env=env)
    ids = [orders.place(n) for n in range(300)]
    for order_id in ids[::2]:
        orders.confirm(order_id)
    followers = []
    for _ in range(4):
        follower = Reservations(env=env)
        follower.follow("Orders", orders.log)
        followers.append(follower)
    # Interleaved pulls of the four segments, a page at a time.
    for follower in followers:
        follower.pull_batch_size = 37
    for _ in range(20):
        for index, follower in enumerate(followers):
            pull_segment(follower, "Orders", Segment(index, 4))
    reader = Reservations(env=env)
    for n, order_id in enumerate(ids):
        reservation: Reservation = reader.repository.get(Reservation.id_for(order_id))
        assert reservation.seen == ([1, 2] if n % 2 == 0 else [1])
    for index in range(4):
        key = Segment(index, 4).tracking_name("Orders")
        assert reader.recorder.max_tracking_id(key) == 450
    # The 9.1 key is untouched: one segment would track under it.
    assert reader.recorder.max_tracking_id("Orders") == 0


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_changing_the_number_of_segments_needs_level_positions(kind: str, tmp_path: Path) -> None:
    env = store_env(kind, tmp_path)
    orders = Orders(env=env)
    for n in range(50):
        orders.place(n)
    follower = Reservations(env=env)
    follower.follow("Orders", orders.log)
    book = lease_book_for(follower.recorder)
    assert book is not None
    book.create_table()
    # From 9.1's one position to 4 segments: they start where it was.
    follower.pull_and_process("Orders")
    prepare(follower, ["Orders"], 4, book)
    assert [
        follower.recorder.max_tracking_id(Segment(i, 4).tracking_name("Orders")) for i in range(4)
    ] == [50] * 4
    orders.place(50)
    pull_segment(follower, "Orders", Segment(0, 4))  # only segment 0 moves on
    with pytest.raises(SegmentsChanged, match="different positions of Orders"):
        prepare(follower, ["Orders"], 3, book)
    for index in range(1, 4):
        pull_segment(follower, "Orders", Segment(index, 4))
    prepare(follower, ["Orders"], 3, book)
    assert [
        follower.recorder.max_tracking_id(Segment(i, 3).tracking_name("Orders")) for i in range(3)
    ] == [51] * 3
    assert book.recorded_segments("Reservations") == 3


def worker(env: Dict[str, str], log_dir: Path) -> WorkerProcess:
    """An ``eventsourcing-rs worker`` command for Reservations."""
    return WorkerProcess(env, "Reservations", log_dir, target=TARGET)


def holders(env: Dict[str, str]) -> Dict[int, int]:
    """Each segment's holder's process id."""
    book = lease_book_for(Reservations(env=env).recorder)
    assert book is not None
    book.create_table()
    found = {}
    for index in range(4):
        holder = book.holder(Segment(index, 4).lease_name("Reservations"))
        if holder is not None and holder.seconds_left > 0:
            found[index] = int(holder.owner.split(":")[1])
    return found


def wait_for(condition, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def check(env: Dict[str, str], orders: List[UUID], confirmed: set[UUID]) -> List[int]:
    """Exactly one reservation per order, each event seen once and in
    version order; the processes that saw them."""
    reader = Reservations(env=env)
    pids = []
    for order_id in orders:
        reservation: Reservation = reader.repository.get(Reservation.id_for(order_id))
        assert reservation.seen == ([1, 2] if order_id in confirmed else [1]), order_id
        pids.extend(reservation.pids)
    return pids


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_workers_share_segments_rebalance_and_survive_a_sigkill(kind: str, tmp_path: Path) -> None:
    """20,000 orders (10,000 confirmed as well) through Reservations in 4
    segments: 2 workers, then a third joins, then one is SIGKILLed."""
    env = {**store_env(kind, tmp_path), **FAST}
    orders = Orders(env=env)
    placed: List[UUID] = []
    confirmed: set[UUID] = set()
    lock = threading.Lock()

    def feed(first: int, count: int) -> None:
        for n in range(first, first + count):
            if n % 2:
                order_id = orders.place(n)
            else:
                order_id = orders.place_and_confirm(n)
                with lock:
                    confirmed.add(order_id)
            with lock:
                placed.append(order_id)

    workers = [worker(env, tmp_path), worker(env, tmp_path)]
    try:
        # The first to start may take every segment before the other is
        # seen; it then hands some over.
        wait_for(
            lambda: len(holders(env)) == 4 and len(set(holders(env).values())) == 2,
            60,
            "the two workers did not share the segments",
        )
        feeder = threading.Thread(target=feed, args=(0, 20000))
        feeder.start()
        time.sleep(2.0)
        # A third joins: it takes its share, the others hand theirs over.
        workers.append(worker(env, tmp_path))
        third = workers[-1].process.pid
        wait_for(
            lambda: len(holders(env)) == 4 and len(set(holders(env).values())) == 3,
            60,
            "the third worker took no share",
        )
        assert third in holders(env).values()
        # One of the first two is killed: its segments are taken over.
        victim = workers[0]
        victim.process.send_signal(signal.SIGKILL)
        assert victim.process.wait(30) == -signal.SIGKILL
        wait_for(
            lambda: victim.process.pid not in holders(env).values() and len(holders(env)) == 4,
            60,
            "the killed worker's segments were not taken over",
        )
        feeder.join(timeout=300)
        assert not feeder.is_alive()
        reader = Reservations(env=env)
        last = orders.recorder.max_notification_id()
        assert last == 30000

        def caught_up() -> bool:
            return all(
                reader.recorder.max_tracking_id(Segment(i, 4).tracking_name("Orders")) == last
                for i in range(4)
            )

        wait_for(caught_up, 300, "the segments did not catch up")
    finally:
        # Every worker still running (all but the killed one, if it was).
        codes = [w.stop() for w in workers if w.process.poll() is None]
        for w in workers:
            w._log.close()
    assert codes == [0, 0]
    pids = check(env, placed, confirmed)
    assert len(pids) == 30000
    # Every worker did some of the work.
    assert {w.process.pid for w in workers} <= set(pids)


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_poison_event_is_parked_with_its_aggregates_later_events(
    kind: str, tmp_path: Path
) -> None:
    from eventsourcing_rs.dead_letters import DeadLetter, DeadLetters, ParkingPolicy

    from . import segment_system

    env = store_env(kind, tmp_path)
    orders = Orders(env=env)
    ids = [orders.place(n) for n in range(6)]
    orders.confirm(ids[3])  # the poison order's later event
    orders.confirm(ids[4])
    follower = Reservations(env=env)
    follower.follow("Orders", orders.log)
    follower.policy = ParkingPolicy(follower, attempts=2)  # type: ignore[method-assign]
    segment_system.POISON[:] = [3]
    try:
        with pytest.raises(segment_system.PoisonOrder):
            follower.pull_and_process("Orders")  # the first attempt fails
        assert follower.recorder.max_tracking_id("Orders") == 3
        follower.pull_and_process("Orders")  # the second parks it, and its confirmation
        assert follower.recorder.max_tracking_id("Orders") == 8
        letters = DeadLetters(follower, {"Orders": orders})
        parked = letters.list()
        assert [(p.notification_id, p.status) for p in parked] == [(4, "parked"), (7, "parked")]
        assert "PoisonOrder: cannot reserve order 3" in parked[0].error
        assert "Traceback" in parked[0].trace
        assert parked[1].error.startswith("parked behind dead letter")
        # Everything else flowed.
        for n in (0, 1, 2, 4, 5):
            reservation = follower.repository.get(Reservation.id_for(ids[n]))
            assert reservation.seen == ([1, 2] if n == 4 else [1])
        with pytest.raises(ValueError, match="parked behind"):
            letters.retry(parked[1].id)
        with pytest.raises(segment_system.PoisonOrder):
            letters.retry(parked[0].id)  # still failing: nothing recorded
        assert len(letters.list()) == 2
    finally:
        segment_system.POISON[:] = []
    letters.retry(parked[0].id)
    letters.retry(parked[1].id)
    assert letters.list() == []
    reservation = follower.repository.get(Reservation.id_for(ids[3]))
    assert reservation.seen == [1, 2]
    with pytest.raises(ValueError, match="retried, not parked"):
        letters.retry(parked[0].id)
    letter: DeadLetter = follower.repository.get(parked[1].id)
    assert letter.status == "retried"
    # A later event of the aggregate is processed as usual.
    orders.confirm(ids[3])
    follower.pull_and_process("Orders")
    assert follower.repository.get(Reservation.id_for(ids[3])).seen == [1, 2, 3]


def test_workers_park_a_poison_event_and_the_command_line_retries_it(tmp_path: Path) -> None:
    import json

    env = {**store_env("sqlite", tmp_path), **FAST, "WORKER_MAX_BACKOFF_SECONDS": "0.2"}
    orders = Orders(env=env)
    ids = [orders.place(n) for n in range(40)]
    orders.confirm(ids[3])
    worker_env = {**env, "DEAD_LETTER_ATTEMPTS": "2", "TEST_POISON_NUMBER": "3"}
    workers = [worker(worker_env, tmp_path), worker(worker_env, tmp_path)]

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [WORKER_COMMAND, *args],
            cwd=ROOT,
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            timeout=60,
        )

    try:

        def caught_up() -> bool:
            done = cli("status", TARGET, "--json", "--interval", "0.1")
            assert done.returncode == 0, done.stderr
            rows = json.loads(done.stdout)
            return len(rows) == 4 and all(r["lag"] == 0 and r["owner"] for r in rows)

        wait_for(caught_up, 60, "the segments did not catch up")
    finally:
        codes = [w.stop() for w in workers]
    assert codes == [0, 0]
    assert any("parked notification 4 of Orders#" in w.log() for w in workers)
    listed = cli("dead-letters", TARGET, "Reservations", "--json")
    assert listed.returncode == 0, listed.stderr
    letters = json.loads(listed.stdout)
    assert [(x["notification_id"], x["aggregate_id"]) for x in letters] == [
        (4, str(ids[3])),
        (41, str(ids[3])),
    ]
    refused = cli("dead-letters", TARGET, "Reservations", "--retry", letters[1]["id"])
    assert refused.returncode == 2 and "parked behind" in refused.stderr
    for letter in letters:
        done = cli("dead-letters", TARGET, "Reservations", "--retry", letter["id"])
        assert done.returncode == 0, done.stderr
    assert json.loads(cli("dead-letters", TARGET, "Reservations", "--json").stdout) == []
    reader = Reservations(env=env)
    for n, order_id in enumerate(ids):
        reservation: Reservation = reader.repository.get(Reservation.id_for(order_id))
        assert reservation.seen == ([1, 2] if n == 3 else [1])


def test_a_runner_in_one_process_refuses_a_follower_workers_ran_in_segments(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventsourcing_rs.system import MultiThreadedRunner, SingleThreadedRunner

    from .segment_system import system

    env = store_env("sqlite", tmp_path)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    follower = Reservations()
    book = lease_book_for(follower.recorder)
    assert book is not None
    book.create_table()
    prepare(follower, ["Orders"], 4, book)
    for runner_cls in (SingleThreadedRunner, MultiThreadedRunner):
        runner = runner_cls(system)
        with pytest.raises(SegmentsChanged, match="in 4 segments"):
            runner.start()
    # Back to one segment (level positions): runners may run it again.
    prepare(follower, ["Orders"], 1, book)
    runner = SingleThreadedRunner(system)
    runner.start()
    runner.get(Orders).place(1)
    assert runner.get(Reservations).recorder.max_tracking_id("Orders") == 1
    runner.stop()
