"""CONTRACT v3 §11, Sync: the changes feed carries lists (list_upsert, list_delete) with the tasks'
never-skip guarantee; a full sync sends every list before any task, a list's tasks' deletes come
before its own, list writes fire `changed`, and version 1 sync tokens are still read."""

from __future__ import annotations

import asyncio
import random
import struct
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest

from service.auth.signing import b64encode
from service.db.pool import asyncpg_dsn
from service.sync.tokens import SyncTokens
from tests.support.postgres import Database
from tests.support.servers import LiveServer
from tests.support.sse import open_stream, seq, stream_client
from tests.support.tokens import SECRET, auth, new_user

# --- a client's copy, as a client keeps it -------------------------------------------------------


@dataclass
class Copy:
    """A client's copy of one user's tasks and lists, each keyed by id."""

    tasks: dict[str, Any] = field(default_factory=dict)
    lists: dict[str, Any] = field(default_factory=dict)

    def apply(self, page: dict[str, Any]) -> None:
        for change in page["data"]:
            op = change["op"]
            if op == "upsert":
                self.tasks[change["task"]["id"]] = change["task"]
            elif op == "delete":
                self.tasks.pop(change["id"], None)
            elif op == "list_upsert":
                self.lists[change["list"]["id"]] = change["list"]
            elif op == "list_delete":
                self.lists.pop(change["id"], None)
            else:  # pragma: no cover - a failure message, not a branch the service should take
                raise AssertionError(f"unknown op {op!r} in {change!r}")

    def dangling(self) -> list[tuple[str, str]]:
        """(task id, list id) for each task naming a list this copy does not hold."""
        return [
            (task_id, task["list_id"])
            for task_id, task in self.tasks.items()
            if task["list_id"] is not None and task["list_id"] not in self.lists
        ]


def _key(change: dict[str, Any]) -> tuple[str, str]:
    """What a change is about: ("task" | "list", id)."""
    op = change["op"]
    if op == "upsert":
        return "task", change["task"]["id"]
    if op == "list_upsert":
        return "list", change["list"]["id"]
    return ("list" if op == "list_delete" else "task"), change["id"]


def _full(user: str, since: str | None) -> bool:
    """Whether a page from `since` is (still) part of a full sync's lists-first walk."""
    return since is None or SyncTokens(SECRET.encode()).decode(user, since).listing_lists


def _order_problems(body: dict[str, Any], full: bool) -> list[str]:
    """What is wrong with one page: a change twice; in a full sync, a list after a task, or a task's delete."""
    problems = []
    keys = [_key(c) for c in body["data"]]
    if len(keys) != len(set(keys)):
        problems.append(f"a task or list appears twice in one response: {keys}")
    if full:
        ops = [c["op"] for c in body["data"]]
        kinds = ["list" if op.startswith("list_") else op for op in ops]
        if "delete" in kinds or kinds != sorted(kinds, key=lambda kind: kind != "list"):
            problems.append(f"a full sync's page is not lists, then task upserts: {ops}")
    return problems


def _check_page(body: dict[str, Any], full: bool) -> None:
    assert _order_problems(body, full) == []
    assert body["meta"]["count"] == len(body["data"])


def _changes(client: httpx.Client, user: str, **params: Any) -> httpx.Response:
    return client.get(f"/api/{user}/tasks/changes", params=params, headers=auth(user))


