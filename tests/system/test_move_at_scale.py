"""Moves at the default quota: with 100,000 tasks, moving again and again into one gap never fails,
and each respacing rewrites a bounded neighbourhood, not the user's whole list."""

from __future__ import annotations

import httpx

from service.tasks.order import positions
from service.tasks.order.respace import RESPACE_WINDOW
from tests.support import Database, auth, new_user

TASKS = 100_000
MOVES = 300  # two or three respacings' worth: keys grow a digit per ~6 moves into one gap


def _seed(database: Database, user: str) -> list[str]:
    """TASKS tasks on consecutive integer keys (as creates make them), straight into the tables."""
    database.query("INSERT INTO users (id, task_count, position_head) VALUES ($1, $2, 0)", user, TASKS)
    position = positions.sql_int_key("n")  # a constant expression of n: no input reaches the SQL
    database.query(
        "INSERT INTO tasks (user_id, id, title, created_at, updated_at, position, tag_keys)"  # noqa: S608
        f" SELECT $1, gen_random_uuid(), 'task ' || n, now(), now(), {position}, '{{}}'"
        " FROM generate_series(0, $2::int - 1) AS n",
        user,
        TASKS,
    )
    database.query("ANALYZE tasks")
    rows = database.query(
        "SELECT id::text FROM tasks WHERE user_id = $1 AND position IN ($2, $3, $4)",
        user,
        positions.int_key(TASKS // 2),
        positions.int_key(TASKS // 2 + 1),
        positions.int_key(TASKS // 2 + 2),
    )
    return [r["id"] for r in rows]


def test_many_moves_into_one_gap_all_succeed_and_touch_a_bounded_neighbourhood(
    app_client: httpx.Client, database: Database
) -> None:
    user = new_user()
    anchor, x, y = _seed(database, user)
    longest = 0
    for step in range(MOVES):
        moved = (x, y)[step % 2]
        response = app_client.post(
            f"/api/{user}/tasks/{moved}/move", json={"after": anchor}, headers=auth(user)
        )
        assert response.status_code == 200, response.text
        longest = max(longest, len(response.json()["data"]["position"]))
    assert longest > positions.REBALANCE_ABOVE - 8, "the keys never grew long enough to respace"
    # Every task whose key a respacing rewrote has a new version; all others are untouched.
    rewritten = database.query("SELECT count(*) AS n FROM tasks WHERE user_id = $1 AND version > 1", user)
    assert rewritten[0]["n"] <= 2 * RESPACE_WINDOW * (MOVES // 100 + 1)
    keys = database.query("SELECT position FROM tasks WHERE user_id = $1 ORDER BY position", user)
    assert len({k["position"] for k in keys}) == TASKS
    assert max(len(k["position"]) for k in keys) <= positions.REBALANCE_ABOVE
