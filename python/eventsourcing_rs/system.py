"""Systems of process applications, and the runners that run them.

Followers pull their leaders' notification logs and run a policy on each
event; the new events and a tracking record of the notification commit in
one insert, so every notification is processed exactly once. Log reading,
section ids and the multi-threaded prompt queue run in Rust, and so do a
follower's whole pull from a leader in the same process (FollowerPull) and
the single-threaded runner's prompt loop, while the methods on their path
are the stock ones.
"""

from __future__ import annotations

import logging
import sys
import time
from abc import ABC, abstractmethod
from collections import defaultdict
from threading import Event, Thread
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Literal,
    Optional,
    Sequence,
    Set,
    Tuple,
    Type,
    TypeVar,
    Union,
    cast,
)

from eventsourcing_rs import _core, shortcuts
from eventsourcing_rs.application import (
    _APPLICATION_NOTIFY,
    Application,
    LocalNotificationLog,
    NotificationLog,
    _definitions,
)
from eventsourcing_rs.domain import Aggregate, AggregateEvent
from eventsourcing_rs.group_commit import PendingAwareEventStore, PendingEvents
from eventsourcing_rs.persistence import (
    EventStore,
    IntegrityError,
    Mapper,
    Notification,
    ProcessRecorder,
    Tracking,
    TrackingRefused,
)
from eventsourcing_rs.status import EdgeLag, edge_lags, wait_caught_up
from eventsourcing_rs.utils import get_topic, resolve_topic


class ProcessEvent:
    """The outcome of processing one notification: the tracking record of
    its position and the new events the policy produced."""

    def __init__(self, tracking: Optional[Tracking] = None):
        self.tracking = tracking
        self.events: List[AggregateEvent] = []

    def save(self, *aggregates: Aggregate) -> None:
        """Collects the pending events of ``aggregates``; they are recorded
        together with the tracking record."""
        for aggregate in aggregates:
            self.events += aggregate.collect_events()


_PROCESS_EVENT_INIT = ProcessEvent.__init__


class ProcessingError(Exception):
    """A follower's thread was ended by something that is not an
    ``Exception`` (``SystemExit``, ``KeyboardInterrupt``), which is its
    ``__cause__``: raised by a runner's ``stop()`` instead of it, so that
    stopping a runner does not exit the caller.

    A follower's ordinary error (a policy raising ``InsufficientStock``,
    say) reaches the caller as itself, as in the reference, with these
    same attributes set on it and a note (PEP 678) naming the
    application, the leader and the notification.
    """

    def __init__(
        self,
        application_name: str,
        leader_name: str,
        notification_id: Optional[int],
        error: BaseException,
    ):
        position = (
            f"notification {notification_id}" if notification_id is not None else "notifications"
        )
        super().__init__(
            f"{application_name} failed to process {position} from {leader_name}: {error!r}"
        )
        self.application_name = application_name
        self.leader_name = leader_name
        self.notification_id = notification_id
        self.error = error


_log = logging.getLogger("eventsourcing_rs")


class _Overtaken(Exception):
    """A batch's insert was refused, and the follower's stored position for
    the leader has moved past the position the batch was read from: another
    instance of the follower recorded from it meanwhile. Nothing of the
    batch was written; the pull starts again from the stored position.
    Never reaches a caller: :func:`Follower.pull_and_process` (and the
    single-threaded runner's loop in Rust) pull again on it."""


