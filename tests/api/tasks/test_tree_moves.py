"""The extended move (contract v3): beside a sibling, under a parent, into a list, subtree and all."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import Database, assert_error, auth, create_task, invalid_field


def _list(client: httpx.Client, user: str, name: str = "a list") -> str:
    response = client.post(f"/api/{user}/lists", json={"name": name}, headers=auth(user))
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["id"])


def _move(client: httpx.Client, user: str, task: dict[str, Any], body: object) -> httpx.Response:
    return client.post(f"/api/{user}/tasks/{task['id']}/move", json=body, headers=auth(user))


def _moved(client: httpx.Client, user: str, task: dict[str, Any], body: object) -> dict[str, Any]:
    response = _move(client, user, task, body)
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


def _get(client: httpx.Client, user: str, task_id: str) -> httpx.Response:
    return client.get(f"/api/{user}/tasks/{task_id}", headers=auth(user))


def _task(client: httpx.Client, user: str, task_id: str) -> dict[str, Any]:
    return dict(_get(client, user, task_id).json()["data"])


def _tree(client: httpx.Client, user: str, **params: Any) -> list[str]:
    """Titles in tree order (every page)."""
    titles, cursor = [], None
    while True:
        query = {"sort": "position", "limit": 2, **params, **({"cursor": cursor} if cursor else {})}
        body = client.get(f"/api/{user}/tasks", params=query, headers=auth(user)).json()
        titles += [t["title"] for t in body["data"]]
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            return titles


def _family(client: httpx.Client, user: str, **where: Any) -> dict[str, dict[str, Any]]:
    """a > (a1 > a1x, a2), b: created so that tree order is a, a1, a1x, a2, b."""
    made: dict[str, dict[str, Any]] = {}
    made["b"] = create_task(client, user, "b", **where)
    made["a"] = create_task(client, user, "a", **where)
    made["a2"] = create_task(client, user, "a2", parent_id=made["a"]["id"])
    made["a1"] = create_task(client, user, "a1", parent_id=made["a"]["id"])
    made["a1x"] = create_task(client, user, "a1x", parent_id=made["a1"]["id"])
    return made


def test_tree_order_is_depth_first_with_siblings_in_their_order(app_client: httpx.Client, user: str) -> None:
    _family(app_client, user)
    assert _tree(app_client, user) == ["a", "a1", "a1x", "a2", "b"]


def test_after_a_task_becomes_its_sibling_with_its_subtree(app_client: httpx.Client, user: str) -> None:
    t = _family(app_client, user)
    moved = _moved(app_client, user, t["a1"], {"after": t["b"]["id"]})
    assert moved["parent_id"] is None
    assert _tree(app_client, user) == ["a", "a2", "b", "a1", "a1x"]
    assert _task(app_client, user, t["a1x"]["id"])["parent_id"] == t["a1"]["id"]


def test_before_a_subtask_goes_under_its_parent(app_client: httpx.Client, user: str) -> None:
    t = _family(app_client, user)
    moved = _moved(app_client, user, t["b"], {"before": t["a2"]["id"]})
    assert moved["parent_id"] == t["a"]["id"]
    assert _tree(app_client, user) == ["a", "a1", "a1x", "b", "a2"]


def test_moving_a_parent_among_its_siblings_rewrites_no_other_etag(
    app_client: httpx.Client, user: str
) -> None:
    t = _family(app_client, user)
    tags = {name: _get(app_client, user, task["id"]).headers["etag"] for name, task in t.items()}
    _moved(app_client, user, t["a"], {"after": t["b"]["id"]})
    assert _tree(app_client, user) == ["b", "a", "a1", "a1x", "a2"]
    for name in ("a1", "a1x", "a2", "b"):
        assert _get(app_client, user, t[name]["id"]).headers["etag"] == tags[name], name
        assert _task(app_client, user, t[name]["id"])["position"] == t[name]["position"]


def test_into_a_parent_goes_first_among_its_children(app_client: httpx.Client, user: str) -> None:
    t = _family(app_client, user)
    moved = _moved(app_client, user, t["b"], {"parent_id": t["a"]["id"]})
    assert moved["parent_id"] == t["a"]["id"]
    assert _tree(app_client, user) == ["a", "b", "a1", "a1x", "a2"]
    # The parent's own list may be named with it: one placement.
    again = _moved(app_client, user, t["b"], {"parent_id": t["a1"]["id"], "list_id": None})
    assert again["parent_id"] == t["a1"]["id"]


def test_to_the_top_level_of_its_own_list(app_client: httpx.Client, user: str) -> None:
    t = _family(app_client, user)
    moved = _moved(app_client, user, t["a1x"], {"parent_id": None})
    assert (moved["parent_id"], moved["list_id"]) == (None, None)
    assert _tree(app_client, user) == ["a1x", "a", "a1", "a2", "b"]


def test_into_a_list_takes_the_subtree_each_with_a_new_etag(
    app_client: httpx.Client, user: str, database: Database
) -> None:
    t = _family(app_client, user)
    work = _list(app_client, user, "work")
    tags = {name: _get(app_client, user, task["id"]).headers["etag"] for name, task in t.items()}
    moved = _moved(app_client, user, t["a"], {"list_id": work})
    assert (moved["list_id"], moved["parent_id"]) == (work, None)
    assert _tree(app_client, user, list_id=work) == ["a", "a1", "a1x", "a2"]
    assert _tree(app_client, user, list_id="inbox") == ["b"]
    for name in ("a1", "a1x", "a2"):
        response = _get(app_client, user, t[name]["id"])
        assert response.json()["data"]["list_id"] == work
        assert response.headers["etag"] != tags[name]
    assert _get(app_client, user, t["b"]["id"]).headers["etag"] == tags["b"]
    # The Inbox comes first, then each list in order.
    assert _tree(app_client, user) == ["b", "a", "a1", "a1x", "a2"]
    back = _moved(app_client, user, t["a1"], {"list_id": None})
    assert back["list_id"] is None
    assert _task(app_client, user, t["a1x"]["id"])["list_id"] is None
    counts = database.query("SELECT task_count FROM lists WHERE id = $1", work)[0]["task_count"]
    assert counts == 2


def test_beside_a_task_in_another_list_moves_there(app_client: httpx.Client, user: str) -> None:
    work = _list(app_client, user)
    there = create_task(app_client, user, "there", list_id=work)
    here = create_task(app_client, user, "here")
    moved = _moved(app_client, user, here, {"before": there["id"]})
    assert moved["list_id"] == work
    assert _tree(app_client, user, list_id=work) == ["here", "there"]


def test_under_a_completed_parent_an_active_task_reopens_the_chain(
    app_client: httpx.Client, user: str
) -> None:
    t = _family(app_client, user)
    app_client.patch(f"/api/{user}/tasks/{t['a']['id']}/complete", headers=auth(user))
    assert _task(app_client, user, t["a1x"]["id"])["completed"]
    _moved(app_client, user, t["b"], {"parent_id": t["a1x"]["id"]})
    for name in ("a", "a1", "a1x"):
        assert not _task(app_client, user, t[name]["id"])["completed"], name
    assert _task(app_client, user, t["a2"]["id"])["completed"]


@pytest.mark.parametrize(
    ("mover", "body_of", "field"),
    [
        ("a", lambda t: {"parent_id": t["a1x"]["id"]}, "parent_id"),  # its own descendant
        ("a", lambda t: {"parent_id": t["a"]["id"]}, "parent_id"),  # itself
        ("a", lambda t: {"after": t["a1"]["id"]}, "after"),  # beside its descendant
        ("a1", lambda t: {"before": t["a1"]["id"]}, "before"),  # beside itself
        ("b", lambda t: {"before": t["a"]["id"], "after": t["a2"]["id"]}, "body"),  # two placements
        (
            "b",
            lambda t: {"parent_id": t["a"]["id"], "list_id": "01934f2e-0000-7000-8000-000000000000"},
            "list_id",
        ),
        ("b", lambda t: {"list_id": "01934f2e-0000-7000-8000-000000000000"}, "list_id"),
        ("b", lambda t: {"parent_id": "01934f2e-0000-7000-8000-000000000000"}, "parent_id"),
        ("b", lambda t: {}, "body"),
    ],
)
def test_moves_that_cannot_be_are_422_and_change_nothing(
    app_client: httpx.Client, user: str, mover: str, body_of: Any, field: str
) -> None:
    t = _family(app_client, user)
    before = {name: _get(app_client, user, task["id"]).headers["etag"] for name, task in t.items()}
    response = _move(app_client, user, t[mover], body_of(t))
    assert_error(response, 422, "VALIDATION_ERROR")
    if field != "body":
        assert invalid_field(response) == field
    if mover == "a" or body_of(t).get("before") == t["a1"]["id"]:  # itself, or one of its own
        assert "itself" in response.json()["error"]["details"][0]["message"]
    assert {name: _get(app_client, user, task["id"]).headers["etag"] for name, task in t.items()} == before


def test_a_move_deeper_than_four_levels_is_422(app_client: httpx.Client, user: str) -> None:
    t = _family(app_client, user)  # a1x is at level 3; a1 spans two levels
    deep = create_task(app_client, user, "level 4", parent_id=t["a1x"]["id"])
    response = _move(app_client, user, t["b"], {"parent_id": deep["id"]})
    assert invalid_field(response) == "parent_id"
    app_client.delete(f"/api/{user}/tasks/{deep['id']}", headers=auth(user))
    other = create_task(app_client, user, "other")
    lower = create_task(app_client, user, "lower", parent_id=other["id"])
    response = _move(app_client, user, t["a1"], {"parent_id": lower["id"]})  # a1, a1x at levels 3, 4: fits
    assert response.status_code == 200, response.text
    # a (with a2 under it) beside a1x, now at level 4: a2 would be at level 5.
    response = _move(app_client, user, t["a"], {"after": t["a1x"]["id"]})
    assert invalid_field(response) == "after"


def test_a_task_moved_with_a_stale_if_match_stays(app_client: httpx.Client, user: str) -> None:
    t = _family(app_client, user)
    tag = _get(app_client, user, t["b"]["id"]).headers["etag"]
    app_client.patch(f"/api/{user}/tasks/{t['b']['id']}", json={"title": "b"}, headers=auth(user))
    response = app_client.post(
        f"/api/{user}/tasks/{t['b']['id']}/move",
        json={"parent_id": t["a"]["id"]},
        headers={**auth(user), "if-match": tag},
    )
    assert_error(response, 412, "PRECONDITION_FAILED")
    assert _task(app_client, user, t["b"]["id"])["parent_id"] is None


def test_crowded_siblings_are_respaced_with_their_subtrees(app_client: httpx.Client, user: str) -> None:
    """Moves into one gap between two subtasks until keys grow long and the siblings are respaced:
    their subtrees follow, and tree order stays right throughout."""
    parent = create_task(app_client, user, "parent")
    # New subtasks go first: created backwards, they read first, first's kid, x, y, z.
    last = create_task(app_client, user, "z", parent_id=parent["id"])
    y = create_task(app_client, user, "y", parent_id=parent["id"])
    x = create_task(app_client, user, "x", parent_id=parent["id"])
    first = create_task(app_client, user, "first", parent_id=parent["id"])
    kid = create_task(app_client, user, "first's kid", parent_id=first["id"])
    start = _get(app_client, user, last["id"]).headers["etag"]
    for step in range(300):
        task = (x, y)[step % 2]
        _moved(app_client, user, task, {"after": first["id"]})
        other = "y" if task is x else "x"
        assert _tree(app_client, user)[:4] == ["parent", "first", "first's kid", task["title"]]
        assert _tree(app_client, user)[4:] == [other, "z"]
        if _get(app_client, user, last["id"]).headers["etag"] != start:
            break
    else:
        pytest.fail("no respacing in 300 moves into one gap")
    assert _task(app_client, user, kid["id"])["parent_id"] == first["id"]
