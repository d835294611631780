"""CONTRACT §4 Listing and §7: filters, sorts, keyset cursors, and their refusals; §8: the sorts by due
date, priority and position, the filters on priority, tags and due dates, and their cursors.

The plans on 100,000 tasks (each sort an index scan) are in tests/system/test_query_plans.py."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from service.db.pool import asyncpg_dsn
from service.db.statements import Runner
from service.tasks.listing.query import list_query
from service.tasks.schemas import ListQuery
from service.tasks.store import TaskStore
from tests.support.assertions import invalid_field
from tests.support.clients import UserClient, create_task, walk_under_churn
from tests.support.postgres import Database
from tests.support.servers import LiveServer
from tests.support.tokens import auth, new_user


@pytest.fixture
def titled(me: UserClient) -> list[dict]:
    """Tasks whose titles sort differently by code point than by any locale, some completed."""
    tasks = [me.create(t) for t in ["banana", "Apple", "cherry", "apple", "Éclair", "_under", "100%"]]
    for task in tasks[::2]:
        me.request("PATCH", f"/{task['id']}/complete")
    return tasks


def test_default_is_newest_first_with_meta(me: UserClient, titled: list[dict]) -> None:
    body = me.list().json()
    assert [t["id"] for t in body["data"]] == [t["id"] for t in reversed(titled)]
    assert body["meta"]["count"] == 7
    assert body["meta"]["limit"] == 50
    assert body["meta"]["next_cursor"] is None


@pytest.mark.parametrize(
    "sort", ["created_at", "-created_at", "updated_at", "-updated_at", "title", "-title"]
)
def test_each_sort_orders_by_its_key_then_id(me: UserClient, titled: list[dict], sort: str) -> None:
    data = me.list(sort=sort).json()["data"]
    key = sort.lstrip("-")
    expected = sorted(data, key=lambda t: (t[key], t["id"]), reverse=sort.startswith("-"))
    assert [t["id"] for t in data] == [t["id"] for t in expected]
    assert len(data) == len(titled)


def test_title_sort_is_by_code_point(me: UserClient, titled: list[dict]) -> None:
    data = me.list(sort="title").json()["data"]
    assert [t["title"] for t in data] == ["100%", "Apple", "_under", "apple", "banana", "cherry", "Éclair"]


def test_title_ties_break_by_id(me: UserClient) -> None:
    ids = [me.create("same")["id"] for _ in range(4)]
    assert [t["id"] for t in me.list(sort="title").json()["data"]] == sorted(ids)
    assert [t["id"] for t in me.list(sort="-title").json()["data"]] == sorted(ids, reverse=True)


def test_completed_filter(me: UserClient, titled: list[dict]) -> None:
    done = me.list(completed="true").json()["data"]
    todo = me.list(completed="false").json()["data"]
    assert {t["id"] for t in done} == {t["id"] for t in titled[::2]}
    assert {t["id"] for t in todo} == {t["id"] for t in titled[1::2]}
    assert all(t["completed"] for t in done)
    assert not any(t["completed"] for t in todo)


def test_q_is_case_insensitive_in_title_or_description(me: UserClient) -> None:
    a = me.create("Buy MILK")
    b = me.create("groceries", description="oat milk, eggs")
    me.create("unrelated")
    found = me.list(q="milk").json()["data"]
    assert {t["id"] for t in found} == {a["id"], b["id"]}
    assert me.list(q="MiLk", completed="true").json()["data"] == []


@pytest.mark.parametrize(("q", "title"), [("100%", "100% done"), ("a_b", "a_b"), ("c\\d", "c\\d")])
def test_q_matches_wildcards_literally(me: UserClient, q: str, title: str) -> None:
    target = me.create(title)
    me.create("100 done")  # would match 100% as a pattern
    me.create("axb")  # would match a_b as a pattern
    me.create("cd")
    found = me.list(q=q).json()["data"]
    assert [t["id"] for t in found] == [target["id"]]


def test_q_does_not_see_other_users(me: UserClient) -> None:
    UserClient(me.client).create("needle")
    assert me.list(q="needle").json()["data"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": "0"}, "limit"),
        ({"limit": "201"}, "limit"),
        ({"limit": "-1"}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"limit": "1.5"}, "limit"),
        ({"limit": "1e2"}, "limit"),
        ({"limit": "+5"}, "limit"),
        ({"limit": " 5"}, "limit"),
        ({"limit": "\u0665"}, "limit"),  # an Arabic-Indic five: a digit to Python, not to the API
        ({"limit": "9" * 5000}, "limit"),  # past Python's int() digit limit
        ({"limit": "0" * 20 + "5"}, "limit"),
        ({"limit": ""}, "limit"),
        ({"completed": "yes"}, "completed"),
        ({"completed": "True"}, "completed"),
        ({"completed": ""}, "completed"),
        ({"sort": "due"}, "sort"),
        ({"sort": "+title"}, "sort"),
        ({"sort": ""}, "sort"),
        ({"q": ""}, "q"),
        ({"q": "x" * 201}, "q"),
        ({"q": "nul\x00"}, "q"),
        ({"cursor": ""}, "cursor"),
        ({"cursor": "garbage"}, "cursor"),
        ({"cursor": "caf\u00e9.x"}, "cursor"),
    ],
)
def test_bad_parameters_are_422(me: UserClient, params: dict, field: str) -> None:
    assert invalid_field(me.list(**params)) == field


def test_repeated_parameter_is_422(me: UserClient) -> None:
    response = me.request("GET", "?limit=5&limit=5")
    assert invalid_field(response) == "limit"


def test_unknown_parameters_are_ignored(me: UserClient) -> None:
    assert me.list(page="2", foo="").status_code == 200


def test_limit_bounds_accepted(me: UserClient) -> None:
    assert me.list(limit="1").json()["meta"]["limit"] == 1
    assert me.list(limit="200").json()["meta"]["limit"] == 200


def test_next_cursor_is_null_exactly_on_the_last_page(me: UserClient) -> None:
    for i in range(10):
        me.create(f"t{i}")
    assert me.list(limit=10).json()["meta"]["next_cursor"] is None
    assert me.list(limit=9).json()["meta"]["next_cursor"] is not None
    pages = list(me.pages({"limit": 5}))
    assert [len(p) for p in pages] == [5, 5]


def _cursor(me: UserClient, **params: object) -> str:
    cursor = me.list(limit=2, **params).json()["meta"]["next_cursor"]
    assert cursor
    return cursor


def test_tampered_cursor_is_422(me: UserClient, titled: list[dict]) -> None:
    cursor = _cursor(me)
    head, _, mac = cursor.partition(".")
    flipped = head[:-1] + ("A" if head[-1] != "A" else "B")
    for forged in (f"{flipped}.{mac}", f"{head}.{mac[:-1]}x", head, cursor + "x", "." + mac):
        assert invalid_field(me.list(limit=2, cursor=forged)) == "cursor"


@pytest.mark.parametrize(
    "other",
    [{"sort": "title"}, {"completed": "true"}, {"q": "a"}],
    ids=["other-sort", "other-filter", "other-q"],
)
def test_cursor_is_bound_to_its_sort_and_filters(me: UserClient, titled: list[dict], other: dict) -> None:
    cursor = _cursor(me)
    assert invalid_field(me.list(limit=2, cursor=cursor, **other)) == "cursor"


def test_cursor_is_bound_to_its_user(me: UserClient, titled: list[dict]) -> None:
    cursor = _cursor(me)
    other = UserClient(me.client)
    assert invalid_field(other.list(limit=2, cursor=cursor)) == "cursor"


def test_limit_may_change_between_pages(me: UserClient, titled: list[dict]) -> None:
    cursor = _cursor(me)
    rest = me.list(limit=50, cursor=cursor).json()["data"]
    assert len(rest) == len(titled) - 2


def test_cursor_survives_deletion_of_its_row(me: UserClient) -> None:
    tasks = [me.create(f"t{i}") for i in range(6)]
    first = me.list(limit=3).json()
    last_on_page = first["data"][-1]
    me.request("DELETE", f"/{last_on_page['id']}")
    rest = me.list(limit=3, cursor=first["meta"]["next_cursor"]).json()["data"]
    assert [t["id"] for t in rest] == [t["id"] for t in reversed(tasks[:3])]


@pytest.mark.parametrize(
    "sort", ["created_at", "-created_at", "updated_at", "-updated_at", "title", "-title"]
)
def test_walk_is_stable_under_concurrent_inserts_and_deletes(server: LiveServer, sort: str) -> None:
    rng = random.Random(sort)
    walk_under_churn(
        server,
        lambda: {"title": f"task {rng.randrange(1000):03d}"},
        lambda me: me.pages({"sort": sort, "limit": 7}),
        tasks=100,
        doomed=20,
        seed=sort,
    )


def test_search_index_exactly_where_pg_trgm_is_available(database: Database) -> None:
    available = database.query("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    indexes = database.query("SELECT indexname FROM pg_indexes WHERE indexname LIKE 'tasks_%_trgm_idx'")
    expected = {"tasks_title_trgm_idx", "tasks_description_trgm_idx"} if available else set()
    assert {r["indexname"] for r in indexes} == expected


def test_searches_are_planned_for_their_text_every_time(database: Database) -> None:
    """After five runs PostgreSQL may reuse a generic plan, blind to the text (and to the trigram
    index, see above): every search on a connection must still get a plan of its own."""
    user = new_user()

    async def search_ten_times() -> list[asyncpg.Record]:
        pool = await asyncpg.create_pool(asyncpg_dsn(database.url), min_size=1, max_size=1)
        try:
            store = TaskStore(Runner(pool, acquire_timeout=5, statement_timeout=5))
            for _ in range(10):
                await store.list(user, ListQuery(q="rare text"))
            async with pool.acquire() as conn:
                return await conn.fetch(
                    "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement = $1",
                    list_query("-created_at", ("q",), False).sql,
                )
        finally:
            await pool.close()

    [counts] = asyncio.run(search_ten_times())
    assert (counts["generic_plans"], counts["custom_plans"]) == (0, 10)


# --- sorts by due date, priority and position; filters on priority, tags and due dates (CONTRACT §8) ---


PRIORITIES = ["none", "low", "medium", "high"]
NEW_SORTS = ["due_at", "-due_at", "priority", "-priority", "position"]


def _list(client: httpx.Client, user: str, params: object = None) -> httpx.Response:
    return client.get(f"/api/{user}/tasks", params=params, headers=auth(user))  # type: ignore[arg-type]


def _all(client: httpx.Client, user: str, *params: tuple[str, str], limit: int = 3) -> list[dict]:
    return [t for page in UserClient(client, user).pages([*params, ("limit", str(limit))]) for t in page]


def _field(response: httpx.Response) -> str:
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    return response.json()["error"]["details"][0]["field"]


def _at(days: float) -> str:
    return (datetime(2026, 12, 1, tzinfo=UTC) + timedelta(days=days)).isoformat().replace("+00:00", "Z")


@pytest.fixture
def mixed(app_client: httpx.Client, user: str) -> list[dict]:
    """Tasks with and without due dates (some equal), of every priority, with tags."""
    rng = random.Random(3)
    tasks = []
    for i in range(24):
        body: dict[str, object] = {
            "priority": PRIORITIES[i % 4],
            "tags": rng.sample(["Work", "home", "q4", "x"], i % 3),
        }
        if i % 3:
            body["due_at"] = _at(rng.choice([-2, -1, 0, 0, 1, 3, 10]))
        tasks.append(create_task(app_client, user, f"t{i}", **body))
    return tasks


def _due_key(task: dict, descending: bool) -> tuple:
    due = task["due_at"]
    missing = due is None
    value = datetime.fromisoformat(due).timestamp() if due else 0.0
    return (missing, -value if descending else value)


@pytest.mark.parametrize("sort", ["due_at", "-due_at"])
def test_due_sorts_put_missing_due_dates_last_both_ways_ties_by_id(
    app_client: httpx.Client, user: str, mixed: list[dict], sort: str
) -> None:
    descending = sort.startswith("-")
    listed = _all(app_client, user, ("sort", sort))
    expected = sorted(mixed, key=lambda t: t["id"], reverse=descending)
    expected = sorted(expected, key=lambda t: _due_key(t, descending))
    assert [t["id"] for t in listed] == [t["id"] for t in expected]
    assert listed[-1]["due_at"] is None
    assert listed[0]["due_at"] is not None


@pytest.mark.parametrize("sort", ["priority", "-priority"])
def test_priority_sorts_by_rank_then_created_at_then_id(
    app_client: httpx.Client, user: str, mixed: list[dict], sort: str
) -> None:
    descending = sort.startswith("-")
    listed = _all(app_client, user, ("sort", sort))
    expected = sorted(
        mixed, key=lambda t: (PRIORITIES.index(t["priority"]), t["created_at"], t["id"]), reverse=descending
    )
    assert [t["id"] for t in listed] == [t["id"] for t in expected]
    assert listed[0]["priority"] == ("high" if descending else "none")


def test_position_sort_is_the_manual_order(app_client: httpx.Client, user: str, mixed: list[dict]) -> None:
    listed = _all(app_client, user, ("sort", "position"))
    assert [t["id"] for t in listed] == [t["id"] for t in reversed(mixed)]
    keys = [t["position"].encode() for t in listed]
    assert keys == sorted(keys)


@pytest.mark.parametrize("priority", PRIORITIES)
def test_priority_filter(app_client: httpx.Client, user: str, mixed: list[dict], priority: str) -> None:
    listed = _all(app_client, user, ("priority", priority))
    assert {t["id"] for t in listed} == {t["id"] for t in mixed if t["priority"] == priority}
    assert listed


def test_tag_filter_is_case_insensitive_and_every_tag_must_be_present(
    app_client: httpx.Client, user: str, mixed: list[dict]
) -> None:
    def having(*tags: str) -> set[str]:
        return {
            t["id"] for t in mixed if all(x.casefold() in [y.casefold() for y in t["tags"]] for x in tags)
        }

    assert {t["id"] for t in _all(app_client, user, ("tag", "work"))} == having("work") != set()
    assert {t["id"] for t in _all(app_client, user, ("tag", "WORK"))} == having("work")
    both = _all(app_client, user, ("tag", "Work"), ("tag", "home"))
    assert {t["id"] for t in both} == having("work", "home") != set()
    assert _all(app_client, user, ("tag", "nope")) == []
    assert _all(app_client, user, ("tag", "work"), ("tag", "nope")) == []


def test_tag_filter_matches_whole_tags_only(app_client: httpx.Client, user: str) -> None:
    task = create_task(app_client, user, tags=["homework"])
    assert _all(app_client, user, ("tag", "home")) == []
    assert [t["id"] for t in _all(app_client, user, ("tag", "HomeWork"))] == [task["id"]]
    assert [t["id"] for t in _all(app_client, user, ("tag", " homework "))] == [task["id"]]


def test_due_filters_min_inclusive_max_exclusive(
    app_client: httpx.Client, user: str, mixed: list[dict]
) -> None:
    low, high = _at(0), _at(3)

    def between(lo: str | None, hi: str | None) -> set[str]:
        out = set()
        for t in mixed:
            if t["due_at"] is None:
                continue
            due = datetime.fromisoformat(t["due_at"])
            if (lo is None or due >= datetime.fromisoformat(lo)) and (
                hi is None or due < datetime.fromisoformat(hi)
            ):
                out.add(t["id"])
        return out

    assert {t["id"] for t in _all(app_client, user, ("due_min", low))} == between(low, None)
    assert {t["id"] for t in _all(app_client, user, ("due_max", high))} == between(None, high)
    got = {t["id"] for t in _all(app_client, user, ("due_min", low), ("due_max", high))}
    assert got == between(low, high)
    # Exactly at due_min is in; exactly at due_max is out.
    at_low = {t["id"] for t in mixed if t["due_at"] == low}
    assert at_low
    assert at_low <= got
    assert not at_low & {t["id"] for t in _all(app_client, user, ("due_max", low))}


def test_due_filters_honour_offsets(app_client: httpx.Client, user: str) -> None:
    task = create_task(app_client, user, due_at="2026-12-01T09:00:00Z")
    assert [t["id"] for t in _all(app_client, user, ("due_min", "2026-12-01T10:00:00+01:00"))] == [task["id"]]
    assert _all(app_client, user, ("due_min", "2026-12-01T10:00:01+01:00")) == []
    assert _all(app_client, user, ("due_max", "2026-12-01T04:00:00-05:00")) == []


def test_tasks_without_due_at_never_match_a_due_filter(app_client: httpx.Client, user: str) -> None:
    create_task(app_client, user)
    assert _all(app_client, user, ("due_min", "1000-01-01T00:00:00Z")) == []
    assert _all(app_client, user, ("due_max", "9998-01-01T00:00:00Z")) == []


def test_filters_combine_with_each_other_and_v1_filters(
    app_client: httpx.Client, user: str, mixed: list[dict]
) -> None:
    params = [
        ("priority", "high"),
        ("tag", "home"),
        ("completed", "false"),
        ("due_min", _at(-5)),
        ("sort", "due_at"),
    ]
    listed = _all(app_client, user, *params)
    expected = [
        t for t in mixed if t["priority"] == "high" and "home" in t["tags"] and t["due_at"] is not None
    ]
    assert {t["id"] for t in listed} == {t["id"] for t in expected}


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ([("priority", "urgent")], "priority"),
        ([("priority", "HIGH")], "priority"),
        ([("priority", "")], "priority"),
        ([("priority", "low"), ("priority", "high")], "priority"),
        ([("tag", "")], "tag"),
        ([("tag", "   ")], "tag"),
        ([("tag", "x" * 33)], "tag"),
        ([("tag", "a\x00")], "tag"),
        ([("tag", f"t{i}") for i in range(21)], "tag"),
        ([("due_min", "2026-12-01T09:00:00")], "due_min"),
        ([("due_min", "2026-12-01")], "due_min"),
        ([("due_max", "soon")], "due_max"),
        ([("due_max", "9999-12-31T23:59:59Z")], "due_max"),
        ([("due_min", "0001-01-01T00:30:00+01:00")], "due_min"),
        ([("due_max", "")], "due_max"),
        ([("due_min", "2026-12-01T09:00:00Z"), ("due_min", "2026-12-02T09:00:00Z")], "due_min"),
        ([("sort", "-position")], "sort"),
        ([("sort", "due")], "sort"),
        ([("sort", "+priority")], "sort"),
    ],
)
def test_bad_new_parameters_are_422(app_client: httpx.Client, user: str, params: list, field: str) -> None:
    assert _field(_list(app_client, user, params)) == field


def _first_cursor(client: httpx.Client, user: str, params: list[tuple[str, str]]) -> str:
    cursor = _list(client, user, [*params, ("limit", "1")]).json()["meta"]["next_cursor"]
    assert cursor
    return cursor


@pytest.mark.parametrize(
    ("first", "then"),
    [
        ([("priority", "high")], [("priority", "low")]),
        ([("priority", "high")], []),
        ([("tag", "work")], [("tag", "home")]),
        ([("tag", "work")], [("tag", "work"), ("tag", "home")]),
        ([("due_min", _at(-5))], [("due_min", _at(-4))]),
        ([("due_max", _at(50))], [("due_max", _at(51))]),
        ([("due_max", _at(50))], [("due_min", _at(-5))]),
        ([("sort", "due_at")], [("sort", "-due_at")]),
        ([("sort", "priority")], [("sort", "-priority")]),
        ([("sort", "position")], [("sort", "created_at")]),
    ],
)
def test_a_cursor_is_bound_to_every_filter_and_the_sort(
    app_client: httpx.Client, user: str, mixed: list[dict], first: list, then: list
) -> None:
    cursor = _first_cursor(app_client, user, first)
    assert _field(_list(app_client, user, [*then, ("cursor", cursor)])) == "cursor"
    assert _list(app_client, user, [*first, ("cursor", cursor)]).status_code == 200


def test_equivalent_tag_filters_share_cursors(app_client: httpx.Client, user: str, mixed: list[dict]) -> None:
    cursor = _first_cursor(app_client, user, [("tag", "x"), ("tag", "home")])
    assert _list(app_client, user, [("tag", "HOME"), ("tag", "x"), ("cursor", cursor)]).status_code == 200


@pytest.mark.parametrize("sort", NEW_SORTS)
def test_each_new_sort_pages_every_task_exactly_once_while_another_client_writes(
    server: LiveServer, sort: str
) -> None:
    rng = random.Random(sort)

    def body() -> dict[str, object]:
        due = {"due_at": _at(rng.randrange(-20, 20))} if rng.random() < 0.7 else {}
        return {"title": "t", "priority": rng.choice(PRIORITIES), **due}

    walk_under_churn(
        server, body, lambda me: me.pages([("sort", sort), ("limit", "6")]), tasks=80, doomed=15, seed=sort
    )
