"""Bank accounts and card payments, watched by a fraud check: a follower of
two leaders.

``Accounts`` opens accounts and moves money in and out of them;
``CardPayments`` records card payments against an account. ``FraudCheck``
follows both and raises an alert on an account for a large withdrawal or
card payment, and for any movement on an account that already has three
alerts (it is then blocked). Run it with ``python -m
eventsourcing_rs.examples.bank``, or run the system with the command line::

    eventsourcing-rs run eventsourcing_rs.examples.bank:system --runner processes \\
        --store sqlite --sqlite-dir /tmp/bank
"""

from __future__ import annotations

from decimal import Decimal
from typing import List
from uuid import UUID, uuid5

from eventsourcing_rs.application import AggregateNotFound, Application
from eventsourcing_rs.domain import Aggregate, AggregateEvent, event
from eventsourcing_rs.system import ProcessApplication, ProcessEvent, System

# Withdrawals and card payments from this amount up raise an alert.
LARGE_AMOUNT = Decimal("1000")
ALERTS_TO_BLOCK = 3


class InsufficientFunds(Exception):
    """A withdrawal larger than the balance."""


class Account(Aggregate):
    @event("Opened")
    def __init__(self, owner: str):
        self.owner = owner
        self.balance = Decimal("0")

    @event("Deposited")
    def deposit(self, amount: Decimal) -> None:
        self.balance += amount

    def withdraw(self, amount: Decimal) -> None:
        if amount > self.balance:
            raise InsufficientFunds(f"balance {self.balance} is less than {amount}")
        self._withdraw(amount)

    @event("Withdrawn")
    def _withdraw(self, amount: Decimal) -> None:
        self.balance -= amount


class CardPayment(Aggregate):
    @event("Paid")
    def __init__(self, account_id: UUID, amount: Decimal, merchant: str):
        self.account_id = account_id
        self.amount = amount
        self.merchant = merchant


class Watch(Aggregate):
    """The fraud check's view of one account: its alerts."""

    @staticmethod
    def id_for(account_id: UUID) -> UUID:
        return uuid5(account_id, "fraud-watch")

    @classmethod
    def create(cls, account_id: UUID) -> Watch:
        return cls._create(cls.Started, id=cls.id_for(account_id), account_id=account_id)

    class Started(Aggregate.Created):
        account_id: UUID

    def __init__(self, account_id: UUID):
        self.account_id = account_id
        self.alerts: List[str] = []

    @event("AlertRaised")
    def raise_alert(self, reason: str) -> None:
        self.alerts.append(reason)

    @property
    def blocked(self) -> bool:
        return len(self.alerts) >= ALERTS_TO_BLOCK


class Accounts(Application):
    def open_account(self, owner: str) -> UUID:
        account = Account(owner=owner)
        self.save(account)
        return account.id

    def deposit(self, account_id: UUID, amount: Decimal) -> None:
        account: Account = self.repository.get(account_id)
        account.deposit(amount)
        self.save(account)

    def withdraw(self, account_id: UUID, amount: Decimal) -> None:
        account: Account = self.repository.get(account_id)
        account.withdraw(amount)
        self.save(account)

    def balance(self, account_id: UUID) -> Decimal:
        account: Account = self.repository.get(account_id)
        return account.balance


class CardPayments(Application):
    def pay(self, account_id: UUID, amount: Decimal, merchant: str) -> UUID:
        payment = CardPayment(account_id=account_id, amount=amount, merchant=merchant)
        self.save(payment)
        return payment.id


class FraudCheck(ProcessApplication):
    def policy(self, domain_event: AggregateEvent, process_event: ProcessEvent) -> None:
        if isinstance(domain_event, Account.Withdrawn):
            self._look_at(
                domain_event.originator_id, domain_event.amount, "withdrawal", process_event
            )
        elif isinstance(domain_event, CardPayment.Paid):
            self._look_at(
                domain_event.account_id, domain_event.amount, "card payment", process_event
            )

    def _look_at(
        self, account_id: UUID, amount: Decimal, what: str, process_event: ProcessEvent
    ) -> None:
        try:
            watch: Watch = self.repository.get(Watch.id_for(account_id))
        except AggregateNotFound:
            watch = Watch.create(account_id)
        if watch.blocked:
            watch.raise_alert(f"{what} of {amount} on a blocked account")
        elif amount >= LARGE_AMOUNT:
            watch.raise_alert(f"large {what} of {amount}")
        else:
            return
        process_event.save(watch)

    def alerts(self, account_id: UUID) -> List[str]:
        try:
            watch: Watch = self.repository.get(Watch.id_for(account_id))
        except AggregateNotFound:
            return []
        return list(watch.alerts)


system = System(pipes=[[Accounts, FraudCheck], [CardPayments, FraudCheck]])
