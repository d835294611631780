"""Stats read counters (sql/006): users.completed_count and tag_counts equal the rows after every kind of write."""

from __future__ import annotations

import asyncio
import functools
import shutil
from pathlib import Path

import httpx

from service.db.migrations import SQL_DIR, migrate
from service.db.pool import asyncpg_dsn
from tests.support.clients import run_together
from tests.support.postgres import Database, create_database
from tests.support.servers import LiveServer
from tests.support.tokens import auth, new_user


def _create(client: httpx.Client, user: str, title: str = "a task", tags: list[str] | None = None) -> dict:
    response = client.post(
        f"/api/{user}/tasks", json={"title": title, "tags": tags or []}, headers=auth(user)
    )
    assert response.status_code == 201, response.text
    return response.json()["data"]


def _send(client: httpx.Client, method: str, user: str, path: str, body: object = None) -> httpx.Response:
    response = client.request(method, f"/api/{user}/tasks{path}", json=body, headers=auth(user))
    assert response.status_code == 200, response.text
    return response


def _exact(client: httpx.Client, database: Database, user: str, *, total: bool = True) -> int:
    """Stats agree with the rows themselves; returns how many are completed."""
    real = database.query(
        "SELECT count(*) AS total, count(*) FILTER (WHERE completed) AS completed FROM tasks WHERE user_id = $1",
        user,
    )[0]
    stats = _send(client, "GET", user, "/stats").json()["data"]
    assert stats["completed"] == real["completed"]
    # The tags as counted from the rows themselves (what the stats computed before the counters).
    tags = database.query(
        """SELECT mode() WITHIN GROUP (ORDER BY t.tag COLLATE "C") COLLATE "C" AS name, count(*) AS count
           FROM tasks, unnest(tags, tag_keys) AS t (tag, key)
           WHERE user_id = $1 AND NOT completed
           GROUP BY t.key ORDER BY count(*) DESC, 1""",
        user,
    )
    assert stats["tags"] == [{"name": r["name"], "count": r["count"]} for r in tags]
    if total:  # task_count is kept by the service's own statements, not by triggers
        assert stats["total"] == real["total"]
        assert stats["active"] == real["total"] - real["completed"]
    return int(real["completed"])


def test_the_completed_count_follows_every_write(
    app_client: httpx.Client, database: Database, user: str
) -> None:
    a, b, c, d = (_create(app_client, user, t)["id"] for t in "abcd")
    other = new_user()
    _send(app_client, "PATCH", other, f"/{_create(app_client, other)['id']}/complete")  # not counted as ours
    assert _exact(app_client, database, user) == 0
    _send(app_client, "PATCH", user, f"/{a}/complete")  # a toggle
    assert _exact(app_client, database, user) == 1
    _send(app_client, "PATCH", user, f"/{a}/complete", {"completed": True})  # already completed: no change
    _send(app_client, "PATCH", user, f"/{a}", {"completed": True, "title": "a again"})
    assert _exact(app_client, database, user) == 1
    _send(app_client, "PATCH", user, f"/{b}", {"completed": True})
    _send(app_client, "PUT", user, f"/{c}", {"title": "c", "completed": True})
    assert _exact(app_client, database, user) == 3
    _send(app_client, "PATCH", user, f"/{c}/complete")  # toggled back
    _send(app_client, "PATCH", user, f"/{b}", {"completed": False})
    assert _exact(app_client, database, user) == 1
    _send(app_client, "POST", user, f"/{a}/move", {"before": d})  # a completed task moved: still counted once
    _send(app_client, "PATCH", user, f"/{d}", {"title": "d renamed"})
    assert _exact(app_client, database, user) == 1
    _send(app_client, "DELETE", user, f"/{a}")  # a completed task deleted
    _send(app_client, "DELETE", user, f"/{d}")  # an active one
    assert _exact(app_client, database, user) == 0
    for task in (b, c):
        _send(app_client, "PATCH", user, f"/{task}/complete")
    assert _exact(app_client, database, user) == 2
    assert _send(app_client, "POST", user, "/clear-completed").json()["data"] == {"deleted": 2}
    assert _exact(app_client, database, user) == 0
    assert _exact(app_client, database, other) == 1


