"""Contract v3, Lists: every body a list route refuses is a 422 naming the field, and changes nothing."""

from __future__ import annotations

import pytest

from service.lists.fields import NAME_MAX, NAME_PATTERN
from service.tasks.fields import TAG_MAX, TAG_PATTERN, TITLE_MAX, TITLE_PATTERN, trimmed_pattern
from tests.api.lists.client import ListClient
from tests.support.assertions import assert_error, invalid_field

NAME_RULE = f"must be 1-{NAME_MAX} characters after trimming white space, without NUL"
BAD_NAMES = [
    ({}, "name", "is required"),
    ({"name": ""}, "name", NAME_RULE),
    ({"name": "   \t\n\u3000"}, "name", NAME_RULE),
    ({"name": "x" * 101}, "name", NAME_RULE),
    ({"name": "  " + "x" * 101 + "  "}, "name", NAME_RULE),
    ({"name": "a\u0000b"}, "name", NAME_RULE),
    ({"name": 5}, "name", "must be a string, not an integer"),
    ({"name": None}, "name", "must be a string, not null"),
    ({"name": ["x"]}, "name", "must be a string, not an array"),
    ({"name": "ok", "position": "800000000000"}, "position", "is not allowed"),
    ({"name": "ok", "id": "01934f2e-8d2b-7c4f-a1e3-6b7c8d9e0f1a"}, "id", "is not allowed"),
]


def _message(response: object) -> str:
    return str(response.json()["error"]["details"][0]["message"])  # type: ignore[attr-defined]


def test_the_name_pattern_is_the_title_pattern_with_another_bound() -> None:
    assert trimmed_pattern(TITLE_MAX) == TITLE_PATTERN
    assert trimmed_pattern(TAG_MAX) == TAG_PATTERN
    assert trimmed_pattern(NAME_MAX) == NAME_PATTERN


def test_a_name_of_100_characters_is_accepted(mine: ListClient) -> None:
    assert mine.create("é" * 100)["name"] == "é" * 100


@pytest.mark.parametrize(("body", "field", "message"), BAD_NAMES)
def test_create_refuses_a_bad_body(mine: ListClient, body: dict, field: str, message: str) -> None:
    response = mine.request("POST", json=body)
    assert invalid_field(response) == field
    assert _message(response) == message
    assert mine.all() == []


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
@pytest.mark.parametrize(("body", "field", "message"), BAD_NAMES)
def test_rename_refuses_a_bad_body(
    mine: ListClient, method: str, body: dict, field: str, message: str
) -> None:
    made = mine.create("untouched")
    response = mine.request(method, f"/{made['id']}", json=body)
    assert invalid_field(response) == field
    assert _message(response) == message
    assert mine.all() == [made]


@pytest.mark.parametrize("content", [b"[]", b'"name"', b"1", b"null"])
def test_a_body_that_is_not_an_object_is_422(mine: ListClient, content: bytes) -> None:
    response = mine.request("POST", content=content, headers={"content-type": "application/json"})
    assert invalid_field(response) == "body"


@pytest.mark.parametrize("content", [b"", b"{", b'{"name": "x"'])
def test_no_body_or_bad_json_is_400(mine: ListClient, content: bytes) -> None:
    made = mine.create()
    headers = {"content-type": "application/json"}
    for method, path in (("POST", ""), ("PUT", f"/{made['id']}"), ("POST", f"/{made['id']}/move")):
        assert_error(mine.request(method, path, content=content, headers=headers), 400, "BAD_REQUEST")
    assert mine.all() == [made]


def test_a_body_that_is_not_json_is_415(mine: ListClient) -> None:
    response = mine.request("POST", content=b"name=x", headers={"content-type": "text/plain"})
    assert_error(response, 415, "UNSUPPORTED_MEDIA_TYPE")


def test_validation_comes_before_the_list_lookup(mine: ListClient) -> None:
    """A bad body is 422 even on a list that does not exist, as on the task routes."""
    assert invalid_field(mine.request("PATCH", "/not-a-uuid", json={"name": ""})) == "name"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"before": None}, "before"),
        ({"after": 5}, "after"),
        ({"before": "not-a-uuid"}, "before"),
        ({"after": ""}, "after"),
        ({"position": "800000000000"}, "position"),
        ([], "body"),
    ],
)
def test_a_bad_move_body_is_422(mine: ListClient, body: object, field: str) -> None:
    made = [mine.create(f"l{n}")["id"] for n in range(2)]
    assert invalid_field(mine.move(made[0], body)) == field
    assert mine.ids() == made


def test_both_anchors_even_if_valid_are_422(mine: ListClient) -> None:
    made = [mine.create(f"l{n}")["id"] for n in range(3)]
    response = mine.move(made[0], {"before": made[2], "after": made[1]})
    assert invalid_field(response) == "body"
    assert _message(response) == "must have exactly one of before, after"
    assert mine.ids() == made


@pytest.mark.parametrize("side", ["before", "after"])
def test_the_list_itself_as_anchor_is_422_naming_the_side(mine: ListClient, side: str) -> None:
    made = [mine.create(f"l{n}")["id"] for n in range(2)]
    etag = mine.get(made[1]).headers["etag"]
    for anchor in (made[1], made[1].upper()):
        response = mine.move(made[1], {side: anchor})
        assert invalid_field(response) == side
        assert _message(response) == "must be the id of another of your lists"
    assert mine.ids() == made
    assert mine.get(made[1]).headers["etag"] == etag
