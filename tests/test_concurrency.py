"""Writes from many clients at once: nothing lost, nothing duplicated."""

from __future__ import annotations

import asyncio
import uuid

import httpx

from service.conditional import etag
from tests.support import LiveServer, auth


def test_parallel_creates_by_one_new_user(server: LiveServer, user: str) -> None:
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            return list(
                await asyncio.gather(
                    *(
                        client.post(f"/api/{user}/tasks", json={"title": f"t{i}"}, headers=auth(user))
                        for i in range(50)
                    )
                )
            )

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [201] * 50
    ids = {r.json()["data"]["id"] for r in responses}
    assert len(ids) == 50
    with server.client() as client:
        listed = client.get(f"/api/{user}/tasks", params={"limit": 200}, headers=auth(user)).json()["data"]
    assert {t["id"] for t in listed} == ids


def test_parallel_toggles_are_never_lost(server: LiveServer, user: str) -> None:
    with server.client() as client:
        created = client.post(f"/api/{user}/tasks", json={"title": "flip"}, headers=auth(user))
    url = created.headers["location"]

    async def flips(n: int) -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            return list(
                await asyncio.gather(*(client.patch(f"{url}/complete", headers=auth(user)) for _ in range(n)))
            )

    assert all(r.status_code == 200 for r in asyncio.run(flips(20)))
    with server.client() as client:
        after = client.get(url, headers=auth(user))
    assert after.json()["data"]["completed"] is False  # 20 toggles from false
    assert after.headers["etag"] == etag(uuid.UUID(created.json()["data"]["id"]), 21)  # every one counted
    assert all(r.status_code == 200 for r in asyncio.run(flips(7)))
    with server.client() as client:
        assert client.get(url, headers=auth(user)).json()["data"]["completed"] is True
