"""Input nested a thousand deep: a token header or a body of arrays in arrays is 401 or 400, never a
500 and never a traceback in the log.
"""

from __future__ import annotations

import base64
import logging

import httpx
import pytest

from tests.support import UserClient, assert_error

DEPTH = 1000


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "header",
    [
        b"[" * DEPTH,
        b"[" * DEPTH + b"]" * DEPTH,
        b'{"alg":"HS256","x":' + b"[" * DEPTH + b"]" * DEPTH + b"}",
        b'{"alg":"HS256","kid":"' + b"k" * 2000 + b'"}',
    ],
    ids=["open", "closed", "inside-a-value", "oversized"],
)
def test_a_deeply_nested_token_header_is_401(
    app_client: httpx.Client, user: str, header: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    token = f"{_b64(header)}.{_b64(b'{}')}.c2ln"
    with caplog.at_level(logging.WARNING):
        response = app_client.get(f"/api/{user}/tasks", headers={"Authorization": f"Bearer {token}"})
    assert_error(response, 401, "UNAUTHORIZED")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


NESTED = b"[" * DEPTH + b"]" * DEPTH


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", ""),
        ("PUT", "/{id}"),
        ("PATCH", "/{id}"),
        ("PATCH", "/{id}/complete"),
        ("POST", "/{id}/move"),
        ("POST", "/clear-completed"),
    ],
)
@pytest.mark.parametrize(
    "body",
    [NESTED, b'{"title": "t", "tags": ' + NESTED + b"}", b'{"title": ' + b"[" * DEPTH],
    ids=["top", "in-a-field", "unclosed"],
)
def test_a_body_of_arrays_a_thousand_deep_is_400_on_every_write_route(
    me: UserClient, method: str, path: str, body: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    task = me.create("stays as it was")
    with caplog.at_level(logging.WARNING):
        response = me.request(
            method, path.format(id=task["id"]), content=body, headers={"Content-Type": "application/json"}
        )
    assert_error(response, 400, "BAD_REQUEST")
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert me.task(task["id"]) == task
