"""Task ids: UUIDv7 (RFC 9562), time-ordered, so new rows land at the right end of the index."""

from __future__ import annotations

import os
import uuid
from datetime import datetime


def uuid7(at: datetime) -> uuid.UUID:
    """A version-7 UUID whose 48-bit millisecond timestamp is `at`; the other 74 bits are random."""
    millis = int(at.timestamp() * 1000) & 0xFFFF_FFFF_FFFF
    rand = int.from_bytes(os.urandom(10), "big")
    rand_a = rand >> 68  # 12 bits
    rand_b = rand & ((1 << 62) - 1)  # 62 bits
    value = (millis << 80) | (0x7 << 76) | (rand_a << 64) | (0b10 << 62) | rand_b
    return uuid.UUID(int=value)
