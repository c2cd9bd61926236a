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
import threading
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence

from eventsourcing_rs.application import Application
from eventsourcing_rs.leases import LeaseBook, lease_book_for, new_owner_name
from eventsourcing_rs.persistence import (
    InfrastructureFactory,
    InvalidSetting,
    LeaseLost,
    PersistenceError,
)
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
    """Waits for a NOTIFY on the leaders' channels, or the timeout."""

    def __init__(self, stopping: threading.Event, datastore: Any, channels: Sequence[str]):
        super().__init__(stopping)
        self.datastore = datastore
        self.channels = list(channels)
        self.conn: Any = None

    def _connect(self) -> Any:
        import psycopg

        d = self.datastore
        conn = psycopg.connect(
            dbname=d.dbname,
            host=d.host,
            port=d.port,
            user=d.user,
            password=d.password,
            autocommit=True,
            connect_timeout=5,
        )
        for channel in self.channels:
            conn.execute(f'LISTEN "{channel}"')
        return conn

    def wait(self, timeout: float) -> None:
        import psycopg

        try:
            if self.conn is None or self.conn.closed:
                self.conn = self._connect()
            for _ in self.conn.notifies(timeout=timeout, stop_after=1):
                pass
            # Others that came meanwhile say nothing more.
            for _ in self.conn.notifies(timeout=0.0):
                pass
        except psycopg.Error as error:
            # Polling goes on without it; listening is tried again next time.
            _log.debug("Listening for notifications failed: %s", error)
            self.close()
            self.stopping.wait(timeout)

    def close(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
            self.conn = None


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
    ):
        super().__init__(name=f"follower-{name}", daemon=True)
        self.system = system
        self.follower_name = name
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
        self.settings = WorkerSettings.from_factory(app.factory)
        book = lease_book_for(app.recorder)
        if book is None:
            raise TypeError(
                f"Application '{self.follower_name}' uses a store that processes cannot "
                f"share ({type(app.recorder).__name__}): a worker needs PostgreSQL or an "
                "SQLite file"
            )
        book.create_table()
        self.book: LeaseBook = book
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
                epoch = self.book.acquire(
                    self.follower_name, self.owner, self.settings.lease_seconds
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
                _log.info("%s: standing by (another worker holds the lease)", self.follower_name)
                said = True
            self.stopping.wait(min(self.settings.lease_seconds / 4, 1.0))
        return None

    def _be_active(self, epoch: int) -> None:
        assert self.app is not None
        app = self.app
        table = self.book.table
        app.recorder.set_fence(table, self.follower_name, epoch)  # type: ignore[attr-defined]
        self.epoch = epoch
        self.lease_lost.clear()
        _log.info("%s: active (lease epoch %d, %s)", self.follower_name, epoch, self.owner)
        heartbeat = _Heartbeat(self)
        heartbeat.start()
        try:
            self._process()
        finally:
            heartbeat.stop()
            app.recorder.set_fence(None)  # type: ignore[attr-defined]
            self.epoch = None
            if self.stopping.is_set() and not self.lease_lost.is_set():
                try:
                    self.book.release(self.follower_name, self.owner, epoch)
                except Exception as error:  # noqa: BLE001 - it lapses anyway
                    _log.warning("%s: cannot release the lease: %s", self.follower_name, error)

    def _process(self) -> None:
        assert self.app is not None
        app = self.app
        interval = _MIN_POLL_SECONDS
        backoff = _Backoff(self.settings.max_backoff_seconds)
        while not self.stopping.is_set():
            if self.lease_lost.is_set():
                _log.warning("%s: lease lost; stepping down", self.follower_name)
                return
            found = False
            failed = False
            for leader_name in self.leaders:
                before = app.tracking_book.position(leader_name)
                try:
                    app.pull_and_process(leader_name)
                except LeaseLost as error:
                    _log.warning(
                        "%s: another worker took over; stepping down (%s)",
                        self.follower_name,
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
                    loop.follower_name, loop.owner, epoch, loop.settings.lease_seconds
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
            loop = FollowerLoop(self.system, name, self.owner, self.stopping, self.env)
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
        """Whether this worker holds the named follower's lease."""
        return any(loop.follower_name == name and loop.epoch for loop in self.loops)
