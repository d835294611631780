"""DATABASE_URL as platforms give it: a Heroku-style postgres:// URL with libpq-only parameters works."""

from __future__ import annotations

from collections.abc import Callable

from tests.support.postgres import Database
from tests.support.servers import LiveServer
from tests.support.tokens import auth, new_user


def test_heroku_style_postgres_url_works(make_server: Callable[..., LiveServer], database: Database) -> None:
    url = database.url.replace("postgresql://", "postgres://", 1) + "&channel_binding=prefer"
    live = make_server(database_url=url)
    user = new_user()
    with live.client() as client:
        assert client.post(f"/api/{user}/tasks", json={"title": "x"}, headers=auth(user)).status_code == 201