class Follower(Application):
    """An application that follows other applications' notification logs,
    processing each new event with its :func:`policy`.

    Its recorder is a process recorder, which records new events together
    with the position of the notification that caused them.
    """

    # Notifications recorded together in one insert (group commit). 1 makes
    # each notification its own transaction, as in the reference. Large
    # batches pay on SQLite: new events of random aggregate ids land on
    # scattered index pages, and a commit writes each page it touched once,
    # however many of its rows changed (a batch of 1000 costs about 40% less
    # per event than one of 100 on a file database).
    pull_batch_size: int = 1000

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.readers: Dict[str, Tuple[NotificationLogReader, Mapper]] = {}
        # Per leader, the last notification id processed (kept in Rust).
        self.tracking_book = _core.TrackingBook()
        self.recorder: ProcessRecorder
        # The (leader, notification id) being processed; left in place when
        # processing fails, so the runner can say which notification failed.
        self.processing: Optional[Tuple[str, int]] = None
        # Per leader, the recorder calls a pull makes (see shortcuts.py),
        # and the pull in Rust made of them (None where there is none).
        self._calls: Dict[str, shortcuts.FollowerCalls] = {}
        # False: one could not be made to apply (see _pull_without_step).
        self._pull_steps: Dict[str, Union[_core.FollowerPull, None, Literal[False]]] = {}
        # Set by a runner or worker that stops: a pull ends at the next
        # batch it records, rather than when it reaches the end of the log
        # (which a leader saving faster than this follower keeps away).
        self._stop_pulling: Optional[Event] = None

    def _pulls_stop(self) -> bool:
        stop = self._stop_pulling
        return stop is not None and stop.is_set()

    def construct_recorder(self) -> ProcessRecorder:
        return self.factory.process_recorder()

    def construct_event_store(self) -> EventStore[AggregateEvent]:
        # Serves a batch's pending events to the policies of the batch.
        return PendingAwareEventStore(mapper=self.mapper, recorder=self.recorder)

    def follow(self, name: str, log: NotificationLog) -> None:
        """Starts following the named application through ``log``."""
        assert isinstance(self.recorder, ProcessRecorder)
        reader = NotificationLogReader(log)
        mapper = self.construct_mapper(name)
        self.readers[name] = (reader, mapper)

    def pull_and_process(self, name: str) -> None:
        """Processes the named leader's notifications from the one after
        the last tracked, in notification order.

        Up to :attr:`pull_batch_size` processed notifications are recorded
        together in one insert, with the tracking record of the last (group
        commit); a policy sees, through the repository, the events of the
        policies before it in the batch.

        If the policy (or anything else) raises, the notifications processed
        before it are recorded, nothing is recorded for the failing one, and
        the error propagates with a note naming this application, the leader
        and the notification id; calling again resumes from that
        notification.
        """
        while True:
            try:
                self._pull_once(name)
                return
            except _Overtaken:
                # Another instance recorded from the position this pull
                # started at: pull again from where it got to.
                continue

    def _pull_once(self, name: str) -> None:
        # When every object on the path is a stock one backed by Rust, the
        # whole pull runs in Rust (see FollowerPull), which says whether it
        # still applies; else it is made again, or the pull runs here.
        step = self._pull_steps.get(name)
        if step is None:
            self._pull_without_step(name, True)
        elif step is False:
            self._pull_without_step(name, False)
        elif not cast(_core.FollowerPull, step).run(name):
            self._pull_without_step(name, True)

    def _pull_without_step(self, name: str, make_step: bool) -> None:
        """The pull, where no FollowerPull applies. With ``make_step``, one
        is made (and run) if the calls on the path are all Rust ones; else
        the pull runs in Python, batched unless :func:`record` or the batch
        size says otherwise."""
        batch_size = self.pull_batch_size
        if batch_size <= 1 or type(self).record is not Follower.record:
            self._pull_one_at_a_time(name)
            return
        reader, mapper = self.readers[name]
        store = self.events
        recorder, log, book = self.recorder, reader.notification_log, self.tracking_book
        found = self._calls.get(name)
        if found is None or not found.guard.holds(recorder, store, log, mapper, book):
            found = shortcuts.FollowerCalls(
                recorder, store, log, LocalNotificationLog, mapper, book
            )
            self._calls[name] = found
        if make_step and found.kernel is not None:
            step = self._make_pull_step(name, found.kernel, store)
            self._pull_steps[name] = step
            if step is not None:
                if step.run(name):
                    return
                # One that does not apply when just made never will (type
                # version tags unusable here, say): it is not made again.
                self._pull_steps[name] = False
        # The batch's new events, served by the event store to the policies
        # that follow in the batch.
        pending = store.pending if isinstance(store, PendingAwareEventStore) else PendingEvents()
        self._pull_in_python(name, batch_size, reader, mapper, found.calls, pending)

    def _make_pull_step(
        self, name: str, kernel: _core.PullKernel, store: EventStore[AggregateEvent]
    ) -> Optional[_core.FollowerPull]:
        """A FollowerPull for the leader, if this follower's pull and notify
        can run in Rust around its kernel; None if not."""
        pending: Optional[PendingEvents] = None
        if isinstance(store, PendingAwareEventStore):
            pending = store.pending
            if type(pending).clear is not PendingEvents.clear:
                return None
        notify, followers, runner_receive = self._notify_mode()
        # The class (its version tag) and, unless notify is called as a
        # method anyway, instance attributes that would replace it.
        watched: List[Tuple[Any, List[str]]] = [
            (self, [] if notify == "method" else ["notify", "prompt_followers"])
        ]
        pinned: List[Tuple[Any, str]] = [
            (self, "pull_batch_size"),
            (self, "readers"),
            (self, "recorder"),
            (self, "events"),
            (self, "tracking_book"),
            (self.readers[name][0], "notification_log"),
        ]
        if pending is not None:
            watched.append((pending, ["clear"]))
            pinned.append((store, "pending"))
        if followers is not None:
            pinned.append((self, "followers"))
        return _core.FollowerPull(
            self,
            kernel,
            _core.MethodGuard(watched, pinned),
            self.readers,
            self.readers[name],
            pending,
            self.pull_batch_size,
            sys.modules[__name__],
            _PROCESS_EVENT_INIT,
            notify,
            followers,
            runner_receive,
        )

    def _finish_kernel_page(
        self, name: str, outcome: Tuple[Any, ...], events: List[AggregateEvent]
    ) -> bool:
        """Handles a page the kernel did not finish: a method on the path
        was replaced during it (the batch is recorded through the Python
        methods), a policy raised (what came before it is recorded, and the
        error raised), or recording failed (and wrote nothing). True: the
        pull goes on; False: it is over."""
        _, count, tracking, failed_id, error, _, marks = outcome
        if error is None:
            return not self._record_batch(name, events, tracking, count, marks)
        if failed_id is not None:
            self.processing = (name, failed_id)
            self._note_failure(error, name, failed_id, None)
            try:
                raise error
            except BaseException:
                # What was processed before it stands; should recording
                # that fail too, its error is raised, chained to this.
                self._record_batch(name, events, tracking, count, marks)
                raise
        self._raise_if_overtaken(name, tracking, error)
        if count == 1:
            self._note_recording_failure(error, name, tracking)
            raise error
        self._record_each(name, events, tracking, marks)
        return True

    def _pull_in_python(
        self,
        name: str,
        batch_size: int,
        reader: NotificationLogReader,
        mapper: Mapper,
        calls: Tuple[Any, Any, Any],
        pending: PendingEvents,
    ) -> None:
        """The batched pull, where some call on its path is a Python one
        (or a page in Rust found one replaced). The insert is found afresh
        for each batch (a policy may replace it)."""
        max_tracking_id, select, _ = calls
        start = self._next_position(name, max_tracking_id)
        # The position each batch is read from: its tracking record commits
        # only while the stored position is still this one.
        previous = start - 1
        if select:
            # A batch at a time straight from the leader's recorder (the
            # stock log's select would cap each page at its section size).
            notifications: Iterable[Notification] = select(start, batch_size)
        else:
            notifications = reader.select(start=start)
        events = pending.events
        tracking: Optional[Tracking] = None
        count = 0
        # Per notification: the batch's events once it was processed, its id.
        marks: List[Tuple[int, int]] = []
        notification: Optional[Notification] = None
        self.processing = None
        to_domain_event = mapper.to_domain_event
        policy = self.policy
        try:
            while True:
                for notification in notifications:
                    process_event = ProcessEvent(Tracking(name, notification.id, previous))
                    policy(to_domain_event(notification), process_event)
                    events += process_event.events
                    tracking = process_event.tracking
                    count += 1
                    marks.append((len(events), notification.id))
                    if count >= batch_size:
                        previous = notification.id
                        pending.clear()
                        batch = (events, tracking, count, marks)
                        # Taken: if recording it fails, the handler below
                        # must not record it again.
                        events, tracking, count, marks = pending.events, None, 0, []
                        if self._record_batch(name, *batch):
                            # Recorded by pulling again one at a time, which
                            # went on to the end of the log: nothing is left.
                            self.processing = None
                            return
                        if self._pulls_stop():
                            # Stopping: the pull ends at a recorded batch
                            # (also when reading through a log's sections).
                            break
                stopped_by = getattr(notifications, "stopped_by", None)
                if stopped_by is not None:
                    # The page stopped at a row that could not be read:
                    # what came before it is recorded, and its error raised.
                    self._note_failure(stopped_by, name, None, None)
                    raise stopped_by
                # A short page is the end of the log for now.
                if not select or len(notifications) < batch_size:  # type: ignore[arg-type]
                    break
                if self._pulls_stop():
                    break
                notifications = select(notifications[-1].id + 1, batch_size)  # type: ignore[index]
        except _Overtaken:
            pending.clear()
            self.processing = None
            raise
        except Exception as error:
            # A batch retried one notification at a time has already said
            # which notification failed; otherwise it is this one.
            if self.processing is None:
                if notification is not None:
                    self.processing = (name, notification.id)
                self._note_failure(
                    error, name, notification.id if notification is not None else None, start
                )
            # What was processed before the failure stands on its own.
            pending.clear()
            self._record_batch(name, events, tracking, count, marks)
            raise
        except BaseException:
            # Interrupted (KeyboardInterrupt, say): nothing of the batch is
            # recorded, nor left pending; it is processed again next time.
            if self.processing is None and notification is not None:
                self.processing = (name, notification.id)
            pending.clear()
            raise
        pending.clear()
        if count:
            self._record_batch(name, events, tracking, count, marks)
        self.processing = None

    def _pull_one_at_a_time(self, name: str) -> None:
        reader, mapper = self.readers[name]
        start = self._next_position(name)
        previous = start - 1
        notification: Optional[Notification] = None
        rows = reader.select(start=start)
        try:
            while True:
                # None while a row is read: an error reading one names it.
                notification = self.processing = None
                if self._pulls_stop():
                    break
                notification = next(rows, None)
                if notification is None:
                    break
                self.processing = (name, notification.id)
                domain_event = mapper.to_domain_event(notification)
                process_event = ProcessEvent(Tracking(name, notification.id, previous))
                self.policy(domain_event, process_event)
                try:
                    self.record(process_event)
                except Exception as error:
                    self._raise_if_overtaken(name, process_event.tracking, error)
                    raise
                previous = notification.id
        except _Overtaken:
            self.processing = None
            raise
        except Exception as error:
            self._note_failure(
                error, name, notification.id if notification is not None else None, start
            )
            raise
        self.processing = None

    def _record_batch(
        self,
        name: str,
        events: List[AggregateEvent],
        tracking: Optional[Tracking],
        count: int,
        marks: Optional[Sequence[Tuple[int, int]]] = None,
    ) -> bool:
        """Records a batch of ``count`` processed notifications. If its
        insert fails, nothing of it was written: with the batch's ``marks``
        (for each notification, the number of the batch's events once it
        was processed, and its id), it is recorded a notification at a
        time, so that the error, if it recurs, names the notification at
        fault and the ones before it are recorded, without calling their
        policies again; without them, the leader is pulled again one
        notification at a time (to the end of its log), and True says that
        happened."""
        if not count:
            return False
        try:
            self._put_tracked(events, tracking)
        except Exception as error:
            self._raise_if_overtaken(name, tracking, error)
            if count == 1:
                self._note_recording_failure(error, name, tracking)
                raise
            if marks is not None and len(marks) == count:
                self._record_each(name, events, tracking, marks)
                return False
            self._reprocess_one_at_a_time(name)
            return True
        self.notify(events)
        return False

    def _record_each(
        self,
        name: str,
        events: List[AggregateEvent],
        tracking: Optional[Tracking],
        marks: Sequence[Tuple[int, int]],
    ) -> None:
        """After a batch's insert failed (writing nothing): records its
        notifications one at a time, each with its own events and a
        tracking record read from the one before, as 9.1 would have; the
        first that fails raises, naming its notification, and the batch's
        later notifications are left to be processed again."""
        previous = getattr(tracking, "previous_id", None)
        done = 0
        for upto, notification_id in marks:
            own = events[done:upto]
            one = Tracking(name, notification_id, previous)
            try:
                self._put_tracked(own, one)
            except Exception as error:
                self._raise_if_overtaken(name, one, error)
                self.processing = (name, notification_id)
                self._note_failure(error, name, notification_id, None)
                raise
            self.notify(own)
            previous = notification_id
            done = upto

    def _raise_if_overtaken(
        self, name: str, tracking: Optional[Tracking], error: BaseException
    ) -> None:
        """After recording ``tracking``'s batch failed (writing nothing):
        raises :class:`_Overtaken` if the stored position has moved past
        the one the batch was read from, so the pull starts again from
        there instead of reporting the error."""
        previous = getattr(tracking, "previous_id", None)
        if previous is None or not isinstance(error, TrackingRefused):
            # Only the tracking record's refusal: any other error (one a
            # user's record() raised after its insert committed, say) is
            # the caller's to see.
            return
        try:
            found = self.recorder.max_tracking_id(name)
        except Exception:
            return
        if found > previous:
            self.tracking_book.learn(name, found)
            raise _Overtaken(
                f"{type(self).__name__} was overtaken at notification {found} of {name}"
            ) from error

    def _note_recording_failure(
        self, error: BaseException, name: str, tracking: Optional[Tracking]
    ) -> None:
        """Says which notification's record failed (its events and tracking
        record were refused together, so it is still to be processed)."""
        if tracking is not None and self.processing is None:
            self.processing = (name, tracking.notification_id)
            self._note_failure(error, name, tracking.notification_id, None)

    def _reprocess_one_at_a_time(self, name: str) -> None:
        """After a batch's insert failed (writing nothing): processes the
        leader again one notification at a time, to the end of its log, so
        the error, if it recurs, names the notification at fault."""
        saved = self.pull_batch_size
        self.pull_batch_size = 1
        try:
            self.pull_and_process(name)
        finally:
            self.pull_batch_size = saved

    def _note_failure(
        self,
        error: BaseException,
        name: str,
        notification_id: Optional[int],
        start: Optional[int],
    ) -> None:
        if notification_id is None:
            # A row of the leader's that could not be read says which.
            stored_at = getattr(error, "notification_id", None)
            if isinstance(stored_at, int):
                notification_id = stored_at
                self.processing = (name, stored_at)
        if notification_id is not None:
            where = f"notification {notification_id}"
        elif start is not None:
            where = f"notifications from id {start}"
        else:
            where = "notifications"
        error.add_note(f"while {type(self).__name__} processed {where} from {name}")

    @abstractmethod
    def policy(
        self,
        domain_event: AggregateEvent,
        process_event: ProcessEvent,
    ) -> None:
        """Processes one event. Save changed aggregates with
        ``process_event.save(...)`` (not ``self.save``), so their events
        are recorded atomically with the tracking record."""

    def record(self, process_event: ProcessEvent) -> None:
        """Records the process event's new events and tracking record in
        one insert, then notifies."""
        self._put_tracked(process_event.events, process_event.tracking)
        self.notify(process_event.events)

    def _next_position(
        self, name: str, max_tracking_id: Optional[Callable[[str], int]] = None
    ) -> int:
        """The id of the next notification to process from the leader."""
        # The recorder is the authority (another process may have moved it
        # on); the book keeps what it says for the checks made on insert.
        if max_tracking_id is None:
            max_tracking_id = shortcuts.follower_calls(self.recorder, self.events, None, None)[0]
        known = self.tracking_book.position(name)
        if known is not None and self._book_is_kept(max_tracking_id):
            # What this follower last recorded (or read): a round trip saved
            # on each pull. If another instance has moved on since, the
            # batch's tracking record is refused (it says where it was read
            # from), and the pull reads the position again.
            return known + 1
        position = max_tracking_id(name)
        self.tracking_book.learn(name, position)
        return position + 1

    def _book_is_kept(self, max_tracking_id: Callable[[str], int]) -> bool:
        """Whether the tracking book follows every record this follower
        makes (its ``record`` is the stock one), and the position would
        come from the stock recorder method (no override to call)."""
        if type(self).record is not Follower.record or "record" in vars(self):
            return False
        method = getattr(max_tracking_id, "__func__", None)
        owner = getattr(max_tracking_id, "__self__", None)
        if method is None:
            # A Rust method: follower_calls gives it only for a stock recorder.
            return owner is not None and owner is getattr(self.recorder, "_recorder", None)
        # The PostgreSQL recorder's own (not imported here: it needs
        # psycopg), found by name on a recorder that is one.
        return (
            owner is self.recorder
            and getattr(method, "__module__", None) == "eventsourcing_rs.postgres"
            and getattr(method, "__qualname__", None) == "PostgresProcessRecorder.max_tracking_id"
            and "max_tracking_id" not in vars(self.recorder)
        )

    def _put_tracked(self, events: List[AggregateEvent], tracking: Optional[Tracking]) -> None:
        """Puts events with their tracking record. A tracking id that does
        not advance past the last one is refused before anything is sent.
        The insert goes straight to the Rust recorder when the store and
        recorder are stock (found afresh each time: a policy may have
        replaced a method); else the event store puts the events."""
        store = self.events
        if tracking is None:
            store.put(events)
            return
        name = tracking.application_name
        self.tracking_book.check(name, tracking.notification_id)
        insert = shortcuts.follower_calls(self.recorder, store, None, None)[2]
        try:
            if insert is not None:
                insert(list(map(store.mapper.from_domain_event, events)), tracking)
            else:
                store.put(events, tracking=tracking)
        except BaseException:
            self.tracking_book.forget(name)
            raise
        try:
            self.tracking_book.advance(name, tracking.notification_id)
        except IntegrityError:
            # Committed; the book was moved meanwhile (another thread of
            # this follower): read again from the recorder next time.
            self.tracking_book.forget(name)


