"""Notification logs across a process boundary, as JSON text.

A service (:class:`NotificationLogJSONService`) serialises an application's
notification log; a client (:class:`NotificationLogJSONClient`) is a
:class:`~eventsourcing_rs.application.NotificationLog` that reads it back
through any :class:`NotificationLogInterface` — the service itself, or an
HTTP (or other) client that forwards the calls to one.

The JSON documents are those of ``eventsourcing`` 9.1, so services and
clients of either library work together: a section is an object with
``id``, ``next_id`` and ``items``; a notification is an object with ``id``,
``originator_id`` (32 hex digits), ``originator_version``, ``topic`` and
``state`` (base64).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from base64 import b64decode, b64encode
from typing import Any, Dict, Generic, List
from uuid import UUID

from eventsourcing_rs.application import NotificationLog, Section, TApplication
from eventsourcing_rs.persistence import Notification


class NotificationLogInterface(ABC):
    """The calls a remote notification log answers, in serialised form."""

    @abstractmethod
    def get_log_section(self, section_id: str) -> str:
        """Returns the section named by ``section_id`` ("first,last"),
        serialised."""

    @abstractmethod
    def get_notifications(self, start: int, limit: int) -> str:
        """Returns up to ``limit`` notifications from id ``start``,
        serialised."""


def _notification_to_dict(notification: Notification) -> Dict[str, Any]:
    return {
        "id": notification.id,
        "originator_id": notification.originator_id.hex,
        "originator_version": notification.originator_version,
        "topic": notification.topic,
        "state": b64encode(notification.state).decode("ascii"),
    }


def _notification_from_dict(item: Dict[str, Any]) -> Notification:
    return Notification(
        id=item["id"],
        originator_id=UUID(item["originator_id"]),
        originator_version=item["originator_version"],
        topic=item["topic"],
        state=b64decode(item["state"]),
    )


class NotificationLogJSONService(NotificationLogInterface, Generic[TApplication]):
    """Serves an application's notification log as JSON text."""

    def __init__(self, app: TApplication):
        self.app = app

    def get_log_section(self, section_id: str) -> str:
        section = self.app.log[section_id]
        return json.dumps(
            {
                "id": section.id,
                "next_id": section.next_id,
                "items": [_notification_to_dict(n) for n in section.items],
            }
        )

    def get_notifications(self, start: int, limit: int) -> str:
        notifications = self.app.log.select(start, limit)
        return json.dumps([_notification_to_dict(n) for n in notifications])


class NotificationLogJSONClient(NotificationLog):
    """A notification log read through a :class:`NotificationLogInterface`
    that answers in JSON text."""

    def __init__(self, interface: NotificationLogInterface):
        self.interface = interface

    def __getitem__(self, section_id: str) -> Section:
        document = json.loads(self.interface.get_log_section(section_id))
        return Section(
            id=document["id"],
            next_id=document["next_id"],
            items=[_notification_from_dict(item) for item in document["items"]],
        )

    def select(self, start: int, limit: int) -> List[Notification]:
        document = json.loads(self.interface.get_notifications(start, limit))
        return [_notification_from_dict(item) for item in document]


__all__ = [
    "NotificationLogInterface",
    "NotificationLogJSONClient",
    "NotificationLogJSONService",
]
