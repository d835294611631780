"""The listing and stats with lists and subtasks (contract v3): filters, tree order across lists, per-list counts."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import assert_error, auth, create_task, invalid_field, new_user

MISSING = "01934f2e-0000-7000-8000-000000000000"


def _list(client: httpx.Client, user: str, name: str) -> str:
    response = client.post(f"/api/{user}/lists", json={"name": name}, headers=auth(user))
    assert response.status_code == 201, response.text
    return str(response.json()["data"]["id"])


def _pages(client: httpx.Client, user: str, limit: int, **params: Any) -> list[str]:
    titles, cursor = [], None
    while True:
        query = {"limit": limit, **params, **({"cursor": cursor} if cursor else {})}
        response = client.get(f"/api/{user}/tasks", params=query, headers=auth(user))
        assert response.status_code == 200, response.text
        body = response.json()
        assert len(body["data"]) <= limit
        titles += [t["title"] for t in body["data"]]
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            return titles


@pytest.fixture
def garden(app_client: httpx.Client, user: str) -> dict[str, str]:
    """Inbox: i1 > i1a; list A: a1 > (a1a > a1a1), a2; list B (empty); list C: c1. Lists in order A, B, C."""
    ids = {
        "A": _list(app_client, user, "A"),
        "B": _list(app_client, user, "B"),
        "C": _list(app_client, user, "C"),
    }

    def add(title: str, **where: Any) -> str:
        ids[title] = create_task(app_client, user, title, **where)["id"]
        return ids[title]

    add("c1", list_id=ids["C"])
    add("a2", list_id=ids["A"])
    add("a1", list_id=ids["A"])
    add("a1a", parent_id=ids["a1"])
    add("a1a1", parent_id=ids["a1a"])
    add("i1")
    add("i1a", parent_id=ids["i1"])
    return ids


TREE = ["i1", "i1a", "a1", "a1a", "a1a1", "a2", "c1"]


@pytest.mark.parametrize("limit", [1, 2, 3, 50])
def test_tree_order_pages_the_inbox_then_each_list_in_order(
    app_client: httpx.Client, user: str, garden: dict[str, str], limit: int
) -> None:
    assert _pages(app_client, user, limit, sort="position") == TREE


def test_lists_reordered_between_pages_show_no_task_twice(
    app_client: httpx.Client, user: str, garden: dict[str, str]
) -> None:
    first = app_client.get(
        f"/api/{user}/tasks", params={"sort": "position", "limit": 3}, headers=auth(user)
    ).json()
    assert [t["title"] for t in first["data"]] == TREE[:3]
    # C moves before A while a client is at a1: it goes on from A's place, so it reads on past it.
    app_client.post(f"/api/{user}/lists/{garden['C']}/move", json={"before": garden["A"]}, headers=auth(user))
    rest = _pages(app_client, user, 3, sort="position", cursor=first["meta"]["next_cursor"])
    assert rest == ["a1a", "a1a1", "a2"]
    assert _pages(app_client, user, 3, sort="position") == ["i1", "i1a", "c1", "a1", "a1a", "a1a1", "a2"]


def test_filters_by_list_and_parent(app_client: httpx.Client, user: str, garden: dict[str, str]) -> None:
    assert _pages(app_client, user, 2, sort="position", list_id=garden["A"]) == ["a1", "a1a", "a1a1", "a2"]
    assert _pages(app_client, user, 2, sort="position", list_id="inbox") == ["i1", "i1a"]
    assert _pages(app_client, user, 2, sort="position", list_id=garden["B"]) == []
    assert _pages(app_client, user, 2, sort="position", parent_id="none") == ["i1", "a1", "a2", "c1"]
    assert _pages(app_client, user, 2, sort="position", parent_id=garden["a1"]) == ["a1a"]
    assert _pages(app_client, user, 2, sort="position", parent_id=garden["a1a1"]) == []
    assert _pages(app_client, user, 2, sort="position", parent_id=garden["a1"], list_id="inbox") == []
    assert sorted(_pages(app_client, user, 2, list_id=garden["A"], parent_id="none")) == ["a1", "a2"]
    assert sorted(_pages(app_client, user, 2, sort="title", parent_id=garden["a1a"])) == ["a1a1"]
    assert sorted(_pages(app_client, user, 2, list_id="INBOX", completed="false")) == ["i1", "i1a"]


def test_a_cursor_is_bound_to_the_list_filter(
    app_client: httpx.Client, user: str, garden: dict[str, str]
) -> None:
    page = app_client.get(
        f"/api/{user}/tasks",
        params={"sort": "position", "limit": 1, "list_id": garden["A"]},
        headers=auth(user),
    ).json()
    response = app_client.get(
        f"/api/{user}/tasks",
        params={
            "sort": "position",
            "limit": 1,
            "list_id": garden["C"],
            "cursor": page["meta"]["next_cursor"],
        },
        headers=auth(user),
    )
    assert invalid_field(response) == "cursor"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"list_id": MISSING}, "list_id"),
        ({"parent_id": MISSING}, "parent_id"),
        ({"list_id": "groceries"}, "list_id"),
        ({"parent_id": "top"}, "parent_id"),
        ({"list_id": MISSING, "sort": "position"}, "list_id"),
        ({"parent_id": MISSING, "sort": "position"}, "parent_id"),
    ],
)
def test_a_list_or_parent_that_is_not_yours_is_422(
    app_client: httpx.Client, user: str, params: dict[str, str], field: str
) -> None:
    response = app_client.get(f"/api/{user}/tasks", params=params, headers=auth(user))
    assert_error(response, 422, "VALIDATION_ERROR")
    assert invalid_field(response) == field


def test_stats_count_each_list_and_filter_by_one(
    app_client: httpx.Client, user: str, garden: dict[str, str]
) -> None:
    app_client.patch(f"/api/{user}/tasks/{garden['a1a']}/complete", headers=auth(user))  # and a1a1
    create_task(app_client, user, "tagged", list_id=garden["C"], tags=["Work"], due_at="2020-01-01T00:00:00Z")
    stats = app_client.get(f"/api/{user}/tasks/stats", headers=auth(user)).json()["data"]
    assert stats["total"] == 8 and stats["completed"] == 2
    assert stats["lists"] == [
        {"list_id": None, "active": 2, "completed": 0},
        {"list_id": garden["A"], "active": 2, "completed": 2},
        {"list_id": garden["B"], "active": 0, "completed": 0},
        {"list_id": garden["C"], "active": 2, "completed": 0},
    ]
    one = app_client.get(
        f"/api/{user}/tasks/stats", params={"list_id": garden["C"]}, headers=auth(user)
    ).json()
    assert {k: one["data"][k] for k in ("total", "active", "completed", "overdue", "tags")} == {
        "total": 2,
        "active": 2,
        "completed": 0,
        "overdue": 1,
        "tags": [{"name": "Work", "count": 1}],
    }
    assert one["data"]["lists"] == stats["lists"]
    inbox = app_client.get(f"/api/{user}/tasks/stats", params={"list_id": "inbox"}, headers=auth(user)).json()
    assert (inbox["data"]["total"], inbox["data"]["overdue"], inbox["data"]["tags"]) == (2, 0, [])
    response = app_client.get(f"/api/{user}/tasks/stats", params={"list_id": MISSING}, headers=auth(user))
    assert invalid_field(response) == "list_id"


def test_another_users_list_is_never_a_filter(
    app_client: httpx.Client, user: str, garden: dict[str, str]
) -> None:
    intruder = new_user()
    for path, params in (("/tasks", {"list_id": garden["A"]}), ("/tasks/stats", {"list_id": garden["A"]})):
        response = app_client.get(f"/api/{intruder}{path}", params=params, headers=auth(intruder))
        assert invalid_field(response) == "list_id"
