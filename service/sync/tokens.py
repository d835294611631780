"""Sync tokens: a position in one user's change history, opaque, signed and bound to that user."""

from __future__ import annotations

import hashlib
import hmac
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from service.auth.signing import b64decode, b64encode, derive_key

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MAC_BYTES = 16
# Version 2 adds the phase and the lists' number; version 1 tokens (neither) are still read.
_VERSION = 2
# Version, change number, the time the position was last known current (microseconds), the
# phase (1 while a full sync is still sending lists: the number is then the last list's), and the
# number up to which lists are known (a full sync sent them all, up to there, before its tasks).
_LAYOUT_V1 = struct.Struct(">BQq")
_LAYOUT = struct.Struct(">BQqBQ")


@dataclass(frozen=True, slots=True)
class Position:
    """Every change numbered up to `seq` is known; `at` is when that was last vouched for.

    The age that SYNC_RETENTION limits runs from `at`: tombstones newer than it are kept, so the
    deletions a client at this position still has to learn of are all there.
    """

    seq: int
    at: datetime
    # A full sync sends every list before any task: past `seq`, lists (and their deletions) come
    # first, then every task. False: every change past `seq`, in number order.
    listing_lists: bool = False
    # Lists changed up to this number are known already (at most `seq` matters otherwise).
    lists_seq: int = 0


class SyncTokens:
    """Writes and reads positions; a token edited by hand or sent by another user is refused."""

    def __init__(self, secret: bytes) -> None:
        # Its own key, derived from the same secret as the cursors': a cursor is never a token.
        self._key = derive_key("sync token v1", secret)

    def _mac(self, user_id: str, payload: bytes) -> bytes:
        message = user_id.encode() + b"\0" + payload
        return hashlib.blake2b(message, key=self._key, digest_size=_MAC_BYTES).digest()

    def encode(self, user_id: str, position: Position) -> str:
        micros = (position.at - _EPOCH) // timedelta(microseconds=1)
        payload = _LAYOUT.pack(_VERSION, position.seq, micros, position.listing_lists, position.lists_seq)
        return b64encode(payload + self._mac(user_id, payload))

    def decode(self, user_id: str, token: str) -> Position:
        """The position in `token`; ValueError when it is not one this service gave `user_id`."""
        raw = b64decode(token)
        layout = _LAYOUT_V1 if raw[:1] == b"\x01" else _LAYOUT
        payload, mac = raw[: layout.size], raw[layout.size :]
        # Base64's spare bits make several strings decode alike: accept only the one we wrote.
        if (
            b64encode(raw) != token
            or len(mac) != _MAC_BYTES
            or not hmac.compare_digest(mac, self._mac(user_id, payload))
        ):
            raise ValueError("bad token")
        if len(payload) != layout.size:
            raise ValueError("bad token")
        version, seq, micros, *rest = layout.unpack(payload)
        phase, lists_seq = rest or (0, 0)
        if version not in (1, _VERSION) or phase not in (0, 1) or (version == 1) != (not rest):
            raise ValueError("unknown version")
        return Position(seq, _EPOCH + timedelta(microseconds=micros), bool(phase), lists_seq)
