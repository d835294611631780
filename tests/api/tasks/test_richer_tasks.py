"""CONTRACT §8, the task: due_at, priority, tags, completed_at and position, and their rules."""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest

from tests.support.clients import create_task
from tests.support.tokens import auth, new_user

NEW_FIELDS = ("due_at", "priority", "tags", "completed_at", "position")


def _patch(client: httpx.Client, user: str, task: dict, **body: object) -> httpx.Response:
    return client.patch(f"/api/{user}/tasks/{task['id']}", json=body, headers=auth(user))


def _get(client: httpx.Client, user: str, task: dict) -> httpx.Response:
    return client.get(f"/api/{user}/tasks/{task['id']}", headers=auth(user))


def _refused(response: httpx.Response) -> str:
    """The one field a 422 names."""
    assert response.status_code == 422, response.text
    body = response.json()
    assert body["error"]["code"] == "VALIDATION_ERROR"
    assert body["data"] is None
    return body["error"]["details"][0]["field"]


def _utc(text: str) -> datetime:
    assert text.endswith("Z"), f"{text} is not in UTC"
    return datetime.fromisoformat(text)


def test_a_v1_create_reads_the_new_fields_with_their_defaults(app_client: httpx.Client, user: str) -> None:
    task = create_task(app_client, user)
    assert task["due_at"] is None
    assert task["priority"] == "none"
    assert task["tags"] == []
    assert task["completed_at"] is None
    assert isinstance(task["position"], str)
    assert task["position"]
    assert list(task) == [
        "id",
        "title",
        "description",
        "completed",
        "user_id",
        "created_at",
        "updated_at",
        *NEW_FIELDS,
    ]
    assert _get(app_client, user, task).json()["data"] == task


def test_create_takes_the_new_fields(app_client: httpx.Client, user: str) -> None:
    task = create_task(app_client, user, due_at="2026-12-01T09:30:00Z", priority="high", tags=["work", "q4"])
    assert task["due_at"] == "2026-12-01T09:30:00Z"
    assert task["priority"] == "high"
    assert task["tags"] == ["work", "q4"]
    assert _get(app_client, user, task).json()["data"] == task


@pytest.mark.parametrize(
    ("sent", "utc"),
    [
        ("2026-12-01T11:30:00+02:00", "2026-12-01T09:30:00Z"),
        ("2026-12-01T04:00:00-05:30", "2026-12-01T09:30:00Z"),
        ("2026-12-01T09:30:00.250+00:00", "2026-12-01T09:30:00.250000Z"),
        ("2026-12-01T00:30:00+01:00", "2026-11-30T23:30:00Z"),
    ],
)
def test_due_at_is_returned_in_utc(app_client: httpx.Client, user: str, sent: str, utc: str) -> None:
    task = create_task(app_client, user, due_at=sent)
    assert _utc(task["due_at"]) == _utc(utc)
    assert task["due_at"].endswith("Z")


@pytest.mark.parametrize(
    "due_at",
    [
        "2026-12-01T09:30:00",  # naive: no offset
        "2026-12-01",
        "09:30:00Z",
        "tomorrow",
        "",
        1764581400,
        True,
        ["2026-12-01T09:30:00Z"],
        # Outside the years 1000-9998 as written, where the driver's -infinity and +infinity are.
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:30:00+01:00",
        "9999-12-31T23:59:59.999999Z",
        "9999-12-31T23:00:00-05:00",
        "0999-12-31T23:59:59Z",
        "9999-01-01T00:00:00Z",
    ],
)
def test_due_at_needs_an_rfc3339_timestamp_with_an_offset(
    app_client: httpx.Client, user: str, due_at: object
) -> None:
    response = app_client.post(
        f"/api/{user}/tasks", json={"title": "x", "due_at": due_at}, headers=auth(user)
    )
    assert _refused(response) == "due_at"
    task = create_task(app_client, user)
    assert _refused(_patch(app_client, user, task, due_at=due_at)) == "due_at"
    assert _get(app_client, user, task).json()["data"]["due_at"] is None


@pytest.mark.parametrize(
    "due_at", ["1000-01-01T00:00:00Z", "1000-01-01T05:00:00+05:00", "9998-12-31T23:59:59.999999Z"]
)
def test_due_at_takes_the_years_1000_to_9998(app_client: httpx.Client, user: str, due_at: str) -> None:
    assert _utc(create_task(app_client, user, due_at=due_at)["due_at"]) == datetime.fromisoformat(due_at)


def test_due_at_null_clears_it(app_client: httpx.Client, user: str) -> None:
    task = create_task(app_client, user, due_at="2026-12-01T09:30:00Z")
    assert _patch(app_client, user, task, due_at=None).json()["data"]["due_at"] is None
    assert create_task(app_client, user, due_at=None)["due_at"] is None


@pytest.mark.parametrize("priority", ["none", "low", "medium", "high"])
def test_each_priority_is_kept(app_client: httpx.Client, user: str, priority: str) -> None:
    assert create_task(app_client, user, priority=priority)["priority"] == priority
    task = create_task(app_client, user)
    assert _patch(app_client, user, task, priority=priority).json()["data"]["priority"] == priority


