"""Contract v3, Lists: the round of create, read, rename and delete; ids, ETags, conditional requests."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

import pytest

from tests.api.lists.client import ListClient
from tests.support.assertions import assert_error
from tests.support.postgres import Database
from tests.support.tokens import auth, new_user

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def test_create_read_rename_delete(mine: ListClient) -> None:
    created = mine.request("POST", json={"name": "Groceries"})
    assert created.status_code == 201, created.text
    made = created.json()["data"]
    assert list(made) == ["id", "name", "position", "created_at", "updated_at"]
    assert made["name"] == "Groceries"
    assert uuid.UUID(made["id"]).version == 7
    assert made["id"] == made["id"].lower()
    assert uuid.UUID(made["id"]).int >> 80 == int(
        datetime.fromisoformat(made["created_at"]).timestamp() * 1000
    )
    assert RFC3339_UTC.match(made["created_at"])
    assert made["created_at"] == made["updated_at"]
    assert created.headers["location"] == f"/api/{mine.id}/lists/{made['id']}"
    assert re.fullmatch(r'"[^"]+"', created.headers["etag"])

    fetched = mine.request("GET", created.headers["location"])
    assert fetched.status_code == 200
    assert fetched.json()["data"] == made
    assert fetched.headers["etag"] == created.headers["etag"]
    assert mine.all() == [made]

    for method, name in (("PUT", "Shopping"), ("PATCH", "Errands")):
        renamed = mine.request(method, f"/{made['id']}", json={"name": name})
        assert renamed.status_code == 200, renamed.text
        data = renamed.json()["data"]
        assert data["name"] == name
        assert (data["id"], data["position"], data["created_at"]) == (
            made["id"],
            made["position"],
            made["created_at"],
        )
        assert data["updated_at"] > made["updated_at"]
        assert renamed.headers["etag"] != fetched.headers["etag"]
        assert mine.get(made["id"]).json()["data"] == data
        fetched = renamed

    deleted = mine.request("DELETE", f"/{made['id']}")
    assert deleted.status_code == 200, deleted.text
    assert deleted.json()["data"] == fetched.json()["data"]
    assert deleted.json()["meta"]["deleted_tasks"] == 0
    assert deleted.headers["etag"] == fetched.headers["etag"]
    assert_error(mine.get(made["id"]), 404, "NOT_FOUND")
    assert_error(mine.request("DELETE", f"/{made['id']}"), 404, "NOT_FOUND")
    assert mine.all() == []


def test_a_rename_to_the_same_name_is_still_a_new_version(mine: ListClient) -> None:
    made = mine.request("POST", json={"name": "Same"})
    again = mine.request("PATCH", f"/{made.json()['data']['id']}", json={"name": "Same"})
    assert again.status_code == 200
    assert again.headers["etag"] != made.headers["etag"]


@pytest.mark.parametrize(
    ("sent", "stored"),
    [
        ("  Groceries  ", "Groceries"),
        ("\u3000\tHome\n\u00a0", "Home"),
        (" " * 50 + "x" * 100 + " " * 50, "x" * 100),
    ],
)
def test_names_are_stored_trimmed(mine: ListClient, sent: str, stored: str) -> None:
    made = mine.create(sent)
    assert made["name"] == stored
    renamed = mine.request("PUT", f"/{made['id']}", json={"name": sent + " "})
    assert renamed.json()["data"]["name"] == stored
    assert mine.get(made["id"]).json()["data"]["name"] == stored


def test_new_lists_go_last(mine: ListClient) -> None:
    made = [mine.create(f"list {n}")["id"] for n in range(5)]
    assert mine.ids() == made
    listed = mine.all()
    assert [found["position"] for found in listed] == sorted(found["position"] for found in listed)
    # Last even after the last one moved to the front.
    assert mine.move(made[-1], {"before": made[0]}).status_code == 200
    newest = mine.create("newest")["id"]
    assert mine.ids() == [made[-1], *made[:-1], newest]


def test_every_list_write_is_numbered_in_the_change_feed(mine: ListClient, database: Database) -> None:
    def change_seq(list_id: str) -> int:
        rows = database.query(
            "SELECT change_seq FROM lists WHERE user_id = $1 AND id = $2", mine.id, uuid.UUID(list_id)
        )
        return int(rows[0]["change_seq"])

    first = mine.create("first")["id"]
    created = change_seq(first)
    assert created > 0
    mine.request("PATCH", f"/{first}", json={"name": "renamed"})
    renamed = change_seq(first)
    assert renamed > created
    second = mine.create("second")["id"]
    assert change_seq(second) > renamed
    assert mine.move(second, {"before": first}).status_code == 200
    assert change_seq(second) > change_seq(first)
    user_seq = database.query("SELECT change_seq FROM users WHERE id = $1", mine.id)[0]["change_seq"]
    assert user_seq == change_seq(second)


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
@pytest.mark.parametrize("list_id", ["not-a-uuid", "12345", str(uuid.uuid4())])
def test_a_list_id_that_names_no_list_is_404(mine: ListClient, method: str, list_id: str) -> None:
    keep = mine.create("keep")
    body = {"name": "x"} if method in ("PUT", "PATCH") else None
    error = assert_error(mine.request(method, f"/{list_id}", json=body), 404, "NOT_FOUND")
    assert error["message"] == "List not found"
    assert_error(mine.move(list_id, {"after": keep["id"]}), 404, "NOT_FOUND")
    assert mine.all() == [keep]


def test_an_id_in_upper_case_names_the_same_list(mine: ListClient) -> None:
    made = mine.create()
    assert mine.get(made["id"].upper()).json()["data"] == made


CALLS = [
    ("GET", "", None),
    ("POST", "", {"name": "x"}),
    ("GET", "/{id}", None),
    ("PUT", "/{id}", {"name": "x"}),
    ("PATCH", "/{id}", {"name": "x"}),
    ("DELETE", "/{id}", None),
    ("POST", "/{id}/move", {"before": "{id}"}),
]


@pytest.mark.parametrize(("method", "path", "body"), CALLS)
def test_no_token_is_401_and_another_users_path_is_403(
    mine: ListClient, method: str, path: str, body: dict | None
) -> None:
    made = mine.create("untouched")
    url = mine.url + path.format(id=made["id"])
    sent = None if body is None else {k: v.format(id=made["id"]) for k, v in body.items()}
    response = mine.client.request(method, url, json=sent)
    assert_error(response, 401, "UNAUTHORIZED")
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert_error(mine.client.request(method, url, json=sent, headers=auth(new_user())), 403, "FORBIDDEN")
    assert mine.all() == [made]


def test_if_none_match_answers_304_while_the_etag_holds(mine: ListClient) -> None:
    created = mine.request("POST", json={"name": "cached"})
    url, tag = created.headers["location"], created.headers["etag"]
    for form in (tag, f"W/{tag}", f'"nope", {tag}', "*"):
        response = mine.request("GET", url, headers={"If-None-Match": form, "X-Request-ID": "lists-304"})
        assert response.status_code == 304
        assert response.content == b""
        assert response.headers["etag"] == tag
        assert response.headers["x-request-id"] == "lists-304"
    mine.request("PATCH", url, json={"name": "changed"})
    fresh = mine.request("GET", url, headers={"If-None-Match": tag})
    assert fresh.status_code == 200
    assert fresh.json()["data"]["name"] == "changed"


WRITES = [
    ("PUT", "", {"name": "lost update"}),
    ("PATCH", "", {"name": "lost update"}),
    ("DELETE", "", None),
    ("POST", "/move", "anchor"),
]


@pytest.mark.parametrize(("method", "suffix", "body"), WRITES)
def test_a_stale_if_match_is_412_and_changes_nothing(
    mine: ListClient, method: str, suffix: str, body: object
) -> None:
    anchor = mine.create("anchor")
    created = mine.request("POST", json={"name": "original"})
    url, stale = created.headers["location"], created.headers["etag"]
    current = mine.request("PATCH", url, json={"name": "newer"})
    sent = {"before": anchor["id"]} if body == "anchor" else body
    for tag in (stale, '"1-AAAAAAAA"', f"W/{current.headers['etag']}"):
        response = mine.request(method, url + suffix, json=sent, headers={"If-Match": tag})
        error = assert_error(response, 412, "PRECONDITION_FAILED")
        assert error["message"] == "The list has changed since the given ETag"
    after = mine.request("GET", url)
    assert after.json()["data"] == current.json()["data"]
    assert after.headers["etag"] == current.headers["etag"]
    assert mine.ids() == [anchor["id"], current.json()["data"]["id"]]


@pytest.mark.parametrize(("method", "suffix", "body"), WRITES)
@pytest.mark.parametrize("form", ["{tag}", '"0-x", {tag}', "*"])
def test_a_matching_if_match_writes(
    mine: ListClient, method: str, suffix: str, body: object, form: str
) -> None:
    anchor = mine.create("anchor")
    created = mine.request("POST", json={"name": "original"})
    url, tag = created.headers["location"], created.headers["etag"]
    sent = {"before": anchor["id"]} if body == "anchor" else body
    response = mine.request(method, url + suffix, json=sent, headers={"If-Match": form.format(tag=tag)})
    assert response.status_code == 200, response.text
    if method == "DELETE":
        assert mine.request("GET", url).status_code == 404
    elif body == "anchor":
        assert mine.ids() == [created.json()["data"]["id"], anchor["id"]]
    else:
        assert mine.request("GET", url).json()["data"]["name"] == "lost update"


def test_a_malformed_if_match_is_422(mine: ListClient) -> None:
    made = mine.create()
    response = mine.request("DELETE", f"/{made['id']}", headers={"If-Match": "not an etag"})
    assert_error(response, 422, "VALIDATION_ERROR")
    assert response.json()["error"]["details"][0]["field"] == "If-Match"
    assert mine.all() == [made]


def test_a_method_the_routes_do_not_take_is_405(mine: ListClient) -> None:
    made = mine.create()
    assert_error(mine.request("DELETE"), 405, "METHOD_NOT_ALLOWED")
    assert_error(mine.request("POST", f"/{made['id']}", json={"name": "x"}), 405, "METHOD_NOT_ALLOWED")
    assert_error(mine.request("GET", f"/{made['id']}/move"), 405, "METHOD_NOT_ALLOWED")
    assert mine.all() == [made]