class Promptable(ABC):
    """Something that can be told a leader has new notifications."""

    @abstractmethod
    def receive_prompt(self, leader_name: str) -> None:
        """Receives the name of a leader with new notifications."""


class Leader(Application):
    """An application that prompts its followers after recording events."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.followers: List[Promptable] = []

    def lead(self, follower: Promptable) -> None:
        """Adds a follower to prompt."""
        self.followers.append(follower)

    def notify(self, new_events: List[AggregateEvent]) -> None:
        super().notify(new_events)
        if len(new_events):
            self.prompt_followers()

    def prompt_followers(self) -> None:
        """Prompts every follower with this application's name."""
        name = type(self).__name__
        for follower in self.followers:
            follower.receive_prompt(name)

    def _notify_mode(self) -> Tuple[str, Optional[List[Any]], Any]:
        """("prompt", followers, the runner's receive_prompt) while this
        class's notify is Leader's over Application's and its
        prompt_followers is Leader's: a save or pull in Rust prompts the
        followers itself."""
        if (
            not {"notify", "prompt_followers"}.intersection(vars(self))
            and _definitions(type(self), "notify") == [_LEADER_NOTIFY, _APPLICATION_NOTIFY]
            and _definitions(type(self), "prompt_followers") == [_PROMPT_FOLLOWERS]
            and type(self.followers) is list
        ):
            return ("prompt", self.followers, _RUNNER_RECEIVE_PROMPT)
        return super()._notify_mode()


