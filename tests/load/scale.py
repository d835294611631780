"""Does a request cost the same on a big table? Latency of each operation, small database vs large.

    python -m tests.load.scale --tasks 1000000 --users 10000 --heavy 100000 --out scale-report
    python -m tests.load.scale --tasks 10000000 --users 100000 --heavy 100000   # the full size

For each of two databases, a small one (--small-tasks across --small-users, one of whom is
measured) and a large one (--tasks across --users, plus one heavy user with --heavy tasks, who is
measured), it migrates an empty database to the newest schema and bulk-loads it with COPY
(indexes, unique keys and triggers off during the load, rebuilt after it; every column filled as
the service would: positions, tags and their keys, priorities, due dates, change numbers, lists
and subtasks, and the users' and lists' counters; SQL assertions check it after the load). The
measured user's tasks are spread over the Inbox and --lists lists (fewer when there are fewer
than 24 tasks per list), in trees three levels deep; every other user has 3 lists and some
subtasks. It then starts `python -m service` on it and times each operation one request at a
time (no queueing: the cost of the request itself): list first page, a deep cursor page, get,
the lists, one list's first and deep page, tree order (sort=position) in one list and across
lists, a task's children, stats of one list, create, update, a `q` search that matches 1% of the
user's tasks and one that matches nothing, moves (a leaf anywhere, a leaf beside its sibling, a
subtree to another list and back, a task under a parent and back), stats and the changes feed.
It prints and writes (report.json, report.md) p50/p99 per operation and the large/small p99
ratio; `python -m tests.load.scale_chart DIR` draws the chart.

PostgreSQL: a throwaway cluster (the pgserver wheel's binaries, fsync off, default
shared_buffers), or --dsn for an existing server's admin URL (the databases `scale_small` and
`scale_large` are created there, and dropped again unless --keep).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import random
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx

from service.db.migrations import migrate
from service.db.pool import asyncpg_dsn
from service.tasks.order import positions
from tests.support.pg_cluster import PgCluster
from tests.support.postgres import _with_database, create_database
from tests.support.servers import start_service
from tests.support.tokens import make_token

SECRET = "scale-secret-0123456789abcdef0123456789abcdef"
WORDS = [f"word{i:02d}" for i in range(100)]  # each title carries one: a word matches 1% of tasks
MISS = "nothing-matches-this"
ABSENT = (404, 405)


@dataclass
class Size:
    label: str
    users: int  # besides the measured user
    tasks_per_user: int
    measured_tasks: int
    measured_lists: int

    @property
    def total(self) -> int:
        return self.users * self.tasks_per_user + self.measured_tasks


@dataclass
class Timings:
    samples: dict[str, list[float]] = field(default_factory=dict)
    absent: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            op: {"p50_ms": _percentile(s, 50), "p99_ms": _percentile(s, 99), "n": len(s)}
            for op, s in self.samples.items()
        }


def _percentile(samples: list[float], q: int) -> float:
    ordered = sorted(samples)
    return round(ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] * 1000, 2)


TAGS = [f"Tag{i}" for i in range(10)]
PRIORITIES = ("none", "low", "medium", "high")
# A user's tasks come in units laid out depth-first, by level (1 = top level): the measured user's
# unit is a tree of 10 (a task, 3 children, 2 grandchildren each) and 2 tasks without subtasks;
# every other user's a tree of 4 (a task, 2 children, one of them with a child) and 6 single tasks.
HEAVY_UNIT = (1, 2, 3, 3, 2, 3, 3, 2, 3, 3, 1, 1)
LIGHT_UNIT = (1, 2, 3, 2, 1, 1, 1, 1, 1, 1)
LIGHT_LISTS = 3
SEPARATOR = "."


@dataclass
class Template:
    """A user's `count` tasks but for the ids: every column of the newest schema, valid.

    The units go to the Inbox and the lists in turn, contiguous runs of whole units (a tree never
    spans two lists). About a quarter completed (every fifth unit whole, and one leaf in eight of
    the rest: a completed task never has an active descendant), a fifth with a due date (half of
    them past), a seventh tagged; newest first in the manual order (integer positions 0, 1, ...,
    unique per user, so among siblings too), lists numbered for sync first, then the tasks oldest
    first. `rows` hold the task columns but user, id, list_id and parent_id; `containers[j]` is
    task j's list (0: the Inbox, k: the user's k-th list), `parents[j]` its parent's index (-1).
    """

    lists: int
    rows: list[tuple[Any, ...]]
    containers: list[int]
    parents: list[int]

    @classmethod
    def of(cls, count: int, now: datetime, unit: tuple[int, ...], lists: int) -> Template:
        units = -(-count // len(unit))
        levels = [unit[j % len(unit)] for j in range(count)]
        containers = [(j // len(unit)) * (lists + 1) // max(1, units) for j in range(count)]
        parents: list[int] = []
        keys: list[str] = []
        last = {0: -1}  # the latest task seen at each level
        for j, level in enumerate(levels):
            parent = last[level - 1]
            last[level] = j
            parents.append(parent)
            keys.append((keys[parent] + SEPARATOR if parent >= 0 else "") + positions.int_key(j))
        completed: list[bool] = []
        for j, level in enumerate(levels):
            leaf = j + 1 == count or levels[j + 1] <= level
            done = (j // len(unit)) % 5 == 0 or (leaf and j % 8 == 1)
            completed.append(done or (parents[j] >= 0 and completed[parents[j]]))
        rows = []
        for j in range(count):
            created = now - timedelta(minutes=j)
            tag = [TAGS[j % len(TAGS)]] if j % 7 == 0 else []
            rows.append(
                (
                    f"task {j} {WORDS[j % len(WORDS)]}",
                    f"notes for task {j}" if j % 3 == 0 else None,
                    completed[j],
                    created,
                    created,
                    now + timedelta(hours=j % 240 - 120) if j % 5 == 0 else None,
                    PRIORITIES[(j // 4) % 4],
                    tag,
                    [t.casefold() for t in tag],
                    created if completed[j] else None,
                    positions.int_key(j),
                    lists + count - j,
                    keys[parents[j]] + SEPARATOR if parents[j] >= 0 else None,
                )
            )
        return cls(lists, rows, containers, parents)

    @property
    def completed(self) -> int:
        return sum(1 for r in self.rows if r[2])

    def list_counts(self) -> list[tuple[int, int]]:
        """(tasks, completed) of each list, the Inbox left out."""
        counts = [[0, 0] for _ in range(self.lists + 1)]
        for row, container in zip(self.rows, self.containers, strict=True):
            counts[container][0] += 1
            counts[container][1] += row[2]
        return [(n, done) for n, done in counts[1:]]


COLUMNS = [
    "user_id",
    "id",
    "title",
    "description",
    "completed",
    "created_at",
    "updated_at",
    "due_at",
    "priority",
    "tags",
    "tag_keys",
    "completed_at",
    "position",
    "change_seq",
    "ancestry",
    "list_id",
    "parent_id",
]
LIST_COLUMNS = [
    "user_id",
    "id",
    "name",
    "position",
    "version",
    "created_at",
    "updated_at",
    "change_seq",
    "task_count",
    "completed_count",
]


async def load(admin_url: str, size: Size, measured: str) -> str:
    """A database of `size` at the newest schema, bulk-loaded with COPY; returns its URL.

    Indexes, unique constraints and triggers are off during the COPY: the rows carry what the
    triggers would have written (change numbers, lists' counters), the users' rows the counters
    the statements and triggers keep (task_count, completed_count, position_head, change_seq,
    tag_counts), exactly; `check` then asserts it in SQL.
    """
    url = await create_database(admin_url, f"scale_{size.label}")
    dsn = asyncpg_dsn(url)
    await migrate(dsn)
    users = [f"scale-user-{i:06d}" for i in range(size.users)]
    now = datetime.now(UTC)
    heavy = Template.of(size.measured_tasks, now, HEAVY_UNIT, size.measured_lists)
    light = Template.of(size.tasks_per_user, now, LIGHT_UNIT, min(LIGHT_LISTS, size.tasks_per_user))
    new_id = uuid.uuid4
    list_ids = {user: [new_id() for _ in range(t.lists)] for user, t in [(measured, heavy)]}
    list_ids.update((user, [new_id() for _ in range(light.lists)]) for user in users)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("SET maintenance_work_mem = '1GB'")
        started = time.perf_counter()
        indexes = await conn.fetch(
            """SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'tasks'
               AND indexname NOT IN (SELECT conname FROM pg_constraint WHERE conrelid = 'tasks'::regclass)"""
        )
        keys = await conn.fetch(
            """SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint
               WHERE conrelid = 'tasks'::regclass AND contype IN ('p', 'u')"""
        )
        for index in indexes:
            await conn.execute(f'DROP INDEX "{index["indexname"]}"')
        for key in keys:
            await conn.execute(f'ALTER TABLE tasks DROP CONSTRAINT "{key["conname"]}"')
        await conn.execute("ALTER TABLE tasks DISABLE TRIGGER ALL")
        await conn.execute("ALTER TABLE lists DISABLE TRIGGER ALL")

        def counters(user: str, t: Template) -> tuple[Any, ...]:
            return (user, len(t.rows), t.completed, 0, t.lists + len(t.rows))

        await conn.copy_records_to_table(
            "users",
            records=[counters(measured, heavy), *(counters(u, light) for u in users)],
            columns=["id", "task_count", "completed_count", "position_head", "change_seq"],
        )

        def list_records(user: str, t: Template) -> Iterator[tuple[Any, ...]]:
            # Made before the user's tasks, one a minute, and numbered first.
            first = now - timedelta(minutes=len(t.rows) + t.lists)
            for k, ((n, done), list_id) in enumerate(zip(t.list_counts(), list_ids[user], strict=True)):
                made = first + timedelta(minutes=k)
                yield (user, list_id, f"List {k + 1}", positions.int_key(k), 1, made, made, k + 1, n, done)

        await conn.copy_records_to_table(
            "lists",
            records=[*list_records(measured, heavy), *(r for u in users for r in list_records(u, light))],
            columns=LIST_COLUMNS,
        )

        def records() -> Iterator[tuple[Any, ...]]:
            for user, t in itertools.chain([(measured, heavy)], ((u, light) for u in users)):
                ids = [new_id() for _ in t.rows]
                lists = [None, *list_ids[user]]
                for row, container, parent, task_id in zip(t.rows, t.containers, t.parents, ids, strict=True):
                    yield (user, task_id, *row, lists[container], ids[parent] if parent >= 0 else None)

        await conn.copy_records_to_table("tasks", records=records(), columns=COLUMNS)

        def tag_counts(user: str, t: Template) -> Iterator[tuple[Any, ...]]:
            counted = Counter(
                (key, tag) for r in t.rows if not r[2] for tag, key in zip(r[7], r[8], strict=True)
            )
            for (key, tag), n in counted.items():
                yield (user, key, tag, n)

        await conn.copy_records_to_table(
            "tag_counts",
            records=[
                *tag_counts(measured, heavy),
                *(row for u in users for row in tag_counts(u, light)),
            ],
            columns=["user_id", "tag_key", "tag", "tasks"],
        )
        await conn.execute("ALTER TABLE tasks ENABLE TRIGGER ALL")
        await conn.execute("ALTER TABLE lists ENABLE TRIGGER ALL")
        copied = time.perf_counter()
        for key in keys:
            await conn.execute(f'ALTER TABLE tasks ADD CONSTRAINT "{key["conname"]}" {key["definition"]}')
        for index in indexes:
            await conn.execute(index["indexdef"])
        indexed = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE) tasks")
        await conn.execute("VACUUM (ANALYZE) users")
        await conn.execute("VACUUM (ANALYZE) lists")
        vacuumed = time.perf_counter()
        await check(conn)
        # Written out now, not by a checkpoint in the middle of the timed writes (their commits
        # would wait behind it): the load must not be measured as the requests' cost.
        await conn.execute("CHECKPOINT")
        print(
            f"scale: {size.label}: {size.total:,} tasks, {size.users + 1:,} users; COPY {copied - started:.0f} s, "
            f"indexes {indexed - copied:.0f} s, VACUUM {vacuumed - indexed:.0f} s, "
            f"checks {time.perf_counter() - vacuumed:.0f} s",
            file=sys.stderr,
        )
    finally:
        await conn.close()
    return url


# Each must find no row: what the service's statements and triggers keep, the load wrote too.
CHECKS = {
    "a list's task_count or completed_count differs from its tasks": """
        SELECT l.user_id, l.id FROM lists AS l
        LEFT JOIN (SELECT user_id, list_id, count(*) AS n, count(*) FILTER (WHERE completed) AS done
                   FROM tasks WHERE list_id IS NOT NULL GROUP BY 1, 2) AS t
               ON t.user_id = l.user_id AND t.list_id = l.id
        WHERE l.task_count <> coalesce(t.n, 0) OR l.completed_count <> coalesce(t.done, 0) LIMIT 5""",
    "a user's counters differ from their tasks and lists": """
        SELECT u.id FROM users AS u
        LEFT JOIN (SELECT user_id, count(*) AS n, count(*) FILTER (WHERE completed) AS done,
                          max(change_seq) AS seq, min(integer_part) AS lowest
                   FROM (SELECT user_id, completed, change_seq,
                                ('x' || left(position, 12))::bit(48)::bigint - (1::bigint << 47) AS integer_part
                         FROM tasks) AS r GROUP BY 1) AS t ON t.user_id = u.id
        LEFT JOIN (SELECT user_id, max(change_seq) AS seq FROM lists GROUP BY 1) AS l ON l.user_id = u.id
        WHERE u.task_count <> coalesce(t.n, 0) OR u.completed_count <> coalesce(t.done, 0)
           OR u.change_seq <> greatest(t.seq, l.seq, 0) OR u.position_head > coalesce(t.lowest, 0)
        LIMIT 5""",
    "a subtask whose parent is missing, in another list, not its ancestry's, or completed above it": """
        SELECT c.user_id, c.id FROM tasks AS c
        LEFT JOIN tasks AS p ON p.user_id = c.user_id AND p.id = c.parent_id
        WHERE c.parent_id IS NOT NULL
          AND (p.id IS NULL OR p.list_id IS DISTINCT FROM c.list_id
               OR c.ancestry <> coalesce(p.ancestry, '') || p.position || '.'
               OR (p.completed AND NOT c.completed))
        LIMIT 5""",
    "a task deeper than 4 levels, or a tree key that is not its parent's": """
        SELECT user_id, id FROM tasks
        WHERE length(ancestry) - length(replace(ancestry, '.', '')) > 3
           OR (parent_id IS NULL) <> (ancestry IS NULL) LIMIT 5""",
    "a tag count that differs from the active tasks": """
        SELECT coalesce(c.user_id, t.user_id) FROM tag_counts AS c
        FULL JOIN (SELECT user_id, k.key, k.tag, count(*) AS n FROM tasks, unnest(tags, tag_keys) AS k (tag, key)
                   WHERE NOT completed GROUP BY 1, 2, 3) AS t
               ON t.user_id = c.user_id AND t.key = c.tag_key AND t.tag = c.tag
        WHERE c.tasks IS DISTINCT FROM t.n LIMIT 5""",
}


async def check(conn: asyncpg.Connection) -> None:
    """Assert the loaded data is what the service would have written (every CHECKS query finds nothing)."""
    await conn.execute("SET work_mem = '256MB'")
    for what, sql in CHECKS.items():
        found = await conn.fetch(sql)
        if found:
            raise AssertionError(f"scale: the load is wrong: {what}: {[tuple(r) for r in found]}")
    levels = await conn.fetchval(
        "SELECT max(length(ancestry) - length(replace(ancestry, '.', ''))) + 1 FROM tasks"
    )
    print(f"scale: checks pass; deepest level {levels}", file=sys.stderr)


def _timed(
    timings: Timings, op: str, n: int, call: Callable[[int], httpx.Response], expect: tuple[int, ...]
) -> None:
    """Time `call` n times (after a few unmeasured warm-ups); an absent route is noted, not timed."""
    first = call(-1)
    if first.status_code in ABSENT and first.headers.get("content-type", "").startswith("application/json"):
        timings.absent[op] = first.status_code
        return
    for i in range(-3, n):
        started = time.perf_counter()
        response = call(i)
        elapsed = time.perf_counter() - started
        if response.status_code not in expect:
            raise RuntimeError(f"{op}: {response.status_code} {response.text[:300]}")
        if i >= 0:
            timings.samples.setdefault(op, []).append(elapsed)


@dataclass
class Plan:
    """The measured user's tasks and lists that the operations use, read from the loaded database.

    Each kind of move works in lists of its own (by the list's place, modulo 4), so one never
    undoes another's setting: leaves beside their siblings, subtrees to the next list and back,
    single tasks under a child task of their list and back to the top level.
    """

    known: list[str]  # random tasks: get, update, the anchors of `move`
    lists: list[tuple[str, int]]  # (id, tasks) in the user's order of lists
    inbox: int  # tasks in the Inbox
    parents: list[str]  # tasks with subtasks
    sibling_pairs: list[tuple[str, str]]  # two leaves under one parent
    subtrees: list[tuple[str, str, str]]  # (a top-level task with subtasks, its list, another list)
    under: list[tuple[str, str]]  # (a top-level task without subtasks, a level-2 task of its list)
    leaves: list[str]  # tasks without subtasks: `move`

    @property
    def middle(self) -> tuple[str, int]:
        """The list in the middle of the user's order, and its size."""
        return self.lists[len(self.lists) // 2]


PLAN_TASKS = """SELECT id::text, list_id::text, parent_id::text, ancestry FROM tasks WHERE user_id = $1
                ORDER BY list_id NULLS FIRST, coalesce(ancestry, '') || position"""


async def read_plan(url: str, user: str) -> Plan:
    rng = random.Random(11)
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        known = await conn.fetch(
            "SELECT id::text FROM tasks WHERE user_id = $1 ORDER BY random() LIMIT 1000", user
        )
        lists = await conn.fetch(
            "SELECT id::text, task_count FROM lists WHERE user_id = $1 ORDER BY position", user
        )
        rows = await conn.fetch(PLAN_TASKS, user)
    finally:
        await conn.close()
    place = {r["id"]: k for k, r in enumerate(lists)}
    kind = {r["id"]: place[r["list_id"]] % 4 if r["list_id"] else None for r in rows}
    children: dict[str, list[str]] = {}
    level_two: dict[str, str] = {}
    for r in rows:
        if r["parent_id"]:
            children.setdefault(r["parent_id"], []).append(r["id"])
        if r["ancestry"] and r["ancestry"].count(SEPARATOR) == 1 and r["list_id"]:
            level_two.setdefault(r["list_id"], r["id"])
    leaves = {r["id"] for r in rows} - children.keys()
    pairs = [
        (below[0], below[1])
        for parent, below in children.items()
        if kind[parent] == 0 and len(below) > 1 and below[0] in leaves and below[1] in leaves
    ]
    subtrees = [
        (r["id"], r["list_id"], lists[(place[r["list_id"]] + 1) % len(lists)]["id"])
        for r in rows
        if r["id"] in children and r["parent_id"] is None and kind[r["id"]] == 1
    ]
    under = [
        (r["id"], level_two[r["list_id"]])
        for r in rows
        if r["id"] in leaves and r["parent_id"] is None and kind[r["id"]] == 2 and r["list_id"] in level_two
    ]
    moving = [r["id"] for r in rows if r["id"] in leaves and kind[r["id"]] == 3]
    inbox = sum(1 for r in rows if r["list_id"] is None)
    for found in (pairs, subtrees, under, moving):
        rng.shuffle(found)
        if not found:
            raise RuntimeError("scale: the measured user has too few lists for every kind of move")
    return Plan(
        [r["id"] for r in known],
        [(r["id"], r["task_count"]) for r in lists],
        inbox,
        rng.sample(sorted(children), min(1000, len(children))),
        pairs[:1000],
        subtrees[:1000],
        under[:1000],
        moving[:1000],
    )


def _cursor_at(client: httpx.Client, path: str, params: dict[str, Any], depth: int) -> str | None:
    """The cursor after the first `depth` tasks of a listing (pages of 200, then one that lands on it)."""
    cursor, seen = None, 0
    while seen < depth:
        page = client.get(
            path, params={**params, "limit": min(200, depth - seen), **({"cursor": cursor} if cursor else {})}
        )
        if page.status_code != 200:
            raise RuntimeError(f"walking {params}: {page.status_code} {page.text[:300]}")
        body = page.json()
        seen += len(body["data"])
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            break
    return cursor


class Alternating:
    """Each call does a thing to the next item, or, the second time round, undoes it (moves there
    and back), so every timed request is a real move and the tree ends as it began."""

    def __init__(self, items: list[Any], there: Callable[[Any], Any], back: Callable[[Any], Any]) -> None:
        self.items, self.there, self.back, self.calls = items, there, back, 0

    def __call__(self, _: int) -> httpx.Response:
        item = self.items[(self.calls // 2) % len(self.items)]
        step = self.there if self.calls % 2 == 0 else self.back
        self.calls += 1
        response: httpx.Response = step(item)
        return response


def measure(base: str, user: str, n: int, plan: Plan, depth: int) -> Timings:
    timings = Timings()
    headers = {"Authorization": f"Bearer {make_token(user, secret=SECRET, ttl=3600)}"}
    rng = random.Random(7)
    path = f"/api/{user}/tasks"
    known = plan.known
    anchors = [k for k in known if k not in set(plan.leaves)]
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:

        def get(params: dict[str, Any]) -> Callable[[int], httpx.Response]:
            return lambda i: client.get(path, params=params)

        def deep(params: dict[str, Any], at: int) -> dict[str, Any]:
            cursor = _cursor_at(client, path, params, at)
            return {**params, "limit": 20, **({"cursor": cursor} if cursor else {})}

        one_list, list_size = plan.middle
        in_list = {"list_id": one_list}
        tree, tree_in_list = {"sort": "position"}, {"sort": "position", "list_id": one_list}
        # Tree order across lists: the Inbox, then each list; a deep page that starts 10 tasks
        # before the end of the first list past the middle of the user's tasks, and crosses it.
        ends = list(itertools.accumulate([plan.inbox, *(size for _, size in plan.lists)]))
        crossing = next((end for end in ends if end >= depth), ends[-1]) - 10
        deep_pages = {
            "list, deep cursor page": deep({}, depth),
            "one list, deep cursor page": deep(in_list, list_size // 2),
            "tree order, one list, deep cursor page": deep(tree_in_list, list_size // 2),
            "tree order, all lists, deep page across lists": deep(tree, crossing),
        }
        lists_seen = {
            t["list_id"]
            for t in client.get(
                path, params=deep_pages["tree order, all lists, deep page across lists"]
            ).json()["data"]
        }
        if len(lists_seen) < 2:
            raise RuntimeError(f"scale: the deep tree page does not cross lists: {lists_seen}")
        _timed(timings, "list, first page", n, get({"limit": 20}), (200,))
        _timed(timings, "list, deep cursor page", n, get(deep_pages["list, deep cursor page"]), (200,))
        _timed(timings, "get", n, lambda i: client.get(f"{path}/{rng.choice(known)}"), (200,))
        # Contract v3 and later; absent routes are reported as such.
        _timed(timings, "lists", n, lambda i: client.get(f"/api/{user}/lists"), (200,))
        _timed(timings, "one list, first page", n, get({**in_list, "limit": 20}), (200,))
        _timed(
            timings, "one list, deep cursor page", n, get(deep_pages["one list, deep cursor page"]), (200,)
        )
        _timed(timings, "tree order, one list, first page", n, get({**tree_in_list, "limit": 20}), (200,))
        _timed(
            timings,
            "tree order, one list, deep cursor page",
            n,
            get(deep_pages["tree order, one list, deep cursor page"]),
            (200,),
        )
        _timed(timings, "tree order, all lists, first page", n, get({**tree, "limit": 20}), (200,))
        _timed(
            timings,
            "tree order, all lists, deep page across lists",
            n,
            get(deep_pages["tree order, all lists, deep page across lists"]),
            (200,),
        )
        _timed(
            timings,
            "children (parent_id)",
            n,
            lambda i: client.get(path, params={"parent_id": rng.choice(plan.parents)}),
            (200,),
        )
        _timed(
            timings,
            "children, tree order (parent_id, sort=position)",
            n,
            lambda i: client.get(path, params={"parent_id": rng.choice(plan.parents), "sort": "position"}),
            (200,),
        )
        _timed(timings, "stats, one list", n, lambda i: client.get(f"{path}/stats", params=in_list), (200,))
        _timed(timings, "create", n, lambda i: client.post(path, json={"title": f"scale create {i}"}), (201,))
        _timed(
            timings,
            "update",
            n,
            lambda i: client.patch(f"{path}/{rng.choice(known)}", json={"completed": i % 2 == 0}),
            (200,),
        )
        hit = WORDS[17]
        _timed(timings, "q search, 1% match", n, lambda i: client.get(path, params={"q": hit}), (200,))
        _timed(timings, "q search, no match", n, lambda i: client.get(path, params={"q": MISS}), (200,))

        def move(task: str, **placement: Any) -> httpx.Response:
            return client.post(f"{path}/{task}/move", json=placement)

        # A leaf to a random place (any list, any level): its own key and a neighbour's read.
        _timed(
            timings,
            "move",
            n,
            lambda i: move(plan.leaves[i % len(plan.leaves)], before=anchors[i % len(anchors)]),
            (200,),
        )
        _timed(
            timings,
            "move, leaf beside its sibling",
            n,
            Alternating(
                plan.sibling_pairs, lambda p: move(p[0], after=p[1]), lambda p: move(p[0], before=p[1])
            ),
            (200,),
        )
        _timed(
            timings,
            "move, subtree to another list and back",
            n,
            Alternating(
                plan.subtrees, lambda s: move(s[0], list_id=s[2]), lambda s: move(s[0], list_id=s[1])
            ),
            (200,),
        )
        _timed(
            timings,
            "move, under a parent and back",
            n,
            Alternating(
                plan.under, lambda u: move(u[0], parent_id=u[1]), lambda u: move(u[0], parent_id=None)
            ),
            (200,),
        )
        _timed(timings, "stats", n, lambda i: client.get(f"{path}/stats"), (200,))
        since = _caught_up(client, path)
        if since is None:
            timings.absent["changes, caught up"] = 404
        else:
            _timed(
                timings,
                "changes, caught up",
                n,
                lambda i: client.get(f"{path}/changes", params={"since": since}),
                (200,),
            )
    return timings


def _caught_up(client: httpx.Client, path: str) -> str | None:
    """A changes-feed token after a full sync (every page), or None where the feed does not exist."""
    params: dict[str, Any] = {"limit": 1000}
    while True:
        response = client.get(f"{path}/changes", params=params)
        if response.status_code != 200:
            return None
        meta = response.json()["meta"]
        params = {"limit": 1000, "since": meta["next_since"]}
        if not meta.get("has_more"):
            return str(meta["next_since"])


def run(admin_url: str, size: Size, n: int, keep: bool, reuse: bool) -> Timings:
    measured = f"scale-measured-{size.label}"
    if reuse:  # the database a --keep run left, as it is (earlier runs' creates included)
        url = _with_database(admin_url, f"scale_{size.label}")
        asyncio.run(migrate(asyncpg_dsn(url)))
        asyncio.run(_checkpoint(url))
    else:
        url = asyncio.run(load(admin_url, size, measured))

    measuring = asyncio.run(read_plan(url, measured))
    env = {
        "DATABASE_URL": url,
        "BETTER_AUTH_SECRET": SECRET,
        "LOG_LEVEL": "warning",
        "MAX_TASKS_PER_USER": str(size.measured_tasks + 10 * n),  # creates must not hit the quota
    }
    with tempfile.TemporaryFile() as output:
        proc, base = start_service(env, output=output)
        try:
            return measure(base, measured, n, measuring, size.measured_tasks // 2)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            if not keep and not reuse:
                asyncio.run(_drop(admin_url, f"scale_{size.label}"))


async def _checkpoint(url: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute("VACUUM (ANALYZE) tasks")
        await conn.execute("CHECKPOINT")
    finally:
        await conn.close()


async def _drop(admin_url: str, name: str) -> None:
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def markdown(report: dict[str, Any]) -> str:
    small, large = report["small"], report["large"]
    lines = [
        f"Small: {small['tasks']:,} tasks, measured user has {small['measured_tasks']:,}. "
        f"Large: {large['tasks']:,} tasks across {large['users']:,} users, measured user has "
        f"{large['measured_tasks']:,}. {report['requests']} sequential requests per operation.",
        "",
        "| operation | small p50 ms | small p99 ms | large p50 ms | large p99 ms | p99 large/small |",
        "|---|---|---|---|---|---|",
    ]
    for op, s in small["timings"].items():
        big = large["timings"].get(op)
        if big is None:
            continue
        ratio = big["p99_ms"] / s["p99_ms"] if s["p99_ms"] else float("nan")
        lines.append(
            f"| {op} | {s['p50_ms']} | {s['p99_ms']} | {big['p50_ms']} | {big['p99_ms']} | {ratio:.2f} |"
        )
    for op, status in large["absent"].items():
        lines.append(f"| {op} | absent ({status}) | | | | |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", type=int, default=1_000_000, help="tasks in the large database")
    parser.add_argument(
        "--users", type=int, default=10_000, help="users in the large database, besides the heavy one"
    )
    parser.add_argument(
        "--heavy", type=int, default=100_000, help="tasks of the measured user in the large database"
    )
    parser.add_argument(
        "--lists", type=int, default=50, help="lists of the measured user (besides the Inbox)"
    )
    parser.add_argument("--small-tasks", type=int, default=10_000)
    parser.add_argument("--small-users", type=int, default=100)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per operation")
    parser.add_argument("--dsn", help="admin URL of an existing PostgreSQL (default: a throwaway one)")
    parser.add_argument("--keep", action="store_true", help="keep the two databases afterwards (with --dsn)")
    parser.add_argument(
        "--reuse", action="store_true", help="measure the databases an earlier --keep run left (with --dsn)"
    )
    parser.add_argument("--out", type=Path, default=Path("scale-report"))
    args = parser.parse_args(argv)
    per_small = args.small_tasks // args.small_users
    # The measured user's lists: --lists, fewer where there are too few tasks to fill them.
    sizes = [
        Size("small", args.small_users - 1, per_small, per_small, min(args.lists, per_small // 24)),
        Size(
            "large",
            args.users,
            max(0, args.tasks - args.heavy) // args.users,
            args.heavy,
            min(args.lists, args.heavy // 24),
        ),
    ]
    cluster = None if args.dsn else PgCluster()
    try:
        if cluster is not None:
            cluster.start()
        admin_url = args.dsn or (cluster.url if cluster else "")
        report: dict[str, Any] = {"requests": args.requests}
        for size in sizes:
            timings = run(admin_url, size, args.requests, args.keep, args.reuse)
            report[size.label] = {
                "tasks": size.total,
                "users": size.users + 1,
                "measured_tasks": size.measured_tasks,
                "timings": timings.summary(),
                "absent": timings.absent,
            }
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "report.json").write_text(json.dumps(report, indent=2))
        (args.out / "report.md").write_text(markdown(report))
        print(markdown(report))
        return 0
    finally:
        if cluster is not None:
            cluster.destroy()


if __name__ == "__main__":
    sys.exit(main())