def _page(client: httpx.Client, user: str, since: str | None, limit: int) -> dict[str, Any]:
    params: dict[str, Any] = {"limit": limit, **({"since": since} if since is not None else {})}
    response = _changes(client, user, **params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    _check_page(body, _full(user, since))
    return body


def _sync(
    client: httpx.Client, user: str, copy: Copy, since: str | None, limit: int = 200
) -> tuple[str, list[dict[str, Any]]]:
    """Apply pages until has_more is false; return the token to continue from and every change seen."""
    seen: list[dict[str, Any]] = []
    while True:
        body = _page(client, user, since, limit)
        copy.apply(body)
        seen += body["data"]
        since = body["meta"]["next_since"]
        if not body["meta"]["has_more"]:
            return since, seen


def _server_tasks(client: httpx.Client, user: str) -> dict[str, Any]:
    tasks: dict[str, Any] = {}
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        response = client.get(f"/api/{user}/tasks", params=params, headers=auth(user))
        assert response.status_code == 200, response.text
        body = response.json()
        tasks.update({t["id"]: t for t in body["data"]})
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            return tasks


def _server_lists(client: httpx.Client, user: str) -> dict[str, Any]:
    response = client.get(f"/api/{user}/lists", headers=auth(user))
    assert response.status_code == 200, response.text
    return {found["id"]: found for found in response.json()["data"]}


def _assert_equal_to_server(client: httpx.Client, user: str, copy: Copy) -> None:
    assert copy.lists == _server_lists(client, user)
    assert copy.tasks == _server_tasks(client, user)


# --- writes --------------------------------------------------------------------------------------


def _new_list(client: httpx.Client, user: str, name: str) -> dict[str, Any]:
    response = client.post(f"/api/{user}/lists", json={"name": name}, headers=auth(user))
    assert response.status_code == 201, response.text
    return dict(response.json()["data"])


def _rename_list(client: httpx.Client, user: str, list_id: str, name: str) -> dict[str, Any]:
    response = client.patch(f"/api/{user}/lists/{list_id}", json={"name": name}, headers=auth(user))
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


def _delete_list(client: httpx.Client, user: str, list_id: str) -> None:
    response = client.delete(f"/api/{user}/lists/{list_id}", headers=auth(user))
    assert response.status_code == 200, response.text


def _new_task(client: httpx.Client, user: str, title: str, **body: Any) -> dict[str, Any]:
    response = client.post(f"/api/{user}/tasks", json={"title": title, **body}, headers=auth(user))
    assert response.status_code == 201, response.text
    return dict(response.json()["data"])


def _populate(client: httpx.Client, user: str, lists: int, per_list: int) -> dict[str, list[dict[str, Any]]]:
    """`lists` lists with `per_list` tasks each (the first with a subtask), and two Inbox tasks;
    returns each list's tasks by list id ("inbox" for the Inbox's)."""
    made: dict[str, list[dict[str, Any]]] = {
        "inbox": [_new_task(client, user, f"inbox {i}") for i in range(2)]
    }
    for n in range(lists):
        found = _new_list(client, user, f"list {n}")
        tasks = [_new_task(client, user, f"l{n} t{i}", list_id=found["id"]) for i in range(per_list)]
        if tasks:
            tasks.append(_new_task(client, user, f"l{n} sub", parent_id=tasks[0]["id"]))
        made[found["id"]] = tasks
    return made


# --- full sync -----------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 2, 3])
def test_a_full_sync_sends_every_list_before_any_task(app_client: httpx.Client, limit: int) -> None:
    user = new_user()
    made = _populate(app_client, user, lists=4, per_list=2)
    # Interleave the writes so that number order alone would mix lists and tasks.
    extra = _new_list(app_client, user, "late list")
    _new_task(app_client, user, "late task", list_id=extra["id"])
    _rename_list(app_client, user, next(k for k in made if k != "inbox"), "renamed first")
    copy = Copy()
    token, seen = _sync(app_client, user, copy, None, limit=limit)
    _assert_equal_to_server(app_client, user, copy)
    assert len(copy.lists) == 5
    assert len(copy.tasks) == sum(len(t) for t in made.values()) + 1
    assert copy.dangling() == []
    # Caught up: nothing more.
    again = _page(app_client, user, token, limit)
    assert (again["data"], again["meta"]["has_more"]) == ([], False)
    # Across all the pages: lists only, then task upserts only.
    ops = [c["op"] for c in seen]
    assert set(ops) == {"list_upsert", "upsert"}, ops
    last_list = max(i for i, op in enumerate(ops) if op == "list_upsert")
    first_task = min(i for i, op in enumerate(ops) if op == "upsert")
    assert last_list < first_task, f"a list came after a task in a full sync: {ops}"


def test_a_full_sync_that_lists_change_under_converges(app_client: httpx.Client) -> None:
    """More lists than `limit`: between pages a sent list is renamed, an unsent one too, a new list is
    made, a sent list with tasks is deleted, and an unsent list with tasks is deleted."""
    user = new_user()
    made = _populate(app_client, user, lists=7, per_list=2)
    list_ids = [k for k in made if k != "inbox"]
    copy = Copy()
    first = _page(app_client, user, None, 2)
    copy.apply(first)
    assert first["meta"]["has_more"] is True
    assert [c["op"] for c in first["data"]] == ["list_upsert", "list_upsert"]
    sent = [c["list"]["id"] for c in first["data"]]
    unsent = [i for i in list_ids if i not in sent]
    _rename_list(app_client, user, sent[0], "sent, renamed")
    _rename_list(app_client, user, unsent[0], "unsent, renamed")
    new = _new_list(app_client, user, "made mid-sync")
    _new_task(app_client, user, "in the new one", list_id=new["id"])
    _delete_list(app_client, user, sent[1])
    _delete_list(app_client, user, unsent[1])
    second = _page(app_client, user, first["meta"]["next_since"], 2)
    copy.apply(second)
    # A task in the middle of the lists' pages: changes to lists after it.
    _new_task(app_client, user, "mid-sync inbox task")
    _rename_list(app_client, user, unsent[2], "renamed later")
    _sync(app_client, user, copy, second["meta"]["next_since"], limit=2)
    assert sent[1] not in copy.lists, "the list deleted mid-sync is still on the client"
    assert unsent[1] not in copy.lists
    assert copy.lists[sent[0]]["name"] == "sent, renamed"
    assert copy.lists[unsent[0]]["name"] == "unsent, renamed"
    assert copy.lists[unsent[2]]["name"] == "renamed later"
    assert new["id"] in copy.lists
    for gone in (sent[1], unsent[1]):
        assert not {t["id"] for t in made[gone]} & set(copy.tasks)
    _assert_equal_to_server(app_client, user, copy)
    assert copy.dangling() == []


def test_a_full_sync_that_ends_its_lists_mid_page_then_sees_a_list_deleted(app_client: httpx.Client) -> None:
    """Lists deleted once the full sync is sending tasks: their tasks' deletes, then the list's."""
    user = new_user()
    made = _populate(app_client, user, lists=3, per_list=3)
    list_ids = [k for k in made if k != "inbox"]
    copy = Copy()
    # 3 lists and 5 tasks (the Inbox's two, three of the first list's): the page ends among the tasks.
    first = _page(app_client, user, None, 8)
    copy.apply(first)
    assert [c["op"] for c in first["data"]] == ["list_upsert"] * 3 + ["upsert"] * 5
    _delete_list(app_client, user, list_ids[0])
    _rename_list(app_client, user, list_ids[1], "renamed while tasks are sent")
    _, seen = _sync(app_client, user, copy, first["meta"]["next_since"], limit=2)
    assert list_ids[0] not in copy.lists
    assert copy.lists[list_ids[1]]["name"] == "renamed while tasks are sent"
    _assert_equal_to_server(app_client, user, copy)
    assert copy.dangling() == []
    list_delete = [i for i, c in enumerate(seen) if c["op"] == "list_delete"]
    assert len(list_delete) == 1
    assert seen[list_delete[0]]["id"] == list_ids[0]
    # Deletes for the list's tasks the client held (and perhaps the others) come before it.
    held = {c["task"]["id"] for c in first["data"] if c["op"] == "upsert"} & {
        t["id"] for t in made[list_ids[0]]
    }
    assert len(held) == 3
    for task_id in held:
        index = next(i for i, c in enumerate(seen) if c["op"] == "delete" and c["id"] == task_id)
        assert index < list_delete[0]


# --- incremental sync ----------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 200])
def test_incremental_sync_of_list_writes(app_client: httpx.Client, limit: int) -> None:
    user = new_user()
    made = _populate(app_client, user, lists=3, per_list=2)
    a, b, c = (k for k in made if k != "inbox")
    copy = Copy()
    token, _ = _sync(app_client, user, copy, None)
    for name in ("A once", "A twice"):
        _rename_list(app_client, user, a, name)
    moved = app_client.post(f"/api/{user}/lists/{b}/move", json={"before": a}, headers=auth(user))
    assert moved.status_code == 200, moved.text
    d = _new_list(app_client, user, "D")
    in_d = _new_task(app_client, user, "in D", list_id=d["id"])
    task_moved = app_client.post(
        f"/api/{user}/tasks/{made[a][1]['id']}/move", json={"list_id": b}, headers=auth(user)
    )
    assert task_moved.status_code == 200, task_moved.text
    edited = app_client.patch(
        f"/api/{user}/tasks/{made['inbox'][0]['id']}", json={"title": "edited"}, headers=auth(user)
    )
    assert edited.status_code == 200
    _delete_list(app_client, user, c)
    _, seen = _sync(app_client, user, copy, token, limit=limit)

    upserts = {ch["list"]["id"]: ch["list"] for ch in seen if ch["op"] == "list_upsert"}
    assert set(upserts) == {a, b, d["id"]}
    server_lists = _server_lists(app_client, user)
    assert upserts[a] == server_lists[a]
    assert upserts[a]["name"] == "A twice"
    assert upserts[b] == server_lists[b]
    assert upserts[b]["position"] < upserts[a]["position"]
    assert upserts[d["id"]] == server_lists[d["id"]]
    # The list with tasks deleted: each task's delete, then the list's, whose id is the list's.
    list_deletes = [i for i, ch in enumerate(seen) if ch["op"] == "list_delete"]
    assert [seen[i]["id"] for i in list_deletes] == [c]
    deletes = {ch["id"]: i for i, ch in enumerate(seen) if ch["op"] == "delete"}
    assert set(deletes) == {t["id"] for t in made[c]}
    assert max(deletes.values()) < list_deletes[0]
    # Each task once, in its latest state.
    task_upserts = [ch["task"] for ch in seen if ch["op"] == "upsert"]
    if limit == 200:
        assert {t["id"] for t in task_upserts} == {in_d["id"], made[a][1]["id"], made["inbox"][0]["id"]}
    assert next(t for t in task_upserts if t["id"] == made[a][1]["id"])["list_id"] == b
    assert c not in copy.lists
    _assert_equal_to_server(app_client, user, copy)
    assert copy.dangling() == []


def test_a_task_in_a_new_list_comes_after_the_list(app_client: httpx.Client) -> None:
    user = new_user()
    _new_task(app_client, user, "before")
    copy = Copy()
    token, _ = _sync(app_client, user, copy, None)
    found = _new_list(app_client, user, "new")
    task = _new_task(app_client, user, "in new", list_id=found["id"])
    child = _new_task(app_client, user, "under it", parent_id=task["id"])
    assert child["list_id"] == found["id"]
    for limit in (1, 200):
        seen = _sync(app_client, user, Copy(), token, limit)[1]
        ops = [(ch["op"], _key(ch)[1]) for ch in seen]
        assert ops == [("list_upsert", found["id"]), ("upsert", task["id"]), ("upsert", child["id"])]
        assert seen[0]["list"] == found
        assert seen[1]["task"] == task
        assert seen[2]["task"]["parent_id"] == task["id"]


def test_a_list_deleted_with_subtasks_deletes_each_before_the_list(
    app_client: httpx.Client, database: Database
) -> None:
    user = new_user()
    found = _new_list(app_client, user, "deep")
    top = _new_task(app_client, user, "top", list_id=found["id"])
    mid = _new_task(app_client, user, "mid", parent_id=top["id"])
    leaf = _new_task(app_client, user, "leaf", parent_id=mid["id"])
    copy = Copy()
    token, _ = _sync(app_client, user, copy, None)
    assert len(copy.tasks) == 3
    _delete_list(app_client, user, found["id"])
    for limit in (1, 2, 200):
        seen = _sync(app_client, user, Copy(), token, limit)[1]
        assert [ch["op"] for ch in seen] == ["delete"] * 3 + ["list_delete"]
        assert {ch["id"] for ch in seen[:3]} == {top["id"], mid["id"], leaf["id"]}
        assert seen[3]["id"] == found["id"]
        assert datetime.fromisoformat(seen[3]["deleted_at"]) >= max(
            datetime.fromisoformat(ch["deleted_at"]) for ch in seen[:3]
        )
    _sync(app_client, user, copy, token)
    assert copy == Copy()
    kinds = database.query("SELECT is_list FROM task_tombstones WHERE user_id = $1 ORDER BY change_seq", user)
    assert [r["is_list"] for r in kinds] == [False, False, False, True]


# --- the event stream ----------------------------------------------------------------------------


def test_list_writes_fire_changed_events(server: LiveServer) -> None:
    user = new_user()

    async def run() -> None:
        headers = auth(user)

        async def changes_since(token: str) -> list[dict[str, Any]]:
            response = await client.get(
                f"/api/{user}/tasks/changes", params={"since": token}, headers=headers
            )
            assert response.status_code == 200, response.text
            data: list[dict[str, Any]] = response.json()["data"]
            return data

        async with stream_client(server.base_url) as client, open_stream(client, user) as stream:
            assert stream.response.status_code == 200
            ready = await stream.until("ready")
            created = await client.post(f"/api/{user}/lists", json={"name": "L"}, headers=headers)
            assert created.status_code == 201
            made = created.json()["data"]
            event = await stream.until("changed")
            assert seq(user, event.since) > seq(user, ready.since)
            assert await changes_since(ready.since) == [{"op": "list_upsert", "list": made}]
            assert await changes_since(event.since) == []
            for method, body in (("PATCH", {"name": "L2"}), ("PUT", {"name": "L3"}), ("DELETE", None)):
                before = event
                response = await client.request(
                    method, f"/api/{user}/lists/{made['id']}", json=body, headers=headers
                )
                assert response.status_code == 200, response.text
                event = await stream.until("changed")
                assert seq(user, event.since) > seq(user, before.since)
                news = await changes_since(before.since)
                assert len(news) == 1
                if method == "DELETE":
                    assert (news[0]["op"], news[0]["id"]) == ("list_delete", made["id"])
                else:
                    assert news[0] == {"op": "list_upsert", "list": response.json()["data"]}

    asyncio.run(run())


def test_a_list_move_fires_a_changed_event(server: LiveServer) -> None:
    user = new_user()

    async def run() -> None:
        headers = auth(user)
        async with stream_client(server.base_url) as client:
            a = (await client.post(f"/api/{user}/lists", json={"name": "a"}, headers=headers)).json()["data"]
            b = (await client.post(f"/api/{user}/lists", json={"name": "b"}, headers=headers)).json()["data"]
            async with open_stream(client, user) as stream:
                ready = await stream.until("ready")
                moved = await client.post(
                    f"/api/{user}/lists/{b['id']}/move", json={"before": a["id"]}, headers=headers
                )
                assert moved.status_code == 200, moved.text
                event = await stream.until("changed")
                assert seq(user, event.since) > seq(user, ready.since)
                page = (
                    await client.get(
                        f"/api/{user}/tasks/changes", params={"since": ready.since}, headers=headers
                    )
                ).json()
                assert [(ch["op"], ch["list"]["id"]) for ch in page["data"]] == [("list_upsert", b["id"])]
                assert page["data"][0]["list"] == moved.json()["data"]

    asyncio.run(run())


# --- version 1 tokens ----------------------------------------------------------------------------


def _v1_token(user: str, change_seq: int, at: datetime) -> str:
    """A token as the service wrote it before the phase flag (version 1: `>BQq`, then the MAC).

    It uses SyncTokens' private `_mac` on purpose: a test of the old layout needs the signing step
    alone, and the service no longer writes version 1 tokens itself.
    """
    tokens = SyncTokens(SECRET.encode())
    micros = (at - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    payload = struct.pack(">BQq", 1, change_seq, micros)
    return b64encode(payload + tokens._mac(user, payload))  # private on purpose: see the docstring


def test_a_version_1_token_is_still_read(app_client: httpx.Client) -> None:
    user = new_user()
    old = _new_task(app_client, user, "from before")
    head = SyncTokens(SECRET.encode()).decode(user, _page(app_client, user, None, 200)["meta"]["next_since"])
    token = _v1_token(user, head.seq, datetime.now(UTC))
    assert SyncTokens(SECRET.encode()).decode(user, token).listing_lists is False
    assert _page(app_client, user, token, 200)["data"] == []
    found = _new_list(app_client, user, "after")
    task = _new_task(app_client, user, "in it", list_id=found["id"])
    body = _page(app_client, user, token, 200)
    assert body["data"] == [{"op": "list_upsert", "list": found}, {"op": "upsert", "task": task}]
    assert old["id"] not in str(body["data"])
    # It is an incremental position, not a full sync: from 0 it sends the list, then the tasks by number.
    zero = _page(app_client, user, _v1_token(user, 0, datetime.now(UTC)), 200)
    assert [_key(ch)[1] for ch in zero["data"]] == [old["id"], found["id"], task["id"]]
    # Signed for another user, edited, or with a phase byte the MAC does not cover: refused.
    assert _changes(app_client, new_user(), since=token).status_code == 422
    micros = (datetime.now(UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    signed = struct.pack(">BQq", 1, head.seq, micros)
    mac = SyncTokens(SECRET.encode())._mac(user, signed)  # private on purpose, as in _v1_token
    edited = struct.pack(">BQq", 1, head.seq + 1, micros)
    for forged in (edited + mac, signed + b"\x01" + mac, signed + mac[:-1]):
        assert _changes(app_client, user, since=b64encode(forged)).status_code == 422
    # Older than the retention: 410, as a version 2 token would be.
    month_ago = datetime.now(UTC) - timedelta(days=30, minutes=1)
    assert _changes(app_client, user, since=_v1_token(user, head.seq, month_ago)).status_code == 410


# --- convergence under concurrent writers --------------------------------------------------------


def test_concurrent_list_and_task_writers_never_make_a_syncing_client_miss_a_change(
    server: LiveServer, database: Database
) -> None:
    """Five API connections create, rename, move and delete lists, create tasks in them and subtasks,
    edit and move tasks; two slow SQL transactions edit tasks, committing late; two clients sync in a
    loop with small pages, one incrementally, one starting over with a full sync every few rounds.
    Each time a client reaches has_more: false it holds every list its tasks name; once the writers
    stop and the clients catch up, each copy equals the server's."""
    user = new_user()
    headers = auth(user, ttl=3600)
    failures: list[str] = []

    def check(response: httpx.Response, *ok: int) -> httpx.Response:
        # Races (a list or parent deleted meanwhile, the depth limit) may refuse a write; nothing may fail.
        if response.status_code >= 500 or (ok and response.status_code not in ok):
            failures.append(
                f"{response.request.method} {response.request.url}: {response.status_code} {response.text}"
            )
        return response

    async def api_writer(client: httpx.AsyncClient, seed: int, lists: list[str], tasks: list[str]) -> None:
        rng = random.Random(seed)
        for step in range(50):
            action = rng.random()
            if action < 0.12 or not lists:
                response = check(
                    await client.post(
                        f"/api/{user}/lists", json={"name": f"L{seed}-{step}"}, headers=headers
                    ),
                    201,
                )
                if response.status_code == 201:
                    lists.append(response.json()["data"]["id"])
            elif action < 0.2:
                check(
                    await client.patch(
                        f"/api/{user}/lists/{rng.choice(lists)}",
                        json={"name": f"R{seed}-{step}"},
                        headers=headers,
                    ),
                    200,
                    404,
                )
            elif action < 0.25 and len(lists) > 1:
                a, b = rng.sample(lists, 2)
                check(
                    await client.post(f"/api/{user}/lists/{a}/move", json={"after": b}, headers=headers),
                    200,
                    404,
                    422,
                )
            elif action < 0.3:
                list_id = rng.choice(lists)
                lists.remove(list_id)
                check(await client.delete(f"/api/{user}/lists/{list_id}", headers=headers), 200, 404)
            elif action < 0.55 or not tasks:
                target = rng.choice([None, *lists])
                response = check(
                    await client.post(
                        f"/api/{user}/tasks",
                        json={"title": f"t{seed}-{step}", "list_id": target},
                        headers=headers,
                    ),
                    201,
                    404,
                    422,
                )
                if response.status_code == 201:
                    tasks.append(response.json()["data"]["id"])
            elif action < 0.7:
                response = check(
                    await client.post(
                        f"/api/{user}/tasks",
                        json={"title": f"sub{seed}-{step}", "parent_id": rng.choice(tasks)},
                        headers=headers,
                    ),
                    201,
                    404,
                    409,
                    422,
                )
                if response.status_code == 201:
                    tasks.append(response.json()["data"]["id"])
            elif action < 0.8:
                check(
                    await client.patch(
                        f"/api/{user}/tasks/{rng.choice(tasks)}",
                        json={"title": f"e{seed}-{step}"},
                        headers=headers,
                    ),
                    200,
                    404,
                )
            elif action < 0.9:
                check(
                    await client.post(
                        f"/api/{user}/tasks/{rng.choice(tasks)}/move",
                        json={"list_id": rng.choice([None, *lists])},
                        headers=headers,
                    ),
                    200,
                    404,
                    409,
                    422,
                )
            else:
                task_id = rng.choice(tasks)
                tasks.remove(task_id)
                check(await client.delete(f"/api/{user}/tasks/{task_id}", headers=headers), 200, 404)

    async def slow_writer(seed: int, tasks: list[str]) -> None:
        rng = random.Random(100 + seed)
        conn = await asyncpg.connect(asyncpg_dsn(database.url))
        try:
            for step in range(30):
                if not tasks:
                    await asyncio.sleep(0.01)
                    continue
                # Chosen before the first await: other writers may empty the list meanwhile.
                task_id = uuid.UUID(rng.choice(tasks))
                async with conn.transaction():
                    await conn.execute("SELECT lock_user($1)", user)
                    await conn.execute(
                        """UPDATE tasks SET title = $3, version = version + 1, updated_at = now()
                           WHERE user_id = $1 AND id = $2""",
                        user,
                        task_id,
                        f"slow {seed}-{step}",
                    )
                    await asyncio.sleep(rng.uniform(0, 0.02))  # written, not yet committed
        finally:
            await conn.close()

    async def syncing_client(
        client: httpx.AsyncClient, stop: asyncio.Event, copy: Copy, restart_every: int, limit: int
    ) -> tuple[int, list[str]]:
        since: str | None = None
        pages, rounds = 0, 0
        violations: list[str] = []
        while True:
            stopping = stop.is_set()
            if restart_every and rounds % restart_every == 0 and not stopping:
                since = None
                copy.tasks.clear()
                copy.lists.clear()
            while True:
                params: dict[str, Any] = {"limit": limit, **({"since": since} if since else {})}
                response = await client.get(f"/api/{user}/tasks/changes", params=params, headers=headers)
                assert response.status_code == 200, response.text
                body = response.json()
                violations += _order_problems(body, _full(user, since))
                pages += 1
                copy.apply(body)
                since = body["meta"]["next_since"]
                if not body["meta"]["has_more"]:
                    break
            if copy.dangling():
                violations.append(f"after has_more false, tasks name lists not held: {copy.dangling()}")
            rounds += 1
            if stopping:
                return pages, violations
            await asyncio.sleep(0)

    async def run() -> tuple[Copy, Copy, int, list[str]]:
        limits = httpx.Limits(max_connections=12)
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30, limits=limits) as client:
            stop = asyncio.Event()
            steady, restarting = Copy(), Copy()
            lists: list[str] = []
            tasks: list[str] = []
            readers = [
                asyncio.create_task(syncing_client(client, stop, steady, 0, 3)),
                asyncio.create_task(syncing_client(client, stop, restarting, 3, 2)),
            ]
            await asyncio.gather(
                *(api_writer(client, seed, lists, tasks) for seed in range(5)),
                *(slow_writer(seed, tasks) for seed in range(2)),
            )
            stop.set()
            (pages_a, bad_a), (pages_b, bad_b) = [await r for r in readers]
            return steady, restarting, pages_a + pages_b, bad_a + bad_b

    steady, restarting, pages, violations = asyncio.run(run())
    assert failures == []
    with server.client() as client:
        expected_tasks = _server_tasks(client, user)
        expected_lists = _server_lists(client, user)
    assert pages > 20  # the clients really synced while the writers wrote
    assert len(expected_tasks) > 20
    assert len(expected_lists) > 3
    assert any(t["list_id"] for t in expected_tasks.values())
    assert any(t["parent_id"] for t in expected_tasks.values())
    assert violations == []
    for copy in (steady, restarting):
        assert copy.lists == expected_lists
        assert copy.tasks == expected_tasks
        assert copy.dangling() == []