@pytest.mark.parametrize("priority", ["urgent", "HIGH", "High", "", None, 3, ["high"]])
def test_any_other_priority_is_422(app_client: httpx.Client, user: str, priority: object) -> None:
    response = app_client.post(
        f"/api/{user}/tasks", json={"title": "x", "priority": priority}, headers=auth(user)
    )
    assert _refused(response) == "priority"
    task = create_task(app_client, user, priority="low")
    assert _refused(_patch(app_client, user, task, priority=priority)) == "priority"
    assert _get(app_client, user, task).json()["data"]["priority"] == "low"


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        (["  padded\t", "\u00a0nbsp\u3000"], ["padded", "nbsp"]),
        (["Work", "home", "work", "WORK", " Home "], ["Work", "home"]),
        (["b", "a", "c"], ["b", "a", "c"]),
        (["two words"], ["two words"]),
        (["x" * 32, "  " + "y" * 32 + "  "], ["x" * 32, "y" * 32]),
        (["Straße", "STRASSE"], ["Straße"]),  # Unicode case folding, not just ASCII
        (["émoji 🎉"], ["émoji 🎉"]),
        ([], []),
    ],
    ids=[
        "trimmed",
        "case-insensitive-dedupe-keeps-first",
        "order-as-sent",
        "inner-space",
        "32-max",
        "casefold",
        "unicode",
        "empty",
    ],
)
def test_tags_are_trimmed_and_deduplicated_keeping_the_first_spelling(
    app_client: httpx.Client, user: str, sent: list[str], kept: list[str]
) -> None:
    assert create_task(app_client, user, tags=sent)["tags"] == kept
    task = create_task(app_client, user, tags=["old"])
    assert _patch(app_client, user, task, tags=sent).json()["data"]["tags"] == kept


def test_twenty_tags_are_allowed(app_client: httpx.Client, user: str) -> None:
    tags = [f"t{i}" for i in range(20)]
    assert create_task(app_client, user, tags=tags)["tags"] == tags


@pytest.mark.parametrize(
    "tags",
    [
        [f"t{i}" for i in range(21)],
        [f"t{i % 10}" for i in range(21)],  # 21 as sent, even if duplicates would collapse them
        [""],
        ["   "],
        ["x" * 33],
        ["ok", "nul\x00"],
        ["ok", 5],
        [None],
        "work",
        None,
        {"name": "work"},
    ],
    ids=[
        "21",
        "21-with-duplicates",
        "empty",
        "blank",
        "33",
        "nul",
        "number",
        "null-item",
        "string",
        "null",
        "object",
    ],
)
def test_bad_tags_are_422_and_change_nothing(app_client: httpx.Client, user: str, tags: object) -> None:
    response = app_client.post(f"/api/{user}/tasks", json={"title": "x", "tags": tags}, headers=auth(user))
    assert _refused(response).startswith("tags")
    task = create_task(app_client, user, tags=["keep"])
    before = _get(app_client, user, task)
    assert _refused(_patch(app_client, user, task, tags=tags)).startswith("tags")
    after = _get(app_client, user, task)
    assert after.json()["data"] == before.json()["data"]
    assert after.headers["etag"] == before.headers["etag"]


def test_tags_replace_the_whole_list_and_other_fields_stay(app_client: httpx.Client, user: str) -> None:
    task = create_task(app_client, user, due_at="2026-12-01T09:30:00Z", priority="medium", tags=["a", "b"])
    updated = _patch(app_client, user, task, tags=["c"]).json()["data"]
    assert updated["tags"] == ["c"]
    assert updated["priority"] == "medium"
    assert updated["due_at"] == "2026-12-01T09:30:00Z"
    assert updated["title"] == task["title"]
    assert _patch(app_client, user, task, tags=[]).json()["data"]["tags"] == []


@pytest.mark.parametrize("method", ["put", "patch"])
def test_put_and_patch_take_only_new_fields(app_client: httpx.Client, user: str, method: str) -> None:
    task = create_task(app_client, user, title="keep me", description="and me")
    response = app_client.request(
        method.upper(),
        f"/api/{user}/tasks/{task['id']}",
        json={"due_at": "2026-12-01T09:30:00Z"},
        headers=auth(user),
    )
    assert response.status_code == 200, response.text
    data = response.json()["data"]
    assert (data["title"], data["description"], data["due_at"]) == (
        "keep me",
        "and me",
        "2026-12-01T09:30:00Z",
    )


@pytest.mark.parametrize(
    "field", ["completed_at", "position", "id", "user_id", "created_at", "updated_at", "completed"]
)
def test_read_only_fields_are_refused_oncreate_task(app_client: httpx.Client, user: str, field: str) -> None:
    value = {"completed": True, "completed_at": "2026-12-01T09:30:00Z"}.get(field, "800000000000")
    response = app_client.post(f"/api/{user}/tasks", json={"title": "x", field: value}, headers=auth(user))
    assert _refused(response) == field
    assert app_client.get(f"/api/{user}/tasks", headers=auth(user)).json()["data"] == []


