"""Bearer-token verification and the ASGI middleware that puts the caller's identity in the scope."""

from __future__ import annotations

import time
from urllib.parse import unquote
from typing import Any

from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidClaimError, JoseError, MissingClaimError
from joserfc.jwk import OctKey
from starlette.authentication import AuthCredentials, BaseUser
from starlette.types import ASGIApp, Receive, Scope, Send

from .envelope import error_response
from .errors import ApiError, Forbidden, Unauthorized
from .settings import Settings

MAX_TOKEN_BYTES = 8192
MAX_USER_ID = 255
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
# Header parameters that would make us fetch or trust a key named by the token itself.
FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})
API_PREFIX = "/api/"

_NO_TOKEN = {"www-authenticate": 'Bearer realm="api"'}
_BAD_TOKEN = {"www-authenticate": 'Bearer realm="api", error="invalid_token"'}


class AuthenticatedUser(BaseUser):
    """The verified caller; `identity` is the user id from the token."""

    __slots__ = ("claims", "user_id")

    def __init__(self, user_id: str, claims: dict[str, Any]) -> None:
        self.user_id = user_id
        self.claims = claims

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.user_id

    @property
    def identity(self) -> str:
        return self.user_id


def _bad_token(message: str) -> Unauthorized:
    return Unauthorized(message, headers=_BAD_TOKEN)


class TokenVerifier:
    """Checks a compact JWS the way CONTRACT section 2 says; raises Unauthorized otherwise."""

    def __init__(self, settings: Settings) -> None:
        assert settings.better_auth_secret is not None
        self._key = OctKey.import_key(settings.better_auth_secret)
        self._user_claim = settings.jwt_user_claim
        claims: dict[str, Any] = {"exp": {"essential": True}}
        if settings.jwt_issuer:
            claims["iss"] = {"essential": True, "value": settings.jwt_issuer}
        if settings.jwt_audience:
            claims["aud"] = {"essential": True, "value": settings.jwt_audience}
        self._claims = jwt.JWTClaimsRegistry(leeway=settings.jwt_leeway, **claims)

    def verify(self, token: str) -> AuthenticatedUser:
        if len(token) > MAX_TOKEN_BYTES:
            raise _bad_token("Token is too large")
        if token.count(".") != 2:
            # Five parts would be a JWE: this service only accepts signed tokens.
            raise _bad_token("Token is not a signed JWT")
        try:
            decoded = jwt.decode(token, self._key, algorithms=HMAC_ALGORITHMS)
            if FORBIDDEN_HEADERS.intersection(decoded.header):
                raise _bad_token("Token header carries key references that are not accepted")
            if decoded.header.get("cty", "").upper() == "JWT":
                raise _bad_token("Nested tokens are not accepted")
            self._claims.validate(decoded.claims)
        except ExpiredTokenError:
            raise _bad_token("Token has expired") from None
        except MissingClaimError as exc:
            raise _bad_token(f"Token lacks a required claim: {exc.description}") from None
        except InvalidClaimError as exc:
            raise _bad_token(f"Token claim is not valid: {exc.description}") from None
        except (JoseError, ValueError, TypeError, KeyError, UnicodeError):
            raise _bad_token("Token signature or format is not valid") from None
        return AuthenticatedUser(self._user_id(decoded.claims), decoded.claims)

    def _user_id(self, claims: dict[str, Any]) -> str:
        user_id = claims.get(self._user_claim)
        if not isinstance(user_id, str) or not user_id:
            raise _bad_token(f"Token claim {self._user_claim!r} must be a non-empty string")
        if len(user_id) > MAX_USER_ID or "\x00" in user_id:
            raise _bad_token(f"Token claim {self._user_claim!r} is not a valid user id")
        return user_id


def bearer_token(scope: Scope) -> str:
    """The token from the one `Authorization: Bearer` header; raises Unauthorized if there is none."""
    values = [v for k, v in scope["headers"] if k == b"authorization"]
    if not values:
        raise Unauthorized("Missing bearer token", headers=_NO_TOKEN)
    if len(values) > 1:
        raise _bad_token("More than one Authorization header")
    scheme, _, token = values[0].decode("latin-1").strip().partition(" ")
    if scheme.lower() != "bearer":
        raise Unauthorized("Authorization must use the Bearer scheme", headers=_NO_TOKEN)
    token = token.strip()
    if not token:
        raise _bad_token("Bearer token is empty")
    return token


def _is_preflight(scope: Scope) -> bool:
    return scope["method"] == "OPTIONS" and any(
        k == b"access-control-request-method" for k, _ in scope["headers"]
    )


def _path_owner(scope: Scope) -> str:
    """The first segment after /api/: whose tasks the request is about.

    Cut from the raw path before decoding, so an encoded slash (`alice%2F..%2Fbob`) stays one segment.
    """
    raw: bytes | None = scope.get("raw_path")
    if raw is None:
        return str(scope["path"][len(API_PREFIX) :].partition("/")[0])
    return unquote(raw[len(API_PREFIX) :].partition(b"/")[0].decode("latin-1"))


class AuthMiddleware:
    """Verifies the bearer token of every /api/ request before routing, then checks the path's owner.

    The identity goes into `scope["user"]`/`scope["auth"]`, as Starlette's own authentication does.
    """

    def __init__(self, app: ASGIApp, verifier: TokenVerifier) -> None:
        self.app = app
        self.verifier = verifier

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX) or _is_preflight(scope):
            await self.app(scope, receive, send)
            return
        try:
            user = self.verifier.verify(bearer_token(scope))
            owner = _path_owner(scope)
            if owner and owner != user.user_id:
                raise Forbidden()
        except ApiError as exc:
            await error_response(scope, exc)(scope, receive, send)
            return
        scope["user"] = user
        scope["auth"] = AuthCredentials(["authenticated"])
        await self.app(scope, receive, send)


def mint_token(settings: Settings, user_id: str, ttl: int = 3600) -> str:
    """An HS256 token for `user_id`, signed with the shared secret: for curl and for tests."""
    assert settings.better_auth_secret is not None
    now = int(time.time())
    claims: dict[str, Any] = {settings.jwt_user_claim: user_id, "iat": now, "exp": now + ttl}
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(settings.better_auth_secret))
