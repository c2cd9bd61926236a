"""Dead letters: a notification whose policy keeps failing is parked, so
that one poison event stops one aggregate, not the whole follower.

Off by default (9.1's behaviour: the follower stops at the failing
notification and retries it). Turned on per follower by the class
attribute ``dead_letter_attempts`` or the environment variable
``DEAD_LETTER_ATTEMPTS`` (prefixed with the application's name if you
like): the number of times a worker tries a notification (with its usual
backoff between tries) before parking it.

Parking is recording, in the follower's own store and in the same
transaction as the tracking record that moves its position past the
notification, a ``DeadLetter`` aggregate (the leader, the notification
id, the aggregate it was about, the error and its traceback) and an entry
in the follower's ``DeadLetterIndex``. Later notifications of the same
aggregate are parked behind it (so, per aggregate, events are never
processed out of order); everything else keeps flowing. The parked
letters are events of the follower's log like any other: its own
followers see them, and ignore them unless their policies look for them.

:class:`DeadLetters` lists parked letters, retries one (its aggregate's
oldest first: the policy runs again on the notification, and what it saves
is recorded with the letter marked retried, in one transaction, so a
letter is retried at most once) or discards one. The command line has
``eventsourcing-rs dead-letters``.
"""

from __future__ import annotations

import logging
import traceback
from typing import Any, Callable, Dict, List, Optional, Tuple
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing_rs.application import AggregateNotFound
from eventsourcing_rs.domain import Aggregate, AggregateEvent, event
from eventsourcing_rs.persistence import InvalidSetting

_log = logging.getLogger("eventsourcing_rs")

DEAD_LETTER_ATTEMPTS = "DEAD_LETTER_ATTEMPTS"


class DeadLetter(Aggregate):
    """A parked notification of a leader, with why it was parked."""

    @staticmethod
    def id_for(follower_name: str, tracking_name: str, notification_id: int) -> UUID:
        return uuid5(
            NAMESPACE_URL,
            f"eventsourcing_rs/dead-letter/{follower_name}/{tracking_name}/{notification_id}",
        )

    class Parked(Aggregate.Created):
        follower_name: str
        leader_name: str
        tracking_name: str
        notification_id: int
        aggregate_id: str
        error: str
        trace: str

    @classmethod
    def park(
        cls,
        follower_name: str,
        leader_name: str,
        tracking_name: str,
        notification_id: int,
        aggregate_id: UUID,
        error: str,
        trace: str,
    ) -> DeadLetter:
        return cls._create(
            cls.Parked,
            id=cls.id_for(follower_name, tracking_name, notification_id),
            follower_name=follower_name,
            leader_name=leader_name,
            tracking_name=tracking_name,
            notification_id=notification_id,
            aggregate_id=str(aggregate_id),
            error=error,
            trace=trace,
        )

    def __init__(
        self,
        follower_name: str,
        leader_name: str,
        tracking_name: str,
        notification_id: int,
        aggregate_id: str,
        error: str,
        trace: str,
    ):
        self.follower_name = follower_name
        self.leader_name = leader_name
        self.tracking_name = tracking_name
        self.notification_id = notification_id
        # The leader's aggregate the notification was about.
        self.aggregate_id = aggregate_id
        self.error = error
        self.trace = trace
        self.status = "parked"

    @event("Retried")
    def retried(self) -> None:
        self.status = "retried"

    @event("Discarded")
    def discarded(self) -> None:
        self.status = "discarded"


class DeadLetterIndex(Aggregate):
    """A follower's parked letters, by the aggregate they are about, oldest
    first."""

    @staticmethod
    def id_for(follower_name: str) -> UUID:
        return uuid5(NAMESPACE_URL, f"eventsourcing_rs/dead-letters/{follower_name}")

    class Started(Aggregate.Created):
        follower_name: str

    @classmethod
    def start(cls, follower_name: str) -> DeadLetterIndex:
        return cls._create(cls.Started, id=cls.id_for(follower_name), follower_name=follower_name)

    def __init__(self, follower_name: str):
        self.follower_name = follower_name
        self.parked: Dict[str, List[str]] = {}

    @event("Added")
    def add(self, aggregate_id: str, letter_id: str) -> None:
        self.parked.setdefault(aggregate_id, []).append(letter_id)

    @event("Removed")
    def remove(self, aggregate_id: str, letter_id: str) -> None:
        letters = self.parked.get(aggregate_id, [])
        if letter_id in letters:
            letters.remove(letter_id)
        if not letters:
            self.parked.pop(aggregate_id, None)


def attempts_setting(follower: Any) -> Optional[int]:
    """The follower's number of attempts before parking, or None (off)."""
    value = (follower.factory.getenv(DEAD_LETTER_ATTEMPTS) or "").strip()
    if not value:
        found = getattr(type(follower), "dead_letter_attempts", None)
        return None if found is None else int(found)
    try:
        attempts = int(value)
    except ValueError:
        attempts = 0
    if attempts < 1:
        raise InvalidSetting(
            f"{type(follower).__name__.upper()}_{DEAD_LETTER_ATTEMPTS}={value!r}: "
            "the number of attempts before parking is a whole number from 1"
        )
    return attempts


