"""CONTRACT §4 route table and §7 text rules: CRUD, /complete, ids, and isolation by 404; §8, the
task's other fields: due_at, priority, tags, completed_at and position, and their rules."""

from __future__ import annotations

import re
import uuid
from datetime import datetime

import httpx
import pytest

from tests.support.assertions import assert_error, invalid_field
from tests.support.clients import UserClient, create_task
from tests.support.postgres import Database
from tests.support.tokens import auth, new_user

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
    (within one millisecond the random bits decide; unit/test_ids.py checks the order across ms)."""
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


# --- due_at, priority, tags, completed_at and position (CONTRACT §8) -------------------------------


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
        "list_id",
        "parent_id",
    ]
    assert task["list_id"] is None
    assert task["parent_id"] is None
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
