"""Configuration, read once from the environment into a frozen object."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

MIN_SECRET_LENGTH = 32
MIN_DISTINCT_CHARACTERS = 10
# Secrets published as examples: whoever copies one shares it with everyone who read the same page.
EXAMPLE_SECRETS = frozenset({"dev-secret-change-me-0123456789abcdef"})
HOW_TO_MAKE_ONE = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})
# What a local start allows when CORS_ORIGINS is not set: the dev servers of Next.js and Vite.
LOCAL_DEV_ORIGINS = (
    "http://localhost:3000",
    "http://127.0.0.1:3000",
    "http://localhost:5173",
    "http://127.0.0.1:5173",
)
# A token that lives longer than this is refused: Better Auth's jwt plugin issues 15-minute ones,
# and without a bound an HS token minted with `exp` in the year 30 billion would be good forever.
DEFAULT_JWT_MAX_AGE = 86400

Number = TypeVar("Number", int, float)


class ConfigError(Exception):
    """A missing or bad environment variable: the process must not start."""


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service can be told, validated."""

    database_url: str | None = None
    data_dir: Path = Path(".data")
    host: str = "127.0.0.1"
    port: int = 8000
    web_concurrency: int = 1
    log_level: str = "info"
    pool_size: int = 10
    pool_max_overflow: int = 0
    db_max_connections: int | None = None
    db_connect_timeout: float = 5.0
    db_acquire_timeout: float = 5.0
    db_statement_timeout: float = 5.0
    better_auth_secret: str | None = None
    better_auth_url: str | None = None
    better_auth_jwks_url: str | None = None
    jwks_refresh_seconds: float = 300.0
    jwks_min_refetch_seconds: float = 30.0
    jwks_timeout: float = 3.0
    cursor_secret: str | None = None
    jwt_issuer: str | None = None
    jwt_audience: str | None = None
    jwt_leeway: int = 30
    jwt_user_claim: str = "sub"
    jwt_max_age: int | None = DEFAULT_JWT_MAX_AGE
    jwt_allow_any_issuer: bool = False
    cors_origins: tuple[str, ...] = field(default_factory=tuple)
    access_log: bool = True
    metrics_enabled: bool = False
    metrics_token: str | None = None
    metrics_dir: Path | None = None
    statement_cache_size: int = 100
    forwarded_allow_ips: str = "127.0.0.1,::1"
    head_timeout: float = 5.0
    body_timeout: float = 10.0
    max_connections: int = 1000
    max_inflight_per_user: int = 8
    max_tasks_per_user: int = 100_000
    max_lists_per_user: int = 500
    max_idempotency_keys: int = 1000
    max_tombstones_per_user: int = 10_000
    database_listen_url: str | None = None
    sync_retention: int = 30 * 86400
    max_streams_per_user: int = 5

    def __post_init__(self) -> None:
        if self.better_auth_secret is None and self.jwks_url is None:
            # Locally, on the embedded database, `python -m service` supplies a development secret.
            if self.database_url is not None:
                raise ConfigError(
                    "no way to verify tokens: set BETTER_AUTH_SECRET, or BETTER_AUTH_URL / BETTER_AUTH_JWKS_URL, or both"
                )
        elif not (self.cursor_secret or self.better_auth_secret) and self.database_url is not None:
            # Locally the development secret signs cursors (and `token`'s tokens) beside the JWKS.
            raise ConfigError(
                "CURSOR_SECRET is required when BETTER_AUTH_SECRET is not set: it signs listing cursors"
            )
        for name, value in (
            ("BETTER_AUTH_SECRET", self.better_auth_secret),
            ("CURSOR_SECRET", self.cursor_secret),
            ("METRICS_TOKEN", self.metrics_token),
        ):
            if value is not None:
                _check_secret(name, value)
        if self.metrics_enabled and self.metrics_token is None and self.host not in LOOPBACK_HOSTS:
            raise ConfigError(
                "METRICS_ENABLED on a host others can reach needs METRICS_TOKEN: /metrics would serve"
                f" every series to anyone (make one with {HOW_TO_MAKE_ONE})"
            )
        for origin in self.cors_origins:
            parts = urlsplit(origin)
            if parts.scheme not in ("http", "https") or not parts.netloc or parts.path or parts.query:
                # A wildcard is refused too: credentials (the Authorization header) need a named origin.
                raise ConfigError(
                    f"CORS_ORIGINS entries must be origins like https://app.example.com, not {origin!r}"
                )
        for name, url in (
            ("BETTER_AUTH_URL", self.better_auth_url),
            ("BETTER_AUTH_JWKS_URL", self.better_auth_jwks_url),
        ):
            if url is not None and urlsplit(url).scheme not in ("http", "https"):
                raise ConfigError(f"{name} must be an http(s) URL, not {url!r}")
        for entry in self.forwarded_allow_ips.split(","):
            entry = entry.strip()
            try:
                if entry != "*":
                    ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ConfigError(
                    f"FORWARDED_ALLOW_IPS entries must be IP addresses, networks or *, not {entry!r}"
                ) from None
        if self.jwks_url is not None:
            _check_jwks_url(
                "BETTER_AUTH_JWKS_URL" if self.better_auth_jwks_url else "BETTER_AUTH_URL", self.jwks_url
            )
            bound = self.better_auth_url or self.jwt_issuer or self.jwt_audience
            if not bound and not self.jwt_allow_any_issuer:
                # Better Auth signs other JWTs with the same keys (its session-cache cookie, tokens
                # for other OAuth clients): without iss/aud, any of them would pass as an API token.
                raise ConfigError(
                    "BETTER_AUTH_JWKS_URL without BETTER_AUTH_URL, JWT_ISSUER or JWT_AUDIENCE accepts any token "
                    "those keys signed: set one of them, or JWT_ALLOW_ANY_ISSUER=true to accept that"
                )
        if self.log_level not in LOG_LEVELS:
            raise ConfigError(f"LOG_LEVEL must be one of {', '.join(LOG_LEVELS)}, not {self.log_level!r}")
        _check_database_url(self.database_url)
        _check_database_url(self.database_listen_url, "DATABASE_LISTEN_URL")

    @property
    def pool_max_size(self) -> int:
        return self.pool_size + self.pool_max_overflow

    @property
    def listen_url(self) -> str | None:
        """Where change notifications are listened for: a direct connection, never a transaction pooler."""
        return self.database_listen_url or self.database_url

    @property
    def jwks_url(self) -> str | None:
        """Where Better Auth publishes its keys; None when tokens are only checked with the secret."""
        if self.better_auth_jwks_url is not None:
            return self.better_auth_jwks_url
        return f"{self.better_auth_url.rstrip('/')}/api/auth/jwks" if self.better_auth_url else None

    @property
    def cursor_key(self) -> bytes:
        """The key listing cursors are signed with: shared by every worker, stable across restarts.

        Checked here rather than typed optional: only the embedded first run starts without a
        secret, and `python -m service` supplies one before the app is built.
        """
        secret = self.cursor_secret or self.better_auth_secret
        if not secret:
            raise ConfigError("CURSOR_SECRET or BETTER_AUTH_SECRET is required: it signs listing cursors")
        return secret.encode()

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Build settings from environment variables; raise ConfigError naming the bad one."""
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        base_url = (reader.text("BETTER_AUTH_URL") or "").rstrip("/") or None
        return cls(
            database_url=reader.text("DATABASE_URL"),
            data_dir=Path(reader.text("DATA_DIR") or ".data"),
            host=reader.text("HOST") or "127.0.0.1",
            port=reader.number("PORT", int, 8000, low=0, high=65535),
            web_concurrency=reader.number("WEB_CONCURRENCY", int, 1, low=1, high=64),
            log_level=(reader.text("LOG_LEVEL") or "info").lower(),
            pool_size=reader.number("DB_POOL_SIZE", int, 10, low=1, high=1000),
            pool_max_overflow=reader.number("DB_POOL_MAX_OVERFLOW", int, 0, low=0, high=1000),
            db_max_connections=reader.optional_number("DB_MAX_CONNECTIONS", int, low=3, high=100000),
            db_connect_timeout=reader.number("DB_CONNECT_TIMEOUT", float, 5.0, low=0.1, high=120),
            db_acquire_timeout=reader.number("DB_ACQUIRE_TIMEOUT", float, 5.0, low=0.1, high=120),
            db_statement_timeout=reader.number("DB_STATEMENT_TIMEOUT", float, 5.0, low=0.01, high=600),
            better_auth_secret=reader.text("BETTER_AUTH_SECRET"),
            better_auth_url=base_url,
            better_auth_jwks_url=reader.text("BETTER_AUTH_JWKS_URL"),
            jwks_refresh_seconds=reader.number("JWKS_REFRESH_SECONDS", float, 300.0, low=1, high=86400),
            jwks_min_refetch_seconds=reader.number("JWKS_MIN_REFETCH_SECONDS", float, 30.0, low=0, high=3600),
            jwks_timeout=reader.number("JWKS_TIMEOUT_SECONDS", float, 3.0, low=0.1, high=60),
            cursor_secret=reader.text("CURSOR_SECRET"),
            jwt_issuer=reader.text("JWT_ISSUER"),
            jwt_audience=reader.text("JWT_AUDIENCE"),
            jwt_leeway=reader.number("JWT_LEEWAY_SECONDS", int, 30, low=0, high=600),
            jwt_user_claim=reader.text("JWT_USER_ID_CLAIM") or "sub",
            jwt_max_age=reader.number("JWT_MAX_AGE", int, DEFAULT_JWT_MAX_AGE, low=1, high=366 * 86400),
            jwt_allow_any_issuer=reader.flag("JWT_ALLOW_ANY_ISSUER", False),
            cors_origins=tuple(
                o.strip() for o in (reader.text("CORS_ORIGINS") or "").split(",") if o.strip()
            ),
            access_log=reader.flag("ACCESS_LOG", True),
            metrics_enabled=reader.flag("METRICS_ENABLED", False),
            metrics_token=reader.text("METRICS_TOKEN"),
            metrics_dir=Path(d) if (d := reader.text("PROMETHEUS_MULTIPROC_DIR")) else None,
            statement_cache_size=reader.number("DB_STATEMENT_CACHE_SIZE", int, 100, low=0, high=10000),
            forwarded_allow_ips=reader.text("FORWARDED_ALLOW_IPS") or "127.0.0.1,::1",
            head_timeout=reader.number("HEAD_TIMEOUT_SECONDS", float, 5.0, low=0.1, high=300),
            body_timeout=reader.number("BODY_TIMEOUT_SECONDS", float, 10.0, low=0.1, high=300),
            max_connections=reader.number("MAX_CONNECTIONS", int, 1000, low=1, high=100000),
            max_inflight_per_user=reader.number("MAX_INFLIGHT_PER_USER", int, 8, low=1, high=10000),
            max_tasks_per_user=reader.number("MAX_TASKS_PER_USER", int, 100_000, low=1, high=1_000_000_000),
            # A renumbering of a user's lists rewrites all of them in one transaction: keep them few.
            max_lists_per_user=reader.number("MAX_LISTS_PER_USER", int, 500, low=1, high=10_000),
            max_idempotency_keys=reader.number("MAX_IDEMPOTENCY_KEYS", int, 1000, low=1, high=1_000_000),
            max_tombstones_per_user=reader.number(
                "MAX_TOMBSTONES_PER_USER", int, 10_000, low=1, high=100_000_000
            ),
            database_listen_url=reader.text("DATABASE_LISTEN_URL"),
            sync_retention=reader.number("SYNC_RETENTION", int, 30 * 86400, low=1, high=10 * 365 * 86400),
            max_streams_per_user=reader.number("MAX_STREAMS_PER_USER", int, 5, low=1, high=1000),
        )


def _check_secret(name: str, value: str) -> None:
    """Refuse a secret that is short, published as an example, or plainly guessable."""
    if len(value) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"{name} must be at least {MIN_SECRET_LENGTH} characters long; make one with {HOW_TO_MAKE_ONE}"
        )
    if value in EXAMPLE_SECRETS:
        raise ConfigError(f"{name} is a published example, not a secret; make one with {HOW_TO_MAKE_ONE}")
    # A string is a repetition of a shorter pattern exactly when it occurs inside itself doubled.
    if len(set(value)) < MIN_DISTINCT_CHARACTERS or (value + value).find(value, 1) < len(value):
        raise ConfigError(f"{name} is too easy to guess; make one with {HOW_TO_MAKE_ONE}")


def _check_jwks_url(name: str, url: str) -> None:
    """Keys must come over TLS: plain http only from this machine, where no one sits in between."""
    parts = urlsplit(url)
    if parts.scheme == "https":
        return
    host = parts.hostname or ""
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ConfigError(
            f"{name}: the key set must come over https (plain http only on loopback), not {url!r}"
        )


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    """Just where the database is: all that `python -m service migrate` needs (no token secret)."""

    database_url: str | None = None
    data_dir: Path = Path(".data")

    def __post_init__(self) -> None:
        _check_database_url(self.database_url)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DatabaseSettings:
        reader = _Reader(os.environ if environ is None else environ)
        return cls(
            database_url=reader.text("DATABASE_URL"), data_dir=Path(reader.text("DATA_DIR") or ".data")
        )


def _check_database_url(url: str | None, name: str = "DATABASE_URL") -> None:
    if url is not None:
        scheme = urlsplit(url).scheme
        if scheme not in ("postgres", "postgresql", "postgresql+asyncpg"):
            raise ConfigError(f"{name} must be a PostgreSQL URL, not {scheme or 'no'} scheme")


class _Reader:
    """Reads variables from one mapping; blank counts as unset."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def text(self, name: str) -> str | None:
        value = self._env.get(name, "").strip()
        return value or None

    def flag(self, name: str, default: bool) -> bool:
        raw = self.text(name)
        if raw is None:
            return default
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name} must be true or false, not {raw!r}")

    def optional_number(
        self, name: str, kind: Callable[[str], Number], *, low: float, high: float
    ) -> Number | None:
        if self.text(name) is None:
            return None
        return self.number(name, kind, kind("0"), low=low, high=high)

    def number(
        self, name: str, kind: Callable[[str], Number], default: Number, *, low: float, high: float
    ) -> Number:
        raw = self.text(name)
        if raw is None:
            return default
        try:
            value = kind(raw)
        except ValueError:
            raise ConfigError(f"{name} must be a number, not {raw!r}") from None
        if not low <= value <= high:
            raise ConfigError(f"{name} must be between {low:g} and {high:g}, not {raw}")
        return value
