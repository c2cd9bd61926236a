"""Running a system's followers in worker processes, on one host or many.

A :class:`Worker` runs the named applications of a :class:`System` in the
calling process: one thread per follower, each the active instance of its
follower only while it holds the follower's lease (see
:mod:`eventsourcing_rs.leases`), a hot standby otherwise. An active
follower pulls from its leaders when woken: by a NOTIFY from a leader's
commit on PostgreSQL, and always by polling on an adaptive interval (short
after work, growing to ``WORKER_POLL_SECONDS`` when idle), so a lost
notification only delays processing.

The ``eventsourcing-rs worker`` command and :class:`MultiProcessRunner` run
one of these per process. Settings come from the environment, optionally
prefixed with the upper-cased application name:

``WORKER_LEASE_SECONDS`` (10)
    how long a lease lasts unless renewed (it is renewed every third of
    it); a standby takes over at most this long after the active worker
    dies, at once after it stops cleanly.
``WORKER_POLL_SECONDS`` (1)
    the longest wait between two looks at the leaders.
``WORKER_NOTIFY`` (yes)
    on PostgreSQL, whether leaders notify after committing and followers
    listen.
``WORKER_MAX_BACKOFF_SECONDS`` (30)
    the longest wait before retrying after an error (a failing policy, a
    lost database); waits double from a tenth of a second up to it.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence

from eventsourcing_rs.application import Application
from eventsourcing_rs.dead_letters import ParkingPolicy, attempts_setting
from eventsourcing_rs.leases import LeaseBook, lease_book_for, new_owner_name
from eventsourcing_rs.persistence import (
    InfrastructureFactory,
    InvalidSetting,
    LeaseLost,
    PersistenceError,
)
from eventsourcing_rs.segments import (
    Segment,
    pull_segment,
    segment_count,
    segments,
)
from eventsourcing_rs.segments import prepare as prepare_segments
from eventsourcing_rs.system import Follower, Leader, System, _processing_error, _where

_log = logging.getLogger("eventsourcing_rs")

# The shortest wait between looks at the leaders, after work was found.
_MIN_POLL_SECONDS = 0.01
_MIN_BACKOFF_SECONDS = 0.1


@dataclass(frozen=True)
class WorkerSettings:
    """How a worker holds leases, waits and retries (see the module)."""

    lease_seconds: float = 10.0
    poll_seconds: float = 1.0
    notify: bool = True
    max_backoff_seconds: float = 30.0

    @classmethod
    def from_factory(cls, factory: InfrastructureFactory) -> WorkerSettings:
        """The settings in an application's environment."""
        default = cls()
        return cls(
            lease_seconds=_seconds(factory, "WORKER_LEASE_SECONDS", default.lease_seconds, 0.1),
            poll_seconds=_seconds(factory, "WORKER_POLL_SECONDS", default.poll_seconds, 0.001),
            notify=factory.env_flag("WORKER_NOTIFY", default.notify),
            max_backoff_seconds=_seconds(
                factory, "WORKER_MAX_BACKOFF_SECONDS", default.max_backoff_seconds, 0.1
            ),
        )


def _seconds(factory: InfrastructureFactory, key: str, default: float, least: float) -> float:
    value = factory.env_seconds(key, 366 * 86400.0)
    if value is None:
        return default
    if value < least:
        raise InvalidSetting(f"{key}={value!r} is too short: at least {least} seconds")
    return value


def enable_notify(app: Application, settings: WorkerSettings) -> None:
    """Has a leader's recorder send a NOTIFY after each commit, where its
    store can (PostgreSQL) and the settings ask for it."""
    enable = getattr(app.recorder, "enable_notify", None)
    if settings.notify and enable is not None:
        enable(leader_name=type(app).__name__)


class Waker:
    """Waits for a leader's news: here, by sleeping (polling)."""

    def __init__(self, stopping: threading.Event):
        self.stopping = stopping

    def wait(self, timeout: float) -> None:
        self.stopping.wait(timeout)

    def close(self) -> None:
        pass


