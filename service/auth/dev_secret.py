"""The development secret: local runs on the embedded database need no BETTER_AUTH_SECRET typed in."""

from __future__ import annotations

import os
import secrets
from dataclasses import replace

from service.settings import ConfigError, Settings

FILE_NAME = "dev-secret"


def with_development_secret(settings: Settings) -> Settings:
    """On the embedded database without BETTER_AUTH_SECRET, the random secret kept in DATA_DIR.

    With BETTER_AUTH_URL too (a local Better Auth), tokens from either are accepted locally: the
    local Better Auth's, checked against its JWKS, and `python -m service token`'s.

    Made once, mode 0600, by the first command that finds the database folder initialised (the
    server creates it before asking), so `serve` and `token` agree. Any other settings pass unchanged.
    """
    if settings.database_url is not None or settings.better_auth_secret:
        return settings
    data_dir = settings.data_dir.expanduser()
    path = data_dir / FILE_NAME
    if not path.exists():
        # PostgreSQL's initdb refuses a folder that is not empty: never write before it has run.
        if not (data_dir / "PG_VERSION").exists():
            raise ConfigError(
                f"no BETTER_AUTH_SECRET, and no development secret in {data_dir} yet: "
                "start the server once (`python -m service`) to make one, or set BETTER_AUTH_SECRET"
            )
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass  # another process made it meanwhile: read theirs
        else:
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_urlsafe(32) + "\n")
    return replace(settings, better_auth_secret=path.read_text().strip())
