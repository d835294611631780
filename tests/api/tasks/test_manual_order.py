"""CONTRACT §8 move: the manual order, one row rewritten per move, never two tasks in one place."""

from __future__ import annotations

import functools
import random
import threading
import uuid

import httpx
import pytest

from service.tasks.order import positions
from tests.support.clients import create_task, run_together
from tests.support.postgres import Database
from tests.support.servers import LiveServer
from tests.support.tokens import auth, new_user


def _move(client: httpx.Client, user: str, task_id: str, body: object, **headers: str) -> httpx.Response:
    return client.post(f"/api/{user}/tasks/{task_id}/move", json=body, headers={**auth(user), **headers})


def _order(client: httpx.Client, user: str) -> list[dict]:
    tasks: list[dict] = []
    cursor = None
    while True:
        params = {"sort": "position", "limit": 200, **({"cursor": cursor} if cursor else {})}
        body = client.get(f"/api/{user}/tasks", params=params, headers=auth(user)).json()
        tasks += body["data"]
        cursor = body["meta"]["next_cursor"]
        if cursor is None:
            return tasks


def _ids(client: httpx.Client, user: str) -> list[str]:
    return [t["id"] for t in _order(client, user)]


def _refused(response: httpx.Response) -> str:
    assert response.status_code == 422, response.text
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    return response.json()["error"]["details"][0]["field"]


@pytest.fixture
def four(app_client: httpx.Client, user: str) -> list[str]:
    """Four tasks, listed d, c, b, a (new tasks go first); returned in that order."""
    made = [create_task(app_client, user, name)["id"] for name in "abcd"]
    return made[::-1]


def test_move_before_and_after(app_client: httpx.Client, user: str, four: list[str]) -> None:
    d, c, b, a = four
    response = _move(app_client, user, a, {"before": d})
    assert response.status_code == 200, response.text
    assert _ids(app_client, user) == [a, d, c, b]
    assert _move(app_client, user, d, {"after": b}).status_code == 200
    assert _ids(app_client, user) == [a, c, b, d]
    assert _move(app_client, user, a, {"after": c}).status_code == 200
    assert _ids(app_client, user) == [c, a, b, d]
    assert _move(app_client, user, d, {"before": a}).status_code == 200
    assert _ids(app_client, user) == [c, d, a, b]


def test_move_answers_the_task_with_its_new_position_and_etag(
    app_client: httpx.Client, user: str, four: list[str]
) -> None:
    d, _, _, a = four
    before = app_client.get(f"/api/{user}/tasks/{a}", headers=auth(user))
    response = _move(app_client, user, a, {"before": d})
    moved = response.json()["data"]
    assert moved["id"] == a
    assert moved["position"] != before.json()["data"]["position"]
    assert (
        moved["position"]
        < app_client.get(f"/api/{user}/tasks/{d}", headers=auth(user)).json()["data"]["position"]
    )
    assert response.headers["etag"] != before.headers["etag"]
    now = app_client.get(f"/api/{user}/tasks/{a}", headers=auth(user))
    assert now.json()["data"] == moved
    assert now.headers["etag"] == response.headers["etag"]
    assert moved["updated_at"] > before.json()["data"]["updated_at"]


def test_a_move_rewrites_one_row(app_client: httpx.Client, user: str, four: list[str]) -> None:
    d, _c, b, _a = four

    def snapshot() -> dict[str, tuple[str, str]]:
        out = {}
        for task_id in four:
            r = app_client.get(f"/api/{user}/tasks/{task_id}", headers=auth(user))
            out[task_id] = (r.json()["data"]["position"], r.headers["etag"])
        return out

    before = snapshot()
    assert _move(app_client, user, b, {"after": d}).status_code == 200
    after = snapshot()
    assert after[b] != before[b]
    assert {k: v for k, v in after.items() if k != b} == {k: v for k, v in before.items() if k != b}


def test_moving_to_where_it_already_is_keeps_the_order(
    app_client: httpx.Client, user: str, four: list[str]
) -> None:
    d, c, b, a = four
    assert _move(app_client, user, c, {"after": d}).status_code == 200
    assert _move(app_client, user, c, {"before": b}).status_code == 200
    assert _ids(app_client, user) == [d, c, b, a]


def test_first_and_last(app_client: httpx.Client, user: str, four: list[str]) -> None:
    d, c, b, a = four
    assert _move(app_client, user, a, {"before": d}).status_code == 200
    assert _move(app_client, user, d, {"after": b}).status_code == 200
    assert _ids(app_client, user) == [a, c, b, d]
    # A new task still goes first, before one moved to the front.
    e = create_task(app_client, user, "e")["id"]
    assert _ids(app_client, user) == [e, a, c, b, d]