def test_any_statement_keeps_the_counter(app_client: httpx.Client, database: Database, user: str) -> None:
    """Triggers keep it, so a statement outside the service's own (an operator's bulk fix) is counted too."""
    for i in range(6):
        _create(app_client, user, f"t{i}")
    database.query(
        "UPDATE tasks SET completed = true, completed_at = now() WHERE user_id = $1 AND title IN ('t1', 't2', 't3')",
        user,
    )
    assert _exact(app_client, database, user) == 3
    database.query(
        "UPDATE tasks SET completed = NOT completed, completed_at = CASE WHEN completed THEN NULL ELSE now() END "
        "WHERE user_id = $1",
        user,
    )
    assert _exact(app_client, database, user) == 3
    database.query("DELETE FROM tasks WHERE user_id = $1 AND title IN ('t0', 't1')", user)
    assert _exact(app_client, database, user, total=False) == 2
    database.query("DELETE FROM users WHERE id = $1", user)  # the user and their tasks, at once
    assert database.query("SELECT count(*) AS n FROM tasks WHERE user_id = $1", user)[0]["n"] == 0


def test_concurrent_toggles_and_completes_count_exactly(
    app_client: httpx.Client, database: Database, user: str, server: LiveServer
) -> None:
    tasks = [_create(app_client, user, f"t{i}")["id"] for i in range(8)]
    failures: list[str] = []

    def write(n: int) -> None:
        with server.client() as c:
            for i in range(6):
                # Everyone toggles the first task (6 * 8 toggles: it ends active), and completes,
                # reopens or deletes one of the others.
                paths = [(f"/{tasks[0]}/complete", None)]
                if n > 0:
                    paths.append((f"/{tasks[n]}", {"completed": i % 2 == 0}))
                for path, body in paths:
                    response = c.patch(f"/api/{user}/tasks{path}", json=body, headers=auth(user))
                    if response.status_code != 200:
                        failures.append(response.text)
            deleted = n % 3 == 0 and n > 0
            if deleted and c.delete(f"/api/{user}/tasks/{tasks[n]}", headers=auth(user)).status_code != 200:
                failures.append(f"delete {n}")

    run_together([functools.partial(write, n) for n in range(8)])
    assert failures == []
    # Each of tasks 1..7 ended reopened (i = 5 is odd); 3 and 6 were deleted; the first was toggled
    # an even number of times. Then complete some and check again.
    assert _exact(app_client, database, user) == 0
    for task in tasks[1:3]:
        _send(app_client, "PATCH", user, f"/{task}/complete")
    assert _exact(app_client, database, user) == 2
    assert database.query("SELECT completed_count FROM users WHERE id = $1", user)[0]["completed_count"] == 2


def test_tag_counts_follow_every_write(app_client: httpx.Client, database: Database, user: str) -> None:
    a = _create(app_client, user, "a", ["Work", "home"])["id"]
    b = _create(app_client, user, "b", ["work"])["id"]
    c = _create(app_client, user, "c", ["WORK", "errands"])["id"]
    _create(app_client, new_user(), "not ours", ["work"])
    _exact(app_client, database, user)
    assert _send(app_client, "GET", user, "/stats").json()["data"]["tags"][0] == {"name": "WORK", "count": 3}
    _send(app_client, "PATCH", user, f"/{a}", {"tags": ["work", "Home", "new"]})  # respelled, one added
    _exact(app_client, database, user)
    _send(app_client, "PATCH", user, f"/{b}/complete")  # a completed task's tags are not counted
    _exact(app_client, database, user)
    _send(app_client, "PATCH", user, f"/{b}", {"tags": ["later"]})  # changed while completed
    _send(app_client, "PATCH", user, f"/{b}/complete")  # and reopened
    _exact(app_client, database, user)
    _send(app_client, "PATCH", user, f"/{c}", {"title": "c renamed"})  # tags untouched
    _send(app_client, "POST", user, f"/{c}/move", {"before": a})
    _exact(app_client, database, user)
    _send(app_client, "DELETE", user, f"/{c}")
    _exact(app_client, database, user)
    _send(app_client, "PATCH", user, f"/{a}/complete")
    _send(app_client, "POST", user, "/clear-completed")
    _exact(app_client, database, user)
    _send(app_client, "PATCH", user, f"/{b}", {"tags": []})
    assert _send(app_client, "GET", user, "/stats").json()["data"]["tags"] == []
    # Spellings whose count reached zero leave no row behind.
    assert database.query("SELECT count(*) AS n FROM tag_counts WHERE user_id = $1", user)[0]["n"] == 0


