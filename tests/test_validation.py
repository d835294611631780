"""CONTRACT §4 validation and §5 request errors: 400, 413, 415, 422, in that order, never a 500."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support import auth


@pytest.fixture
def task_url(client: httpx.Client, user: str) -> str:
    response = client.post(f"/api/{user}/tasks", json={"title": "original"}, headers=auth(user))
    return response.headers["location"]


def _error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["data"] is None
    assert body["error"]["code"] == code
    assert body["error"]["status"] == status
    return body["error"]


def _field(response: httpx.Response) -> str:
    details = _error(response, 422, "VALIDATION_ERROR")["details"]
    assert len(details) >= 1
    assert all(set(d) == {"field", "message"} and d["message"] for d in details)
    return details[0]["field"]


def _unchanged(client: httpx.Client, user: str, task_url: str) -> None:
    task = client.get(task_url, headers=auth(user)).json()["data"]
    assert (task["title"], task["description"], task["completed"]) == ("original", None, False)


def _count(client: httpx.Client, user: str) -> int:
    return client.get(f"/api/{user}/tasks", headers=auth(user)).json()["meta"]["count"]


CREATE_CASES = [
    ({}, "title"),
    ({"title": ""}, "title"),
    ({"title": "   \t\n "}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"title": None}, "title"),
    ({"title": 5}, "title"),
    ({"title": ["a"]}, "title"),
    ({"title": "nul\u0000byte"}, "title"),
    ({"title": "ok", "description": "nul\u0000byte"}, "description"),
    ({"title": "ok", "description": "x" * 2001}, "description"),
    ({"title": "ok", "description": 3}, "description"),
    ({"title": "ok", "id": "0193a5b2-0000-7000-8000-000000000000"}, "id"),
    ({"title": "ok", "user_id": "someone"}, "user_id"),
    ({"title": "ok", "completed": True}, "completed"),
    ({"title": "ok", "extra": 1}, "extra"),
]


@pytest.mark.parametrize(
    ("body", "field"), CREATE_CASES, ids=[f"{f}-{i}" for i, (_, f) in enumerate(CREATE_CASES)]
)
def test_create_validation(client: httpx.Client, user: str, body: dict, field: str) -> None:
    response = client.post(f"/api/{user}/tasks", json=body, headers=auth(user))
    assert _field(response) == field
    assert _count(client, user) == 0


def test_description_of_2000_is_accepted(client: httpx.Client, user: str) -> None:
    response = client.post(
        f"/api/{user}/tasks", json={"title": "t", "description": "d" * 2000}, headers=auth(user)
    )
    assert response.status_code == 201


@pytest.mark.parametrize(
    "body",
    [b"[]", b'"title"', b"42", b"null", b"true"],
)
def test_create_body_must_be_an_object(client: httpx.Client, user: str, body: bytes) -> None:
    response = client.post(f"/api/{user}/tasks", content=body, headers=auth(user))
    assert _field(response) == "body"


UPDATE_CASES = [
    ({}, "body"),
    ({"title": None}, "title"),
    ({"completed": None}, "completed"),
    ({"title": "   "}, "title"),
    ({"title": "x" * 201}, "title"),
    ({"title": "a\u0000"}, "title"),
    ({"description": "x" * 2001}, "description"),
    ({"description": "\u0000"}, "description"),
    ({"completed": "true"}, "completed"),
    ({"completed": 1}, "completed"),
    ({"id": "x"}, "id"),
    ({"user_id": "x"}, "user_id"),
    ({"title": "fine", "bogus": True}, "bogus"),
]


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
@pytest.mark.parametrize(
    ("body", "field"), UPDATE_CASES, ids=[f"{f}-{i}" for i, (_, f) in enumerate(UPDATE_CASES)]
)
def test_update_validation(
    client: httpx.Client, user: str, task_url: str, method: str, body: dict, field: str
) -> None:
    response = client.request(method, task_url, json=body, headers=auth(user))
    assert _field(response) == field
    _unchanged(client, user, task_url)


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"{'title': 'x'}",
        b'{"title": "x",}',
        b"\xff\xfe",
        b"",
        b"nope",
        b'{"title": "\xed\xa0\x80"}',  # a UTF-16 surrogate encoded as UTF-8: not valid UTF-8
        b'{"title": "\\ud800x"}',  # a lone surrogate escape
        b'{"title": "a\xffb"}',
    ],
)
def test_invalid_json_is_400(client: httpx.Client, user: str, body: bytes) -> None:
    response = client.post(f"/api/{user}/tasks", content=body, headers=auth(user))
    _error(response, 400, "BAD_REQUEST")
    assert _count(client, user) == 0


def test_invalid_json_on_update_and_complete_is_400(client: httpx.Client, user: str, task_url: str) -> None:
    _error(client.patch(task_url, content=b"{bad", headers=auth(user)), 400, "BAD_REQUEST")
    _error(client.patch(f"{task_url}/complete", content=b"{bad", headers=auth(user)), 400, "BAD_REQUEST")
    _unchanged(client, user, task_url)


@pytest.mark.parametrize(
    ("suffix", "body"),
    [
        ("/complete", b'{"title": "x"'),  # an unknown field, then the document stops
        ("", b'{"title": 5'),  # a wrong type, then the document stops
        ("", b'{"title": "ok", "id": 1, '),
    ],
)
def test_truncated_json_is_400_even_when_its_prefix_breaks_the_schema(
    client: httpx.Client, user: str, task_url: str, suffix: str, body: bytes
) -> None:
    _error(client.patch(f"{task_url}{suffix}", content=body, headers=auth(user)), 400, "BAD_REQUEST")
    _error(client.post(f"/api/{user}/tasks", content=body, headers=auth(user)), 400, "BAD_REQUEST")
    _unchanged(client, user, task_url)


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"title": "  "}, "title", "must be 1-200 characters after trimming white space, without NUL"),
        ({"title": "x" * 201}, "title", "must be 1-200 characters after trimming white space, without NUL"),
        ({"title": 5}, "title", "must be a string, not an integer"),
        (
            {"title": "ok", "description": "\u0000"},
            "description",
            "must be at most 2000 characters, without NUL",
        ),
        ({"title": "ok", "extra": 1}, "extra", "is not allowed"),
        ({}, "title", "is required"),
    ],
)
def test_validation_messages_say_the_rule(
    client: httpx.Client, user: str, body: dict, field: str, message: str
) -> None:
    response = client.post(f"/api/{user}/tasks", json=body, headers=auth(user))
    assert _error(response, 422, "VALIDATION_ERROR")["details"] == [{"field": field, "message": message}]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_non_json_content_type_is_415(
    client: httpx.Client, user: str, task_url: str, content_type: str
) -> None:
    headers = {**auth(user), "Content-Type": content_type}
    _error(
        client.post(f"/api/{user}/tasks", content=b'{"title": "x"}', headers=headers),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    _error(client.patch(task_url, content=b'{"title": "x"}', headers=headers), 415, "UNSUPPORTED_MEDIA_TYPE")
    _error(
        client.patch(f"{task_url}/complete", content=b"{}", headers=headers), 415, "UNSUPPORTED_MEDIA_TYPE"
    )
    _unchanged(client, user, task_url)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/merge-patch+json",
    ],
)
def test_json_content_types_are_accepted(client: httpx.Client, user: str, content_type: str) -> None:
    headers = {**auth(user), "Content-Type": content_type}
    assert client.post(f"/api/{user}/tasks", content=b'{"title": "x"}', headers=headers).status_code == 201


def test_missing_content_type_is_read_as_json(client: httpx.Client, user: str) -> None:
    response = client.post(f"/api/{user}/tasks", content=b'{"title": "x"}', headers=auth(user))
    assert "content-type" not in response.request.headers
    assert response.status_code == 201


def test_body_of_exactly_64_kib_is_read(client: httpx.Client, user: str) -> None:
    body = b'{"title": "x"}'
    body = body + b" " * (65536 - len(body))
    assert client.post(f"/api/{user}/tasks", content=body, headers=auth(user)).status_code == 201


def test_body_over_64_kib_is_413(client: httpx.Client, user: str, task_url: str) -> None:
    body = b'{"title": "x"}' + b" " * 65536
    _error(client.post(f"/api/{user}/tasks", content=body, headers=auth(user)), 413, "PAYLOAD_TOO_LARGE")
    _error(client.put(task_url, content=body, headers=auth(user)), 413, "PAYLOAD_TOO_LARGE")
    assert _count(client, user) == 1


def test_chunked_body_over_64_kib_is_413(client: httpx.Client, user: str) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"title": "x", "description": "'
        for _ in range(80):
            yield b"y" * 1024
        yield b'"}'

    response = client.post(f"/api/{user}/tasks", content=chunks(), headers=auth(user))
    assert "content-length" not in response.request.headers
    _error(response, 413, "PAYLOAD_TOO_LARGE")
    assert _count(client, user) == 0


def test_order_413_before_415_before_400_before_422(client: httpx.Client, user: str) -> None:
    url = f"/api/{user}/tasks"
    big = b"{" + b" " * 70000
    _error(
        client.post(url, content=big, headers={**auth(user), "Content-Type": "text/plain"}),
        413,
        "PAYLOAD_TOO_LARGE",
    )
    _error(
        client.post(url, content=b"{", headers={**auth(user), "Content-Type": "text/plain"}),
        415,
        "UNSUPPORTED_MEDIA_TYPE",
    )
    _error(client.post(url, content=b"{", headers=auth(user)), 400, "BAD_REQUEST")


def test_validation_comes_before_the_task_lookup(client: httpx.Client, user: str) -> None:
    unknown = f"/api/{user}/tasks/00000000-0000-7000-8000-000000000000"
    assert _field(client.patch(unknown, json={}, headers=auth(user))) == "body"
    assert client.patch(unknown, json={"title": "fine"}, headers=auth(user)).status_code == 404


@pytest.mark.parametrize(
    "key", ["k" * 256, "has space", "tab\there", "caf\u00e9"], ids=["long", "space", "tab", "latin1"]
)
def test_bad_idempotency_key_is_422(client: httpx.Client, user: str, key: str) -> None:
    headers = [*auth(user).items(), ("Idempotency-Key", key.encode("latin-1"))]
    response = client.post(f"/api/{user}/tasks", json={"title": "x"}, headers=headers)
    assert _field(response) == "Idempotency-Key"
    assert _count(client, user) == 0


def test_idempotency_key_of_255_visible_characters_is_accepted(client: httpx.Client, user: str) -> None:
    key = "".join(chr(c) for c in range(0x21, 0x7F)) * 3
    headers = {**auth(user), "Idempotency-Key": key[:255]}
    assert client.post(f"/api/{user}/tasks", json={"title": "x"}, headers=headers).status_code == 201