class ProcessApplication(Leader, Follower, ABC):
    """An application that both follows and leads."""


_LEADER_NOTIFY = Leader.notify
_PROMPT_FOLLOWERS = Leader.prompt_followers
_PULL_AND_PROCESS = Follower.pull_and_process
_STOCK_LOCAL_LOG = (LocalNotificationLog.__getitem__, LocalNotificationLog.select)


class System:
    """A system of applications, defined by pipes: sequences of
    application classes, each following the one before it."""

    def __init__(self, pipes: Iterable[Iterable[Type[Application]]]):
        classes: Dict[str, Type[Application]] = {}
        edges: Set[Tuple[str, str]] = set()
        for pipe in pipes:
            previous: Optional[Type[Application]] = None
            for cls in pipe:
                classes[cls.__name__] = cls
                if previous is not None:
                    edges.add((previous.__name__, cls.__name__))
                previous = cls
        self.edges = list(edges)
        self.nodes: Dict[str, str] = {name: get_topic(cls) for name, cls in classes.items()}
        self.follows: Dict[str, List[str]] = defaultdict(list)
        self.leads: Dict[str, List[str]] = defaultdict(list)
        for leader, follower in edges:
            self.leads[leader].append(follower)
            self.follows[follower].append(leader)
        for name in self.follows:
            if not issubclass(classes[name], Follower):
                raise TypeError(f"Not a follower class: {classes[name]}")
        for name in self.processors:
            if not issubclass(classes[name], ProcessApplication):
                raise TypeError(f"Not a process application class: {classes[name]}")

    @property
    def leaders(self) -> Iterable[str]:
        return self.leads.keys()

    @property
    def leaders_only(self) -> Iterable[str]:
        for name in self.leads.keys():
            if name not in self.follows:
                yield name

    @property
    def followers(self) -> Iterable[str]:
        return self.follows.keys()

    @property
    def processors(self) -> Iterable[str]:
        return set(self.leaders).intersection(self.followers)

    def get_app_cls(self, name: str) -> Type[Application]:
        cls = resolve_topic(self.nodes[name])
        assert issubclass(cls, Application)
        return cls

    def leader_cls(self, name: str) -> Type[Leader]:
        """The named class, made a leader if it is not one already."""
        cls = self.get_app_cls(name)
        if issubclass(cls, Leader):
            return cls
        leader_cls = type(cls.__name__, (Leader, cls), {})
        return cast(Type[Leader], leader_cls)

    def follower_cls(self, name: str) -> Type[Follower]:
        cls = self.get_app_cls(name)
        assert issubclass(cls, Follower)
        return cls