def _index(follower: Any) -> DeadLetterIndex:
    name = type(follower).__name__
    try:
        index: DeadLetterIndex = follower.repository.get(DeadLetterIndex.id_for(name))
    except AggregateNotFound:
        index = DeadLetterIndex.start(name)
    return index


class ParkingPolicy:
    """A follower's policy, with parking: set on the follower instance by
    the worker when dead letters are on. It counts each notification's
    failed attempts (in this worker), lets the error propagate (so the
    worker backs off and tries again) until the last attempt, then records
    a dead letter instead of what the policy would have saved; and parks
    behind it the later notifications of the same aggregate."""

    def __init__(self, follower: Any, attempts: int):
        self.follower = follower
        self.attempts = attempts
        self.policy: Callable[[AggregateEvent, Any], None] = type(follower).policy.__get__(follower)
        self.failures: Dict[Tuple[str, int], int] = {}
        self.name = type(follower).__name__
        self.blocked = set(_index(follower).parked)

    def __call__(self, domain_event: AggregateEvent, process_event: Any) -> None:
        tracking = process_event.tracking
        originator = str(domain_event.originator_id)
        if originator in self.blocked:
            index = _index(self.follower)
            if originator in index.parked:
                behind = index.parked[originator][0]
                self._park(
                    domain_event, process_event, index, f"parked behind dead letter {behind}", ""
                )
                return
            self.blocked.discard(originator)
        try:
            self.policy(domain_event, process_event)
        except Exception as error:
            if tracking is None:
                raise
            key = (tracking.application_name, tracking.notification_id)
            tried = self.failures[key] = self.failures.get(key, 0) + 1
            if tried < self.attempts:
                raise
            del self.failures[key]
            trace = "".join(traceback.format_exception(error))
            self._park(
                domain_event,
                process_event,
                _index(self.follower),
                f"{type(error).__name__}: {error}",
                trace,
            )
            _log.warning(
                "%s parked notification %d of %s after %d attempts: %s",
                self.name,
                tracking.notification_id,
                tracking.application_name,
                tried,
                error,
            )

    def _park(
        self,
        domain_event: AggregateEvent,
        process_event: Any,
        index: DeadLetterIndex,
        error: str,
        trace: str,
    ) -> None:
        tracking = process_event.tracking
        leader_name = tracking.application_name.split("#", 1)[0]
        letter = DeadLetter.park(
            self.name,
            leader_name,
            tracking.application_name,
            tracking.notification_id,
            domain_event.originator_id,
            error,
            trace,
        )
        index.add(str(domain_event.originator_id), str(letter.id))
        # Nothing the failed policy saved is kept: only the letter.
        process_event.events.clear()
        process_event.save(letter, index)
        self.blocked.add(str(domain_event.originator_id))


class DeadLetters:
    """The parked letters of a follower: list, retry, discard. ``leaders``
    gives the follower's leaders (applications on their stores), for
    reading the parked notifications again."""

    def __init__(self, follower: Any, leaders: Dict[str, Any]):
        self.follower = follower
        self.leaders = leaders
        self.name = type(follower).__name__

    def list(self) -> List[DeadLetter]:
        """The parked letters, by aggregate, oldest first."""
        index = _index(self.follower)
        return [
            self.follower.repository.get(UUID(letter_id))
            for letters in index.parked.values()
            for letter_id in letters
        ]

    def _parked(self, letter_id: UUID) -> Tuple[DeadLetter, DeadLetterIndex]:
        letter: DeadLetter = self.follower.repository.get(letter_id)
        if letter.status != "parked":
            raise ValueError(f"Dead letter {letter_id} is {letter.status}, not parked")
        index = _index(self.follower)
        first = index.parked.get(letter.aggregate_id, [None])[0]
        if first != str(letter_id):
            raise ValueError(
                f"Dead letter {letter_id} is parked behind {first} (of the same aggregate): "
                "retry or discard that one first"
            )
        return letter, index

    def retry(self, letter_id: UUID) -> None:
        """Runs the policy again on the letter's notification and records
        what it saves with the letter marked retried, in one transaction.
        If the policy fails again, nothing is recorded and its error
        propagates."""
        from eventsourcing_rs.system import ProcessEvent

        letter, index = self._parked(letter_id)
        leader = self.leaders[letter.leader_name]
        found = leader.recorder.select_notifications(letter.notification_id, 1)
        if not found or found[0].id != letter.notification_id:
            raise ValueError(
                f"Notification {letter.notification_id} of {letter.leader_name} is gone"
            )
        mapper = self.follower.construct_mapper(letter.leader_name)
        domain_event = mapper.to_domain_event(found[0])
        process_event = ProcessEvent()
        type(self.follower).policy(self.follower, domain_event, process_event)
        letter.retried()
        index.remove(letter.aggregate_id, str(letter.id))
        events = process_event.events + letter.collect_events() + index.collect_events()
        self.follower.events.put(events)

    def discard(self, letter_id: UUID) -> None:
        """Gives the letter up: its notification is never processed."""
        letter, index = self._parked(letter_id)
        letter.discarded()
        index.remove(letter.aggregate_id, str(letter.id))
        self.follower.save(letter, index)
