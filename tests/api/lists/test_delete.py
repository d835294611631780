"""Contract v3, Lists: deleting a list deletes its tasks, in one transaction, and the feed says so in order."""

from __future__ import annotations

import uuid

import httpx

from tests.api.lists.client import ListClient
from tests.support.assertions import assert_error
from tests.support.clients import UserClient
from tests.support.postgres import Database


def _add_tasks(database: Database, user_id: str, list_id: str, count: int) -> list[uuid.UUID]:
    """Put `count` tasks in the list straight in the table, and count them as creates do."""
    ids = [uuid.uuid4() for _ in range(count)]
    for n, task_id in enumerate(ids):
        database.query(
            "INSERT INTO tasks (user_id, id, title, position, list_id) VALUES ($1, $2, $3, $4, $5)",
            user_id,
            task_id,
            f"task {n}",
            f"8000000000{n:02x}",
            uuid.UUID(list_id),
        )
    database.query("UPDATE users SET task_count = task_count + $2 WHERE id = $1", user_id, count)
    return ids


def _task_count(database: Database, user_id: str) -> int:
    return int(database.query("SELECT task_count FROM users WHERE id = $1", user_id)[0]["task_count"])


def _task_ids(database: Database, user_id: str) -> set[uuid.UUID]:
    return {row["id"] for row in database.query("SELECT id FROM tasks WHERE user_id = $1", user_id)}


def test_delete_takes_the_lists_tasks_with_it(
    mine: ListClient, app_client: httpx.Client, database: Database
) -> None:
    inbox_task = uuid.UUID(UserClient(app_client, mine.id).create("in the inbox")["id"])
    doomed, kept = mine.create("doomed"), mine.create("kept")
    gone = _add_tasks(database, mine.id, doomed["id"], 3)
    staying = _add_tasks(database, mine.id, kept["id"], 2)
    assert _task_count(database, mine.id) == 6
    response = mine.request("DELETE", f"/{doomed['id']}")
    assert response.status_code == 200, response.text
    assert response.json()["data"] == doomed
    assert response.json()["meta"]["deleted_tasks"] == 3
    left = _task_ids(database, mine.id)
    assert left == {inbox_task, *staying}
    assert not left & set(gone)
    assert _task_count(database, mine.id) == 3
    assert mine.ids() == [kept["id"]]
    # The stats the API shows agree with what is left.
    stats = app_client.get(f"/api/{mine.id}/tasks/stats", headers=UserClient(app_client, mine.id).headers)
    assert stats.json()["data"]["total"] == 3


def test_the_feed_numbers_the_tasks_tombstones_before_the_lists(mine: ListClient, database: Database) -> None:
    doomed = mine.create("doomed")
    gone = set(_add_tasks(database, mine.id, doomed["id"], 3))
    assert mine.request("DELETE", f"/{doomed['id']}").status_code == 200
    stones = database.query(
        "SELECT id, is_list, change_seq FROM task_tombstones WHERE user_id = $1 ORDER BY change_seq", mine.id
    )
    assert [row["is_list"] for row in stones] == [False, False, False, True]
    assert {row["id"] for row in stones[:3]} == gone
    assert stones[3]["id"] == uuid.UUID(doomed["id"])
    latest = database.query("SELECT change_seq FROM users WHERE id = $1", mine.id)[0]["change_seq"]
    assert stones[3]["change_seq"] == latest


def test_a_refused_delete_deletes_no_task(mine: ListClient, database: Database) -> None:
    created = mine.request("POST", json={"name": "kept"})
    made = created.json()["data"]
    tasks = set(_add_tasks(database, mine.id, made["id"], 2))
    mine.request("PATCH", f"/{made['id']}", json={"name": "renamed"})
    stale = mine.request("DELETE", f"/{made['id']}", headers={"If-Match": created.headers["etag"]})
    assert_error(stale, 412, "PRECONDITION_FAILED")
    assert _task_ids(database, mine.id) == tasks
    assert _task_count(database, mine.id) == 2
    assert mine.ids() == [made["id"]]


def test_an_empty_list_deletes_no_task_of_another_list_or_user(
    mine: ListClient, theirs: ListClient, database: Database
) -> None:
    empty, full = mine.create("empty"), mine.create("full")
    mine_kept = set(_add_tasks(database, mine.id, full["id"], 2))
    their_list = theirs.create("theirs")
    their_tasks = set(_add_tasks(database, theirs.id, their_list["id"], 2))
    response = mine.request("DELETE", f"/{empty['id']}")
    assert response.json()["meta"]["deleted_tasks"] == 0
    assert _task_ids(database, mine.id) == mine_kept
    assert _task_ids(database, theirs.id) == their_tasks
    assert (_task_count(database, mine.id), _task_count(database, theirs.id)) == (2, 2)