A = TypeVar("A")


class RunnerAlreadyStarted(Exception):
    """The runner was started twice."""


class Runner(ABC):
    """Runs a :class:`System`."""

    def __init__(self, system: System):
        self.system = system
        self.is_started = False

    @abstractmethod
    def start(self) -> None:
        """Constructs the applications and connects them."""
        if self.is_started:
            raise RunnerAlreadyStarted()
        self.is_started = True

    def _log_started(self) -> None:
        _log.info("%s started: %s", type(self).__name__, ", ".join(sorted(self.system.nodes)))

    @abstractmethod
    def stop(self) -> None:
        """Stops the runner."""

    @abstractmethod
    def get(self, cls: Type[A]) -> A:
        """Returns the running instance of an application class."""

    def lags(self) -> List[EdgeLag]:
        """For each leader -> follower edge, the leader's last notification
        id, the follower's position and the lag between them."""
        apps: Dict[str, Application] = getattr(self, "apps", {})
        return edge_lags(self.system.edges, apps)

    def wait(self, timeout: Optional[float] = None) -> None:
        """Returns once every follower has processed every notification of
        its leaders; raises TimeoutError after ``timeout`` seconds (naming
        the edges that lag), or the first error that stopped a follower."""
        wait_caught_up(self.lags, timeout, lambda: list(getattr(self, "errors", [])))