def test_bulk_statements_and_concurrent_tag_edits_count_exactly(
    app_client: httpx.Client, database: Database, user: str, server: LiveServer
) -> None:
    tasks = [_create(app_client, user, f"t{i}", ["shared", f"own{i % 3}"])["id"] for i in range(8)]
    failures: list[str] = []

    def write(n: int) -> None:
        with server.client() as c:
            for i in range(4):
                body = {"tags": ["Shared", f"n{n % 2}"]} if i % 2 else {"completed": i == 0}
                response = c.patch(f"/api/{user}/tasks/{tasks[n]}", json=body, headers=auth(user))
                if response.status_code != 200:
                    failures.append(response.text)

    run_together([functools.partial(write, n) for n in range(8)])
    assert failures == []
    _exact(app_client, database, user)
    database.query(
        "UPDATE tasks SET tags = tags || '{bulk}', tag_keys = tag_keys || '{bulk}' WHERE user_id = $1", user
    )
    _exact(app_client, database, user)
    assert _send(app_client, "GET", user, "/stats").json()["data"]["tags"][0]["count"] == 8


def test_the_migration_counts_existing_tasks(pg_admin_url: str, tmp_path: Path) -> None:
    """sql/006 on a database that already holds tasks: the counters start equal to the rows."""
    for migration in sorted(SQL_DIR.glob("*.sql")):
        if migration.name < "006":
            shutil.copy(migration, tmp_path / migration.name)
    url = asyncio.run(create_database(pg_admin_url, "counters_upgrade"))
    asyncio.run(migrate(asyncpg_dsn(url), tmp_path))
    db = Database(url=url, admin_url=pg_admin_url)
    db.query("INSERT INTO users (id, task_count) VALUES ('alice', 12), ('bob', 12)")
    db.query(
        """INSERT INTO tasks (user_id, id, title, completed, completed_at, tags, tag_keys, position)
           SELECT u, gen_random_uuid(), 't', g % 3 = 0, CASE WHEN g % 3 = 0 THEN now() END,
                  CASE WHEN g % 2 = 0 THEN ARRAY['Work', 'x' || g % 4] ELSE ARRAY['work'] END,
                  CASE WHEN g % 2 = 0 THEN ARRAY['work', 'x' || g % 4] ELSE ARRAY['work'] END,
                  lpad(to_hex(g + 140737488355328), 12, '0')
           FROM unnest(ARRAY['alice', 'bob']) AS u, generate_series(1, 12) AS g"""
    )
    asyncio.run(migrate(asyncpg_dsn(url)))
    users = db.query(
        """SELECT u.id, u.completed_count, (SELECT count(*) FROM tasks t WHERE t.user_id = u.id AND t.completed) AS real
           FROM users u"""
    )
    assert [(r["completed_count"], r["real"]) for r in users] == [(4, 4), (4, 4)]
    tags = db.query("SELECT tag_key, tag, tasks FROM tag_counts WHERE user_id = 'alice' ORDER BY 1, 2")
    # Active tasks: g not divisible by 3, i.e. 8 of 12; of them 4 even (Work, x0/x2) and 4 odd (work).
    assert [tuple(r) for r in tags] == [
        ("work", "Work", 4),
        ("work", "work", 4),
        ("x0", "x0", 2),
        ("x2", "x2", 2),
    ]
