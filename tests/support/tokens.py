"""Tokens the suite signs with the service's shared secret, new user ids, and a clock tests move."""

from __future__ import annotations

import secrets
import time
from collections.abc import Mapping
from typing import Any

from joserfc import jwt
from joserfc.jwk import OctKey

SECRET = "test-secret-0123456789abcdef0123456789abcdef"


def new_user() -> str:
    return f"user_{secrets.token_hex(8)}"


def make_token(
    user_id: str | None,
    *,
    secret: str = SECRET,
    alg: str = "HS256",
    ttl: int = 600,
    header: Mapping[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    **claims: Any,
) -> str:
    """An HS* token; any claim can be overridden, and `drop` removes claims."""
    now = int(time.time())
    body: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + ttl, **claims}
    for name in drop:
        body.pop(name, None)
    return jwt.encode({"alg": alg, **(header or {})}, body, OctKey.import_key(secret), algorithms=[alg])


class FakeClock:
    """Wall and monotonic clocks a test can move forward: the real ones plus an offset, never slept."""

    def __init__(self) -> None:
        self.offset = 0.0

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def time(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset


def auth(user_id: str, **kwargs: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(user_id, **kwargs)}"}
