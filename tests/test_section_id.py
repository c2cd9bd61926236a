"""Section ids: "first,last" parsing and formatting in the Rust core."""

import pytest
from eventsourcing_rs import _core
from hypothesis import given
from hypothesis import strategies as st

MAX_ID = 2**63 - 1
ids = st.integers(min_value=0, max_value=MAX_ID)


@given(ids, ids)
def test_round_trip(first: int, last: int) -> None:
    text = _core.format_section_id(first, last)
    assert text == f"{first},{last}"
    assert _core.parse_section_id(text) == (first, last)


@given(ids, ids, st.integers(min_value=1, max_value=1000))
def test_start_and_limit(first: int, last: int, size: int) -> None:
    start, limit = _core.section_start_and_limit(f"{first},{last}", size)
    assert start == max(first, 1)
    assert limit == max(0, min(last - start + 1, size))


MALFORMED = [
    "",
    " ",
    "5",
    "1,2,3",
    "a,b",
    "1,b",
    "1,",
    ",1",
    "1.5,2",
    "-1,5",
    "1,-5",
    "0x10,20",
    f"1,{MAX_ID + 1}",
    "1,99999999999999999999999999",
]


@pytest.mark.parametrize("section_id", MALFORMED)
def test_malformed_ids_are_refused_naming_the_id(section_id: str) -> None:
    with pytest.raises(ValueError) as info:
        _core.parse_section_id(section_id)
    assert f"'{section_id}'" in str(info.value)


@given(st.text(max_size=30))
def test_any_text_parses_or_fails_cleanly(text: str) -> None:
    try:
        first, last = _core.parse_section_id(text)
    except ValueError as error:
        assert "section id" in str(error)
    else:
        parts = text.split(",")
        assert len(parts) == 2
        assert (first, last) == (int(parts[0]), int(parts[1]))
        assert 0 <= first <= MAX_ID and 0 <= last <= MAX_ID