@pytest.mark.parametrize("field", ["completed_at", "position", "id", "user_id", "created_at", "updated_at"])
def test_read_only_fields_are_refused_on_update(app_client: httpx.Client, user: str, field: str) -> None:
    task = create_task(app_client, user)
    value = "2026-12-01T09:30:00Z" if field.endswith("_at") else "800000000000"
    assert _refused(_patch(app_client, user, task, **{field: value})) == field
    assert _get(app_client, user, task).json()["data"] == task


def test_completed_at_follows_completed(app_client: httpx.Client, user: str) -> None:
    task = create_task(app_client, user)
    done = _patch(app_client, user, task, completed=True).json()["data"]
    assert done["completed_at"] is not None
    # Set by the very write that completed it.
    assert _utc(done["completed_at"]) == _utc(done["updated_at"])
    undone = _patch(app_client, user, task, completed=False).json()["data"]
    assert undone["completed_at"] is None
    again = _patch(app_client, user, task, completed=True).json()["data"]
    assert _utc(again["completed_at"]) == _utc(again["updated_at"])
    assert _utc(again["completed_at"]) > _utc(done["completed_at"])


def test_setting_completed_to_its_value_changes_only_updated_at_and_the_etag(
    app_client: httpx.Client, user: str
) -> None:
    task = create_task(app_client, user)
    first = _patch(app_client, user, task, completed=True)
    for same in (
        _patch(app_client, user, task, completed=True),
        app_client.patch(
            f"/api/{user}/tasks/{task['id']}/complete", json={"completed": True}, headers=auth(user)
        ),
    ):
        assert same.status_code == 200
        before, after = first.json()["data"], same.json()["data"]
        assert after["completed_at"] == before["completed_at"]
        assert _utc(after["updated_at"]) > _utc(before["updated_at"])
        assert same.headers["etag"] != first.headers["etag"]
        assert {k: v for k, v in after.items() if k != "updated_at"} == {
            k: v for k, v in before.items() if k != "updated_at"
        }
        first = same
    # Not completed, set to not completed: still no completed_at.
    other = create_task(app_client, user)
    assert _patch(app_client, user, other, completed=False).json()["data"]["completed_at"] is None


def test_toggle_sets_and_clears_completed_at(app_client: httpx.Client, user: str) -> None:
    task = create_task(app_client, user)
    url = f"/api/{user}/tasks/{task['id']}/complete"
    on = app_client.patch(url, headers=auth(user)).json()["data"]
    assert on["completed"] is True
    assert _utc(on["completed_at"]) == _utc(on["updated_at"])
    off = app_client.patch(url, headers=auth(user)).json()["data"]
    assert (off["completed"], off["completed_at"]) == (False, None)
    assert (
        app_client.patch(url, json={"completed": False}, headers=auth(user)).json()["data"]["completed_at"]
        is None
    )


def test_a_write_that_does_not_touch_completed_keeps_completed_at(
    app_client: httpx.Client, user: str
) -> None:
    task = create_task(app_client, user)
    done = _patch(app_client, user, task, completed=True).json()["data"]
    renamed = _patch(app_client, user, task, title="renamed", tags=["x"]).json()["data"]
    assert renamed["completed_at"] == done["completed_at"]


def test_the_v1_fields_work_as_before(app_client: httpx.Client, user: str) -> None:
    """A client that sends only v1 fields sees v1 behaviour."""
    task = create_task(app_client, user, description=None)
    response = app_client.put(
        f"/api/{user}/tasks/{task['id']}",
        json={"title": "v1", "description": "d", "completed": True},
        headers=auth(user),
    )
    data = response.json()["data"]
    assert (data["title"], data["description"], data["completed"]) == ("v1", "d", True)
    assert (data["priority"], data["tags"], data["due_at"]) == ("none", [], None)
    assert data["position"] == task["position"]


def test_new_tasks_go_first_in_the_manual_order(app_client: httpx.Client, user: str) -> None:
    tasks = [create_task(app_client, user, f"t{i}") for i in range(5)]
    keys = [t["position"] for t in tasks]
    assert keys == sorted(keys, reverse=True)
    # Compared as byte strings.
    assert [t["position"].encode() for t in tasks] == sorted((k.encode() for k in keys), reverse=True)
    listed = app_client.get(f"/api/{user}/tasks", params={"sort": "position"}, headers=auth(user)).json()[
        "data"
    ]
    assert [t["id"] for t in listed] == [t["id"] for t in reversed(tasks)]


def test_a_delete_returns_the_new_fields(app_client: httpx.Client, user: str) -> None:
    task = create_task(app_client, user, priority="low", tags=["a"], due_at="2026-12-01T09:30:00Z")
    gone = app_client.delete(f"/api/{user}/tasks/{task['id']}", headers=auth(user)).json()["data"]
    assert gone == task


def test_another_users_fields_are_not_seen(app_client: httpx.Client, user: str) -> None:
    theirs = create_task(app_client, new_user(), tags=["secret"])
    assert _get(app_client, user, theirs).status_code == 404
