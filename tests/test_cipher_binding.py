"""CIPHER_BIND_TO_POSITION: each encrypted state bound to its event's
aggregate id and version, so a state moved or swapped into another row
is refused; states written without it are still read."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Type

import pytest
from eventsourcing_rs.application import Application
from eventsourcing_rs.cipher import AESCipher
from eventsourcing_rs.domain import Aggregate, event
from eventsourcing_rs.persistence import Cipher, InvalidSetting, Mapper, StoredEvent


class Account(Aggregate):
    @event("Opened")
    def __init__(self, owner: str, balance: int):
        self.owner = owner
        self.balance = balance


class PythonMapper(Mapper[Any]):
    """Keeps the Python conversions (overrides both)."""

    def from_domain_event(self, domain_event: Any) -> StoredEvent:
        return super().from_domain_event(domain_event)

    def to_domain_event(self, stored: StoredEvent) -> Any:
        return super().to_domain_event(stored)


KEY = AESCipher.create_key(16)


def env(tmp_path: Path, bound: bool, mapper: Type[Any] = Mapper) -> Dict[str, str]:
    settings = {
        "INFRASTRUCTURE_FACTORY": "eventsourcing_rs.sqlite:Factory",
        "SQLITE_DBNAME": str(tmp_path / "bank.db"),
        "CIPHER_KEY": KEY,
    }
    if bound:
        settings["CIPHER_BIND_TO_POSITION"] = "yes"
    if mapper is not Mapper:
        settings["MAPPER_TOPIC"] = f"{mapper.__module__}:{mapper.__qualname__}"
    return settings


def swap_states(app: Application) -> None:
    with app.recorder.datastore.transaction(commit=True) as t:  # type: ignore[attr-defined]
        t.execute("SELECT rowid, state FROM stored_events ORDER BY rowid")
        (a, state_a), (b, state_b) = t.fetchall()
        t.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (state_b, a))
        t.execute("UPDATE stored_events SET state = ? WHERE rowid = ?", (state_a, b))


@pytest.mark.parametrize("mapper", [Mapper, PythonMapper], ids=["rust-mapper", "python-mapper"])
def test_a_swapped_state_is_refused_when_bound(tmp_path: Path, mapper: Type[Any]) -> None:
    app = Application(env=env(tmp_path, bound=True, mapper=mapper))
    alice, bob = Account("alice", 10), Account("bob", 1_000_000)
    app.save(alice, bob)
    assert app.repository.get(alice.id).balance == 10
    swap_states(app)
    fresh = Application(env=env(tmp_path, bound=True, mapper=mapper))
    with pytest.raises(ValueError, match="moved from another event's row"):
        fresh.repository.get(alice.id)
    with pytest.raises(ValueError, match="moved from another event's row"):
        fresh.repository.get(bob.id)


def test_a_state_under_another_topic_is_refused_when_bound(tmp_path: Path) -> None:
    app = Application(env=env(tmp_path, bound=True))
    alice = Account("alice", 10)
    app.save(alice)
    with app.recorder.datastore.transaction(commit=True) as t:  # type: ignore[attr-defined]
        t.execute(
            "UPDATE stored_events SET topic = ?",
            (f"{__name__}:Account.Opened2",),
        )
    Account.Opened2 = Account.Opened  # type: ignore[attr-defined]
    try:
        with pytest.raises(ValueError, match="another event's row or topic"):
            Application(env=env(tmp_path, bound=True)).repository.get(alice.id)
    finally:
        del Account.Opened2  # type: ignore[attr-defined]


def test_without_the_setting_a_swap_goes_unnoticed(tmp_path: Path) -> None:
    app = Application(env=env(tmp_path, bound=False))
    alice, bob = Account("alice", 10), Account("bob", 1_000_000)
    app.save(alice, bob)
    swap_states(app)
    # The gap the setting closes (as in the reference).
    assert app.repository.get(alice.id).balance == 1_000_000


def test_states_written_unbound_are_read_once_the_setting_is_on(tmp_path: Path) -> None:
    before = Application(env=env(tmp_path, bound=False))
    alice = Account("alice", 10)
    before.save(alice)
    after = Application(env=env(tmp_path, bound=True))
    assert after.repository.get(alice.id).balance == 10
    bob = Account("bob", 5)
    after.save(bob)
    assert after.repository.get(bob.id).owner == "bob"
    # Bound states carry the marker; unbound ones do not.
    states = [n.state for n in after.recorder.select_notifications(1, 10)]
    assert [s.startswith(b"ESB1") for s in states] == [False, True]


def test_a_bound_ciphertext_stripped_of_its_marker_is_refused() -> None:
    cipher = AESCipher(KEY)
    import uuid

    originator_id = uuid.uuid4()
    bound = cipher.encrypt_at(b"secret", originator_id, 1, "app:Event")
    assert cipher.decrypt_at(bound, originator_id, 1, "app:Event") == b"secret"
    with pytest.raises(ValueError):
        cipher.decrypt_at(bound[4:], originator_id, 1, "app:Event")
    with pytest.raises(ValueError):
        cipher.decrypt_at(bound, originator_id, 2, "app:Event")
    # A snapshot's state (another topic) cannot stand in for the event's.
    with pytest.raises(ValueError):
        cipher.decrypt_at(bound, originator_id, 1, "app:Snapshot")


class PlainCipher(Cipher):
    """A user's cipher, which knows nothing of positions."""

    def __init__(self, cipher_key: str):
        self.inner = AESCipher(cipher_key)

    def encrypt(self, plaintext: bytes) -> bytes:
        return self.inner.encrypt(plaintext)

    def decrypt(self, ciphertext: bytes) -> bytes:
        return self.inner.decrypt(ciphertext)


def test_a_cipher_that_cannot_bind_is_refused_with_the_setting(tmp_path: Path) -> None:
    settings = env(tmp_path, bound=True)
    settings["CIPHER_TOPIC"] = f"{__name__}:PlainCipher"
    with pytest.raises(InvalidSetting, match="CIPHER_BIND_TO_POSITION.*PlainCipher"):
        Application(env=settings)
    del settings["CIPHER_BIND_TO_POSITION"]
    app = Application(env=settings)
    app.save(Account("carol", 1))