class PostgresWaker(Waker):
    """Waits for a NOTIFY on the leaders' channels (a connection of its own,
    in Rust, the GIL released), or the timeout."""

    def __init__(self, stopping: threading.Event, datastore: Any, channels: Sequence[str]):
        super().__init__(stopping)
        self.datastore = datastore
        self.channels = list(channels)
        self.listener: Any = None

    def wait(self, timeout: float) -> None:
        try:
            if self.listener is None:
                self.listener = self.datastore.native.listen(self.channels)
            # In slices, so that a worker told to stop does not wait out a
            # long poll interval.
            deadline = time.monotonic() + timeout
            while not self.stopping.is_set():
                left = deadline - time.monotonic()
                if left <= 0 or self.listener.wait(min(left, 0.2)):
                    return
        except PersistenceError as error:
            # Polling goes on without it; listening is tried again next time.
            _log.debug("Listening for notifications failed: %s", error)
            self.close()
            self.stopping.wait(timeout)

    def close(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None


class FollowerLoop(threading.Thread):
    """One follower of a worker: standby until it holds the follower's
    lease, then active until it stops or loses the lease."""

    def __init__(
        self,
        system: System,
        name: str,
        owner: str,
        stopping: threading.Event,
        env: Optional[Mapping[str, str]],
        segment: Optional[Segment] = None,
        balance: Optional[Balance] = None,
    ):
        super().__init__(name=f"follower-{name}", daemon=True)
        self.system = system
        self.follower_name = name
        # One segment of a segmented follower (see eventsourcing_rs.segments).
        self.segment = segment
        self.balance = balance
        self.lease_name = segment.lease_name(name) if segment else name
        self.owner = owner
        self.stopping = stopping
        self.env = env
        self.app: Optional[Follower] = None
        self.leaders: Dict[str, Leader] = {}
        self.epoch: Optional[int] = None
        self.lease_lost = threading.Event()
        self.error: Optional[BaseException] = None
        self.processed = 0

    # --- setting up ---------------------------------------------------

    def _construct(self) -> None:
        app = self.system.follower_cls(self.follower_name)(env=self.env)
        app._stop_pulling = self.stopping
        self.settings = WorkerSettings.from_factory(app.factory)
        attempts = attempts_setting(app)
        if attempts is not None:
            # Dead letters on: the policy parks what keeps failing.
            app.policy = ParkingPolicy(app, attempts)  # type: ignore[method-assign]
        book = lease_book_for(app.recorder)
        if book is None:
            raise TypeError(
                f"Application '{self.follower_name}' uses a store that processes cannot "
                f"share ({type(app.recorder).__name__}): a worker needs PostgreSQL or an "
                "SQLite file"
            )
        book.create_table()
        self.book: LeaseBook = book
        if self.balance is not None:
            self.balance.prepare(app, self.system.follows[self.follower_name], book)
        if self.follower_name in self.system.leads:
            enable_notify(app, self.settings)
        channels = []
        for leader_name in self.system.follows[self.follower_name]:
            leader = self.system.leader_cls(leader_name)(env=self.env)
            self.leaders[leader_name] = leader
            app.follow(leader_name, leader.log)
            channel = getattr(leader.recorder, "events_table_name", None)
            if channel is not None and hasattr(leader.recorder, "enable_notify"):
                channels.append(channel.split(".")[-1].strip('"'))
        self.waker: Waker = Waker(self.stopping)
        datastore = getattr(app.recorder, "datastore", None)
        if self.settings.notify and channels and hasattr(datastore, "user"):
            self.waker = PostgresWaker(self.stopping, datastore, channels)
        self.app = app

    # --- running ------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except BaseException as error:
            self.error = error
            _log.critical("Worker for %s stopped: %s", self.follower_name, error, exc_info=error)
        finally:
            if self.app is not None:
                self.app.recorder.set_fence(None)  # type: ignore[attr-defined]
                self.app._stop_pulling = None
            waker = getattr(self, "waker", None)
            if waker is not None:
                waker.close()

    def _run(self) -> None:
        backoff = _Backoff(30.0)
        while self.app is None and not self.stopping.is_set():
            try:
                self._construct()
            except PersistenceError as error:
                # The database may come back (a restart, a failover); any
                # other error is one that trying again will not mend.
                delay = backoff.next()
                _log.error(
                    "Cannot start %s (retrying in %.1f s): %s",
                    self.follower_name,
                    delay,
                    error,
                )
                self.stopping.wait(delay)
        while not self.stopping.is_set():
            epoch = self._wait_for_lease()
            if epoch is None:
                return
            self._be_active(epoch)

    def _wait_for_lease(self) -> Optional[int]:
        """Standby: tries the lease until it is had (its epoch) or the
        worker stops (None)."""
        assert self.app is not None
        said = False
        backoff = _Backoff(self.settings.max_backoff_seconds)
        while not self.stopping.is_set():
            try:
                if self.balance is not None:
                    epoch = self.balance.try_take(
                        self,
                        lambda: self.book.acquire(
                            self.lease_name, self.owner, self.settings.lease_seconds
                        ),
                    )
                else:
                    epoch = self.book.acquire(
                        self.lease_name, self.owner, self.settings.lease_seconds
                    )
            except Exception as error:
                delay = backoff.next()
                _log.warning(
                    "%s: cannot reach the leases (retrying in %.1f s): %s",
                    self.follower_name,
                    delay,
                    error,
                )
                self.stopping.wait(delay)
                continue
            if epoch is not None:
                return epoch
            if not said:
                _log.info("%s: standing by (another worker holds the lease)", self.lease_name)
                said = True
            self.stopping.wait(min(self.settings.lease_seconds / 4, 1.0))
        return None

    def _be_active(self, epoch: int) -> None:
        assert self.app is not None
        app = self.app
        table = self.book.table
        app.recorder.set_fence(table, self.lease_name, epoch)  # type: ignore[attr-defined]
        self.epoch = epoch
        self.lease_lost.clear()
        _log.info("%s: active (lease epoch %d, %s)", self.lease_name, epoch, self.owner)
        heartbeat = _Heartbeat(self)
        heartbeat.start()
        try:
            self._process()
        finally:
            heartbeat.stop()
            app.recorder.set_fence(None)  # type: ignore[attr-defined]
            self.epoch = None
            handing_over = self.balance is not None and self.balance.gave_up(self)
            if (self.stopping.is_set() or handing_over) and not self.lease_lost.is_set():
                try:
                    self.book.release(self.lease_name, self.owner, epoch)
                except Exception as error:  # noqa: BLE001 - it lapses anyway
                    _log.warning("%s: cannot release the lease: %s", self.follower_name, error)

    def _process(self) -> None:
        assert self.app is not None
        app = self.app
        interval = _MIN_POLL_SECONDS
        backoff = _Backoff(self.settings.max_backoff_seconds)
        while not self.stopping.is_set():
            if self.lease_lost.is_set():
                _log.warning("%s: lease lost; stepping down", self.lease_name)
                return
            if self.balance is not None and self.balance.over_share(self):
                _log.info("%s: handing over (more than a fair share here)", self.lease_name)
                return
            found = False
            failed = False
            for leader_name in self.leaders:
                before = app.tracking_book.position(leader_name)
                try:
                    if self.segment is not None and self.segment.count > 1:
                        found = pull_segment(app, leader_name, self.segment) > 0 or found
                        continue
                    app.pull_and_process(leader_name)
                except LeaseLost as error:
                    _log.warning(
                        "%s: another worker took over; stepping down (%s)",
                        self.lease_name,
                        error,
                    )
                    self.lease_lost.set()
                    return
                except Exception as error:
                    failed = True
                    delay = backoff.next()
                    error = _processing_error(app, leader_name, error)
                    _log.error(
                        "%s failed (retrying in %.1f s): %s",
                        self.follower_name,
                        delay,
                        _where(error),
                        exc_info=error,
                    )
                    self.stopping.wait(delay)
                    break
                after = app.tracking_book.position(leader_name)
                if after != before:
                    found = True
                    self.processed += 1
            if failed:
                continue
            backoff.reset()
            if found:
                interval = _MIN_POLL_SECONDS
                continue
            self.waker.wait(interval)
            interval = min(interval * 2, self.settings.poll_seconds)


class _Heartbeat(threading.Thread):
    """Renews an active follower's lease every third of its duration; says
    when it was taken over."""

    def __init__(self, loop: FollowerLoop):
        super().__init__(name=f"lease-{loop.follower_name}", daemon=True)
        self.loop = loop
        self.done = threading.Event()

    def run(self) -> None:
        loop = self.loop
        period = loop.settings.lease_seconds / 3
        while not self.done.wait(period):
            epoch = loop.epoch
            if epoch is None:
                return
            try:
                held = loop.book.renew(
                    loop.lease_name, loop.owner, epoch, loop.settings.lease_seconds
                )
            except Exception as error:
                # The database may be back before the lease lapses; if not,
                # the fence stops this worker's writes.
                _log.warning("%s: cannot renew the lease: %s", loop.follower_name, error)
                continue
            if not held:
                loop.lease_lost.set()
                return

    def stop(self) -> None:
        self.done.set()
        self.join()


class Balance:
    """The segments of one follower held by one worker, kept to a fair
    share of them: with N segments and W live workers, each holds
    N // W or one more, and one holding more than N // W hands a segment
    over while another holds fewer (so a worker that joins takes some
    over, and one that dies has its segments taken by the others). Workers
    say they are alive through a lease of their own
    (``<follower>/worker/<owner>``), renewed here; who holds which segment
    is read from the segments' leases."""

    def __init__(self, follower_name: str, count: int, owner: str):
        self.follower_name = follower_name
        self.count = count
        self.owner = owner
        self.held: Dict[int, FollowerLoop] = {}
        self.handing_over: set[int] = set()
        self.lock = threading.Lock()
        self.prepared = False
        self.book: Optional[LeaseBook] = None
        self.seconds = WorkerSettings().lease_seconds
        self.last_look = 0.0
        self.owners: set[str] = {owner}
        self.counts: Dict[str, int] = {}

    def prepare(self, app: Follower, leader_names: Sequence[str], book: LeaseBook) -> None:
        """Once per worker: the change-of-N check, and this worker's
        presence."""
        with self.lock:
            if self.prepared:
                return
            prepare_segments(app, leader_names, self.count, book)
            self.book = book
            self.seconds = WorkerSettings.from_factory(app.factory).lease_seconds
            self.prepared = True
            self._look()

    def _look(self) -> None:
        """Renews this worker's presence; reads the live workers and how
        many segments each holds."""
        book = self.book
        if book is None:
            return
        presence = f"{self.follower_name}/worker/"
        book.acquire(presence + self.owner, self.owner, self.seconds)
        self.owners = set(book.live_holders(presence)) | {self.owner}
        counts: Dict[str, int] = {}
        for holder in book.live_holders(f"{self.follower_name}#"):
            counts[holder] = counts.get(holder, 0) + 1
        self.counts = counts
        self.last_look = time.monotonic()

    def _shares(self) -> tuple[int, bool]:
        """The least fair share, and whether another live worker holds
        fewer than it."""
        least = self.count // len(self.owners)
        needy = any(self.counts.get(o, 0) < least for o in self.owners if o != self.owner)
        return least, needy

    def try_take(self, loop: FollowerLoop, acquire: Callable[[], Optional[int]]) -> Optional[int]:
        """Takes the loop's segment's lease (``acquire``) if this worker
        may hold one more; its epoch, or None."""
        assert loop.segment is not None
        with self.lock:
            self._look()
            mine = len(self.held)
            least, needy = self._shares()
            most = -(-self.count // len(self.owners))
            if not (mine < least or (mine < most and not needy)):
                return None
            epoch = acquire()
            if epoch is not None:
                self.held[loop.segment.index] = loop
            return epoch

    def gave_up(self, loop: FollowerLoop) -> bool:
        """Forgets the loop's segment; True when it was handed over (not
        lost, nor stopped)."""
        assert loop.segment is not None
        with self.lock:
            self.held.pop(loop.segment.index, None)
            if loop.segment.index in self.handing_over:
                self.handing_over.discard(loop.segment.index)
                return True
            return False

    def over_share(self, loop: FollowerLoop) -> bool:
        """Whether the loop should hand its segment over: this worker holds
        more than its share (see the class), and the loop's segment is the
        highest it holds. One at a time."""
        assert loop.segment is not None
        with self.lock:
            if time.monotonic() - self.last_look > self.seconds / 3:
                # Active loops keep the presence too (a worker holding every
                # segment has no standby loop), and learn of workers joining.
                try:
                    self._look()
                except Exception as error:  # noqa: BLE001 - looked at again next time
                    _log.warning("%s: cannot count the workers: %s", self.follower_name, error)
            if self.handing_over:
                return False
            mine = len(self.held)
            least, needy = self._shares()
            most = -(-self.count // len(self.owners))
            if not (mine > most or (mine > least and needy)):
                return False
            if loop.segment.index != max(self.held):
                return False
            self.handing_over.add(loop.segment.index)
            # Counted as given away at once, so no other loop of this
            # worker hands one over on the same look.
            self.counts[self.owner] = self.counts.get(self.owner, mine) - 1
            return True


class _Backoff:
    """Waits that double from a tenth of a second up to a limit."""

    def __init__(self, limit: float):
        self.limit = limit
        self.current = 0.0

    def next(self) -> float:
        self.current = min(self.limit, max(_MIN_BACKOFF_SECONDS, self.current * 2))
        return self.current

    def reset(self) -> None:
        self.current = 0.0


class Worker:
    """Runs the named applications of ``system`` in this process until
    :func:`stop`: each follower in its own thread, active while it holds
    the follower's lease. A leader named here has nothing to run (its
    commands come from its callers) and is skipped."""

    def __init__(
        self,
        system: System,
        names: Sequence[str],
        env: Optional[Mapping[str, str]] = None,
    ):
        unknown = [n for n in names if n not in system.nodes]
        if unknown:
            raise ValueError(
                f"Not an application of the system: {', '.join(map(repr, unknown))} "
                f"(it has {', '.join(sorted(system.nodes))})"
            )
        self.system = system
        self.names = list(dict.fromkeys(names))
        self.followers = [n for n in self.names if n in system.follows]
        if not self.followers:
            raise ValueError(
                f"None of {', '.join(map(repr, self.names))} follows another application: "
                "a worker runs followers"
            )
        self.env = env
        self.owner = new_owner_name()
        self.stopping = threading.Event()
        self.loops: List[FollowerLoop] = []

    def start(self) -> None:
        _log.info("Worker %s starting: %s", self.owner, ", ".join(self.followers))
        for name in self.followers:
            count = segment_count(
                self.system.follower_cls(name), os.environ if self.env is None else self.env
            )
            if count == 1:
                loop = FollowerLoop(self.system, name, self.owner, self.stopping, self.env)
                self.loops.append(loop)
                loop.start()
                continue
            balance = Balance(name, count, self.owner)
            for segment in segments(count):
                loop = FollowerLoop(
                    self.system, name, self.owner, self.stopping, self.env, segment, balance
                )
                self.loops.append(loop)
                loop.start()

    def stop(self) -> None:
        """Stops each follower after its current pull (committed), gives
        up its leases, and waits for the threads."""
        self.stopping.set()
        for loop in self.loops:
            loop.join()
        _log.info("Worker %s stopped", self.owner)

    @property
    def errors(self) -> List[BaseException]:
        """What ended follower threads (not the errors they retry)."""
        return [loop.error for loop in self.loops if loop.error is not None]

    def is_active(self, name: str) -> bool:
        """Whether this worker holds the named follower's lease (or one of
        its segments')."""
        return any(loop.follower_name == name and loop.epoch for loop in self.loops)
