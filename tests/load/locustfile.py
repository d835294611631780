"""A frontend session per simulated user: list, page, create, toggle, edit, read, delete.

Run by tests/load/run.py; by hand:
    LOAD_SECRET=... LOAD_USERS=200 locust -f tests/load/locustfile.py --host http://127.0.0.1:8000
Each simulated user signs in as one of LOAD_USERS seeded users ("load-user-00042") with an HS256
token signed with LOAD_SECRET, the service's BETTER_AUTH_SECRET.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from typing import Any

from joserfc import jwt
from joserfc.jwk import OctKey
from locust import FastHttpUser, between, task

SECRET = os.environ.get("LOAD_SECRET", "")
SEEDED_USERS = int(os.environ.get("LOAD_USERS", "100"))
THINK = float(os.environ.get("LOAD_THINK_SECONDS", "0"))


def user_token(user_id: str) -> str:
    now = int(time.time())
    return jwt.encode(
        {"alg": "HS256"}, {"sub": user_id, "iat": now, "exp": now + 3600}, OctKey.import_key(SECRET)
    )


class Frontend(FastHttpUser):
    """One signed-in person using the app; weights follow what a todo UI does most: look at lists."""

    wait_time = between(0, THINK) if THINK else between(0, 0)

    _numbers = itertools.count()

    def on_start(self) -> None:
        # Distinct simulated users are distinct people, so one never deletes what another reads.
        self.user_id = f"load-user-{next(self._numbers) % SEEDED_USERS:05d}"
        self.base = f"/api/{self.user_id}/tasks"
        self.headers = {
            "Authorization": f"Bearer {user_token(self.user_id)}",
            "Content-Type": "application/json",
        }
        self.mine: list[str] = []
        self.list_tasks()

    def _call(self, method: str, path: str, name: str, expect: int, **kwargs: Any) -> dict[str, Any] | None:
        with self.client.request(
            method, path, name=name, headers=self.headers, catch_response=True, **kwargs
        ) as r:
            if r.status_code != expect:
                r.failure(f"{r.status_code}: {r.text[:200]}")
                return None
            body = r.json()
            if "data" not in body or "meta" not in body:
                r.failure("not in the envelope")
                return None
            return body

    @task(6)
    def list_tasks(self) -> None:
        body = self._call("GET", f"{self.base}?limit=20", "GET /tasks", 200)
        if body:
            self.mine = [t["id"] for t in body["data"]] or self.mine

    @task(1)
    def page_through(self) -> None:
        cursor, pages = None, 0
        while pages < 3:
            query = "limit=10&sort=title" + (f"&cursor={cursor}" if cursor else "")
            body = self._call("GET", f"{self.base}?{query}", "GET /tasks (next page)", 200)
            if not body or not (cursor := body["meta"]["next_cursor"]):
                return
            pages += 1

    @task(2)
    def create(self) -> None:
        body = self._call(
            "POST", self.base, "POST /tasks", 201, json={"title": f"load {random.random():.6f}"}
        )
        if body:
            self.mine.append(body["data"]["id"])

    @task(2)
    def read_one(self) -> None:
        if self.mine:
            self._call("GET", f"{self.base}/{random.choice(self.mine)}", "GET /tasks/{id}", 200)

    @task(2)
    def toggle(self) -> None:
        if self.mine:
            self._call(
                "PATCH", f"{self.base}/{random.choice(self.mine)}/complete", "PATCH /tasks/{id}/complete", 200
            )

    @task(1)
    def edit(self) -> None:
        if self.mine:
            change = {"title": f"edited {random.random():.6f}", "description": "from the load test"}
            self._call(
                "PATCH", f"{self.base}/{random.choice(self.mine)}", "PATCH /tasks/{id}", 200, json=change
            )

    @task(1)
    def delete(self) -> None:
        if len(self.mine) > 5:
            self._call("DELETE", f"{self.base}/{self.mine.pop()}", "DELETE /tasks/{id}", 200)
