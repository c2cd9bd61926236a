"""New aggregate ids from the Rust core: valid version 4 UUIDs, never the
same twice, not even across a fork."""

import os
import pickle
import uuid

from eventsourcing_rs._core import uuid4


def test_values_are_version_4_uuids_that_behave_like_uuid_uuid4() -> None:
    value = uuid4()
    assert type(value) is uuid.UUID
    assert value.version == 4 and value.variant == uuid.RFC_4122
    assert value == uuid.UUID(str(value)) and hash(value) == hash(uuid.UUID(str(value)))
    assert len({uuid4() for _ in range(10_000)}) == 10_000


def test_values_are_whole_uuid_objects() -> None:
    """Their slots are filled directly: each must read as uuid.uuid4's do."""
    value = uuid4()
    assert value.is_safe is uuid.SafeUUID.unknown
    assert value.int == int(value.hex, 16) and value.int.bit_length() <= 128
    assert value.bytes == uuid.UUID(int=value.int).bytes
    assert repr(value) == repr(uuid.UUID(str(value)))
    assert value == pickle.loads(pickle.dumps(value))


def test_a_forked_child_never_repeats_its_parents_ids() -> None:
    uuid4()  # the parent now holds a block of random bytes
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        os.close(read_end)
        with os.fdopen(write_end, "w") as out:
            out.write("\n".join(str(uuid4()) for _ in range(300)))
        os._exit(0)
    os.close(write_end)
    parent = {str(uuid4()) for _ in range(300)}
    with os.fdopen(read_end) as inp:
        child = set(inp.read().split("\n"))
    os.waitpid(pid, 0)
    assert len(child) == 300
    assert parent.isdisjoint(child)
