"""No slash redirects: a trailing slash is a 404, never a redirect built from the client's Host."""

from __future__ import annotations

import httpx
import pytest

from tests.support.tokens import auth


@pytest.mark.parametrize("path", ["/docs/", "/healthz/", "/openapi.json/"])
def test_a_trailing_slash_is_404_never_a_redirect_to_the_clients_host(
    client: httpx.Client, path: str
) -> None:
    response = client.get(path, headers={"Host": "evil.example"})
    assert response.status_code == 404
    assert "location" not in response.headers
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_a_trailing_slash_on_the_api_is_404_too(client: httpx.Client, user: str) -> None:
    response = client.get(f"/api/{user}/tasks/", headers={**auth(user), "Host": "evil.example"})
    assert response.status_code == 404
    assert "location" not in response.headers
