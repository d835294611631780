"""CONTRACT §4 validation and §5 request errors: 400, 413, 415, 422, in that order, never a 500.

The body and field matrix runs in-process (`me`); what depends on framing runs over HTTP (`live_me`).
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.support.assertions import assert_error, invalid_field
from tests.support.clients import UserClient
from tests.support.tokens import auth


@pytest.fixture
def task_id(me: UserClient) -> str:
    return str(me.create("original")["id"])


def _unchanged(me: UserClient, task_id: str) -> None:
    task = me.task(task_id)
    assert (task["title"], task["description"], task["completed"]) == ("original", None, False)


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
def test_create_validation(me: UserClient, body: dict, field: str) -> None:
    assert invalid_field(me.request("POST", json=body)) == field
    assert me.count() == 0


def test_description_of_2000_is_accepted(me: UserClient) -> None:
    assert len(me.create("t", description="d" * 2000)["description"]) == 2000


@pytest.mark.parametrize("body", [b"[]", b'"title"', b"42", b"null", b"true"])
def test_create_body_must_be_an_object(me: UserClient, body: bytes) -> None:
    assert invalid_field(me.request("POST", content=body)) == "body"


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
def test_update_validation(me: UserClient, task_id: str, method: str, body: dict, field: str) -> None:
    assert invalid_field(me.request(method, f"/{task_id}", json=body)) == field
    _unchanged(me, task_id)


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
def test_invalid_json_is_400(me: UserClient, body: bytes) -> None:
    assert_error(me.request("POST", content=body), 400, "BAD_REQUEST")
    assert me.count() == 0


def test_invalid_json_on_update_and_complete_is_400(me: UserClient, task_id: str) -> None:
    assert_error(me.request("PATCH", f"/{task_id}", content=b"{bad"), 400, "BAD_REQUEST")
    assert_error(me.request("PATCH", f"/{task_id}/complete", content=b"{bad"), 400, "BAD_REQUEST")
    _unchanged(me, task_id)


@pytest.mark.parametrize(
    ("suffix", "body"),
    [
        ("/complete", b'{"title": "x"'),  # an unknown field, then the document stops
        ("", b'{"title": 5'),  # a wrong type, then the document stops
        ("", b'{"title": "ok", "id": 1, '),
    ],
)
def test_truncated_json_is_400_even_when_its_prefix_breaks_the_schema(
    me: UserClient, task_id: str, suffix: str, body: bytes
) -> None:
    assert_error(me.request("PATCH", f"/{task_id}{suffix}", content=body), 400, "BAD_REQUEST")
    assert_error(me.request("POST", content=body), 400, "BAD_REQUEST")
    _unchanged(me, task_id)
    assert me.count() == 1


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
def test_validation_messages_say_the_rule(me: UserClient, body: dict, field: str, message: str) -> None:
    details = assert_error(me.request("POST", json=body), 422, "VALIDATION_ERROR")["details"]
    assert details == [{"field": field, "message": message}]


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "application/xml"]
)
def test_non_json_content_type_is_415(me: UserClient, task_id: str, content_type: str) -> None:
    headers = {"Content-Type": content_type}
    for method, path, body in [
        ("POST", "", b'{"title": "x"}'),
        ("PATCH", f"/{task_id}", b'{"title": "x"}'),
        ("PATCH", f"/{task_id}/complete", b"{}"),
    ]:
        response = me.request(method, path, content=body, headers=headers)
        assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")
    _unchanged(me, task_id)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json",
        "application/json; charset=utf-8",
        "Application/JSON",
        "application/merge-patch+json",
    ],
)
def test_json_content_types_are_accepted(me: UserClient, content_type: str) -> None:
    response = me.request("POST", content=b'{"title": "x"}', headers={"Content-Type": content_type})
    assert response.status_code == 201


def test_validation_comes_before_the_task_lookup(me: UserClient) -> None:
    unknown = "/00000000-0000-7000-8000-000000000000"
    assert invalid_field(me.request("PATCH", unknown, json={})) == "body"
    assert me.request("PATCH", unknown, json={"title": "fine"}).status_code == 404


@pytest.mark.parametrize(
    "key", ["k" * 256, "has space", "tab\there", "caf\u00e9"], ids=["long", "space", "tab", "latin1"]
)
def test_bad_idempotency_key_is_422(live_me: UserClient, key: str) -> None:
    # Over HTTP: a non-ASCII header value must reach the app as the bytes a client sent.
    headers = [*live_me.headers.items(), ("Idempotency-Key", key.encode("latin-1"))]
    response = live_me.client.post(live_me.tasks_url, json={"title": "x"}, headers=headers)
    assert invalid_field(response) == "Idempotency-Key"
    assert live_me.count() == 0


def test_idempotency_key_of_255_visible_characters_is_accepted(me: UserClient) -> None:
    key = "".join(chr(c) for c in range(0x21, 0x7F)) * 3
    response = me.request("POST", json={"title": "x"}, headers={"Idempotency-Key": key[:255]})
    assert response.status_code == 201


# --- framing: over HTTP to the live server ----------------------------------------------------


def test_missing_content_type_is_read_as_json(live_me: UserClient) -> None:
    response = live_me.request("POST", content=b'{"title": "x"}')
    assert "content-type" not in response.request.headers
    assert response.status_code == 201


def test_body_of_exactly_64_kib_is_read(live_me: UserClient) -> None:
    body = b'{"title": "x"}'
    body = body + b" " * (65536 - len(body))
    assert live_me.request("POST", content=body).status_code == 201


def test_body_over_64_kib_is_413(live_me: UserClient) -> None:
    task_id = live_me.create("original")["id"]
    body = b'{"title": "x"}' + b" " * 65536
    assert_error(live_me.request("POST", content=body), 413, "PAYLOAD_TOO_LARGE")
    assert_error(live_me.request("PUT", f"/{task_id}", content=body), 413, "PAYLOAD_TOO_LARGE")
    assert live_me.count() == 1
    assert live_me.task(task_id)["title"] == "original"


def test_chunked_body_over_64_kib_is_413(live_me: UserClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"title": "x", "description": "'
        for _ in range(80):
            yield b"y" * 1024
        yield b'"}'

    response = live_me.request("POST", content=chunks())
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "PAYLOAD_TOO_LARGE")
    assert live_me.count() == 0


def test_order_413_before_415_before_400_before_422(live_me: UserClient) -> None:
    text = {"Content-Type": "text/plain"}
    assert_error(live_me.request("POST", content=b"{" + b" " * 70000, headers=text), 413, "PAYLOAD_TOO_LARGE")
    assert_error(live_me.request("POST", content=b"{", headers=text), 415, "UNSUPPORTED_MEDIA_TYPE")
    assert_error(live_me.request("POST", content=b"{"), 400, "BAD_REQUEST")
    assert invalid_field(live_me.request("POST", json={"title": ""})) == "title"


def test_the_validation_matrix_runs_on_the_app_the_live_server_serves(
    me: UserClient, live_me: UserClient
) -> None:
    """The in-process client sees the same database and answers as the live one."""
    created = me.create("seen by both")
    assert live_me.task(created["id"]) == created
    assert invalid_field(live_me.request("POST", json={"title": " "})) == "title"
    _ = httpx  # the live client is an httpx.Client too


@pytest.mark.parametrize("method", ["POST", "PATCH", "PUT"])
def test_an_empty_title_reads_like_a_blank_one(client: httpx.Client, user: str, method: str) -> None:
    path = f"/api/{user}/tasks"
    if method != "POST":
        created = client.post(path, json={"title": "original"}, headers=auth(user))
        path += f"/{created.json()['data']['id']}"
    answers = [client.request(method, path, json={"title": t}, headers=auth(user)) for t in ("", "  \t")]
    assert [a.status_code for a in answers] == [422, 422]
    empty, blank = (a.json()["error"]["details"] for a in answers)
    assert empty == blank  # the same words, whichever rule the title's wording comes from
    assert [d["field"] for d in empty] == ["title"]