def _processing_error(follower: Follower, leader_name: str, error: BaseException) -> Exception:
    """The follower's error as its caller sees it: the error itself, with
    ``application_name``, ``leader_name`` and ``notification_id`` set on
    it (the pull has added a note saying the same); an error that is not
    an ``Exception`` comes inside a :class:`ProcessingError`."""
    position = follower.processing
    notification_id = position[1] if position and position[0] == leader_name else None
    application_name = type(follower).__name__
    if not isinstance(error, Exception):
        wrapped = ProcessingError(application_name, leader_name, notification_id, error)
        wrapped.__cause__ = error
        return wrapped
    for attribute, value in (
        ("application_name", application_name),
        ("leader_name", leader_name),
        ("notification_id", notification_id),
    ):
        try:
            setattr(error, attribute, value)
        except AttributeError:
            # An error type with slots, or read-only properties of its
            # own: the note still names all three.
            pass
    return error


def _refuse_if_run_in_segments(follower: Follower) -> None:
    from eventsourcing_rs.segments import refuse_if_run_in_segments

    refuse_if_run_in_segments(follower)


def _raise_first(errors: List[Exception]) -> None:
    """Raises the first error, if any, noting the others on it."""
    if errors:
        first = errors[0]
        for other in errors[1:]:
            first.add_note(f"also: {other!r} ({_where(other)})")
        raise first


def _where(error: BaseException) -> str:
    """Where an error from a follower came from, from its attributes."""
    notification_id = getattr(error, "notification_id", None)
    position = f"notification {notification_id}" if notification_id is not None else "notifications"
    return (
        f"{getattr(error, 'application_name', '?')} processing {position} "
        f"from {getattr(error, 'leader_name', '?')}"
    )


def _behind(system: System, apps: Dict[str, Application], only: Optional[str] = None) -> List[str]:
    """Leaders with notifications some follower (or ``only`` that one) has
    not processed yet."""
    names: List[str] = []
    for leader_name, follower_name in system.edges:
        if only is not None and follower_name != only:
            continue
        follower = apps[follower_name]
        assert isinstance(follower, Follower)
        recorded = apps[leader_name].recorder.max_notification_id()
        if recorded > follower.recorder.max_tracking_id(leader_name):
            if leader_name not in names:
                names.append(leader_name)
    return names


