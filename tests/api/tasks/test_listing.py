"""CONTRACT §4 Listing and §7: filters, six sorts, keyset cursors, and their refusals."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import asyncpg
import pytest

from service.db.migrations import migrate
from service.db.pool import asyncpg_dsn
from service.db.statements import Runner
from service.tasks.listing import SORTS, like_pattern, list_query
from service.tasks.schemas import ListQuery, TaskRead
from service.tasks.store import TaskStore
from tests.support.assertions import invalid_field
from tests.support.clients import UserClient, walk_under_churn
from tests.support.pg_cluster import PgCluster, system_bin_dir
from tests.support.postgres import Database, create_database
from tests.support.servers import LiveServer
from tests.support.tokens import new_user


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


@pytest.fixture(scope="module")
def big_database(pg_admin_url: str) -> Database:
    url = asyncio.run(create_database(pg_admin_url, "explain_test"))
    asyncio.run(migrate(asyncpg_dsn(url)))
    db = Database(url=url, admin_url=pg_admin_url)

    async def fill() -> None:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            await conn.execute(
                """INSERT INTO users (id) SELECT 'user-' || g FROM generate_series(0, 100) g;
                   INSERT INTO tasks (user_id, id, title, created_at, updated_at, position)
                   SELECT 'user-' || (g % 10 + 1), gen_random_uuid(), 'task ' || g,
                          now() - g * interval '1 second', now() - g * interval '1 second',
                          lpad(to_hex(g + 140737488355328), 12, '0')
                   FROM generate_series(1, 100000) g;
                   INSERT INTO tasks (user_id, id, title, created_at, updated_at, position)
                   SELECT 'user-0', gen_random_uuid(), 'mine ' || g,
                          now() - g * interval '1 second', now() - g * interval '1 second',
                          lpad(to_hex(g + 140737488355328), 12, '0')
                   FROM generate_series(1, 10000) g;
                   ANALYZE tasks;"""
            )
        finally:
            await conn.close()

    asyncio.run(fill())
    return db


@pytest.mark.parametrize("sort", ["-created_at", "created_at", "-updated_at", "title", "-title"])
@pytest.mark.parametrize("after", [False, True], ids=["first-page", "next-page"])
def test_listing_uses_an_index_scan(big_database: Database, sort: str, after: bool) -> None:
    """10,000 tasks of one user among 100,000 of others: each sort is served by an index, with no sort step."""
    query = list_query(sort, (), after)
    args: dict[str, object] = {"user_id": "user-0", "limit": 51}
    if after:
        probe = big_database.query(
            "SELECT id, title, created_at, updated_at FROM tasks WHERE user_id = 'user-0' LIMIT 1"
        )[0]
        task = TaskRead(
            probe["id"],
            probe["title"],
            None,
            False,
            "user-0",
            probe["created_at"],
            probe["updated_at"],
            *(None, "none", [], None, "800000000000"),  # the v2 fields: no sort here reads them
        )
        args.update(SORTS[sort].after_values(SORTS[sort].position(task)))
    plan = "\n".join(r[0] for r in big_database.query(f"EXPLAIN {query.sql}", *query.args(args)))
    assert "Index Scan" in plan or "Index Only Scan" in plan, plan
    assert "Sort" not in plan.replace("Sort Key", ""), plan
    assert "Seq Scan" not in plan, plan
    index = {"created_at": "tasks_user_created_idx", "updated_at": "tasks_user_updated_idx"}
    assert index.get(sort.lstrip("-"), "tasks_user_title_idx") in plan, plan


def test_search_index_exactly_where_pg_trgm_is_available(database: Database) -> None:
    available = database.query("SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm'")
    indexes = database.query("SELECT indexname FROM pg_indexes WHERE indexname LIKE 'tasks_%_trgm_idx'")
    expected = {"tasks_title_trgm_idx", "tasks_description_trgm_idx"} if available else set()
    assert {r["indexname"] for r in indexes} == expected


@pytest.fixture(scope="module")
def trgm_database() -> Iterator[Database]:
    """Debian's PostgreSQL, which ships pg_trgm, migrated and holding one user's 20,000 long tasks."""
    bin_dir = system_bin_dir()
    if bin_dir is None:
        pytest.skip("no system PostgreSQL with pg_trgm (.ci/run installs Debian's)")
    cluster = PgCluster(bin_dir=bin_dir)
    cluster.start()
    try:
        url = asyncio.run(create_database(cluster.url, "trgm_test"))
        asyncio.run(migrate(asyncpg_dsn(url)))
        db = Database(url=url, admin_url=cluster.url)
        db.script(
            """INSERT INTO users (id) VALUES ('user-0'), ('user-1');
               INSERT INTO tasks (user_id, id, title, description, created_at, updated_at, position)
               SELECT 'user-' || (g % 2), gen_random_uuid(), 'task ' || md5(g::text),
                      repeat(md5(g::text), 30), now() - g * interval '1 second', now(),
                      lpad(to_hex(g + 140737488355328), 12, '0')
               FROM generate_series(1, 20000) g;
               ANALYZE tasks;"""
        )
        yield db
    finally:
        cluster.destroy()


def test_search_for_a_rare_text_uses_the_trigram_index(trgm_database: Database) -> None:
    """A `q` that matches nothing must not read all of the user's rows: the trigram index finds none."""
    query = list_query("-created_at", ("q",), False)
    args = {"user_id": "user-0", "limit": 51, "pattern": like_pattern("no such text")}
    plan = "\n".join(r[0] for r in trgm_database.query(f"EXPLAIN {query.sql}", *query.args(args)))
    assert "tasks_title_trgm_idx" in plan, plan
    assert "tasks_description_trgm_idx" in plan, plan
    assert "Seq Scan" not in plan, plan


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
