"""Does a request cost the same on a big table? Latency of each operation, small database vs large.

    python -m tests.load.scale --tasks 1000000 --users 10000 --heavy 100000 --out scale-report
    python -m tests.load.scale --tasks 10000000 --users 100000 --heavy 100000   # the full size

For each of two databases, a small one (--small-tasks across --small-users, one of whom is
measured) and a large one (--tasks across --users, plus one heavy user with --heavy tasks, who is
measured), it migrates an empty database to the newest schema and bulk-loads it with COPY
(indexes, unique keys and triggers off during the load, rebuilt after it; every column filled as
the service would: positions, tags and their keys, priorities, due dates, change numbers, and
the users' counters), starts `python -m service` on it and times each operation one request at
a time (no queueing: the cost of the request itself): list first page, a deep cursor page, get,
create, update, a `q` search that matches 1% of the user's tasks and one that matches nothing,
move, stats and the changes feed. It prints and writes (report.json, report.md) p50/p99 per
operation and the large/small p99 ratio; `python -m tests.load.scale_chart DIR` draws the chart.

PostgreSQL: a throwaway cluster (the pgserver wheel's binaries, fsync off, default
shared_buffers), or --dsn for an existing server's admin URL (the databases `scale_small` and
`scale_large` are created there, and dropped again unless --keep).
"""

from __future__ import annotations

import argparse
import asyncio
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


def _template(count: int, now: datetime) -> list[tuple[Any, ...]]:
    """A user's `count` tasks but for user and id: every column of the newest schema, valid.

    A quarter completed, a fifth with a due date (half of them past), a seventh with a tag, newest
    first in the manual order (integer positions 0, 1, ...), numbered for sync oldest first.
    """
    rows = []
    for j in range(count):
        created = now - timedelta(minutes=j)
        completed = j % 4 == 0
        tag = [TAGS[j % len(TAGS)]] if j % 7 == 0 else []
        rows.append(
            (
                f"task {j} {WORDS[j % len(WORDS)]}",
                f"notes for task {j}" if j % 3 == 0 else None,
                completed,
                created,
                created,
                now + timedelta(hours=j % 240 - 120) if j % 5 == 0 else None,
                PRIORITIES[(j // 4) % 4],
                tag,
                [t.casefold() for t in tag],
                created if completed else None,
                positions.int_key(j),
                count - j,
            )
        )
    return rows


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
]


async def load(admin_url: str, size: Size, measured: str) -> str:
    """A database of `size` at the newest schema, bulk-loaded with COPY; returns its URL.

    Indexes, unique constraints and triggers are off during the COPY: the rows carry what the
    triggers would have written (change numbers), the users' rows the counters the statements and
    triggers keep (task_count, completed_count, position_head, change_seq, tag_counts), exactly.
    """
    url = await create_database(admin_url, f"scale_{size.label}")
    dsn = asyncpg_dsn(url)
    await migrate(dsn)
    users = [f"scale-user-{i:06d}" for i in range(size.users)]
    now = datetime.now(UTC)
    heavy, light = _template(size.measured_tasks, now), _template(size.tasks_per_user, now)
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

        def counters(user: str, rows: list[tuple[Any, ...]]) -> tuple[Any, ...]:
            done = sum(1 for r in rows if r[2])
            return (user, len(rows), done, 0, len(rows))

        await conn.copy_records_to_table(
            "users",
            records=[counters(measured, heavy), *(counters(u, light) for u in users)],
            columns=["id", "task_count", "completed_count", "position_head", "change_seq"],
        )

        def records() -> Iterator[tuple[Any, ...]]:
            new_id = uuid.uuid4
            for row in heavy:
                yield (measured, new_id(), *row)
            for user in users:
                for row in light:
                    yield (user, new_id(), *row)

        await conn.copy_records_to_table("tasks", records=records(), columns=COLUMNS)

        def tag_counts(user: str, rows: list[tuple[Any, ...]]) -> Iterator[tuple[Any, ...]]:
            counted = Counter(
                (key, tag) for r in rows if not r[2] for tag, key in zip(r[7], r[8], strict=True)
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
        copied = time.perf_counter()
        for key in keys:
            await conn.execute(f'ALTER TABLE tasks ADD CONSTRAINT "{key["conname"]}" {key["definition"]}')
        for index in indexes:
            await conn.execute(index["indexdef"])
        indexed = time.perf_counter()
        await conn.execute("VACUUM (ANALYZE) tasks")
        await conn.execute("VACUUM (ANALYZE) users")
        # Written out now, not by a checkpoint in the middle of the timed writes (their commits
        # would wait behind it): the load must not be measured as the requests' cost.
        await conn.execute("CHECKPOINT")
        print(
            f"scale: {size.label}: {size.total:,} tasks, {size.users + 1:,} users; COPY {copied - started:.0f} s, "
            f"indexes {indexed - copied:.0f} s, VACUUM {time.perf_counter() - indexed:.0f} s",
            file=sys.stderr,
        )
    finally:
        await conn.close()
    return url


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


def measure(base: str, user: str, n: int, known: list[str], depth: int) -> Timings:
    timings = Timings()
    headers = {"Authorization": f"Bearer {make_token(user, secret=SECRET, ttl=3600)}"}
    rng = random.Random(7)
    path = f"/api/{user}/tasks"
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        # A deep page: walk the default listing to half of the user's tasks, keep that cursor.
        cursor, seen = None, 0
        while seen < depth:
            params: dict[str, Any] = {"limit": 200, **({"cursor": cursor} if cursor else {})}
            page = client.get(path, params=params).json()
            seen += len(page["data"])
            cursor = page["meta"]["next_cursor"]
            if cursor is None:
                break
        deep = {"limit": 20, **({"cursor": cursor} if cursor else {})}
        _timed(timings, "list, first page", n, lambda i: client.get(path, params={"limit": 20}), (200,))
        _timed(timings, "list, deep cursor page", n, lambda i: client.get(path, params=deep), (200,))
        _timed(timings, "get", n, lambda i: client.get(f"{path}/{rng.choice(known)}"), (200,))
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
        # Contract v2 and later; absent routes are reported as such.
        _timed(
            timings,
            "move",
            n,
            lambda i: client.post(f"{path}/{known[i % 50]}/move", json={"before": known[50 + i % 50]}),
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

    async def known_ids() -> list[str]:
        conn = await asyncpg.connect(asyncpg_dsn(url))
        try:
            rows = await conn.fetch(
                "SELECT id FROM tasks WHERE user_id = $1 ORDER BY random() LIMIT 1000", measured
            )
        finally:
            await conn.close()
        return [str(r["id"]) for r in rows]

    known = asyncio.run(known_ids())
    env = {
        "DATABASE_URL": url,
        "BETTER_AUTH_SECRET": SECRET,
        "LOG_LEVEL": "warning",
        "MAX_TASKS_PER_USER": str(size.measured_tasks + 10 * n),  # creates must not hit the quota
    }
    with tempfile.TemporaryFile() as output:
        proc, base = start_service(env, output=output)
        try:
            return measure(base, measured, n, known, size.measured_tasks // 2)
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
    sizes = [
        Size("small", args.small_users - 1, per_small, per_small),
        Size("large", args.users, max(0, args.tasks - args.heavy) // args.users, args.heavy),
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
