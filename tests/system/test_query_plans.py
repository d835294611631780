"""The listing's statements at a realistic size: EXPLAIN on 100,000 tasks of others shows each sort
read from its index with no sort step, the trigram index serves a rare search (Debian's PostgreSQL,
a cluster of its own), and keyset pages over the data give exactly the rows of one query."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import asyncpg
import pytest

from service.db.migrations import migrate
from service.db.pool import asyncpg_dsn
from service.tasks.columns import READ_COLUMNS
from service.tasks.listing import tree
from service.tasks.listing.query import SORTS, like_pattern, list_query
from service.tasks.schemas import TaskRead
from tests.support.pg_cluster import PgCluster, system_bin_dir
from tests.support.postgres import Database, create_database

NEW_SORTS = ["due_at", "-due_at", "priority", "-priority"]
READ_COLUMNS_SQL = [c.name for c in READ_COLUMNS]


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
            *(None, "none", [], None, "800000000000", None, None),  # later fields: no sort here reads them
        )
        args.update(SORTS[sort].after_values(SORTS[sort].position(task)))
    plan = "\n".join(r[0] for r in big_database.query(f"EXPLAIN {query.sql}", *query.args(args)))
    assert "Index Scan" in plan or "Index Only Scan" in plan, plan
    assert "Sort" not in plan.replace("Sort Key", ""), plan
    assert "Seq Scan" not in plan, plan
    index = {"created_at": "tasks_user_created_idx", "updated_at": "tasks_user_updated_idx"}
    assert index.get(sort.lstrip("-"), "tasks_user_title_idx") in plan, plan


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


@pytest.fixture(scope="module")
def big_database_with_every_field(pg_admin_url: str) -> Database:
    """10,000 tasks of one user among 100,000 of ten others, with every new field spread out."""
    url = asyncio.run(create_database(pg_admin_url, "explain_v2"))
    asyncio.run(migrate(asyncpg_dsn(url)))
    db = Database(url=url, admin_url=pg_admin_url)
    db.query("""INSERT INTO users (id) SELECT 'user-' || g FROM generate_series(0, 10) g""")
    db.query(
        """INSERT INTO tasks (user_id, id, title, created_at, updated_at, due_at, priority, tags, tag_keys, position)
           SELECT CASE WHEN g <= 10000 THEN 'user-0' ELSE 'user-' || (g % 10 + 1) END,
                  gen_random_uuid(), 'task ' || g,
                  now() - (g / 3) * interval '1 second', now() - g * interval '1 second',
                  CASE WHEN g % 4 <> 0 THEN now() + (g % 1000) * interval '1 hour' END,
                  (ARRAY['none', 'low', 'medium', 'high'])[g % 4 + 1]::task_priority,
                  ARRAY['tag' || (g % 7)], ARRAY['tag' || (g % 7)],
                  lpad(to_hex(g + 140737488355328), 12, '0')
           FROM generate_series(1, 110000) g"""
    )
    db.query("ANALYZE tasks")
    return db


@pytest.mark.parametrize(
    ("sort", "index"),
    [
        ("due_at", "tasks_user_due_idx"),
        ("-due_at", "tasks_user_due_desc_idx"),
        ("priority", "tasks_user_priority_idx"),
        ("-priority", "tasks_user_priority_idx"),
    ],
)
@pytest.mark.parametrize("after", ["first-page", "after-a-due-task", "after-a-task-without-due"])
def test_each_new_sort_is_an_index_scan_without_a_sort_step(
    big_database_with_every_field: Database, sort: str, index: str, after: str
) -> None:
    """10,000 tasks of one user among 110,000: each new sort reads its index in order, first page or next."""
    query = list_query(sort, (), after != "first-page")
    values: dict[str, object] = {"user_id": "user-0", "limit": 51}
    if after != "first-page":
        due = "IS NOT NULL" if after == "after-a-due-task" else "IS NULL"
        row = big_database_with_every_field.query(
            f"SELECT {', '.join(READ_COLUMNS_SQL)} FROM tasks WHERE user_id = 'user-0' AND due_at {due} LIMIT 1"  # noqa: S608
        )[0]
        task = TaskRead(*row)
        values.update(SORTS[sort].after_values(SORTS[sort].position(task)))
    plan = "\n".join(
        r[0] for r in big_database_with_every_field.query(f"EXPLAIN {query.sql}", *query.args(values))
    )
    assert "Index Scan" in plan or "Index Only Scan" in plan, plan
    assert "Sort" not in plan.replace("Sort Key", ""), plan
    assert "Seq Scan" not in plan, plan
    assert index in plan, plan


@pytest.mark.parametrize("sort", NEW_SORTS)
def test_each_new_sort_pages_the_big_user_exactly_like_one_query(
    big_database_with_every_field: Database, sort: str
) -> None:
    """Keyset pages over the EXPLAIN data (nulls, ties) give exactly the rows of one ordered query."""
    import asyncpg

    from service.tasks.listing.query import Page

    async def walk() -> tuple[list[uuid.UUID], list[uuid.UUID]]:
        conn = await asyncpg.connect(asyncpg_dsn(big_database_with_every_field.url))
        try:
            seen: list[uuid.UUID] = []
            position = None
            while True:
                query = list_query(sort, (), position is not None)
                values: dict[str, object] = {"user_id": "user-0", "limit": 1001}
                if position is not None:
                    values.update(SORTS[sort].after_values(position))
                rows = await conn.fetch(query.sql, *query.args(values))
                items = [TaskRead(*r) for r in rows[:1000]]
                page = Page(items, SORTS[sort].position(items[-1]) if len(rows) > 1000 else None)
                seen += [t.id for t in page.items]
                if page.next is None:
                    break
                position = page.next
            whole = list_query(sort, (), False)
            everything = await conn.fetch(whole.sql, *whole.args({"user_id": "user-0", "limit": 100_000}))
            return seen, [r["id"] for r in everything]
        finally:
            await conn.close()

    seen, everything = asyncio.run(walk())
    assert len(seen) == 10_000
    assert seen == everything


@pytest.fixture(scope="module")
def big_tree(pg_admin_url: str) -> Database:
    """110,000 tasks: one user's 10,000 in the Inbox and two lists, three levels deep, among others'."""
    url = asyncio.run(create_database(pg_admin_url, "explain_v3"))
    asyncio.run(migrate(asyncpg_dsn(url)))
    db = Database(url=url, admin_url=pg_admin_url)
    db.query("""INSERT INTO users (id) SELECT 'user-' || g FROM generate_series(0, 10) g""")
    db.query(
        """INSERT INTO lists (user_id, id, name, position, created_at, updated_at)
           SELECT 'user-' || g, ('00000000-0000-7000-8000-00000000000' || g)::uuid, 'list', '800000000001', now(), now()
           FROM generate_series(0, 9) g"""
    )
    # Level 1 every 9th task, level 2 and 3 under it: ancestries are made from the positions.
    db.query(
        """INSERT INTO tasks (user_id, id, title, list_id, parent_id, ancestry, position)
           SELECT CASE WHEN g <= 10000 THEN 'user-0' ELSE 'user-' || (g % 10) END, gen_random_uuid(), 'task ' || g,
                  CASE WHEN g % 2 = 0 THEN ('00000000-0000-7000-8000-00000000000' ||
                       CASE WHEN g <= 10000 THEN 0 ELSE g % 10 END)::uuid END,
                  CASE WHEN g % 3 <> 0 THEN gen_random_uuid() END,
                  CASE g % 3 WHEN 1 THEN lpad(to_hex(g + 140737488355328), 12, '0') || '.'
                             WHEN 2 THEN lpad(to_hex(g + 140737488355328), 12, '0') || '.'
                                         || lpad(to_hex(g + 140737488355328), 12, '0') || '.' END,
                  lpad(to_hex(g + 140737488355328), 12, '0')
           FROM generate_series(1, 110000) g"""
    )
    db.query("ANALYZE tasks")
    return db


@pytest.mark.parametrize("inbox", [True, False], ids=["inbox", "a-list"])
@pytest.mark.parametrize("after", [False, True], ids=["first-page", "next-page"])
@pytest.mark.parametrize("under", [False, True], ids=["every-level", "under-a-parent"])
def test_tree_order_is_one_range_of_the_tree_index(
    big_tree: Database, inbox: bool, after: bool, under: bool
) -> None:
    """sort=position within a list (or the Inbox), first page or next, a parent's subtasks or all: an
    index scan of tasks_user_tree_key, no sort step."""
    filters = ("parent_id",) if under else ()
    query = tree._range_query(inbox, filters, after, under)
    values: dict[str, object] = {
        "user_id": "user-0",
        "list_id": uuid.UUID("00000000-0000-7000-8000-000000000000"),
        "after_key": "800000000100",
        "parent_key": "800000000010",
        "parent_id": uuid.uuid4(),
        "limit": 51,
    }
    plan = "\n".join(r[0] for r in big_tree.query(f"EXPLAIN {query.sql}", *query.args(values)))
    assert "tasks_user_tree_key" in plan, plan
    assert "Sort" not in plan.replace("Sort Key", ""), plan
    assert "Seq Scan" not in plan and "Bitmap" not in plan, plan


@pytest.mark.parametrize("sort", ["-created_at", "title", "due_at"])
@pytest.mark.parametrize("inbox", [True, False], ids=["inbox", "a-list"])
def test_a_parents_children_in_any_sort_read_its_subtree_only(
    big_tree: Database, sort: str, inbox: bool
) -> None:
    """parent_id in a sort the tree index does not give: the parent's range of the tree index (its
    subtree), never every task of the user filtered in the sort's own index."""
    where = "in the Inbox" if inbox else "in a list"
    query = list_query(sort, (f"parent_id {where}",), False)
    values: dict[str, object] = {
        "user_id": "user-0",
        "parent_list": uuid.UUID("00000000-0000-7000-8000-000000000000"),
        "parent_key": "800000000010",
        "parent_id": uuid.uuid4(),
        "limit": 51,
    }
    plan = "\n".join(r[0] for r in big_tree.query(f"EXPLAIN {query.sql}", *query.args(values)))
    assert "tasks_user_tree_key" in plan, plan
    assert "Seq Scan" not in plan, plan
