"""Bearer-token verification: signature, header and claims checks, the verified-token cache, minting."""

from __future__ import annotations

import hashlib
import math
import time
import warnings
from collections.abc import Callable
from typing import Any

import msgspec
from joserfc import jwt
from joserfc.errors import BadSignatureError, JoseError, SecurityWarning
from joserfc.jwk import Key, OctKey
from starlette.authentication import BaseUser

from service.auth.jwks import JwksClient
from service.auth.signing import b64decode
from service.settings import ConfigError, Settings
from service.web.errors import Unauthorized

# Better Auth signs with "EdDSA" (Ed25519); joserfc warns on every use since RFC 9864 named it
# deprecated in favour of "Ed25519". It is the algorithm we must accept, so the warning is noise.
warnings.filterwarnings("ignore", message="EdDSA is deprecated", category=SecurityWarning)

Clock = Callable[[], float]

MAX_TOKEN_BYTES = 8192
# A JOSE header names an algorithm, a key id and a type: a few hundred bytes. Anything far longer
# is refused before it is decoded, and its values must be flat (nothing nests in a header we take),
# so no header can recurse a decoder into a RecursionError.
MAX_HEADER_SEGMENT = 1024
# A segment whose bytes begin with EF BB BF, a UTF-8 byte order mark, begins so in base64url.
_BOM = "77u_"
_decode_header = msgspec.json.Decoder(dict[str, str | int | float | bool | list[str] | None]).decode
MAX_USER_ID = 255
HMAC_ALGORITHMS = ("HS256", "HS384", "HS512")
# Header parameters that would make us fetch or trust a key named by the token itself.
FORBIDDEN_HEADERS = frozenset({"jku", "x5u", "jwk", "x5c", "crit"})
# `typ` values of an access token (RFC 7519 §5.1, RFC 9068); RFC 7515 lets "application/" be left out.
# Anything else is a JWT made for another purpose, e.g. Better Auth's session-cache cookie.
ACCEPTED_TYPES = frozenset({"jwt", "at+jwt", "application/jwt", "application/at+jwt"})

BAD_TOKEN_CHALLENGE = {"www-authenticate": 'Bearer realm="api", error="invalid_token"'}

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


class AuthenticatedUser(BaseUser):
    """The verified caller; `identity` is the user id from the token, `expires_at` its `exp`."""

    __slots__ = ("expires_at", "user_id")

    def __init__(self, user_id: str, expires_at: float = float("inf")) -> None:
        self.user_id = user_id
        # An event stream ends when its token does.
        self.expires_at = expires_at

    @property
    def is_authenticated(self) -> bool:
        return True

    @property
    def display_name(self) -> str:
        return self.user_id

    @property
    def identity(self) -> str:
        return self.user_id


def bad_token(message: str) -> Unauthorized:
    return Unauthorized(message, headers=BAD_TOKEN_CHALLENGE)


def _header(token: str) -> dict[str, Any]:
    """The JOSE header, read before any key is chosen; only its `alg` and `kid` steer the choice."""
    segment = token.partition(".")[0]
    if len(segment) > MAX_HEADER_SEGMENT:
        raise bad_token("Token header is not valid")
    try:
        header = _decode_header(b64decode(segment))
    except (ValueError, msgspec.DecodeError, RecursionError):
        raise bad_token("Token header is not valid") from None
    if not isinstance(header.get("alg"), str):
        raise bad_token("Token header is not valid")
    if FORBIDDEN_HEADERS.intersection(header):
        raise bad_token("Token header carries key references that are not accepted")
    if str(header.get("cty", "")).upper() == "JWT":
        raise bad_token("Nested tokens are not accepted")
    typ = header.get("typ", "JWT")
    if not isinstance(typ, str) or typ.lower() not in ACCEPTED_TYPES:
        raise bad_token("Token type is not accepted: this service takes access tokens only")
    return header


def _numeric_date(claims: dict[str, Any], name: str) -> float | None:
    """A time claim as seconds, None when absent; anything but a finite number is a 401, never a 500."""
    if name not in claims:
        return None
    value = claims[name]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_token(f"Token claim {name!r} must be a number")
    try:
        seconds = float(value)  # an integer literal of 400 digits overflows here
    except OverflowError:
        raise bad_token(f"Token claim {name!r} is out of range") from None
    if not math.isfinite(seconds):
        raise bad_token(f"Token claim {name!r} is out of range")
    return seconds


class ClaimsPolicy:
    """What a token's claims must say: times (against an injected clock), issuer, audience, lifetime."""

    __slots__ = ("audience", "issuer", "leeway", "max_age")

    def __init__(self, issuer: str | None, audience: str | None, leeway: int, max_age: int | None) -> None:
        self.issuer = issuer
        self.audience = audience
        self.leeway = leeway
        self.max_age = max_age

    def expiry(self, claims: dict[str, Any], now: float) -> float:
        """Check the claims at `now`; return the token's `exp`."""
        exp = _numeric_date(claims, "exp")
        if exp is None:
            raise bad_token("Token lacks a required claim: exp")
        nbf = _numeric_date(claims, "nbf")
        iat = _numeric_date(claims, "iat")
        if exp + self.leeway < now:
            raise bad_token("Token has expired")
        if nbf is not None and nbf - self.leeway > now:
            raise bad_token("Token is not yet valid")
        if iat is not None and iat - self.leeway > now:
            raise bad_token("Token was issued in the future")
        if self.max_age is not None and exp - (now if iat is None else iat) > self.max_age:
            raise bad_token(f"Token lives longer than the {self.max_age} seconds this service accepts")
        if self.issuer is not None and claims.get("iss") != self.issuer:
            raise bad_token("Token issuer is not accepted")
        if self.audience is not None:
            aud = claims.get("aud")
            if aud != self.audience and not (isinstance(aud, list) and self.audience in aud):
                raise bad_token("Token audience is not accepted")
        return exp