@pytest.mark.parametrize("side", ["before", "after"])
def test_the_task_itself_as_anchor_is_422_naming_the_field(
    app_client: httpx.Client, user: str, four: list[str], side: str
) -> None:
    assert _refused(_move(app_client, user, four[1], {side: four[1]})) == side
    assert _ids(app_client, user) == four


@pytest.mark.parametrize("side", ["before", "after"])
def test_an_anchor_that_is_not_one_of_the_users_tasks_is_422(
    app_client: httpx.Client, user: str, four: list[str], side: str
) -> None:
    other = new_user()
    theirs = create_task(app_client, other)["id"]
    for anchor in (theirs, str(uuid.uuid4()), theirs.upper()):
        response = _move(app_client, user, four[0], {side: anchor})
        assert _refused(response) == side
        assert "theirs" not in response.text
    assert _ids(app_client, user) == four
    assert _ids(app_client, other) == [theirs]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "body"),
        ({"before": None}, "before"),
        ({"after": 5}, "after"),
        ({"before": "not-a-uuid"}, "before"),
        ({"after": ""}, "after"),
        ({"position": "800000000000"}, "position"),
        ([], "body"),
    ],
)
def test_a_bad_body_is_422(
    app_client: httpx.Client, user: str, four: list[str], body: object, field: str
) -> None:
    response = _move(app_client, user, four[0], body)
    assert _refused(response) == field
    assert _ids(app_client, user) == four


def test_both_anchors_even_if_valid_are_422(app_client: httpx.Client, user: str, four: list[str]) -> None:
    assert _refused(_move(app_client, user, four[0], {"before": four[2], "after": four[1]})) == "body"


def test_no_body_or_bad_json_is_400_as_on_every_route_that_needs_a_body(
    app_client: httpx.Client, user: str, four: list[str]
) -> None:
    url = f"/api/{user}/tasks/{four[0]}/move"
    for content in (b"", b"{"):
        bad = app_client.post(
            url, content=content, headers={**auth(user), "content-type": "application/json"}
        )
        assert bad.status_code == 400, bad.text
        assert bad.json()["error"]["code"] == "BAD_REQUEST"
    assert _ids(app_client, user) == four


def test_if_match(app_client: httpx.Client, user: str, four: list[str]) -> None:
    d, c, b, a = four
    etag = app_client.get(f"/api/{user}/tasks/{a}", headers=auth(user)).headers["etag"]
    stale = '"999999"'
    response = _move(app_client, user, a, {"before": d}, **{"if-match": stale})
    assert response.status_code == 412
    assert response.json()["error"]["code"] == "PRECONDITION_FAILED"
    assert _ids(app_client, user) == four
    ok = _move(app_client, user, a, {"before": d}, **{"if-match": etag})
    assert ok.status_code == 200
    assert _ids(app_client, user) == [a, d, c, b]
    # The ETag it was moved with is stale now.
    assert _move(app_client, user, a, {"after": b}, **{"if-match": etag}).status_code == 412
    assert _move(app_client, user, a, {"after": b}, **{"if-match": "*"}).status_code == 200


def test_missing_and_foreign_tasks(app_client: httpx.Client, user: str, four: list[str]) -> None:
    other = new_user()
    theirs = create_task(app_client, other)["id"]
    for task_id in (str(uuid.uuid4()), theirs, "not-a-uuid"):
        response = _move(app_client, user, task_id, {"before": four[0]})
        assert response.status_code == 404, response.text
        assert response.json()["error"]["code"] == "NOT_FOUND"
    # Someone else's path: 403, whatever the body.
    assert _move(app_client, other, four[0], {"before": four[1]}, **auth(user)).status_code == 403
    assert app_client.post(f"/api/{user}/tasks/{four[0]}/move", json={"before": four[1]}).status_code == 401
    assert app_client.get(f"/api/{user}/tasks/{four[0]}/move", headers=auth(user)).status_code == 405


