"""service/tasks/order/positions.py: keys that sort as bytes, a key between any two, short under real use."""

from __future__ import annotations

import random

import pytest

from service.tasks.order import positions
from service.tasks.order.positions import (
    INT_MAX,
    INT_MIN,
    INT_WIDTH,
    PositionError,
    int_key,
    integer_part,
    key_between,
    keys_between,
    rebalanced,
    too_long,
    validate,
)


def test_integer_keys_sort_in_numeric_order() -> None:
    numbers = [INT_MIN, -(62**3), -1, 0, 1, 61, 62, 4096, INT_MAX]
    keys = [int_key(n) for n in numbers]
    assert keys == sorted(keys)
    assert all(len(k) == INT_WIDTH for k in keys)
    assert [integer_part(k) for k in keys] == numbers
    assert int_key(0) == "800000000000"


@pytest.mark.parametrize("n", [INT_MIN - 1, INT_MAX + 1])
def test_integer_parts_out_of_range_are_refused(n: int) -> None:
    with pytest.raises(PositionError):
        int_key(n)


def test_sql_int_key_is_int_key(database) -> None:  # type: ignore[no-untyped-def]
    sql = positions.sql_int_key("n")
    rows = database.query(
        f"SELECT n, {sql} AS key FROM unnest($1::bigint[]) AS n",  # noqa: S608 - our own constant SQL
        [INT_MIN, -1, 0, 5, INT_MAX],
    )
    assert {r["n"]: r["key"] for r in rows} == {n: int_key(n) for n in (INT_MIN, -1, 0, 5, INT_MAX)}


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (None, None),
        (None, int_key(0)),
        (None, int_key(0) + "V"),
        (int_key(0), None),
        (int_key(0), int_key(1)),
        (int_key(0), int_key(1) + "1"),
        (int_key(0), int_key(5)),
        (int_key(0) + "1", int_key(0) + "2"),
        (int_key(0) + "1", int_key(0) + "11"),
        (int_key(0) + "0001", int_key(0) + "001"),
        (int_key(0) + "z", int_key(0) + "zz"),
        (int_key(0) + "zzzz", int_key(1)),
        (int_key(INT_MAX), None),
        (None, int_key(INT_MIN) + "1"),
    ],
)
def test_key_between_is_strictly_between_and_valid(a: str | None, b: str | None) -> None:
    key = key_between(a, b)
    validate(key)
    assert a is None or a < key
    assert b is None or key < b


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (None, None, "800000000000"),
        (int_key(0), None, int_key(1)),
        (None, int_key(0), int_key(-1)),
        (int_key(0), int_key(1), int_key(0) + "V"),
        (int_key(0), int_key(2), int_key(1)),
        (int_key(0) + "V", int_key(1), int_key(0) + "l"),
        (int_key(0) + "1", int_key(0) + "2", int_key(0) + "1V"),
    ],
)
def test_keys_are_as_short_as_the_gap_allows(a: str | None, b: str | None, expected: str) -> None:
    assert key_between(a, b) == expected


@pytest.mark.parametrize(
    ("a", "b"),
    [(int_key(1), int_key(0)), (int_key(0), int_key(0)), (int_key(0) + "5", int_key(0) + "5")],
)
def test_keys_out_of_order_are_refused(a: str, b: str) -> None:
    with pytest.raises(PositionError):
        key_between(a, b)


@pytest.mark.parametrize(
    "key",
    ["", "80000000000", "80000000000G", "800000000000V0", "800000000000-", "A00000000000", "8000000000001é"],
)
def test_malformed_keys_are_refused(key: str) -> None:
    with pytest.raises(PositionError):
        validate(key)


@pytest.mark.parametrize(
    ("a", "b"), [(None, None), (int_key(0), None), (None, int_key(0)), (int_key(0), int_key(1))]
)
@pytest.mark.parametrize("n", [0, 1, 2, 7, 100])
def test_keys_between_gives_n_sorted_distinct_keys(a: str | None, b: str | None, n: int) -> None:
    keys = keys_between(a, b, n)
    assert len(keys) == n
    assert keys == sorted(set(keys))
    assert all(a is None or a < k for k in keys)
    assert all(b is None or k < b for k in keys)


def test_rebalanced_keys_are_consecutive_integers() -> None:
    keys = rebalanced(-3, 5)
    assert keys == sorted(keys)
    assert [integer_part(k) for k in keys] == [-3, -2, -1, 0, 1]
    assert all(len(k) == INT_WIDTH for k in keys)


def test_the_same_gap_over_and_over_grows_keys_slowly_and_then_asks_for_a_rebalance() -> None:
    """The worst case: every move goes right after the same task. ~6 moves per digit."""
    low, high = int_key(0), int_key(1)
    moves = 0
    while not too_long(high):
        high = key_between(low, high)
        moves += 1
    assert moves > 100
    assert len(high) <= positions.MAX_LENGTH


def test_appending_and_prepending_keep_keys_at_the_integer_width() -> None:
    first = last = int_key(0)
    for _ in range(10_000):
        last = key_between(last, None)
        first = key_between(None, first)
    assert len(first) == len(last) == INT_WIDTH


def _check(order: list[str], keys: dict[str, str]) -> None:
    listed = [keys[t] for t in order]
    assert listed == sorted(listed), "the keys' byte order is not the list's order"
    assert len(set(listed)) == len(listed), "two tasks share a key"


def test_random_moves_keep_the_order_of_a_model_list() -> None:
    """Hundreds of random moves and inserts, each placed between its neighbours' keys, against a plain list."""
    rng = random.Random(20261126)
    order = [f"t{i}" for i in range(30)]
    keys = dict(zip(order, rebalanced(0, len(order)), strict=True))
    longest = 0
    for step in range(2000):
        if step % 10 == 0:
            # A new task goes first.
            task = f"n{step}"
            keys[task] = key_between(None, keys[order[0]])
            order.insert(0, task)
        else:
            task, anchor = rng.sample(order, 2)
            order.remove(task)
            at = order.index(anchor) + rng.choice((0, 1))  # before or after the anchor
            before = keys[order[at - 1]] if at > 0 else None
            after = keys[order[at]] if at < len(order) else None
            order.insert(at, task)
            keys[task] = key_between(before, after)
        if too_long(keys[task]):
            keys.update(
                zip(order, rebalanced(integer_part(keys[order[0]]) - len(order), len(order)), strict=True)
            )
        longest = max(longest, len(keys[task]))
        _check(order, keys)
    assert longest <= positions.REBALANCE_ABOVE + 1
