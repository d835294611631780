"""Opaque, signed listing cursors: a page's position, bound to one user and one listing query."""

from __future__ import annotations

import hashlib
import hmac

import msgspec
from msgspec import UNSET

from service.auth.signing import b64decode, b64encode, derive_key
from service.tasks.fields import CURSOR_RULE, LIMIT_DEFAULT
from service.tasks.schemas import ListQuery
from service.web.errors import invalid

_MAC_BYTES = 16


class CursorBinding(msgspec.Struct, array_like=True, frozen=True):
    """What a cursor is only valid for: its user and every parameter of its query but the page's."""

    user_id: str
    query: ListQuery

    @classmethod
    def of(cls, user_id: str, query: ListQuery) -> CursorBinding:
        # The page size may change between pages; the cursor itself is what is being bound.
        return cls(user_id, msgspec.structs.replace(query, limit=LIMIT_DEFAULT, cursor=UNSET))


_encode_binding = msgspec.json.Encoder().encode


class CursorCodec:
    """Seals a position (bytes the store wrote) into a cursor string, and opens it again.

    The MAC covers the binding, so a cursor edited by hand, or reused with other parameters or by
    another user, is refused.
    """

    def __init__(self, secret: bytes) -> None:
        self._key = derive_key("cursor v3", secret)

    def _mac(self, position: bytes, binding: CursorBinding) -> bytes:
        # Keyed BLAKE2b is a MAC in its own right, and several times cheaper than HMAC-SHA256 here.
        message = _encode_binding(binding) + b"\0" + position
        return hashlib.blake2b(message, key=self._key, digest_size=_MAC_BYTES).digest()

    def seal(self, position: bytes, binding: CursorBinding) -> str:
        return f"{b64encode(position)}.{b64encode(self._mac(position, binding))}"

    def open(self, cursor: str, binding: CursorBinding) -> bytes:
        """The position inside `cursor`; a 422 on the `cursor` parameter if it is not one we sealed."""
        try:
            head, _, tail = cursor.partition(".")
            position = b64decode(head)
            # Base64's spare bits make several strings decode alike: accept only the one we wrote.
            if b64encode(position) == head and hmac.compare_digest(
                tail, b64encode(self._mac(position, binding))
            ):
                return position
        except (ValueError, TypeError):  # not base64; not ASCII
            pass
        raise invalid("cursor", CURSOR_RULE)
