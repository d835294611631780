"""Writes from many clients at once: nothing lost, nothing duplicated."""

from __future__ import annotations

import uuid

from service.web.conditional import etag
from tests.support.clients import UserClient, burst
from tests.support.servers import LiveServer


def test_parallel_creates_by_one_new_user(server: LiveServer, live_me: UserClient) -> None:
    responses = burst(
        server, 50, lambda c, i: c.post(live_me.tasks_url, json={"title": f"t{i}"}, headers=live_me.headers)
    )
    assert [r.status_code for r in responses] == [201] * 50
    ids = {r.json()["data"]["id"] for r in responses}
    assert len(ids) == 50
    assert set(live_me.ids(limit=200)) == ids


def test_parallel_toggles_are_never_lost(server: LiveServer, live_me: UserClient) -> None:
    task = live_me.create("flip")
    url = f"{live_me.tasks_url}/{task['id']}/complete"

    def flips(n: int) -> None:
        responses = burst(server, n, lambda c, i: c.patch(url, headers=live_me.headers))
        assert all(r.status_code == 200 for r in responses)

    flips(20)
    after = live_me.get(task["id"])
    assert after.json()["data"]["completed"] is False  # 20 toggles from false
    assert after.headers["etag"] == etag(uuid.UUID(task["id"]), 21)  # and every one of them counted
    flips(7)
    assert live_me.task(task["id"])["completed"] is True