class SingleThreadedRunner(Runner, Promptable):
    """Runs a system in the caller's thread: saving events in a leader
    processes them through its followers before ``save`` returns.

    A follower's error propagates to the caller as itself (as in the
    reference), with attributes and a note naming the application, leader
    and notification, after the other followers have had their turn; the
    runner stays usable, and the next prompt retries whatever the failed
    follower has not yet processed. A retry that fails again at the same
    notification is logged rather than raised: as with 9.1's runner, whose
    followers stop at their first error, a later save that prompts them
    returns normally (its own events are recorded), rather than raising an
    error it did not cause.
    """

    def __init__(self, system: System):
        super().__init__(system)
        self.apps: Dict[str, Application] = {}
        self.prompts_received: List[str] = []
        self.is_prompting = False
        # Each leader's followers, in the system's order (looked up once
        # here, not on every prompt).
        self._followers_of: Dict[str, List[Follower]] = {}
        # Where each (follower, leader) last failed, as raised to a caller.
        self._failed_at: Dict[Tuple[str, str], int] = {}

    def start(self) -> None:
        super().start()
        self._failed_at.clear()
        for name in self.system.followers:
            self.apps[name] = self.system.follower_cls(name)()
            _refuse_if_run_in_segments(cast(Follower, self.apps[name]))
        for name in self.system.leaders_only:
            self.apps[name] = self.system.leader_cls(name)()
        for leader_name, follower_name in self.system.edges:
            leader = self.apps[leader_name]
            follower = self.apps[follower_name]
            assert isinstance(leader, Leader)
            assert isinstance(follower, Follower)
            leader.lead(self)
            follower.follow(type(leader).__name__, leader.log)
        for leader_name in self.system.leaders:
            self._followers_of[leader_name] = [
                cast(Follower, self.apps[name]) for name in self.system.leads[leader_name]
            ]
        self._log_started()
        # Catch up on anything recorded while the system was not running
        # (after a crash, say); any error propagates as it would from save.
        for leader_name in _behind(self.system, self.apps):
            self.receive_prompt(leader_name)

    def receive_prompt(self, leader_name: str) -> None:
        """Queues the prompt, then (unless already prompting, further up
        this call stack) processes queued prompts until none are left."""
        if leader_name not in self.prompts_received:
            self.prompts_received.append(leader_name)
        if self.is_prompting:
            return
        self.is_prompting = True
        errors: List[Exception] = []
        try:
            # Takes each queued name in turn and has its followers pull it,
            # collecting their errors, until the queue is empty (in Rust:
            # one pull per notification makes this loop a hot path).
            _core.drain_prompts(self, errors, _processing_error, _PULL_AND_PROCESS)
        finally:
            self.is_prompting = False
        if errors:
            _raise_first(self._not_raised_before(errors))

    def _not_raised_before(self, errors: List[Exception]) -> List[Exception]:
        """The errors a caller has not seen yet: one at the notification a
        follower last failed at, from the same leader, is a retry failing
        again, and is logged instead."""
        new = []
        for error in errors:
            notification_id = getattr(error, "notification_id", None)
            key = (getattr(error, "application_name", None), getattr(error, "leader_name", None))
            if isinstance(error, ProcessingError) or not isinstance(notification_id, int):
                new.append(error)
            elif self._failed_at.get(key) == notification_id:  # type: ignore[arg-type]
                _log.warning("%s failed again: %r", _where(error), error)
            else:
                self._failed_at[key] = notification_id  # type: ignore[index]
                new.append(error)
        return new

    def stop(self) -> None:
        self.apps.clear()
        self._followers_of.clear()
        _log.info("SingleThreadedRunner stopped")

    def get(self, cls: Type[A]) -> A:
        app = self.apps[cls.__name__]
        assert isinstance(app, cls)
        return app


_RUNNER_RECEIVE_PROMPT = SingleThreadedRunner.receive_prompt


class MultiThreadedRunner(Runner):
    """Runs each follower in its own thread, prompted through a Rust
    prompt queue.

    A follower whose processing fails stops its thread; the error is kept
    in :attr:`errors` (as itself, with attributes and a note naming the
    application, leader and notification; anything that is not an
    ``Exception`` inside a :class:`ProcessingError`), logged on the
    ``eventsourcing_rs`` logger, and :func:`stop` re-raises the first one.
    Nothing is recorded for the failed notification, so a runner started
    again after the cause is fixed processes it exactly once.
    """

    def __init__(self, system: System):
        super().__init__(system)
        self.apps: Dict[str, Application] = {}
        self.threads: Dict[str, MultiThreadedRunnerThread] = {}
        self.is_stopping = Event()

    def start(self) -> None:
        super().start()
        for name in self.system.followers:
            app_class = self.system.follower_cls(name)
            thread = MultiThreadedRunnerThread(
                app_class=app_class,
                is_stopping=self.is_stopping,
            )
            self.threads[name] = thread
            thread.start()
            if (not thread.is_running.wait(timeout=5)) or thread.has_stopped.is_set():
                self._stop_threads()
                raise Exception(
                    f"Thread for '{app_class.__name__}' failed to start"
                ) from thread.start_error
            self.apps[name] = thread.app
            try:
                _refuse_if_run_in_segments(thread.app)
            except Exception:
                self._stop_threads()
                raise
        for name in self.system.leaders_only:
            self.apps[name] = self.system.leader_cls(name)()
        for leader_name, follower_name in self.system.edges:
            leader = self.apps[leader_name]
            follower = self.apps[follower_name]
            assert isinstance(leader, Leader)
            assert isinstance(follower, Follower)
            follower.follow(type(leader).__name__, leader.log)
            leader.lead(self.threads[follower_name])
        self._log_started()
        # Catch up on anything recorded while the system was not running.
        for leader_name, follower_name in self.system.edges:
            if leader_name in _behind(self.system, self.apps, follower_name):
                self.threads[follower_name].receive_prompt(leader_name)

    def _stop_threads(self) -> None:
        self.is_stopping.set()
        for thread in self.threads.values():
            thread.stop_prompting()
        for thread in self.threads.values():
            if thread.is_alive():
                thread.join()

    def stop(self) -> None:
        """Stops every thread, waits for them, and re-raises the first
        processing error if a follower failed."""
        self._stop_threads()
        _log.info("MultiThreadedRunner stopped")
        _raise_first(self.errors)

    @property
    def errors(self) -> List[Exception]:
        """Errors that stopped follower threads, in thread order."""
        return [t.error for t in self.threads.values() if t.error is not None]

    @property
    def has_stopped(self) -> bool:
        return all(t.has_stopped.is_set() for t in self.threads.values())

    def get(self, cls: Type[A]) -> A:
        app = self.apps[cls.__name__]
        assert isinstance(app, cls)
        return app


