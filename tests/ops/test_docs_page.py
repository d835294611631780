"""service/ops/docs.py: the docs page works offline, serves only the files it uses, and keeps no tokens."""

from __future__ import annotations

import httpx
import pytest


def test_docs_page_works_offline(client: httpx.Client) -> None:
    page = client.get("/docs")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "http" not in page.text.replace("http-equiv", "")  # no CDN, no absolute URL at all
    for asset in ("/docs/assets/javascripts/swagger-ui-bundle.js", "/docs/assets/stylesheets/swagger-ui.css"):
        response = client.get(asset)
        assert response.status_code == 200, asset
        assert len(response.content) > 10_000
    init = client.get("/docs/init.js")
    assert "/openapi.json" in init.text
    assert "persistAuthorization" in init.text
    missing = client.get("/docs/assets/nope.js")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NOT_FOUND"


@pytest.mark.parametrize(
    "path",
    [
        "/docs/assets/oauth2-redirect.html",
        "/docs/assets/oauth2-redirect.js",
        "/docs/assets/swagger.html",
        "/docs/assets/LICENSE",
        "/docs/assets/javascripts/swagger-ui-bundle.js.map",
        "/docs/assets/javascripts/swagger-ui-standalone-preset.js",
        "/docs/assets/javascripts/",
        "/docs/assets/javascripts/../swagger.html",
        "/docs/assets/javascripts/%2e%2e/swagger.html",
    ],
)
def test_only_the_files_the_docs_page_uses_are_served(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "NOT_FOUND"


def test_the_docs_page_forgets_tokens_and_says_where_to_get_one(client: httpx.Client) -> None:
    assert "persistAuthorization: false" in client.get("/docs/init.js").text
    page = client.get("/docs").text
    assert "python -m service token USER_ID" in page
    assert "/api/auth/token" in page
