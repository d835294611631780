"""Manual-order keys: strings that sort as bytes, with a key between any two (fractional indexing).

The scheme is David Greenspan's ("Implementing Fractional Indexing", also the `fractional-indexing`
packages) with one change: the integer part is a fixed-width 12-digit hexadecimal counter instead
of a variable-length base-62 one. That lets PostgreSQL make the key of a new first task from a
per-user counter with built-in functions (`lpad(to_hex(n), 12, '0')`, see `sql_int_key`), in the
same statement that inserts the task, so concurrent creates never pick the same key.

A key is `IIIIIIIIIIII` + `F…`: twelve lower-case hex digits, then a fraction of base-62 digits in
ASCII order (`0-9A-Za-z`) that never ends in `0`. Fixed width keeps integer parts in numeric order
as bytes, and every key with integer part n sorts after `int_key(n)` and before `int_key(n + 1)`.
"""

from __future__ import annotations

DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_VALUE = {d: i for i, d in enumerate(DIGITS)}
INT_WIDTH = 12
# Integer parts are signed counters shifted into [0, 16**12): 0 is the middle, so a user can take
# 2**47 (1.4e14) keys before the first task and as many after the last.
ORIGIN = 1 << 47
INT_MIN = -ORIGIN
INT_MAX = ORIGIN - 1
# A fraction grows by a digit per ~6 moves into the same gap. Past this length the service
# rebalances the user's keys (one statement), so keys stay short and the index small.
REBALANCE_ABOVE = INT_WIDTH + 20
# The database refuses anything longer (a CHECK in sql/003): a rebalance comes long before.
MAX_LENGTH = 64

_HEX = frozenset("0123456789abcdef")


class PositionError(ValueError):
    """Not a key of this scheme, or keys out of order."""


def int_key(n: int) -> str:
    """The key of integer part `n` with no fraction."""
    if not INT_MIN <= n <= INT_MAX:
        raise PositionError(f"integer part {n} is out of range")
    return f"{n + ORIGIN:012x}"


def sql_int_key(expression: str) -> str:
    """The SQL that computes `int_key(expression)`, for migrations and statements (bigint math)."""
    return f"lpad(to_hex(({expression}) + {ORIGIN}), {INT_WIDTH}, '0')"


def integer_part(key: str) -> int:
    """The signed counter value of a key's integer part."""
    return int(key[:INT_WIDTH], 16) - ORIGIN


def validate(key: str) -> None:
    head, fraction = key[:INT_WIDTH], key[INT_WIDTH:]
    if len(head) != INT_WIDTH or not set(head) <= _HEX:
        raise PositionError(f"{key!r} does not start with {INT_WIDTH} lower-case hex digits")
    if any(d not in _VALUE for d in fraction) or fraction.endswith("0"):
        raise PositionError(f"{key!r} has a bad fraction")


def _midpoint(a: str, b: str | None) -> str:
    """A base-62 fraction strictly between fractions `a` ("" is zero) and `b` (None is one)."""
    if b is not None:
        # Keep the common prefix (padding `a` with zeros) and recurse on what differs.
        n = 0
        while n < len(b) and (a[n] if n < len(a) else "0") == b[n]:
            n += 1
        if n:
            return b[:n] + _midpoint(a[n:], b[n:])
    low = _VALUE[a[0]] if a else 0
    high = _VALUE[b[0]] if b is not None else len(DIGITS)
    if high - low > 1:
        return DIGITS[(low + high + 1) // 2]
    # Adjacent first digits: a longer `b` leaves its first digit alone as a key between them;
    # otherwise keep `a`'s first digit and go one level deeper, towards one.
    if b is not None and len(b) > 1:
        return b[:1]
    return DIGITS[low] + _midpoint(a[1:], None)


def key_between(a: str | None, b: str | None) -> str:
    """A key that sorts after `a` and before `b`; None means the start or the end of the list."""
    if a is not None:
        validate(a)
    if b is not None:
        validate(b)
    if a is not None and b is not None and a >= b:
        raise PositionError(f"{a!r} is not before {b!r}")
    if a is None and b is None:
        return int_key(0)
    if a is None:
        assert b is not None
        # The integer part alone is before any key with a fraction.
        return b[:INT_WIDTH] if len(b) > INT_WIDTH else int_key(integer_part(b) - 1)
    head_a, fraction_a = a[:INT_WIDTH], a[INT_WIDTH:]
    if b is not None and b[:INT_WIDTH] == head_a:
        return head_a + _midpoint(fraction_a, b[INT_WIDTH:])
    n = integer_part(a)
    if n < INT_MAX:
        following = int_key(n + 1)
        if b is None or following < b:
            return following
    # The next integer is `b` itself (or the counter is exhausted): go between `a` and its next integer.
    return head_a + _midpoint(fraction_a, None)


def keys_between(a: str | None, b: str | None, n: int) -> list[str]:
    """`n` sorted keys between `a` and `b`, as short as the gap allows."""
    if n <= 0:
        return []
    if n == 1:
        return [key_between(a, b)]
    if b is None:
        keys = [key_between(a, None)]
        while len(keys) < n:
            keys.append(key_between(keys[-1], None))
        return keys
    if a is None:
        keys = [key_between(None, b)]
        while len(keys) < n:
            keys.append(key_between(None, keys[-1]))
        return keys[::-1]
    middle = key_between(a, b)
    half = n // 2
    return [*keys_between(a, middle, half), middle, *keys_between(middle, b, n - half - 1)]


def rebalanced(first: int, n: int) -> list[str]:
    """The keys a rebalance gives `n` tasks: consecutive integers from `first`, no fractions."""
    return [int_key(first + i) for i in range(n)]


def too_long(key: str) -> bool:
    """Whether writing `key` should make the service rebalance the user's keys."""
    return len(key) > REBALANCE_ABOVE