class MultiThreadedRunnerThread(Promptable, Thread):
    """Runs one follower for a :class:`MultiThreadedRunner`: constructs the
    application, then waits on its prompt queue (with the GIL released)
    and pulls from each prompting leader."""

    # How long a wait lasts before the thread looks at ``is_stopping``;
    # stopping also wakes the queue, so this only bounds a missed wake-up.
    POLL_INTERVAL = 1.0
    # How long a follower that is behind waits for more before pulling, as
    # a multiple of its last pull's time, and at most (see _loop). One
    # prompted while idle pulls at once.
    LINGER_FACTOR = 6.0
    MAX_LINGER = 0.005

    def __init__(
        self,
        app_class: Type[Follower],
        is_stopping: Event,
    ):
        super().__init__(daemon=True)
        self.app_class = app_class
        self.is_stopping = is_stopping
        self.has_stopped = Event()
        self.has_errored = Event()
        self.is_running = Event()
        self.error: Optional[Exception] = None
        self.start_error: Optional[Exception] = None
        self.app: Follower
        self._prompts = _core.PromptQueue()
        self._linger = 0.0

    @property
    def prompted_names(self) -> List[str]:
        """Leader names prompted and not yet taken for processing."""
        return self._prompts.pending

    def run(self) -> None:
        try:
            self.app = self.app_class()
            self.app._stop_pulling = self.is_stopping
        except Exception as error:
            # Handed to the runner, which raises it as the cause of its own
            # "failed to start" error (so it is neither lost nor reported
            # twice by the thread's excepthook).
            self.start_error = error
            self.has_errored.set()
            self.has_stopped.set()
            return
        finally:
            self.is_running.set()
        try:
            self._loop()
        finally:
            # The application outlives its thread (runner.get): its pulls
            # are whole again.
            self.app._stop_pulling = None
            self.has_stopped.set()

    def _loop(self) -> None:
        # Whatever ends the thread (an error, SystemExit, KeyboardInterrupt,
        # a Rust panic) is kept for the runner and logged: none vanishes.
        name = ""
        try:
            while not self.is_stopping.is_set():
                # Prompted during the last pull: the leaders are writing
                # faster than this follower commits.
                behind = bool(self._prompts.pending)
                names = self._prompts.wait(self.POLL_INTERVAL)
                if names is None or self.is_stopping.is_set():
                    return
                if behind and self._linger:
                    # Gathering: a leader saving one event at a time would
                    # otherwise have this follower commit every few events,
                    # each commit a sync (or a round trip) competing with
                    # the leader's own. Waiting a few times as long as the
                    # last pull took (never more than MAX_LINGER) lets more
                    # arrive for one commit. Latency is added only under
                    # load: a follower prompted while idle pulls at once.
                    self.is_stopping.wait(self._linger)
                for name in names:
                    started = time.perf_counter()
                    self.app.pull_and_process(name)
                    self._linger = min(
                        self.LINGER_FACTOR * (time.perf_counter() - started), self.MAX_LINGER
                    )
        except BaseException as error:
            self.error = _processing_error(self.app, name, error)
            self.has_errored.set()
            _log.error(
                "%s stopped: %s", self.app_class.__name__, _where(self.error), exc_info=error
            )

    def receive_prompt(self, leader_name: str) -> None:
        self._prompts.put(leader_name)

    def stop_prompting(self) -> None:
        """Wakes the thread so it sees the runner is stopping."""
        self._prompts.stop()


class NotificationLogReader:
    """Reads a notification log from a position onwards.

    Positions are notification ids, which start at 1; a ``start`` below 1
    reads from the first notification.
    """

    DEFAULT_SECTION_SIZE = 10

    def __init__(
        self,
        notification_log: NotificationLog,
        section_size: int = DEFAULT_SECTION_SIZE,
    ):
        self.notification_log = notification_log
        self.section_size = section_size

    def read(self, *, start: int) -> Iterator[Notification]:
        """Yields notifications from ``start``, following the log's
        sections by their ``next_id``."""
        log = self.notification_log
        # A stock local log over a Rust recorder is read without building
        # its sections in Python (see shortcuts.local_log_select).
        direct = shortcuts.local_log_select(log, LocalNotificationLog, _STOCK_LOCAL_LOG)
        return cast(
            Iterator[Notification],
            _core.SectionReader(log, start, self.section_size, direct),
        )

    def select(self, *, start: int) -> Iterator[Notification]:
        """Yields notifications from ``start``, paging through the log's
        ``select`` ``section_size`` at a time."""
        return cast(
            Iterator[Notification],
            _core.SelectReader(self.notification_log, start, self.section_size),
        )


def __getattr__(name: str) -> Any:
    # Imported on first use: the runner's module imports this one.
    if name == "MultiProcessRunner":
        from eventsourcing_rs.processes import MultiProcessRunner

        return MultiProcessRunner
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Follower",
    "Leader",
    "MultiThreadedRunner",
    "MultiThreadedRunnerThread",
    "NotificationLogReader",
    "ProcessApplication",
    "ProcessEvent",
    "ProcessingError",
    "Promptable",
    "Runner",
    "RunnerAlreadyStarted",
    "SingleThreadedRunner",
    "System",
]
