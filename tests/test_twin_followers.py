"""Exactly once with two instances of one follower (an overlapping deploy,
a process thought dead): a batch records its tracking as a compare-and-set
from the position it was read from, so a batch overlapping one the other
instance recorded is refused whole, and the instance that lost the race
carries on from the stored position."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, List, Optional, Type

import pytest
from eventsourcing_rs.system import Follower

from .twin_apps import TwinCopier, TwinCopierOwnRecord, TwinSource

ROOT = Path(__file__).resolve().parent.parent
APP_NAMES = ["TwinSource", "TwinCopier", "TwinCopierOwnRecord"]


def sqlite_env(directory: Path) -> Dict[str, str]:
    return {
        "INFRASTRUCTURE_FACTORY": "eventsourcing_rs.sqlite:Factory",
        "TWINSOURCE_SQLITE_DBNAME": str(directory / "source.db"),
        "TWINCOPIER_SQLITE_DBNAME": str(directory / "copier.db"),
        "TWINCOPIEROWNRECORD_SQLITE_DBNAME": str(directory / "copier-own-record.db"),
    }


def postgres_env() -> Dict[str, str]:
    from .pg_server import require_server, settings

    require_server()
    s = settings()
    return {
        "INFRASTRUCTURE_FACTORY": "eventsourcing_rs.postgres:Factory",
        "POSTGRES_DBNAME": s["dbname"],
        "POSTGRES_HOST": s["host"],
        "POSTGRES_PORT": s["port"],
        "POSTGRES_USER": s["user"],
        "POSTGRES_PASSWORD": s["password"],
    }


def drop_postgres_tables() -> None:
    from .pg_server import drop_application_tables

    drop_application_tables(list(APP_NAMES))


@contextmanager
def store_env(kind: str, directory: Path) -> Iterator[Dict[str, str]]:
    """The environment of a store shared by every instance, set in this
    process too; PostgreSQL tables are dropped before and after."""
    env = sqlite_env(directory) if kind == "sqlite" else postgres_env()
    if kind == "postgres":
        drop_postgres_tables()
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield env
    finally:
        os.environ.clear()
        os.environ.update(saved)
        if kind == "postgres":
            drop_postgres_tables()


def copies(copier: Follower) -> Counter[int]:
    """How often each leader item number was copied, from the follower's
    own log."""
    counts: Counter[int] = Counter()
    for n in copier.recorder.select_notifications(1, 10**9):
        counts[copier.mapper.to_domain_event(n).number] += 1  # type: ignore[attr-defined]
    return counts


def make_copier(cls: Type[TwinCopier], source: TwinSource, batch: Optional[int]) -> TwinCopier:
    copier = cls()
    if batch is not None:
        copier.pull_batch_size = batch
    copier.follow("TwinSource", source.log)
    return copier


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
@pytest.mark.parametrize(
    "cls,batch",
    [(TwinCopier, None), (TwinCopier, 1), (TwinCopier, 3), (TwinCopierOwnRecord, None)],
    ids=["batched", "one-at-a-time", "batches-of-3", "own-record"],
)
def test_a_batch_overlapping_the_other_instances_is_refused_and_resumed_after_it(
    kind: str, cls: Type[TwinCopier], batch: Optional[int], tmp_path: Path
) -> None:
    with store_env(kind, tmp_path):
        source = TwinSource()
        for number in range(1, 11):
            source.make(number)
        first = make_copier(cls, source, 5)
        second = make_copier(cls, source, batch)
        first.fail_at = 6

        def first_records_one_to_five() -> None:
            # Interleaved by hand: while the second instance processes its
            # batch (read from position 0), the first records 1-5.
            with pytest.raises(RuntimeError, match="item 6"):
                first.pull_and_process("TwinSource")
            assert first.recorder.max_tracking_id("TwinSource") == 5

        second.on_first = first_records_one_to_five
        second.pull_and_process("TwinSource")

        assert first.seen == [1, 2, 3, 4, 5, 6]
        # Its first batch (read from position 0) was refused whole, and it
        # went on from position 5: 6-10, each once.
        size = 1 if cls is TwinCopierOwnRecord else min(batch or 10, 10)
        assert second.seen == list(range(1, size + 1)) + [6, 7, 8, 9, 10]
        assert second.recorder.max_tracking_id("TwinSource") == 10
        assert copies(second) == Counter(range(1, 11))
        assert second.processing is None


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
@pytest.mark.parametrize("batch", [None, 1, 10, 1000], ids=lambda b: f"batch-{b or 'default'}")
def test_two_processes_running_one_follower_process_each_notification_once(
    kind: str, batch: Optional[int], tmp_path: Path
) -> None:
    count = 1500
    with store_env(kind, tmp_path) as env:
        # Tables made before the processes race to make them.
        TwinSource()
        TwinCopier()
        child_env = dict(os.environ, PYTHONPATH=str(ROOT), **env)
        if batch is not None:
            child_env["TWIN_BATCH_SIZE"] = str(batch)
        module = [sys.executable, "-c", "from tests.twin_apps import main; main()"]
        followers = [
            subprocess.Popen(
                [*module, "follow", str(count), "60"],
                cwd=ROOT,
                env=child_env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(2)
        ]
        writer = subprocess.run(
            [*module, "write", str(count)],
            cwd=ROOT,
            env=child_env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert writer.returncode == 0, writer.stderr
        processed: List[int] = []
        for follower in followers:
            out, err = follower.communicate(timeout=120)
            assert follower.returncode == 0, err
            processed.append(int(out.split()[-1]))

        source = TwinSource()
        copier = TwinCopier()
        assert source.recorder.max_notification_id() == count
        assert copier.recorder.max_tracking_id("TwinSource") == count
        # Every follower event's origin against the leader's log: each
        # leader item copied exactly once.
        origins = Counter(
            copier.mapper.to_domain_event(n).origin  # type: ignore[attr-defined]
            for n in copier.recorder.select_notifications(1, 10**9)
        )
        leader_ids = [n.originator_id for n in source.recorder.select_notifications(1, 10**9)]
        assert sorted(origins) == sorted(leader_ids)
        assert set(origins.values()) == {1}
        assert copies(copier) == Counter(range(1, count + 1))
        # Both instances did work (at least one processed notifications
        # the other then did not record).
        assert sum(processed) >= count


class PublishingCopier(TwinCopier):
    """Records, then publishes elsewhere, which fails (after the insert
    committed)."""

    def record(self, process_event: Any) -> None:
        super().record(process_event)
        raise RuntimeError("publishing failed")


def test_an_error_raised_after_the_insert_committed_reaches_the_caller(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Not taken for a lost race with another instance (the stored position
    # has moved past the batch's start, but by this instance's own insert).
    for key, value in sqlite_env(tmp_path).items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("PUBLISHINGCOPIER_SQLITE_DBNAME", str(tmp_path / "publishing.db"))
    source = TwinSource()
    source.make(1)
    copier = make_copier(PublishingCopier, source, None)
    with pytest.raises(RuntimeError, match="publishing failed"):
        copier.pull_and_process("TwinSource")
    assert copier.seen == [1]
    assert copier.recorder.max_tracking_id("TwinSource") == 1
