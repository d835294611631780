"""One user's lists over any httpx client: their token on every request, their paths."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import httpx

from tests.support.tokens import auth, new_user


class ListClient:
    """`/api/{user}/lists` for one user; `path` is below it ("", "/{id}", "/{id}/move") or absolute."""

    def __init__(self, client: httpx.Client, user_id: str | None = None) -> None:
        self.client = client
        self.id = user_id or new_user()
        self.url = f"/api/{self.id}/lists"

    def request(
        self, method: str, path: str = "", *, headers: Mapping[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        url = path if path.startswith("/api/") else self.url + path
        return self.client.request(method, url, headers={**auth(self.id), **(headers or {})}, **kwargs)

    def create(self, name: str = "a list") -> dict[str, Any]:
        """Create a list and return it; fails the test unless the answer is 201."""
        response = self.request("POST", json={"name": name})
        assert response.status_code == 201, response.text
        return dict(response.json()["data"])

    def get(self, list_id: str) -> httpx.Response:
        return self.request("GET", f"/{list_id}")

    def move(self, list_id: str, body: object, **headers: str) -> httpx.Response:
        return self.request("POST", f"/{list_id}/move", json=body, headers=headers)

    def all(self) -> list[dict[str, Any]]:
        response = self.request("GET")
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["meta"]["count"] == len(body["data"])
        return list(body["data"])

    def ids(self) -> list[str]:
        """The user's list ids, in their order."""
        return [found["id"] for found in self.all()]
