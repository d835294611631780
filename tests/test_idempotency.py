"""CONTRACT §4 and §7: Idempotency-Key on POST replays, conflicts, and never duplicates."""

from __future__ import annotations

import asyncio
import secrets

import httpx
import pytest

from service.db import asyncpg_dsn
from service.task_store import PURGE_KEYS
from tests.support import Database, LiveServer, auth, new_user


def _post(client: httpx.Client, user: str, key: str, body: dict) -> httpx.Response:
    return client.post(f"/api/{user}/tasks", json=body, headers={**auth(user), "Idempotency-Key": key})


def _count(client: httpx.Client, user: str) -> int:
    return client.get(f"/api/{user}/tasks", headers=auth(user)).json()["meta"]["count"]


@pytest.fixture
def key() -> str:
    return secrets.token_urlsafe(16)


def test_retry_replays_the_first_response(client: httpx.Client, user: str, key: str) -> None:
    first = _post(client, user, key, {"title": "once", "description": "d"})
    second = _post(client, user, key, {"title": "once", "description": "d"})
    assert first.status_code == second.status_code == 201
    assert second.json()["data"] == first.json()["data"]
    assert second.headers["location"] == first.headers["location"]
    assert second.headers["etag"] == first.headers["etag"]
    assert second.headers["idempotent-replayed"] == "true"
    assert second.json()["meta"]["request_id"] == second.headers["x-request-id"]
    assert _count(client, user) == 1


def test_same_body_with_other_formatting_is_the_same_request(
    client: httpx.Client, user: str, key: str
) -> None:
    headers = {**auth(user), "Idempotency-Key": key, "Content-Type": "application/json"}
    first = client.post(f"/api/{user}/tasks", content=b'{"title":"x"}', headers=headers)
    second = client.post(f"/api/{user}/tasks", content=b'{ "title" : "x" }', headers=headers)
    assert second.json()["data"]["id"] == first.json()["data"]["id"]


def test_same_key_other_body_is_409(client: httpx.Client, user: str, key: str) -> None:
    _post(client, user, key, {"title": "first"})
    response = _post(client, user, key, {"title": "second"})
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "CONFLICT"
    assert _count(client, user) == 1


def test_keys_belong_to_one_user(client: httpx.Client, user: str, key: str) -> None:
    other = new_user()
    mine = _post(client, user, key, {"title": "same"})
    theirs = _post(client, other, key, {"title": "same"})
    assert theirs.status_code == 201
    assert "idempotent-replayed" not in theirs.headers
    assert theirs.json()["data"]["id"] != mine.json()["data"]["id"]
    assert theirs.json()["data"]["user_id"] == other


def test_replay_after_the_task_was_deleted(client: httpx.Client, user: str, key: str) -> None:
    first = _post(client, user, key, {"title": "ephemeral"})
    client.delete(first.headers["location"], headers=auth(user))
    again = _post(client, user, key, {"title": "ephemeral"})
    assert again.status_code == 201
    assert again.json()["data"] == first.json()["data"]
    assert _count(client, user) == 0


def test_failed_requests_are_not_stored(client: httpx.Client, user: str, key: str) -> None:
    assert _post(client, user, key, {"title": ""}).status_code == 422
    assert _post(client, user, key, {"title": "now valid"}).status_code == 201
    assert _count(client, user) == 1


def test_expired_key_is_forgotten_and_purged(
    client: httpx.Client, user: str, key: str, database: Database
) -> None:
    _post(client, user, key, {"title": "yesterday"})
    database.query(
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE user_id = $1 AND key = $2",
        user,
        key,
    )
    fresh = _post(client, user, key, {"title": "today"})
    assert fresh.status_code == 201
    assert "idempotent-replayed" not in fresh.headers
    assert _count(client, user) == 2

    other_key = secrets.token_urlsafe(8)
    _post(client, user, other_key, {"title": "to purge"})
    database.query(
        "UPDATE idempotency_keys SET created_at = now() - interval '25 hours' WHERE user_id = $1 AND key = $2",
        user,
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
    rows = database.query("SELECT key FROM idempotency_keys WHERE user_id = $1", user)
    assert [r["key"] for r in rows] == [key]


def test_abandoned_claim_is_taken_over(client: httpx.Client, user: str, key: str, database: Database) -> None:
    # A worker that died between claiming the key and creating the task leaves an in-flight row behind.
    database.query(
        "INSERT INTO idempotency_keys (user_id, key, request_hash, created_at) VALUES ($1, $2, '\\x00', now())",
        user,
        key,
    )
    assert _post(client, user, key, {"title": "blocked"}).status_code == 409
    database.query(
        "UPDATE idempotency_keys SET created_at = now() - interval '2 minutes' WHERE key = $1", key
    )
    assert _post(client, user, key, {"title": "unblocked"}).status_code == 201


def test_parallel_posts_with_one_key_create_exactly_one_task(server: LiveServer, user: str, key: str) -> None:
    headers = {**auth(user), "Idempotency-Key": key}

    async def storm() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            return list(
                await asyncio.gather(
                    *(
                        client.post(f"/api/{user}/tasks", json={"title": "once only"}, headers=headers)
                        for _ in range(20)
                    )
                )
            )

    responses = asyncio.run(storm())
    statuses = {r.status_code for r in responses}
    assert statuses <= {201, 409}
    created = {r.json()["data"]["id"] for r in responses if r.status_code == 201}
    assert len(created) == 1
    with server.client() as client:
        assert _count(client, user) == 1
