"""A frontend session per simulated user: list, page, filter, create, toggle, edit, move, read,
delete, stats, sync with /tasks/changes, and an open /events stream for the whole session.

Run by tests/load/run.py; by hand:
    LOAD_SECRET=... LOAD_USERS=200 locust -f tests/load/locustfile.py --host http://127.0.0.1:8000
Each simulated user signs in as one of LOAD_USERS seeded users ("load-user-00042") with an HS256
token signed with LOAD_SECRET, the service's BETTER_AUTH_SECRET.
"""

from __future__ import annotations

import itertools
import os
import random
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import gevent
from joserfc import jwt
from joserfc.jwk import OctKey
from locust import FastHttpUser, between, task

SECRET = os.environ.get("LOAD_SECRET", "")
SEEDED_USERS = int(os.environ.get("LOAD_USERS", "100"))
THINK = float(os.environ.get("LOAD_THINK_SECONDS", "0"))
PRIORITIES = ("none", "low", "medium", "high")
TAGS = ("work", "home", "errand", "urgent")


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
        self.since: str | None = None
        self.stale = True  # set by the event stream; a frontend syncs when told
        self._stream_socket: socket.socket | None = None
        self._stream = gevent.spawn(self._listen)
        self.list_tasks()

    def on_stop(self) -> None:
        # The session ends: its tab closes, and so does its stream.
        if self._stream_socket is not None:
            self._stream_socket.close()
        self._stream.kill(block=False)

    def _report(self, name: str, started: float, exception: Exception | None = None) -> None:
        self.environment.events.request.fire(
            request_type="GET",
            name=name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=0,
            exception=exception,
            context={},
        )

    def _listen(self) -> None:
        """Hold `/events` open (as the app does in every tab): `GET /events` is the time to `ready`."""
        where = urlsplit(self.host)
        started = time.perf_counter()
        try:
            sock = self._stream_socket = socket.create_connection((where.hostname, where.port or 80))
            sock.sendall(
                f"GET /api/{self.user_id}/events HTTP/1.1\r\nHost: {where.netloc}\r\n"
                f"Authorization: {self.headers['Authorization']}\r\nAccept: text/event-stream\r\n\r\n".encode()
            )
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    raise ConnectionError("closed before the response head")
                data += chunk
            status = data.split(b" ", 2)[1]
            if status == b"429":
                # More simulated users than LOAD_USERS x MAX_STREAMS_PER_USER: the limit works.
                self._report("GET /events (429 beyond MAX_STREAMS_PER_USER)", started)
                return
            if status != b"200":
                raise ConnectionError(f"status {status.decode()}")
            ready = False
            while data:
                # Each event is sent whole in one chunk, so a name is never split across reads.
                if not ready and b"event: ready" in data:
                    ready = True
                    self._report("GET /events", started)
                if b"event: changed" in data:
                    self.stale = True
                data = sock.recv(65536)
        except OSError as exc:
            if self._stream_socket is not None and self._stream_socket.fileno() != -1:
                self._report("GET /events", started, exc)

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
    def filtered(self) -> None:
        due_min = datetime.now(UTC).replace(microsecond=0)
        query = random.choice(
            (
                ("priority", f"priority={random.choice(PRIORITIES)}"),
                ("tag", f"tag={random.choice(TAGS)}"),
                ("due", f"due_min={due_min.isoformat()}&due_max={(due_min + timedelta(days=7)).isoformat()}"),
            )
        )
        kind, params = query
        self._call("GET", f"{self.base}?limit=20&{params}".replace("+", "%2B"), f"GET /tasks ({kind})", 200)

    @task(1)
    def stats(self) -> None:
        self._call("GET", f"{self.base}/stats", "GET /tasks/stats", 200)

    @task(2)
    def sync(self) -> None:
        """Catch up from the last token, as the app does when its stream says something changed."""
        if not self.stale and self.since is not None:
            return
        self.stale = False
        for _ in range(5):
            query = f"?since={self.since}" if self.since else ""
            body = self._call("GET", f"{self.base}/changes{query}", "GET /tasks/changes", 200)
            if not body:
                self.since = None
                return
            self.since = body["meta"]["next_since"]
            if not body["meta"]["has_more"]:
                return

    @task(2)
    def create(self) -> None:
        task = {"title": f"load {random.random():.6f}", "priority": random.choice(PRIORITIES)}
        if random.random() < 0.5:
            task["tags"] = random.sample(TAGS, 2)
        if random.random() < 0.5:
            task["due_at"] = (datetime.now(UTC) + timedelta(days=random.randint(-3, 10))).isoformat()
        body = self._call("POST", self.base, "POST /tasks", 201, json=task)
        if body:
            self.mine.append(body["data"]["id"])

    @task(1)
    def move(self) -> None:
        if len(self.mine) > 1:
            moved, anchor = random.sample(self.mine, 2)
            where = {random.choice(("before", "after")): anchor}
            self._call("POST", f"{self.base}/{moved}/move", "POST /tasks/{id}/move", 200, json=where)

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
