"""CONTRACT §4 and §7: Idempotency-Key on POST replays, conflicts, and never duplicates."""

from __future__ import annotations

import asyncio
import json
import secrets
from collections.abc import Callable

import httpx
import pytest

from service.db.pool import asyncpg_dsn
from service.tasks.idempotency import PURGE_KEYS
from tests.support import assert_error, auth, new_user
from tests.support.clients import UserClient, burst
from tests.support.postgres import Database
from tests.support.servers import LiveServer


def _post(me: UserClient, key: str, body: dict) -> httpx.Response:
    return me.request("POST", json=body, headers={"Idempotency-Key": key})


@pytest.fixture
def key() -> str:
    return secrets.token_urlsafe(16)


def test_retry_replays_the_first_response(me: UserClient, key: str) -> None:
    first = _post(me, key, {"title": "once", "description": "d"})
    second = _post(me, key, {"title": "once", "description": "d"})
    assert first.status_code == second.status_code == 201
    assert second.json()["data"] == first.json()["data"]
    assert second.headers["location"] == first.headers["location"]
    assert second.headers["etag"] == first.headers["etag"]
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json()["meta"]["request_id"] == second.headers["x-request-id"]
    assert me.count() == 1


def test_same_body_with_other_formatting_is_the_same_request(me: UserClient, key: str) -> None:
    headers = {"Idempotency-Key": key, "Content-Type": "application/json"}
    first = me.request("POST", content=b'{"title":"x"}', headers=headers)
    second = me.request("POST", content=b'{ "title" : "  x" }', headers=headers)  # the same once trimmed
    assert second.json()["data"]["id"] == first.json()["data"]["id"]


def test_same_key_other_body_is_409(me: UserClient, key: str) -> None:
    _post(me, key, {"title": "first"})
    response = _post(me, key, {"title": "second"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "CONFLICT"
    assert me.count() == 1


def test_keys_belong_to_one_user(me: UserClient, key: str) -> None:
    other = UserClient(me.client)
    mine = _post(me, key, {"title": "same"})
    theirs = _post(other, key, {"title": "same"})
    assert theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert theirs.json()["data"]["id"] != mine.json()["data"]["id"]
    assert theirs.json()["data"]["user_id"] == other.id


def test_replay_after_the_task_was_deleted(me: UserClient, key: str) -> None:
    first = _post(me, key, {"title": "ephemeral"})
    me.request("DELETE", first.headers["location"])
    again = _post(me, key, {"title": "ephemeral"})
    assert again.status_code == 201
    assert again.json()["data"] == first.json()["data"]
    assert me.count() == 0


def test_failed_requests_are_not_stored(me: UserClient, key: str) -> None:
    assert _post(me, key, {"title": ""}).status_code == 422
    assert _post(me, key, {"title": "now valid"}).status_code == 201
    assert me.count() == 1


def test_expired_key_is_forgotten_and_purged(me: UserClient, key: str, database: Database) -> None:
    _post(me, key, {"title": "yesterday"})
    database.query(
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE user_id = $1 AND key = $2",
        me.id,
        key,
    )
    fresh = _post(me, key, {"title": "today"})
    assert fresh.status_code == 201
    assert "idempotent-replayed" not in fresh.headers
    assert me.count() == 2

    other_key = secrets.token_urlsafe(8)
    _post(me, other_key, {"title": "to purge"})
    database.query(
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE user_id = $1 AND key = $2",
        me.id,
        other_key,
    )

    async def purge() -> None:
        import asyncpg

        conn = await asyncpg.connect(asyncpg_dsn(database.url))
        try:
            await conn.execute(PURGE_KEYS.sql)
        finally:
            await conn.close()

    asyncio.run(purge())
    rows = database.query("SELECT key FROM idempotency_keys WHERE user_id = $1", me.id)
    assert [r["key"] for r in rows] == [key]


def test_abandoned_claim_is_taken_over(me: UserClient, key: str, database: Database) -> None:
    # A worker that died between claiming the key and creating the task leaves an in-flight row behind.
    database.query(
        "INSERT INTO idempotency_keys (user_id, key, request_hash, created_at) VALUES ($1, $2, '\\x00', now())",
        me.id,
        key,
    )
    assert _post(me, key, {"title": "blocked"}).status_code == 409
    database.query(
        "UPDATE idempotency_keys SET created_at = now() - interval '2 minutes' WHERE key = $1", key
    )
    assert _post(me, key, {"title": "unblocked"}).status_code == 201


def test_parallel_posts_with_one_key_create_exactly_one_task(
    server: LiveServer, live_me: UserClient, key: str
) -> None:
    headers = {**live_me.headers, "Idempotency-Key": key}
    responses = burst(
        server, 20, lambda c, i: c.post(live_me.tasks_url, json={"title": "once only"}, headers=headers)
    )
    assert {r.status_code for r in responses} <= {201, 409}
    created = {r.json()["data"]["id"] for r in responses if r.status_code == 201}
    assert len(created) == 1
    assert live_me.ids() == list(created)


def test_the_replay_is_the_row_postgresql_stored(me: UserClient, key: str, database: Database) -> None:
    """The stored response is the inserted row itself, defaults included, not a guess at it."""
    first = _post(me, key, {"title": "as stored"})
    [row] = database.query(
        "SELECT response FROM idempotency_keys WHERE user_id = $1 AND key = $2", me.id, key
    )
    stored = json.loads(row["response"])
    assert stored["id"] == first.json()["data"]["id"]
    assert (stored["completed"], stored["version"]) == (False, 1)
    replay = _post(me, key, {"title": "as stored"})
    assert replay.json()["data"] == first.json()["data"] == me.task(first.json()["data"]["id"])


def test_a_user_holds_at_most_max_idempotency_keys(make_server: Callable[..., LiveServer]) -> None:
    """Each key keeps its task's row for 24 hours: a user cannot make the database keep more than
    MAX_IDEMPOTENCY_KEYS of them. At the bound a new key is 429 and creates nothing; retries of the
    keys already held still replay, and creates without a key go on."""
    live = make_server(max_idempotency_keys=3)
    user = new_user()
    with live.client() as client:
        url, headers = f"/api/{user}/tasks", auth(user)
        for n in range(3):
            assert (
                client.post(
                    url, json={"title": f"t{n}"}, headers={**headers, "Idempotency-Key": f"k{n}"}
                ).status_code
                == 201
            )
        refused = client.post(url, json={"title": "t3"}, headers={**headers, "Idempotency-Key": "k3"})
        assert_error(refused, 429, "TOO_MANY_REQUESTS")
        assert "Idempotency-Key" in refused.json()["error"]["message"]
        assert refused.headers["retry-after"].isdigit()
        replay = client.post(url, json={"title": "t0"}, headers={**headers, "Idempotency-Key": "k0"})
        assert replay.status_code == 201
        assert replay.headers["idempotent-replayed"] == "true"
        assert client.post(url, json={"title": "no key"}, headers=headers).status_code == 201
        titles = sorted(t["title"] for t in client.get(url, headers=headers).json()["data"])
    assert titles == ["no key", "t0", "t1", "t2"]
