"""The asserts many tests repeat: an error in the envelope, a refused field, a statement timed out."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx

from tests.support.postgres import row_locked
from tests.support.servers import LiveServer
from tests.support.tokens import auth


def assert_statement_timeout(live: LiveServer, database_url: str, user: str) -> None:
    """A write blocked on a row lock past DB_STATEMENT_TIMEOUT: 503 with Retry-After, nothing changed."""
    with live.client() as client:
        created = client.post(f"/api/{user}/tasks", json={"title": "original"}, headers=auth(user))
        url, task_id = created.headers["location"], created.json()["data"]["id"]

        async def blocked_patch() -> httpx.Response:
            async with row_locked(database_url, user, task_id), live.async_client() as blocked:
                return await blocked.patch(url, json={"title": "changed"}, headers=auth(user))

        response = asyncio.run(blocked_patch())
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"].isdigit()
        assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        # The statement was cancelled, not left to finish once the lock went: the task is as it was,
        # and the pool's connection answers the next request.
        after = client.get(url, headers=auth(user))
        assert after.json()["data"] == created.json()["data"]
        assert after.headers["etag"] == created.headers["etag"]
        patched = client.patch(url, json={"title": "later"}, headers=auth(user))
        assert patched.json()["data"]["title"] == "later"


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is this error, in the envelope; returns its `error` object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["data"] is None
    assert body["error"]["code"] == code
    assert body["error"]["status"] == status
    assert body["meta"]["request_id"] == response.headers["x-request-id"]
    return dict(body["error"])


def invalid_field(response: httpx.Response) -> str:
    """The response is a 422 whose details all say something; returns the first field it names."""
    details = assert_error(response, 422, "VALIDATION_ERROR")["details"]
    assert details
    assert all(set(d) == {"field", "message"} and d["message"] for d in details)
    return str(details[0]["field"])
