"""CONTRACT §4 route table and §7 text rules: CRUD, /complete, ids, and isolation by 404."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

import pytest

from tests.support.assertions import assert_error, invalid_field
from tests.support.clients import UserClient
from tests.support.postgres import Database

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def test_create_returns_the_task_with_location_and_etag(me: UserClient) -> None:
    response = me.request("POST", json={"title": "  Buy milk  ", "description": "2 litres"})
    assert response.status_code == 201
    task = response.json()["data"]
    assert task["title"] == "Buy milk"
    assert task["description"] == "2 litres"
    assert task["completed"] is False
    assert task["user_id"] == me.id
    assert uuid.UUID(task["id"]).version == 7
    assert task["id"] == task["id"].lower()
    assert RFC3339_UTC.match(task["created_at"])
    assert task["created_at"] == task["updated_at"]
    assert response.headers["location"] == f"/api/{me.id}/tasks/{task['id']}"
    assert re.fullmatch(r'"[^"]+"', response.headers["etag"])
    fetched = me.request("GET", response.headers["location"])
    assert fetched.json()["data"] == task


def test_ids_carry_their_creation_millisecond(me: UserClient) -> None:
    """UUIDv7: the id's first 48 bits are the creation time in ms, so ids sort by creation time
    (within one millisecond the random bits decide; test_units checks the order across ms)."""
    for task in (me.create(f"t{i}") for i in range(5)):
        created = datetime.fromisoformat(task["created_at"])
        assert uuid.UUID(task["id"]).int >> 80 == int(created.timestamp() * 1000)


def test_description_is_stored_as_sent(me: UserClient) -> None:
    assert me.create(description="")["description"] == ""
    assert me.create(description="  spaced  ")["description"] == "  spaced  "
    assert me.create()["description"] is None


def test_first_write_creates_the_user_row(me: UserClient, database: Database) -> None:
    assert database.query("SELECT 1 FROM users WHERE id = $1", me.id) == []
    me.create()
    me.create()
    assert len(database.query("SELECT 1 FROM users WHERE id = $1", me.id)) == 1


def test_reads_create_no_user_row(me: UserClient, database: Database) -> None:
    assert me.ids() == []
    assert database.query("SELECT 1 FROM users WHERE id = $1", me.id) == []


def test_get_unknown_task_is_404(me: UserClient) -> None:
    error = assert_error(me.get(str(uuid.uuid4())), 404, "NOT_FOUND")
    assert error == {"status": 404, "code": "NOT_FOUND", "message": "Task not found", "details": []}


@pytest.mark.parametrize("bad_id", ["123", "not-a-uuid", "0193a5b2", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"])
def test_non_uuid_task_id_is_404(me: UserClient, bad_id: str) -> None:
    for method in ("GET", "DELETE"):
        assert me.request(method, f"/{bad_id}").status_code == 404, method
    assert me.request("PATCH", f"/{bad_id}", json={"completed": True}).status_code == 404
    assert me.request("PATCH", f"/{bad_id}/complete").status_code == 404


def test_upper_case_uuid_is_accepted_and_answered_in_lower_case(me: UserClient) -> None:
    task = me.create()
    assert me.task(task["id"].upper())["id"] == task["id"]


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_update_is_partial(me: UserClient, method: str) -> None:
    task = me.create("before", description="keep me")
    response = me.request(method, f"/{task['id']}", json={"title": "  after "})
    assert response.status_code == 200
    updated = response.json()["data"]
    assert updated["title"] == "after"
    assert updated["description"] == "keep me"
    assert updated["completed"] is False
    assert updated["created_at"] == task["created_at"]
    assert datetime.fromisoformat(updated["updated_at"]) > datetime.fromisoformat(task["updated_at"])
    assert me.task(task["id"]) == updated


def test_update_sets_each_field(me: UserClient) -> None:
    task = me.create(description="old")
    path = f"/{task['id']}"
    assert me.request("PATCH", path, json={"completed": True}).json()["data"]["completed"] is True
    assert me.request("PATCH", path, json={"description": None}).json()["data"]["description"] is None
    both = me.request("PUT", path, json={"description": "new", "completed": False}).json()["data"]
    assert (both["description"], both["completed"], both["title"]) == ("new", False, "a task")


def test_every_write_changes_the_etag(me: UserClient) -> None:
    response = me.request("POST", json={"title": "t"})
    url = response.headers["location"]
    tags = [response.headers["etag"]]
    tags.append(me.request("PUT", url, json={"title": "t2"}).headers["etag"])
    tags.append(me.request("PATCH", url, json={"title": "t2"}).headers["etag"])
    tags.append(me.request("PATCH", f"{url}/complete").headers["etag"])
    assert len(set(tags)) == 4
    assert me.request("GET", url).headers["etag"] == tags[-1]
    assert me.request("DELETE", url).headers["etag"] == tags[-1]


def test_complete_toggles_without_body_and_with_empty_object(me: UserClient) -> None:
    path = f"/{me.create()['id']}/complete"
    assert me.request("PATCH", path).json()["data"]["completed"] is True
    assert me.request("PATCH", path, content=b"").json()["data"]["completed"] is False
    assert me.request("PATCH", path, json={}).json()["data"]["completed"] is True
    assert me.request("PATCH", path, content=b"  ").json()["data"]["completed"] is False


def test_complete_sets_when_told(me: UserClient) -> None:
    path = f"/{me.create()['id']}/complete"
    for _ in range(2):
        assert me.request("PATCH", path, json={"completed": True}).json()["data"]["completed"] is True
    assert me.request("PATCH", path, json={"completed": False}).json()["data"]["completed"] is False


@pytest.mark.parametrize(
    ("body", "field"),
    [({"completed": None}, "completed"), ({"completed": "yes"}, "completed"), ({"title": "x"}, "title")],
)
def test_complete_rejects_other_bodies(me: UserClient, body: dict, field: str) -> None:
    task = me.create()
    assert invalid_field(me.request("PATCH", f"/{task['id']}/complete", json=body)) == field
    assert me.task(task["id"]) == task


def test_delete_returns_the_task_as_it_was(me: UserClient) -> None:
    task = me.create()
    response = me.request("DELETE", f"/{task['id']}")
    assert response.status_code == 200
    assert response.json()["data"] == task
    assert me.get(task["id"]).status_code == 404
    assert me.request("DELETE", f"/{task['id']}").status_code == 404


def test_empty_list_for_a_new_user(me: UserClient) -> None:
    response = me.list()
    assert response.status_code == 200
    assert response.json()["data"] == []
    assert response.json()["meta"]["count"] == 0


def test_lists_only_ones_own_tasks(me: UserClient) -> None:
    mine = me.create("mine")
    UserClient(me.client).create("theirs")
    assert me.ids() == [mine["id"]]


_OTHERS_TASK_ROUTES = [
    ("GET", "", None),
    ("PUT", "", {"title": "hijacked"}),
    ("PATCH", "", {"completed": True}),
    ("PATCH", "/complete", None),
    ("PATCH", "/complete", {"completed": True}),
    ("DELETE", "", None),
]


@pytest.mark.parametrize(("method", "suffix", "body"), _OTHERS_TASK_ROUTES)
def test_another_users_task_under_ones_own_path_is_404_and_untouched(
    me: UserClient, method: str, suffix: str, body: dict | None
) -> None:
    victim = UserClient(me.client)
    theirs = victim.create("private", description="secret")
    unknown = me.request(method, f"/{uuid.uuid4()}{suffix}", json=body)
    response = me.request(method, f"/{theirs['id']}{suffix}", json=body)
    assert response.status_code == 404
    # Exactly the answer a task that does not exist gets: the API is no oracle for other users' ids.
    assert response.json()["error"] == unknown.json()["error"]
    for header in ("etag", "location"):
        assert header not in response.headers
    assert victim.task(theirs["id"]) == theirs


def test_another_users_task_with_if_match_star_is_404(me: UserClient) -> None:
    victim = UserClient(me.client)
    theirs = victim.create()
    assert me.request("DELETE", f"/{theirs['id']}", headers={"If-Match": "*"}).status_code == 404
    assert victim.task(theirs["id"]) == theirs


def test_unicode_titles_count_code_points(me: UserClient) -> None:
    title = "🙂" * 200  # 200 code points, 800 UTF-8 bytes, 400 UTF-16 units
    assert me.create(title)["title"] == title
    assert invalid_field(me.request("POST", json={"title": "🙂" * 201})) == "title"


def test_title_of_200_after_trimming_is_accepted(me: UserClient) -> None:
    assert me.create("  " + "x" * 200 + "  ")["title"] == "x" * 200