class TokenVerifier:
    """Checks a compact JWS the way the API promises; raises Unauthorized otherwise.

    HS256/384/512 are checked only with the shared secret, the public-key algorithms only with a
    JWKS key of their own type: no token can pick a key of the wrong kind. `clock` is the wall clock.
    """

    def __init__(
        self, settings: Settings, jwks: JwksClient | None = None, *, clock: Clock = time.time
    ) -> None:
        secret = settings.better_auth_secret
        self._secret = OctKey.import_key(secret) if secret else None
        self._jwks = jwks
        self._clock = clock
        self._user_claim = settings.jwt_user_claim
        leeway, max_age = settings.jwt_leeway, settings.jwt_max_age
        self._leeway = leeway
        self._secret_claims = ClaimsPolicy(settings.jwt_issuer, settings.jwt_audience, leeway, max_age)
        # Better Auth sets both iss and aud to its base URL.
        base = settings.better_auth_url
        self._jwks_claims = ClaimsPolicy(
            settings.jwt_issuer or base, settings.jwt_audience or base, leeway, max_age
        )
        # Keyed by a digest, holding only the user and until when: a bounded few MiB, not whole tokens.
        self._cache: dict[bytes, tuple[AuthenticatedUser, float]] = {}

    async def verify(self, token: str) -> AuthenticatedUser:
        key = hashlib.blake2b(token.encode(), digest_size=16).digest()
        now = self._clock()
        cached = self._cache.get(key)
        if cached is not None:
            if now < cached[1]:
                return cached[0]
            del self._cache[key]
        user, exp = await self._verify(token, now)
        if len(self._cache) >= CACHE_ENTRIES:
            # Oldest first (dicts keep insertion order): a cheap, bounded eviction.
            del self._cache[next(iter(self._cache))]
        self._cache[key] = (user, min(exp + self._leeway, now + CACHE_SECONDS))
        return user

    async def _verify(self, token: str, now: float) -> tuple[AuthenticatedUser, float]:
        if len(token) > MAX_TOKEN_BYTES:
            raise bad_token("Token is too large")
        if token.count(".") != 2:
            # Five parts would be a JWE: this service only accepts signed tokens.
            raise bad_token("Token is not a signed JWT")
        if token.startswith(_BOM) or token.partition(".")[2].startswith(_BOM):
            # JSON text must not begin with a byte order mark (RFC 8259 §8.1); Python's decoder skips one.
            raise bad_token("Token is not a signed JWT")
        header = _header(token)
        alg = header["alg"]
        if alg in HMAC_ALGORITHMS and self._secret is not None:
            keys: list[Key] = [self._secret]
            policy = self._secret_claims
        elif alg in PUBLIC_KEY_ALGORITHMS and self._jwks is not None:
            kid = header.get("kid")
            keys = self._public_keys(self._jwks, alg, kid)
            if not keys and kid is not None and await self._jwks.refresh_for_unknown_kid():
                keys = self._public_keys(self._jwks, alg, kid)
            policy = self._jwks_claims
        else:
            raise bad_token(f"Token algorithm {alg!r} is not accepted")
        if not keys:
            raise bad_token("Token was signed with a key this service does not know")

        decoded = None
        for key in keys:
            try:
                decoded = jwt.decode(token, key, algorithms=[alg])
                break
            except BadSignatureError:
                continue
            except (JoseError, ValueError, TypeError, KeyError, UnicodeError):
                raise bad_token("Token signature or format is not valid") from None
        if decoded is None:
            raise bad_token("Token signature is not valid")
        exp = policy.expiry(decoded.claims, now)
        return AuthenticatedUser(self._user_id(decoded.claims), exp), exp

    @staticmethod
    def _public_keys(jwks: JwksClient, alg: str, kid: object) -> list[Key]:
        """The JWKS keys this token may be checked with: its `kid`'s, or with no kid every key of its type."""
        key_type, curve = PUBLIC_KEY_ALGORITHMS[alg]
        return [
            key
            for key in jwks.keys
            if key.key_type == key_type
            and (curve is None or key.get("crv") == curve)
            and key.get("alg", alg) == alg
            and (kid is None or key.kid == kid)
        ]

    def _user_id(self, claims: dict[str, Any]) -> str:
        user_id = claims.get(self._user_claim)
        if not isinstance(user_id, str) or not user_id:
            raise bad_token(f"Token claim {self._user_claim!r} must be a non-empty string")
        if len(user_id) > MAX_USER_ID or "\x00" in user_id:
            raise bad_token(f"Token claim {self._user_claim!r} is not a valid user id")
        return user_id


def mint_token(settings: Settings, user_id: str, ttl: int = 3600) -> str:
    """An HS256 token for `user_id`, signed with the shared secret: for curl and for tests."""
    if settings.better_auth_secret is None:
        raise ConfigError("BETTER_AUTH_SECRET is required to sign a token")
    if settings.jwt_max_age is not None and ttl > settings.jwt_max_age:
        raise ConfigError(
            f"--ttl {ttl} is longer than JWT_MAX_AGE ({settings.jwt_max_age}): the service would refuse it"
        )
    now = int(time.time())
    claims: dict[str, Any] = {settings.jwt_user_claim: user_id, "iat": now, "exp": now + ttl}
    if settings.jwt_issuer:
        claims["iss"] = settings.jwt_issuer
    if settings.jwt_audience:
        claims["aud"] = settings.jwt_audience
    return jwt.encode({"alg": "HS256", "typ": "JWT"}, claims, OctKey.import_key(settings.better_auth_secret))
