"""service/settings.py: the environment read into Settings, and every bad configuration refused."""

from __future__ import annotations

import pytest

from service.settings import ConfigError, Settings
from tests.support.tokens import SECRET

GOOD = {"BETTER_AUTH_SECRET": SECRET}
METRICS_TOKEN = "Zq3x-metrics-7mKp2vN8rT4wYb6cJ1hL"
EXTERNAL_DB = {"DATABASE_URL": "postgres://u:p@db.example:5432/todo"}


def test_defaults() -> None:
    settings = Settings.from_env(GOOD)
    assert (settings.host, settings.port, settings.web_concurrency, settings.jwt_leeway) == (
        "127.0.0.1",
        8000,
        1,
        30,
    )
    assert settings.jwt_user_claim == "sub"
    assert settings.database_url is None
    assert (settings.jwt_max_age, settings.jwt_allow_any_issuer) == (86400, False)


def test_every_variable_is_read() -> None:
    env = {
        "BETTER_AUTH_SECRET": SECRET,
        "DATABASE_URL": "postgres://u:p@db.example:5432/todo",
        "DATA_DIR": "/var/lib/todo",
        "HOST": "0.0.0.0",
        "PORT": "5000",
        "WEB_CONCURRENCY": "3",
        "LOG_LEVEL": "WARNING",
        "DB_POOL_SIZE": "7",
        "DB_POOL_MAX_OVERFLOW": "2",
        "DB_CONNECT_TIMEOUT": "1.5",
        "DB_ACQUIRE_TIMEOUT": "2.5",
        "DB_STATEMENT_CACHE_SIZE": "0",
        "BETTER_AUTH_URL": "https://app.example.com/",
        "JWKS_REFRESH_SECONDS": "60",
        "JWKS_MIN_REFETCH_SECONDS": "5",
        "JWKS_TIMEOUT_SECONDS": "1",
        "CURSOR_SECRET": "cursor-" + SECRET,
        "JWT_ISSUER": "https://issuer.example",
        "JWT_AUDIENCE": "https://audience.example",
        "JWT_LEEWAY_SECONDS": "10",
        "JWT_USER_ID_CLAIM": "uid",
        "JWT_MAX_AGE": "900",
        "JWT_ALLOW_ANY_ISSUER": "true",
        "CORS_ORIGINS": "https://app.example.com, http://localhost:3000",
        "ACCESS_LOG": "off",
        "METRICS_ENABLED": "true",
        "METRICS_TOKEN": METRICS_TOKEN,
        "FORWARDED_ALLOW_IPS": "10.0.0.0/8, 192.168.1.7",
        "HEAD_TIMEOUT_SECONDS": "2.5",
        "MAX_CONNECTIONS": "50",
        "MAX_INFLIGHT_PER_USER": "3",
        "PROMETHEUS_MULTIPROC_DIR": "/run/todo-metrics",
    }
    s = Settings.from_env(env)
    assert (s.database_url, str(s.data_dir), s.host, s.port, s.web_concurrency, s.log_level) == (
        "postgres://u:p@db.example:5432/todo",
        "/var/lib/todo",
        "0.0.0.0",
        5000,
        3,
        "warning",
    )
    assert (s.pool_size, s.pool_max_size, s.db_connect_timeout, s.db_acquire_timeout) == (7, 9, 1.5, 2.5)
    assert s.statement_cache_size == 0
    assert (s.better_auth_url, s.jwks_url) == (
        "https://app.example.com",
        "https://app.example.com/api/auth/jwks",
    )
    assert (s.jwks_refresh_seconds, s.jwks_min_refetch_seconds, s.jwks_timeout) == (60, 5, 1)
    assert s.cursor_key == f"cursor-{SECRET}".encode()
    assert (s.jwt_issuer, s.jwt_audience, s.jwt_leeway, s.jwt_user_claim) == (
        "https://issuer.example",
        "https://audience.example",
        10,
        "uid",
    )
    assert (s.jwt_max_age, s.jwt_allow_any_issuer) == (900, True)
    assert s.cors_origins == ("https://app.example.com", "http://localhost:3000")
    assert (s.access_log, s.metrics_enabled, s.metrics_token) == (False, True, METRICS_TOKEN)
    assert s.forwarded_allow_ips == "10.0.0.0/8, 192.168.1.7"
    assert (s.head_timeout, s.max_connections, s.max_inflight_per_user) == (2.5, 50, 3)
    assert str(s.metrics_dir) == "/run/todo-metrics"


