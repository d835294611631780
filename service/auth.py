"""Bearer-token verification and the ASGI middleware that puts the caller's identity in the scope."""

from __future__ import annotations

import base64
import time
import warnings
from typing import Any
from urllib.parse import unquote

import msgspec
from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
    SecurityWarning,
)
from joserfc.jwk import Key, OctKey
from starlette.authentication import AuthCredentials, BaseUser
from starlette.types import ASGIApp, Receive, Scope, Send

from .envelope import error_response
from .errors import ApiError, Forbidden, Unauthorized
from .jwks import JwksClient
from .settings import ConfigError, Settings

# Better Auth signs with "EdDSA" (Ed25519); joserfc warns on every use since RFC 9864 named it
# deprecated in favour of "Ed25519". It is the algorithm we must accept, so the warning is noise.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)

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


# Each public-key algorithm with the only key type (and curve) it may be checked with.
PUBLIC_KEY_ALGORITHMS: dict[str, tuple[str, str | None]] = {
    "EdDSA": ("OKP", "Ed25519"),
    "ES256": ("EC", "P-256"),
    "RS256": ("RSA", None),
    "PS256": ("RSA", None),
}
# Verified tokens are remembered briefly: long enough to skip the signature check on a busy
# session, short enough that a key withdrawn from the JWKS stops working within a minute.
CACHE_SECONDS = 60.0
CACHE_ENTRIES = 10_000


def _claims_registry(issuer: str | None, audience: str | None, leeway: int) -> jwt.JWTClaimsRegistry:
    claims: dict[str, Any] = {"exp": {"essential": True}}
    if issuer:
        claims["iss"] = {"essential": True, "value": issuer}
    if audience:
        claims["aud"] = {"essential": True, "value": audience}
    return jwt.JWTClaimsRegistry(leeway=leeway, **claims)


def _header(token: str) -> dict[str, Any]:
    """The JOSE header, read before any key is chosen; only its `alg` and `kid` steer the choice."""
    segment = token.partition(".")[0]
    try:
        header = msgspec.json.decode(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))
    except (ValueError, msgspec.DecodeError):
        raise _bad_token("Token header is not valid") from None
    if not isinstance(header, dict) or not isinstance(header.get("alg"), str):
        raise _bad_token("Token header is not valid")
    if FORBIDDEN_HEADERS.intersection(header):
        raise _bad_token("Token header carries key references that are not accepted")
    if str(header.get("cty", "")).upper() == "JWT":
        raise _bad_token("Nested tokens are not accepted")
    return header


class TokenVerifier:
    """Checks a compact JWS the way CONTRACT sections 2 and 7 say; raises Unauthorized otherwise.

    HS256/384/512 are checked only with the shared secret, the public-key algorithms only with a
    JWKS key of their own type: no token can pick a key of the wrong kind.
    """

    def __init__(self, settings: Settings, jwks: JwksClient | None = None) -> None:
        secret = settings.better_auth_secret
        self._secret = OctKey.import_key(secret) if secret else None
        self._jwks = jwks
        self._user_claim = settings.jwt_user_claim
        leeway = settings.jwt_leeway
        self._secret_claims = _claims_registry(settings.jwt_issuer, settings.jwt_audience, leeway)
        # Better Auth sets both iss and aud to its base URL.
        base = settings.better_auth_url
        self._jwks_claims = _claims_registry(
            settings.jwt_issuer or base, settings.jwt_audience or base, leeway
        )
        self._leeway = leeway
        self._cache: dict[str, tuple[AuthenticatedUser, float]] = {}

    async def verify(self, token: str) -> AuthenticatedUser:
        cached = self._cache.get(token)
        now = time.time()
        if cached is not None:
            if now < cached[1]:
                return cached[0]
            del self._cache[token]
        user, exp = await self._verify(token)
        if len(self._cache) >= CACHE_ENTRIES:
            # Oldest first (dicts keep insertion order): a cheap, bounded eviction.
            del self._cache[next(iter(self._cache))]
        self._cache[token] = (user, min(exp + self._leeway, now + CACHE_SECONDS))
        return user

    async def _verify(self, token: str) -> tuple[AuthenticatedUser, float]:
        if len(token) > MAX_TOKEN_BYTES:
            raise _bad_token("Token is too large")
        if token.count(".") != 2:
            # Five parts would be a JWE: this service only accepts signed tokens.
            raise _bad_token("Token is not a signed JWT")
        header = _header(token)
        alg = header["alg"]
        if alg in HMAC_ALGORITHMS and self._secret is not None:
            keys: list[Key] = [self._secret]
            registry = self._secret_claims
        elif alg in PUBLIC_KEY_ALGORITHMS and self._jwks is not None:
            kid = header.get("kid")
            keys = self._public_keys(alg, kid)
            if not keys and kid is not None and await self._jwks.refresh_for_unknown_kid():
                keys = self._public_keys(alg, kid)
            registry = self._jwks_claims
        else:
            raise _bad_token(f"Token algorithm {alg!r} is not accepted")
        if not keys:
            raise _bad_token("Token was signed with a key this service does not know")

        decoded = None
        for key in keys:
            try:
                decoded = jwt.decode(token, key, algorithms=[alg])
                break
            except BadSignatureError:
                continue
            except (JoseError, ValueError, TypeError, KeyError, UnicodeError):
                raise _bad_token("Token signature or format is not valid") from None
        if decoded is None:
            raise _bad_token("Token signature is not valid")
        try:
            registry.validate(decoded.claims)
        except ExpiredTokenError:
            raise _bad_token("Token has expired") from None
        except MissingClaimError as exc:
            raise _bad_token(f"Token lacks a required claim: {exc.description}") from None
        except (InvalidClaimError, JoseError) as exc:
            raise _bad_token(f"Token claim is not valid: {exc.description}") from None
        return AuthenticatedUser(self._user_id(decoded.claims), decoded.claims), float(decoded.claims["exp"])

    def _public_keys(self, alg: str, kid: object) -> list[Key]:
        """The JWKS keys this token may be checked with: its `kid`'s, or with no kid every key of its type."""
        assert self._jwks is not None
        key_type, curve = PUBLIC_KEY_ALGORITHMS[alg]
        return [
            key
            for key in self._jwks.keys
            if key.key_type == key_type
            and (curve is None or key.get("crv") == curve)
            and key.get("alg", alg) == alg
            and (kid is None or key.kid == kid)
        ]

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
        # CORS preflights never get here: service/cors.py answers every one of them.
        if scope["type"] != "http" or not scope["path"].startswith(API_PREFIX):
            await self.app(scope, receive, send)
            return
        try:
            user = await self.verifier.verify(bearer_token(scope))
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
    if settings.better_auth_secret is None:
        raise ConfigError("BETTER_AUTH_SECRET is required to sign a token")
    now = int(time.time())
    claims: dict[str, Any] = {settings.jwt_user_claim: user_id, "iat": now, "exp": now + ttl}
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode({"alg": "HS256"}, claims, OctKey.import_key(settings.better_auth_secret))
