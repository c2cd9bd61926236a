"""``python -m eventsourcing_rs.examples.bank``: a short run of the bank
system, printing the fraud check's alerts.

The store and runner come from the environment (in memory and the
single-threaded runner unless ``PERSISTENCE_MODULE`` says otherwise);
``--runner multi`` or ``--runner processes`` chooses another runner
(processes need a store they can share: SQLite files or PostgreSQL).
"""

from __future__ import annotations

import argparse
from decimal import Decimal

from eventsourcing_rs.examples.bank import Accounts, CardPayments, FraudCheck, system
from eventsourcing_rs.system import (
    MultiProcessRunner,
    MultiThreadedRunner,
    Runner,
    SingleThreadedRunner,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runner", choices=["single", "multi", "processes"], default="single")
    args = parser.parse_args()
    runner: Runner = {
        "single": SingleThreadedRunner,
        "multi": MultiThreadedRunner,
        "processes": MultiProcessRunner,
    }[args.runner](system)
    runner.start()
    try:
        accounts = runner.get(Accounts)
        cards = runner.get(CardPayments)
        alice = accounts.open_account("Alice")
        bob = accounts.open_account("Bob")
        accounts.deposit(alice, Decimal("5000"))
        accounts.deposit(bob, Decimal("50"))
        accounts.withdraw(alice, Decimal("1500"))
        cards.pay(alice, Decimal("20"), "bakery")
        cards.pay(bob, Decimal("2500"), "jeweller")
        runner.wait(timeout=30)
        fraud = runner.get(FraudCheck)
        for name, account_id in (("Alice", alice), ("Bob", bob)):
            print(f"{name}: balance {accounts.balance(account_id)}, alerts:")
            for alert in fraud.alerts(account_id) or ["none"]:
                print(f"  - {alert}")
    finally:
        runner.stop()


if __name__ == "__main__":
    main()