def test_settings_are_frozen() -> None:
    settings = Settings.from_env(GOOD)
    with pytest.raises(AttributeError):
        settings.port = 1  # type: ignore[misc]


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (EXTERNAL_DB, "no way to verify tokens"),
        ({**EXTERNAL_DB, "BETTER_AUTH_URL": "https://auth.test"}, "CURSOR_SECRET is required"),
        ({"BETTER_AUTH_URL": "ftp://auth.test", "CURSOR_SECRET": SECRET}, "http"),
        ({**GOOD, "CURSOR_SECRET": "short"}, "CURSOR_SECRET must be at least"),
        ({"BETTER_AUTH_SECRET": "short"}, "at least 32"),
        # Published, or guessable: refused whatever the length.
        ({"BETTER_AUTH_SECRET": "dev-secret-change-me-0123456789abcdef"}, "published example"),
        ({"BETTER_AUTH_SECRET": "a" * 64}, "too easy to guess"),
        ({"BETTER_AUTH_SECRET": "abcdefgh" * 8}, "too easy to guess"),
        ({"BETTER_AUTH_SECRET": "0123456789" * 4}, "too easy to guess"),  # 10 distinct, one pattern
        ({**GOOD, "CURSOR_SECRET": "c" * 32}, "CURSOR_SECRET is too easy"),
        ({**GOOD, "METRICS_TOKEN": "metrics-token-0123456789"}, "METRICS_TOKEN must be at least 32"),
        ({**GOOD, "METRICS_TOKEN": "m" * 40}, "METRICS_TOKEN is too easy"),
        # Keys only over TLS, except from this machine.
        ({**GOOD, "BETTER_AUTH_URL": "http://auth.example.com"}, "must come over https"),
        ({**GOOD, "BETTER_AUTH_URL": "http://10.0.0.7:3000"}, "must come over https"),
        ({**GOOD, "BETTER_AUTH_URL": "http://127.0.0.1.evil.example"}, "must come over https"),
        ({**GOOD, "BETTER_AUTH_URL": "http://localhost.evil.example"}, "must come over https"),
        (
            {**GOOD, "BETTER_AUTH_URL": "https://a.example", "BETTER_AUTH_JWKS_URL": "http://a.example/jwks"},
            "BETTER_AUTH_JWKS_URL: the key set must come over https",
        ),
        # A key set with nothing to bind tokens to this API.
        ({**GOOD, "BETTER_AUTH_JWKS_URL": "https://auth.example.com/api/auth/jwks"}, "JWT_ALLOW_ANY_ISSUER"),
        ({**GOOD, "JWT_MAX_AGE": "0"}, "JWT_MAX_AGE must be between"),
        ({**GOOD, "JWT_MAX_AGE": "15m"}, "JWT_MAX_AGE must be a number"),
        ({**GOOD, "JWT_ALLOW_ANY_ISSUER": "sure"}, "JWT_ALLOW_ANY_ISSUER must be true or false"),
        ({**GOOD, "PORT": "eighty"}, "PORT must be a number"),
        ({**GOOD, "PORT": "70000"}, "PORT must be between"),
        ({**GOOD, "WEB_CONCURRENCY": "0"}, "WEB_CONCURRENCY"),
        ({**GOOD, "DB_POOL_SIZE": "-1"}, "DB_POOL_SIZE"),
        ({**GOOD, "JWT_LEEWAY_SECONDS": "1.5"}, "JWT_LEEWAY_SECONDS"),
        ({**GOOD, "LOG_LEVEL": "loud"}, "LOG_LEVEL"),
        ({**GOOD, "ACCESS_LOG": "maybe"}, "ACCESS_LOG must be true or false"),
        ({**GOOD, "CORS_ORIGINS": "*"}, "CORS_ORIGINS"),
        ({**GOOD, "CORS_ORIGINS": "app.example.com"}, "CORS_ORIGINS"),
        ({**GOOD, "DB_STATEMENT_CACHE_SIZE": "-1"}, "DB_STATEMENT_CACHE_SIZE"),
        ({**GOOD, "FORWARDED_ALLOW_IPS": "proxy.example"}, "FORWARDED_ALLOW_IPS"),
        ({**GOOD, "HEAD_TIMEOUT_SECONDS": "0"}, "HEAD_TIMEOUT_SECONDS"),
        ({**GOOD, "MAX_CONNECTIONS": "0"}, "MAX_CONNECTIONS"),
        ({**GOOD, "MAX_INFLIGHT_PER_USER": "0"}, "MAX_INFLIGHT_PER_USER"),
        ({**GOOD, "DATABASE_URL": "mysql://x@y/z"}, "PostgreSQL"),
        ({**GOOD, "DATABASE_URL": "sqlite:///todo.db"}, "PostgreSQL"),
    ],
)
def test_bad_configuration_is_refused(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Settings.from_env(env)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:3000",
        "http://127.8.9.10",
        "http://[::1]:3000",
        "http://localhost:3000",
        "http://LOCALHOST",
        "https://auth.example.com",
    ],
)
def test_jwks_over_plain_http_only_on_loopback(url: str) -> None:
    assert (
        Settings.from_env({"BETTER_AUTH_URL": url, "CURSOR_SECRET": SECRET}).jwks_url
        == f"{url}/api/auth/jwks"
    )


@pytest.mark.parametrize(
    "env",
    [
        {"JWT_ISSUER": "https://auth.example.com"},
        {"JWT_AUDIENCE": "https://api.example.com"},
        {"JWT_ALLOW_ANY_ISSUER": "true"},
    ],
    ids=["issuer", "audience", "opt-out"],
)
def test_jwks_url_alone_needs_a_binding_or_an_explicit_opt_out(env: dict[str, str]) -> None:
    jwks = {"BETTER_AUTH_JWKS_URL": "https://auth.example.com/api/auth/jwks", "CURSOR_SECRET": SECRET}
    assert Settings.from_env({**jwks, **env}).jwks_url == jwks["BETTER_AUTH_JWKS_URL"]


def test_no_secret_is_fine_only_for_the_embedded_database() -> None:
    """Locally the service makes its own development secret; with DATABASE_URL one must be given."""
    assert Settings.from_env({}).better_auth_secret is None
    with pytest.raises(ConfigError, match="no way to verify tokens"):
        Settings.from_env(EXTERNAL_DB)