def test_random_moves_match_a_model_list(app_client: httpx.Client, user: str) -> None:
    """Hundreds of random moves, the listing compared with a plain list after each one."""
    rng = random.Random(8)
    model = [create_task(app_client, user, f"t{i}")["id"] for i in range(25)][::-1]
    for step in range(300):
        task, anchor = rng.sample(model, 2)
        side = rng.choice(("before", "after"))
        response = _move(app_client, user, task, {side: anchor})
        assert response.status_code == 200, response.text
        model.remove(task)
        model.insert(model.index(anchor) + (side == "after"), task)
        if step % 25 == 0:
            new = create_task(app_client, user, f"n{step}")["id"]
            model.insert(0, new)
        listed = _order(app_client, user)
        assert [t["id"] for t in listed] == model, f"step {step}"
    keys = [t["position"] for t in _order(app_client, user)]
    assert len(set(keys)) == len(keys)
    assert all(len(k) <= positions.REBALANCE_ABOVE for k in keys)


def test_keys_that_grow_long_are_rebalanced(app_client: httpx.Client, user: str, database: Database) -> None:
    """Always into the same gap: keys grow a digit per ~6 moves until the service rebalances them,
    which changes the position and ETag of every task, even one nobody moved."""
    bystander = create_task(app_client, user, "bystander")["id"]
    first, x, y = [create_task(app_client, user, name)["id"] for name in ("y", "x", "first")][::-1]
    model = [first, x, y, bystander]
    assert _ids(app_client, user) == model

    def state(task_id: str) -> tuple[str, str]:
        r = app_client.get(f"/api/{user}/tasks/{task_id}", headers=auth(user))
        return r.json()["data"]["position"], r.headers["etag"]

    start = state(bystander)
    longest = 0
    for step in range(300):
        task = (x, y)[step % 2]
        response = _move(app_client, user, task, {"after": first})
        assert response.status_code == 200, response.text
        model.remove(task)
        model.insert(1, task)
        key = response.json()["data"]["position"]
        assert key == state(task)[0]
        longest = max(longest, len(key))
        assert len(key) <= positions.REBALANCE_ABOVE
        assert _ids(app_client, user) == model
        if state(bystander) != start:
            break
    else:
        pytest.fail("no rebalance in 300 moves into one gap")
    assert longest > positions.INT_WIDTH + 10, "the keys never grew long"
    position, etag = state(bystander)
    assert position != start[0]
    assert etag != start[1]
    keys = [t["position"] for t in _order(app_client, user)]
    assert all(len(k) <= positions.INT_WIDTH + 1 for k in keys), keys
    rows = database.query("SELECT position FROM tasks WHERE user_id = $1", user)
    assert len({r["position"] for r in rows}) == len(rows) == 4


def test_concurrent_moves_never_share_a_position(server: LiveServer) -> None:
    """Writers racing on one user's list: every move succeeds (a loser retries), keys stay distinct."""
    user = new_user()
    with server.client() as client:
        ids = [create_task(client, user, f"t{i}")["id"] for i in range(12)]
    statuses: list[int] = []
    lock = threading.Lock()

    def mover(seed: int) -> None:
        rng = random.Random(seed)
        with server.client() as c:
            for _ in range(25):
                task, anchor = rng.sample(ids, 2)
                r = _move(c, user, task, {rng.choice(("before", "after")): anchor})
                with lock:
                    statuses.append(r.status_code)

    run_together([functools.partial(mover, i) for i in range(6)])
    assert statuses == [200] * len(statuses)
    with server.client() as client:
        listed = _order(client, user)
    assert sorted(t["id"] for t in listed) == sorted(ids)
    keys = [t["position"] for t in listed]
    assert len(set(keys)) == len(keys)
    assert keys == sorted(keys)


def test_concurrent_creates_and_moves_to_the_front(server: LiveServer) -> None:
    """New tasks and moves to the front take the same counter: no two ever collide."""
    user = new_user()
    with server.client() as client:
        ids = [create_task(client, user, f"t{i}")["id"] for i in range(4)]
    made: list[str] = []
    statuses: list[int] = []
    lock = threading.Lock()

    def creator() -> None:
        with server.client() as c:
            for i in range(15):
                task = create_task(c, user, f"new {i}")
                with lock:
                    made.append(task["id"])

    def front_mover(seed: int) -> None:
        rng = random.Random(seed)
        with server.client() as c:
            for _ in range(15):
                first = _order(c, user)[0]["id"]
                task = rng.choice(ids)
                if task != first:
                    r = _move(c, user, task, {"before": first})
                    with lock:
                        statuses.append(r.status_code)

    run_together([creator, creator, *(functools.partial(front_mover, i) for i in range(2))])
    assert set(statuses) <= {200}
    with server.client() as client:
        listed = _order(client, user)
    assert len(listed) == 4 + len(made) == 34
    keys = [t["position"] for t in listed]
    assert len(set(keys)) == len(keys)
