"""CONTRACT §4 route table and §7 text rules: CRUD, /complete, ids, and isolation by 404."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

import httpx
import pytest

from tests.support import auth, new_user

RFC3339_UTC = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


def _create(client: httpx.Client, user: str, **body: object) -> dict:
    response = client.post(f"/api/{user}/tasks", json={"title": "a task", **body}, headers=auth(user))
    assert response.status_code == 201, response.text
    return response.json()["data"]


def test_create_returns_the_task_with_location_and_etag(client: httpx.Client, user: str) -> None:
    response = client.post(
        f"/api/{user}/tasks", json={"title": "  Buy milk  ", "description": "2 litres"}, headers=auth(user)
    )
    assert response.status_code == 201
    task = response.json()["data"]
    assert task["title"] == "Buy milk"
    assert task["description"] == "2 litres"
    assert task["completed"] is False
    assert task["user_id"] == user
    assert uuid.UUID(task["id"]).version == 7
    assert task["id"] == task["id"].lower()
    assert RFC3339_UTC.match(task["created_at"])
    assert task["created_at"] == task["updated_at"]
    assert response.headers["location"] == f"/api/{user}/tasks/{task['id']}"
    assert re.fullmatch(r'"[^"]+"', response.headers["etag"])
    fetched = client.get(response.headers["location"], headers=auth(user))
    assert fetched.json()["data"] == task


def test_ids_are_time_ordered(client: httpx.Client, user: str) -> None:
    ids = [_create(client, user, title=f"t{i}")["id"] for i in range(5)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 5


def test_description_is_stored_as_sent(client: httpx.Client, user: str) -> None:
    assert _create(client, user, description="")["description"] == ""
    assert _create(client, user, description="  spaced  ")["description"] == "  spaced  "
    assert _create(client, user)["description"] is None


def test_first_write_creates_the_user_row(client: httpx.Client, database, user: str) -> None:  # type: ignore[no-untyped-def]
    assert database.query("SELECT 1 FROM users WHERE id = $1", user) == []
    _create(client, user)
    _create(client, user)
    assert len(database.query("SELECT 1 FROM users WHERE id = $1", user)) == 1


def test_reads_create_no_user_row(client: httpx.Client, database, user: str) -> None:  # type: ignore[no-untyped-def]
    assert client.get(f"/api/{user}/tasks", headers=auth(user)).json()["data"] == []
    assert database.query("SELECT 1 FROM users WHERE id = $1", user) == []


def test_get_unknown_task_is_404(client: httpx.Client, user: str) -> None:
    response = client.get(f"/api/{user}/tasks/{uuid.uuid4()}", headers=auth(user))
    assert response.status_code == 404
    assert response.json()["error"] == {
        "status": 404,
        "code": "NOT_FOUND",
        "message": "Task not found",
        "details": [],
    }


@pytest.mark.parametrize("bad_id", ["123", "not-a-uuid", "0193a5b2", "zzzzzzzz-zzzz-zzzz-zzzz-zzzzzzzzzzzz"])
def test_non_uuid_task_id_is_404(client: httpx.Client, user: str, bad_id: str) -> None:
    for method in ("GET", "DELETE"):
        response = client.request(method, f"/api/{user}/tasks/{bad_id}", headers=auth(user))
        assert response.status_code == 404, method
    response = client.patch(f"/api/{user}/tasks/{bad_id}", json={"completed": True}, headers=auth(user))
    assert response.status_code == 404
    assert client.patch(f"/api/{user}/tasks/{bad_id}/complete", headers=auth(user)).status_code == 404


def test_upper_case_uuid_is_accepted_and_answered_in_lower_case(client: httpx.Client, user: str) -> None:
    task = _create(client, user)
    response = client.get(f"/api/{user}/tasks/{task['id'].upper()}", headers=auth(user))
    assert response.status_code == 200
    assert response.json()["data"]["id"] == task["id"]


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
def test_update_is_partial(client: httpx.Client, user: str, method: str) -> None:
    task = _create(client, user, title="before", description="keep me")
    response = client.request(
        method, f"/api/{user}/tasks/{task['id']}", json={"title": "  after "}, headers=auth(user)
    )
    assert response.status_code == 200
    updated = response.json()["data"]
    assert updated["title"] == "after"
    assert updated["description"] == "keep me"
    assert updated["completed"] is False
    assert updated["created_at"] == task["created_at"]
    assert datetime.fromisoformat(updated["updated_at"]) > datetime.fromisoformat(task["updated_at"])


def test_update_sets_each_field(client: httpx.Client, user: str) -> None:
    task = _create(client, user, description="old")
    url = f"/api/{user}/tasks/{task['id']}"
    assert client.patch(url, json={"completed": True}, headers=auth(user)).json()["data"]["completed"] is True
    assert (
        client.patch(url, json={"description": None}, headers=auth(user)).json()["data"]["description"]
        is None
    )
    both = client.put(url, json={"description": "new", "completed": False}, headers=auth(user)).json()["data"]
    assert (both["description"], both["completed"], both["title"]) == ("new", False, "a task")


def test_every_write_changes_the_etag(client: httpx.Client, user: str) -> None:
    response = client.post(f"/api/{user}/tasks", json={"title": "t"}, headers=auth(user))
    url = response.headers["location"]
    tags = [response.headers["etag"]]
    tags.append(client.put(url, json={"title": "t2"}, headers=auth(user)).headers["etag"])
    tags.append(client.patch(url, json={"title": "t2"}, headers=auth(user)).headers["etag"])
    tags.append(client.patch(f"{url}/complete", headers=auth(user)).headers["etag"])
    assert len(set(tags)) == 4
    assert client.get(url, headers=auth(user)).headers["etag"] == tags[-1]
    assert client.delete(url, headers=auth(user)).headers["etag"] == tags[-1]


def test_complete_toggles_without_body_and_with_empty_object(client: httpx.Client, user: str) -> None:
    task = _create(client, user)
    url = f"/api/{user}/tasks/{task['id']}/complete"
    assert client.patch(url, headers=auth(user)).json()["data"]["completed"] is True
    assert client.patch(url, content=b"", headers=auth(user)).json()["data"]["completed"] is False
    assert client.patch(url, json={}, headers=auth(user)).json()["data"]["completed"] is True
    assert client.patch(url, content=b"  ", headers=auth(user)).json()["data"]["completed"] is False


def test_complete_sets_when_told(client: httpx.Client, user: str) -> None:
    task = _create(client, user)
    url = f"/api/{user}/tasks/{task['id']}/complete"
    for _ in range(2):
        assert (
            client.patch(url, json={"completed": True}, headers=auth(user)).json()["data"]["completed"]
            is True
        )
    assert (
        client.patch(url, json={"completed": False}, headers=auth(user)).json()["data"]["completed"] is False
    )


@pytest.mark.parametrize(
    ("body", "field"),
    [({"completed": None}, "completed"), ({"completed": "yes"}, "completed"), ({"title": "x"}, "title")],
)
def test_complete_rejects_other_bodies(client: httpx.Client, user: str, body: dict, field: str) -> None:
    task = _create(client, user)
    response = client.patch(f"/api/{user}/tasks/{task['id']}/complete", json=body, headers=auth(user))
    assert response.status_code == 422
    assert response.json()["error"]["details"][0]["field"] == field
    assert client.get(f"/api/{user}/tasks/{task['id']}", headers=auth(user)).json()["data"] == task


def test_delete_returns_the_task_as_it_was(client: httpx.Client, user: str) -> None:
    task = _create(client, user)
    response = client.delete(f"/api/{user}/tasks/{task['id']}", headers=auth(user))
    assert response.status_code == 200
    assert response.json()["data"] == task
    assert client.get(f"/api/{user}/tasks/{task['id']}", headers=auth(user)).status_code == 404
    assert client.delete(f"/api/{user}/tasks/{task['id']}", headers=auth(user)).status_code == 404


def test_empty_list_for_a_new_user(client: httpx.Client, user: str) -> None:
    response = client.get(f"/api/{user}/tasks", headers=auth(user))
    assert response.status_code == 200
    assert response.json()["data"] == []
    assert response.json()["meta"]["count"] == 0


def test_lists_only_ones_own_tasks(client: httpx.Client, user: str) -> None:
    other = new_user()
    mine = _create(client, user, title="mine")
    _create(client, other, title="theirs")
    data = client.get(f"/api/{user}/tasks", headers=auth(user)).json()["data"]
    assert [t["id"] for t in data] == [mine["id"]]


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
    client: httpx.Client, user: str, method: str, suffix: str, body: dict | None
) -> None:
    victim = new_user()
    theirs = _create(client, victim, title="private", description="secret")
    unknown = client.request(
        method, f"/api/{user}/tasks/{uuid.uuid4()}{suffix}", json=body, headers=auth(user)
    )
    response = client.request(
        method, f"/api/{user}/tasks/{theirs['id']}{suffix}", json=body, headers=auth(user)
    )
    assert response.status_code == 404
    # Exactly the answer a task that does not exist gets: the API is no oracle for other users' ids.
    assert response.json()["error"] == unknown.json()["error"]
    for header in ("etag", "location"):
        assert header not in response.headers
    after = client.get(f"/api/{victim}/tasks/{theirs['id']}", headers=auth(victim))
    assert after.json()["data"] == theirs


def test_another_users_task_with_if_match_star_is_404(client: httpx.Client, user: str) -> None:
    victim = new_user()
    theirs = _create(client, victim)
    headers = {**auth(user), "If-Match": "*"}
    assert client.delete(f"/api/{user}/tasks/{theirs['id']}", headers=headers).status_code == 404
    assert client.get(f"/api/{victim}/tasks/{theirs['id']}", headers=auth(victim)).status_code == 200


def test_unicode_titles_count_code_points(client: httpx.Client, user: str) -> None:
    title = "🙂" * 200  # 200 code points, 800 UTF-8 bytes, 400 UTF-16 units
    assert _create(client, user, title=title)["title"] == title
    response = client.post(f"/api/{user}/tasks", json={"title": "🙂" * 201}, headers=auth(user))
    assert response.status_code == 422


def test_title_of_200_after_trimming_is_accepted(client: httpx.Client, user: str) -> None:
    assert _create(client, user, title="  " + "x" * 200 + "  ")["title"] == "x" * 200
