"""Tracking bookkeeping: the follower's record of how far it has processed
each leader, kept in Rust and consistent with the process recorder."""

from typing import Dict

import pytest
from eventsourcing_rs._core import TrackingBook
from eventsourcing_rs.domain import AggregateEvent
from eventsourcing_rs.persistence import IntegrityError, Tracking
from eventsourcing_rs.system import ProcessApplication, ProcessEvent
from hypothesis import given
from hypothesis import strategies as st

steps = st.lists(
    st.tuples(
        st.sampled_from(["learn", "advance", "forget"]), st.sampled_from("AB"), st.integers(0, 9)
    ),
    max_size=40,
)


@given(steps)
def test_book_matches_a_dict_model(ops: list) -> None:
    book = TrackingBook()
    model: Dict[str, int] = {}
    for op, leader, n in ops:
        if op == "learn":
            book.learn(leader, n)
            model[leader] = n
        elif op == "forget":
            book.forget(leader)
            model.pop(leader, None)
        elif leader in model and n <= model[leader]:
            with pytest.raises(IntegrityError, match=f"notification {n} of application '{leader}'"):
                book.advance(leader, n)
        else:
            book.advance(leader, n)
            model[leader] = n
        for name in "AB":
            assert book.position(name) == model.get(name)


class Echo(ProcessApplication):
    def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
        pass


def test_follower_refuses_a_record_that_does_not_advance_and_writes_nothing() -> None:
    echo = Echo()
    echo.record(ProcessEvent(Tracking("Leader", 5)))
    assert echo.tracking_book.position("Leader") == 5
    for stale in (5, 3):
        with pytest.raises(IntegrityError, match=f"notification {stale} of application 'Leader'"):
            echo.record(ProcessEvent(Tracking("Leader", stale)))
    assert echo.recorder.max_tracking_id("Leader") == 5
    assert echo.recorder.max_notification_id() == 0
    echo.record(ProcessEvent(Tracking("Leader", 6)))
    assert echo.tracking_book.position("Leader") == 6 == echo.recorder.max_tracking_id("Leader")


def test_failed_insert_makes_the_book_read_the_recorder_again() -> None:
    echo = Echo()
    echo.tracking_book.learn("Leader", 0)
    # The recorder knows more than the book (written behind its back).
    echo.recorder.insert_events([], tracking=Tracking("Leader", 9))
    with pytest.raises(IntegrityError):
        echo.record(ProcessEvent(Tracking("Leader", 4)))
    assert echo.tracking_book.position("Leader") is None
    assert echo._next_position("Leader") == 10
