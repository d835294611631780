"""Subtasks (contract v3): creating under a parent, four levels, the completion invariant, cascading deletes."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import Database, assert_error, auth, create_task, invalid_field


def _list(client: httpx.Client, user: str, name: str = "a list") -> dict[str, Any]:
    response = client.post(f"/api/{user}/lists", json={"name": name}, headers=auth(user))
    assert response.status_code == 201, response.text
    return dict(response.json()["data"])


def _get(client: httpx.Client, user: str, task_id: str) -> httpx.Response:
    return client.get(f"/api/{user}/tasks/{task_id}", headers=auth(user))


def _task(client: httpx.Client, user: str, task_id: str) -> dict[str, Any]:
    response = _get(client, user, task_id)
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


def _create(client: httpx.Client, user: str, **body: Any) -> httpx.Response:
    return client.post(f"/api/{user}/tasks", json={"title": "t", **body}, headers=auth(user))


def _chain(client: httpx.Client, user: str, levels: int, **first: Any) -> list[dict[str, Any]]:
    """A task at level 1 and one under each, down to `levels`."""
    tasks = [create_task(client, user, "level 1", **first)]
    for level in range(2, levels + 1):
        tasks.append(create_task(client, user, f"level {level}", parent_id=tasks[-1]["id"]))
    return tasks


def _complete(client: httpx.Client, user: str, task_id: str, completed: bool | None = None) -> dict[str, Any]:
    body = None if completed is None else {"completed": completed}
    response = client.patch(f"/api/{user}/tasks/{task_id}/complete", json=body, headers=auth(user))
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


def test_a_subtask_names_its_parent_and_is_in_its_list(app_client: httpx.Client, user: str) -> None:
    groceries = _list(app_client, user, "Groceries")
    parent = create_task(app_client, user, "Shop", list_id=groceries["id"])
    child = create_task(app_client, user, "Milk", parent_id=parent["id"])
    assert (child["parent_id"], child["list_id"]) == (parent["id"], groceries["id"])
    assert (parent["parent_id"], parent["list_id"]) == (None, groceries["id"])
    # Giving the parent's own list is the same placement.
    same = create_task(app_client, user, "Eggs", parent_id=parent["id"], list_id=groceries["id"])
    assert same["list_id"] == groceries["id"]
    inbox = create_task(app_client, user, "Inbox task")
    assert (inbox["list_id"], inbox["parent_id"]) == (None, None)


def test_a_new_subtask_goes_first_among_its_siblings(app_client: httpx.Client, user: str) -> None:
    parent = create_task(app_client, user, "parent")
    first = create_task(app_client, user, "older", parent_id=parent["id"])
    second = create_task(app_client, user, "newer", parent_id=parent["id"])
    assert second["position"] < first["position"]
    listed = app_client.get(
        f"/api/{user}/tasks", params={"parent_id": parent["id"], "sort": "position"}, headers=auth(user)
    ).json()["data"]
    assert [t["id"] for t in listed] == [second["id"], first["id"]]


def test_nesting_stops_at_four_levels(app_client: httpx.Client, user: str) -> None:
    chain = _chain(app_client, user, 4)
    response = _create(app_client, user, parent_id=chain[-1]["id"])
    assert_error(response, 422, "VALIDATION_ERROR")
    assert invalid_field(response) == "parent_id"


@pytest.mark.parametrize("given", ["other list", "null"])
def test_a_subtask_in_another_list_than_its_parent_is_refused(
    app_client: httpx.Client, user: str, given: str
) -> None:
    mine = _list(app_client, user)
    parent = create_task(app_client, user, "p", list_id=mine["id"])
    other = None if given == "null" else _list(app_client, user, "other")["id"]
    response = _create(app_client, user, parent_id=parent["id"], list_id=other)
    assert_error(response, 422, "VALIDATION_ERROR")
    assert invalid_field(response) in {"list_id", "parent_id"}


def test_a_parent_or_list_that_is_not_one_of_yours_is_422_and_creates_nothing(
    app_client: httpx.Client, user: str, database: Database
) -> None:
    missing = "01934f2e-0000-7000-8000-000000000000"
    for body, field in (({"parent_id": missing}, "parent_id"), ({"list_id": missing}, "list_id")):
        response = _create(app_client, user, **body)
        assert_error(response, 422, "VALIDATION_ERROR")
        assert invalid_field(response) == field
    assert database.query("SELECT count(*) AS n FROM tasks WHERE user_id = $1", user)[0]["n"] == 0
    rows = database.query("SELECT task_count FROM users WHERE id = $1", user)
    assert not rows or rows[0]["task_count"] == 0


def test_an_update_never_moves_a_task(app_client: httpx.Client, user: str) -> None:
    task = create_task(app_client, user)
    mine = _list(app_client, user)
    for field, value in (("list_id", mine["id"]), ("parent_id", task["id"])):
        response = app_client.patch(
            f"/api/{user}/tasks/{task['id']}", json={field: value}, headers=auth(user)
        )
        assert response.status_code == 422, response.text
    assert _task(app_client, user, task["id"]) == task


def test_completing_a_task_completes_its_active_descendants_each_with_a_new_etag(
    app_client: httpx.Client, user: str
) -> None:
    root, child, grandchild = _chain(app_client, user, 3)
    sibling = create_task(app_client, user, "sibling of the child", parent_id=root["id"])
    already = _complete(app_client, user, create_task(app_client, user, "done", parent_id=root["id"])["id"])
    bystander = create_task(app_client, user, "bystander")
    before = {
        t["id"]: _get(app_client, user, t["id"]).headers["etag"]
        for t in (child, grandchild, sibling, already, bystander)
    }
    done = _complete(app_client, user, root["id"])
    assert done["completed"] and done["completed_at"]
    for task in (child, grandchild, sibling):
        response = _get(app_client, user, task["id"])
        assert response.json()["data"]["completed"], task["title"]
        assert response.json()["data"]["completed_at"] is not None
        assert response.headers["etag"] != before[task["id"]]
    # Already completed: left alone, its completed_at and ETag kept.
    assert _get(app_client, user, already["id"]).headers["etag"] == before[already["id"]]
    assert _task(app_client, user, already["id"])["completed_at"] == already["completed_at"]
    assert _get(app_client, user, bystander["id"]).headers["etag"] == before[bystander["id"]]


@pytest.mark.parametrize("route", ["complete", "patch", "put", "toggle"])
def test_reopening_a_task_reopens_its_completed_ancestors_only(
    app_client: httpx.Client, user: str, route: str
) -> None:
    root, child, grandchild = _chain(app_client, user, 3)
    aunt = create_task(app_client, user, "aunt", parent_id=root["id"])
    _complete(app_client, user, root["id"])
    url = f"/api/{user}/tasks/{grandchild['id']}"
    if route == "complete":
        response = app_client.patch(url + "/complete", json={"completed": False}, headers=auth(user))
    elif route == "toggle":
        response = app_client.patch(url + "/complete", headers=auth(user))
    else:
        response = app_client.request(route.upper(), url, json={"completed": False}, headers=auth(user))
    assert response.status_code == 200, response.text
    for task in (root, child, grandchild):
        reopened = _task(app_client, user, task["id"])
        assert not reopened["completed"] and reopened["completed_at"] is None, task["title"]
    # A completed task with no active descendant may stay completed.
    assert _task(app_client, user, aunt["id"])["completed"]


def test_a_subtask_created_under_a_completed_parent_reopens_the_chain(
    app_client: httpx.Client, user: str
) -> None:
    root, child = _chain(app_client, user, 2)
    _complete(app_client, user, root["id"])
    create_task(app_client, user, "new", parent_id=child["id"])
    assert not _task(app_client, user, root["id"])["completed"]
    assert not _task(app_client, user, child["id"])["completed"]


def test_an_update_that_leaves_completed_as_it_was_cascades_nothing(
    app_client: httpx.Client, user: str
) -> None:
    root, child = _chain(app_client, user, 2)
    tag = _get(app_client, user, child["id"]).headers["etag"]
    response = app_client.patch(
        f"/api/{user}/tasks/{root['id']}", json={"completed": False, "title": "renamed"}, headers=auth(user)
    )
    assert response.status_code == 200
    assert _get(app_client, user, child["id"]).headers["etag"] == tag


def test_a_stale_if_match_on_a_cascading_write_changes_nothing(app_client: httpx.Client, user: str) -> None:
    root, child = _chain(app_client, user, 2)
    tag = _get(app_client, user, root["id"]).headers["etag"]
    app_client.patch(f"/api/{user}/tasks/{root['id']}", json={"title": "moved on"}, headers=auth(user))
    response = app_client.patch(
        f"/api/{user}/tasks/{root['id']}/complete", headers={**auth(user), "if-match": tag}
    )
    assert_error(response, 412, "PRECONDITION_FAILED")
    assert not _task(app_client, user, child["id"])["completed"]


def test_deleting_a_task_deletes_its_subtree_and_counts_it(
    app_client: httpx.Client, user: str, database: Database
) -> None:
    root, child, grandchild = _chain(app_client, user, 3)
    other = create_task(app_client, user, "other", parent_id=root["id"])
    keep = create_task(app_client, user, "keep")
    response = app_client.delete(f"/api/{user}/tasks/{root['id']}", headers=auth(user))
    assert response.status_code == 200, response.text
    assert response.json()["data"]["id"] == root["id"]
    assert response.json()["meta"]["deleted_subtasks"] == 3
    for task in (root, child, grandchild, other):
        assert _get(app_client, user, task["id"]).status_code == 404
    assert _get(app_client, user, keep["id"]).status_code == 200
    assert database.query("SELECT task_count FROM users WHERE id = $1", user)[0]["task_count"] == 1
    tombstones = database.query("SELECT id FROM task_tombstones WHERE user_id = $1", user)
    assert {str(r["id"]) for r in tombstones} == {root["id"], child["id"], grandchild["id"], other["id"]}


def test_deleting_a_leaf_says_no_subtasks_went(app_client: httpx.Client, user: str) -> None:
    _, leaf = _chain(app_client, user, 2)
    response = app_client.delete(f"/api/{user}/tasks/{leaf['id']}", headers=auth(user))
    assert response.json()["meta"]["deleted_subtasks"] == 0


def test_clear_completed_in_one_list_or_the_inbox_only(app_client: httpx.Client, user: str) -> None:
    work, home = _list(app_client, user, "work"), _list(app_client, user, "home")
    done = {
        where: _complete(app_client, user, create_task(app_client, user, where, list_id=lid)["id"])
        for where, lid in (("work", work["id"]), ("home", home["id"]), ("inbox", None))
    }

    def clear(body: object) -> int:
        response = app_client.post(f"/api/{user}/tasks/clear-completed", json=body, headers=auth(user))
        assert response.status_code == 200, response.text
        return int(response.json()["data"]["deleted"])

    assert clear({"list_id": work["id"]}) == 1
    assert _get(app_client, user, done["work"]["id"]).status_code == 404
    assert _get(app_client, user, done["home"]["id"]).status_code == 200
    assert clear({"list_id": None}) == 1
    assert _get(app_client, user, done["inbox"]["id"]).status_code == 404
    assert _get(app_client, user, done["home"]["id"]).status_code == 200
    assert clear({}) == 1


def test_clear_completed_takes_whole_completed_subtrees(app_client: httpx.Client, user: str) -> None:
    root, child, grandchild = _chain(app_client, user, 3)
    _complete(app_client, user, child["id"])
    response = app_client.post(f"/api/{user}/tasks/clear-completed", headers=auth(user))
    assert response.json()["data"]["deleted"] == 2
    assert _get(app_client, user, root["id"]).status_code == 200
    assert _get(app_client, user, grandchild["id"]).status_code == 404


def test_clear_completed_of_a_list_that_is_not_yours_is_422(app_client: httpx.Client, user: str) -> None:
    response = app_client.post(
        f"/api/{user}/tasks/clear-completed",
        json={"list_id": "01934f2e-0000-7000-8000-000000000000"},
        headers=auth(user),
    )
    assert_error(response, 422, "VALIDATION_ERROR")
    assert invalid_field(response) == "list_id"
