"""CONTRACT §8: stats, clear-completed and the per-user task quota (exact under concurrent creates)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from tests.support.clients import create_task, run_together
from tests.support.postgres import Database
from tests.support.servers import LiveServer
from tests.support.tokens import SECRET, auth, new_user

PAST = (datetime.now(UTC) - timedelta(days=2)).isoformat()
FUTURE = (datetime.now(UTC) + timedelta(days=2)).isoformat()


def _complete(client: httpx.Client, user: str, task: dict) -> None:
    response = client.patch(
        f"/api/{user}/tasks/{task['id']}/complete", json={"completed": True}, headers=auth(user)
    )
    assert response.status_code == 200


def _stats(client: httpx.Client, user: str) -> dict:
    response = client.get(f"/api/{user}/tasks/stats", headers=auth(user))
    assert response.status_code == 200, response.text
    assert "error" not in response.json()
    return response.json()["data"]


def _clear(client: httpx.Client, user: str, **kwargs: object) -> httpx.Response:
    return client.post(f"/api/{user}/tasks/clear-completed", headers=auth(user), **kwargs)  # type: ignore[arg-type]


def test_stats_of_a_user_without_tasks(app_client: httpx.Client, user: str) -> None:
    assert _stats(app_client, user) == {
        "total": 0,
        "active": 0,
        "completed": 0,
        "overdue": 0,
        "tags": [],
        "lists": [{"list_id": None, "active": 0, "completed": 0}],
    }


def test_stats_count_the_users_tasks(app_client: httpx.Client, user: str) -> None:
    create_task(app_client, user, "no due date")
    create_task(app_client, user, "due later", due_at=FUTURE)
    create_task(app_client, user, "overdue", due_at=PAST)
    create_task(app_client, user, "overdue too", due_at=PAST)
    _complete(app_client, user, create_task(app_client, user, "done, was due", due_at=PAST))
    _complete(app_client, user, create_task(app_client, user, "done"))
    create_task(app_client, new_user(), "someone else's", due_at=PAST)
    assert _stats(app_client, user) == {
        "total": 6,
        "active": 4,
        "completed": 2,
        "overdue": 2,
        "tags": [],
        "lists": [{"list_id": None, "active": 4, "completed": 2}],
    }


def test_stats_tags_count_active_tasks_most_used_first_then_by_name(
    app_client: httpx.Client, user: str
) -> None:
    create_task(app_client, user, tags=["work", "b-tag"])
    create_task(app_client, user, tags=["work", "a-tag", "home"])
    create_task(app_client, user, tags=["Work", "home"])
    create_task(app_client, user, tags=["zzz"])
    _complete(app_client, user, create_task(app_client, user, tags=["done-only", "work", "zzz", "zzz2"]))
    tags = _stats(app_client, user)["tags"]
    assert tags == [
        {"name": "work", "count": 3},
        {"name": "home", "count": 2},
        {"name": "a-tag", "count": 1},
        {"name": "b-tag", "count": 1},
        {"name": "zzz", "count": 1},
    ]


def test_stats_tags_group_spellings_case_insensitively_under_the_most_used_one(
    app_client: httpx.Client, user: str
) -> None:
    for spelling in ("Urgent", "urgent", "URGENT", "urgent"):
        create_task(app_client, user, tags=[spelling])
    assert _stats(app_client, user)["tags"] == [{"name": "urgent", "count": 4}]


def test_stats_list_at_most_100_tags(app_client: httpx.Client, user: str) -> None:
    for n in range(6):
        create_task(app_client, user, tags=[f"tag{n * 20 + i:03d}" for i in range(20)])
    create_task(app_client, user, tags=["tag119"])
    tags = _stats(app_client, user)["tags"]
    assert len(tags) == 100
    assert tags[0] == {"name": "tag119", "count": 2}
    assert [t["name"] for t in tags[1:]] == [f"tag{i:03d}" for i in range(99)]


def test_stats_is_not_a_task_id(app_client: httpx.Client, user: str) -> None:
    """Matched before /tasks/{task_id}: never a 404 for a task called "stats"."""
    assert app_client.get(f"/api/{user}/tasks/stats", headers=auth(user)).status_code == 200
    assert app_client.delete(f"/api/{user}/tasks/stats", headers=auth(user)).status_code == 405
    assert app_client.get(f"/api/{user}/tasks/stats", headers=auth(new_user())).status_code == 403
    assert app_client.get(f"/api/{user}/tasks/stats").status_code == 401


def test_clear_completed_deletes_only_the_users_completed_tasks(app_client: httpx.Client, user: str) -> None:
    keep = [create_task(app_client, user, f"keep {i}") for i in range(3)]
    gone = [create_task(app_client, user, f"gone {i}") for i in range(4)]
    for task in gone:
        _complete(app_client, user, task)
    other = new_user()
    theirs = create_task(app_client, other)
    _complete(app_client, other, theirs)
    response = _clear(app_client, user)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"deleted": 4}
    listed = app_client.get(f"/api/{user}/tasks", headers=auth(user)).json()["data"]
    assert sorted(t["id"] for t in listed) == sorted(t["id"] for t in keep)
    for task in gone:
        assert app_client.get(f"/api/{user}/tasks/{task['id']}", headers=auth(user)).status_code == 404
    assert app_client.get(f"/api/{other}/tasks/{theirs['id']}", headers=auth(other)).status_code == 200
    assert _stats(app_client, user)["total"] == 3
    again = _clear(app_client, user)
    assert again.json()["data"] == {"deleted": 0}


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"json": {}}, {"content": b""}, {"content": b"{}", "headers": {"content-type": "application/json"}}],
    ids=["no-body", "empty-object", "empty-body", "object-bytes"],
)
def test_clear_completed_takes_no_body_or_an_empty_object(
    app_client: httpx.Client, user: str, kwargs: dict
) -> None:
    _complete(app_client, user, create_task(app_client, user))
    headers = {**auth(user), **kwargs.pop("headers", {})}
    response = app_client.post(f"/api/{user}/tasks/clear-completed", headers=headers, **kwargs)
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"deleted": 1}


@pytest.mark.parametrize("body", [{"all": True}, [], {"completed": True}])
def test_clear_completed_refuses_any_field(app_client: httpx.Client, user: str, body: object) -> None:
    task = create_task(app_client, user)
    _complete(app_client, user, task)
    response = _clear(app_client, user, json=body)
    assert response.status_code == 422, response.text
    assert app_client.get(f"/api/{user}/tasks/{task['id']}", headers=auth(user)).status_code == 200


def test_clear_completed_is_its_own_route(app_client: httpx.Client, user: str) -> None:
    assert app_client.get(f"/api/{user}/tasks/clear-completed", headers=auth(user)).status_code == 405
    assert app_client.post(f"/api/{user}/tasks/clear-completed", headers=auth(new_user())).status_code == 403


def test_concurrent_clears_delete_each_task_once(
    app_client: httpx.Client, user: str, database: Database, server: LiveServer
) -> None:
    tasks = [create_task(app_client, user, f"t{i}") for i in range(40)]
    for task in tasks[:20]:
        _complete(app_client, user, task)
    deleted: list[int] = []

    def clear() -> None:
        with server.client() as c:
            deleted.append(_clear(c, user).json()["data"]["deleted"])

    run_together([clear] * 4)
    assert sum(deleted) == 20
    rows = database.query("SELECT task_count FROM users WHERE id = $1", user)
    assert rows[0]["task_count"] == 20 == _stats(app_client, user)["total"]


@pytest.fixture
def small(make_server: Callable[..., LiveServer]) -> LiveServer:
    return make_server(max_tasks_per_user=5)


def _post(client: httpx.Client, user: str, **headers: str) -> httpx.Response:
    return client.post(f"/api/{user}/tasks", json={"title": "t"}, headers={**auth(user), **headers})


def _quota_refused(response: httpx.Response) -> None:
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["error"]["code"] == "QUOTA_EXCEEDED"
    assert body["data"] is None


def test_the_quota_refuses_one_more(small: LiveServer) -> None:
    user = new_user()
    with small.client() as client:
        made = [_post(client, user) for _ in range(5)]
        assert [r.status_code for r in made] == [201] * 5
        _quota_refused(_post(client, user))
        assert len(client.get(f"/api/{user}/tasks", headers=auth(user)).json()["data"]) == 5
        assert _stats(client, user)["total"] == 5
        # Another user has a quota of their own.
        assert _post(client, new_user()).status_code == 201
        # A delete frees a place; so does clear-completed.
        first = made[0].json()["data"]
        assert client.delete(f"/api/{user}/tasks/{first['id']}", headers=auth(user)).status_code == 200
        assert _post(client, user).status_code == 201
        _quota_refused(_post(client, user))
        for r in made[1:3]:
            _complete(client, user, r.json()["data"])
        assert _clear(client, user).json()["data"] == {"deleted": 2}
        assert [_post(client, user).status_code for _ in range(3)] == [201, 201, 409]


def test_a_refused_create_with_an_idempotency_key_is_not_replayed(small: LiveServer) -> None:
    user = new_user()
    with small.client() as client:
        made = [_post(client, user) for _ in range(5)]
        _quota_refused(_post(client, user, **{"idempotency-key": "k1"}))
        _quota_refused(_post(client, user, **{"idempotency-key": "k1"}))
        client.delete(f"/api/{user}/tasks/{made[0].json()['data']['id']}", headers=auth(user))
        created = _post(client, user, **{"idempotency-key": "k1"})
        assert created.status_code == 201
        replay = _post(client, user, **{"idempotency-key": "k1"})
        assert replay.status_code == 201
        assert replay.json()["data"] == created.json()["data"]  # v2 fields included


def test_the_quota_is_exact_under_concurrent_creates(small: LiveServer, database: Database) -> None:
    user = new_user()
    with small.client() as client:
        assert _post(client, user).status_code == 201
    statuses: list[int] = []
    lock = threading.Lock()

    def create() -> None:
        with small.client() as c:
            for _ in range(2):
                r = _post(c, user)
                with lock:
                    statuses.append(r.status_code)

    run_together([create] * 12)
    assert sorted(statuses) == [201] * 4 + [409] * 20
    count = database.query("SELECT count(*) AS n FROM tasks WHERE user_id = $1", user)[0]["n"]
    assert count == 5
    assert database.query("SELECT task_count FROM users WHERE id = $1", user)[0]["task_count"] == 5


def test_concurrent_deletes_count_once(
    app_client: httpx.Client, user: str, database: Database, server: LiveServer
) -> None:
    task = create_task(app_client, user)
    create_task(app_client, user)
    statuses: list[int] = []

    def delete() -> None:
        with server.client() as c:
            statuses.append(c.delete(f"/api/{user}/tasks/{task['id']}", headers=auth(user)).status_code)

    run_together([delete] * 6)
    assert sorted(statuses) == [200] + [404] * 5
    assert database.query("SELECT task_count FROM users WHERE id = $1", user)[0]["task_count"] == 1
    assert _stats(app_client, user)["total"] == 1


def test_max_tasks_per_user_is_read_from_the_environment() -> None:
    from service.settings import ConfigError, Settings

    base = {"BETTER_AUTH_SECRET": SECRET}
    assert Settings.from_env(base).max_tasks_per_user == 100_000
    assert Settings.from_env({**base, "MAX_TASKS_PER_USER": "7"}).max_tasks_per_user == 7
    for bad in ("0", "-1", "many", "1.5"):
        with pytest.raises(ConfigError, match="MAX_TASKS_PER_USER"):
            Settings.from_env({**base, "MAX_TASKS_PER_USER": bad})
