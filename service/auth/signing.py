"""Keys derived from the one secret, and the unpadded base64url every token and cursor is written in."""

from __future__ import annotations

import base64
import binascii
import hashlib


def derive_key(purpose: str, secret: bytes) -> bytes:
    """A key of its own for each purpose: a cursor is never a sync token, nor a log pseudonym."""
    return hashlib.sha256(f"todo-service {purpose}\0".encode() + secret).digest()


def b64encode(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64decode(text: str) -> bytes:
    """The bytes of unpadded base64url; ValueError when it is not that (bad characters, not ASCII)."""
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, TypeError) as exc:
        raise ValueError(str(exc)) from None
