"""The bounded decoding primitives: canonical varints and flags, counts checked before any
element is decoded, indices increasing as decoded, records, budgets."""

from __future__ import annotations

import construct as cs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from onboard.bounded_decoding import (
    Budget,
    BudgetError,
    Counted,
    LimitError,
    OrderError,
    Record,
    StrictFlag,
    VarSInt,
    VarUInt,
    field_of,
)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**64 - 1))
def test_varints_are_minimal_and_round_trip(n: int) -> None:
    data = VarUInt.build(n)
    assert VarUInt.parse(data) == n
    assert data[-1] != 0 or len(data) == 1  # minimal: no trailing zero group


@settings(max_examples=200, deadline=None)
@given(st.integers(-(2**63), 2**63 - 1))
def test_signed_varints_round_trip_over_64_bits(n: int) -> None:
    assert VarSInt.parse(VarSInt.build(n)) == n


@pytest.mark.parametrize("data", [b"\x80\x00", b"\x81\x80\x00", b"\xff" * 9 + b"\x7f",
                                  b"\xff" * 10 + b"\x01", b"\x80"])
def test_overlong_oversized_and_truncated_varints_are_refused(data: bytes) -> None:
    with pytest.raises(cs.ConstructError):
        VarUInt.parse(data)


def test_out_of_range_integers_do_not_build() -> None:
    for bad in (-1, 2**64):
        with pytest.raises(cs.ConstructError):
            VarUInt.build(bad)
    with pytest.raises(cs.ConstructError):
        VarSInt.build(2**63)


def test_a_flag_is_0_or_1() -> None:
    assert StrictFlag.parse(b"\x00") is False and StrictFlag.parse(b"\x01") is True
    with pytest.raises(cs.ValidationError):
        StrictFlag.parse(b"\x02")


class _Exploding(cs.Construct):  # type: ignore[misc]
    """An element that must never be decoded."""

    def _parse(self, stream: object, context: object, path: str) -> int:
        raise AssertionError("an element was decoded before its count was checked")


def test_a_count_is_checked_against_the_bytes_left_before_any_element() -> None:
    with pytest.raises(cs.ValidationError, match="need at least"):
        Counted(_Exploding(), 2).parse(VarUInt.build(2**60) + b"\x00" * 100)
    with pytest.raises(cs.ValidationError, match="need at least"):
        Counted(_Exploding(), 4).parse(VarUInt.build(3) + b"\x00" * 11)


def test_a_count_is_checked_against_its_limit_before_any_element() -> None:
    counted = Counted(_Exploding(), 1, limit=lambda ctx: ctx._params["most"])
    with pytest.raises(LimitError):
        counted.parse(VarUInt.build(3) + b"\x00" * 3, most=2)


def test_indices_must_increase_as_they_are_decoded() -> None:
    counted = Counted(Record("index" / VarUInt, "x" / cs.Int8ub), 2, increasing="index")
    good = counted.build([{"index": 1, "x": 7}, {"index": 4, "x": 8}])
    assert [e.index for e in counted.parse(good)] == [1, 4]
    with pytest.raises(OrderError):
        counted.parse(counted.build([{"index": 4, "x": 7}, {"index": 4, "x": 8}]))
    plain = Counted(VarUInt, 1, increasing=".")
    with pytest.raises(OrderError):
        plain.parse(plain.build([3, 2]))


def test_records_parse_to_named_tuples_and_build_from_objects() -> None:
    record = Record("a" / VarUInt, "b" / cs.Bytes(cs.this.a))
    parsed = record.parse(b"\x02xy")
    assert parsed.a == 2 and parsed.b == b"xy" and field_of(parsed, "b") == b"xy"
    assert record.build({"a": 2, "b": b"xy"}) == record.build(parsed) == b"\x02xy"


def test_a_budget_is_drawn_down_and_refuses_what_it_has_not() -> None:
    budget = Budget(values=10)
    budget.take("values", 6, "a table")
    with pytest.raises(BudgetError) as info:
        budget.take("values", 5, "another table")
    assert info.value.resource == "values" and "exceed" in str(info.value)
    assert budget.left("values") == 4  # nothing drawn by the refusal
