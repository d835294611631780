"""CPU per request of the app itself, called in-process: the figure to compare before and after a change.

    python -m tests.load.cpu --requests 20000 --concurrency 32

wrk against a server counts the worker, the load generator and PostgreSQL on the same cores, and
its rounds spread by 10-50% on a shared machine. This calls the app directly, as uvicorn would
(the same middleware, lifespan, pool and default settings as `python -m service`, the access log
to /dev/null), --concurrency requests at a time, and counts the process's CPU time per request
(`time.process_time`: the app and asyncpg's client side; no HTTP parsing, no PostgreSQL) for each
operation, the best of --rounds. Starts a throwaway PostgreSQL, seeds --users x --tasks through
the app, prints the figures as JSON. Everything binds to 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvloop
from starlette.applications import Starlette

from service.app import create_app
from service.db.migrations import migrate
from service.db.pool import asyncpg_dsn
from service.settings import Settings
from tests.support.pg_cluster import PgCluster
from tests.support.postgres import create_database
from tests.support.tokens import SECRET, make_token


@dataclass
class User:
    id: str
    authorization: bytes
    tasks: list[str] = field(default_factory=list)


class InProcess:
    """Calls the app with the scope, receive and send uvicorn would give it; returns status and body."""

    def __init__(self, app: Starlette, state: dict[str, Any]) -> None:
        self.app = app
        self.state = state

    async def __call__(self, method: str, path: str, user: User, body: bytes = b"") -> tuple[int, bytes]:
        headers = [(b"host", b"127.0.0.1:8000"), (b"authorization", user.authorization)]
        if body:
            headers.append((b"content-type", b"application/json"))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "server": ("127.0.0.1", 8000),
            "client": ("127.0.0.1", 50000),
            "scheme": "http",
            "root_path": "",
            "headers": headers,
            "state": self.state.copy(),
            "method": method,
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
        }
        received = False
        status = 0
        chunks: list[bytes] = []

        async def receive() -> dict[str, Any]:
            nonlocal received
            if received:
                return {"type": "http.disconnect"}
            received = True
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            else:
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, send)
        return status, b"".join(chunks)


Request = tuple[str, str, bytes]
OPERATIONS: dict[str, Callable[[User, random.Random], Request]] = {
    "list": lambda u, rng: ("GET", f"/api/{u.id}/tasks", b""),
    "get": lambda u, rng: ("GET", f"/api/{u.id}/tasks/{rng.choice(u.tasks)}", b""),
    "create": lambda u, rng: ("POST", f"/api/{u.id}/tasks", b'{"title":"cpu bench","tags":["bench"]}'),
    "update": lambda u, rng: ("PATCH", f"/api/{u.id}/tasks/{rng.choice(u.tasks)}", b'{"title":"renamed"}'),
}


async def _run(call: InProcess, users: list[User], operation: str, requests: int, concurrency: int) -> None:
    make = OPERATIONS[operation]
    rng = random.Random(1)

    async def worker(first: int) -> None:
        for i in range(first, requests, concurrency):
            method, path, body = make(users[i % len(users)], rng)
            status, answer = await call(method, path, users[i % len(users)], body)
            if status >= 300:
                raise RuntimeError(f"{method} {path}: {status} {answer[:300]!r}")

    # A TaskGroup: one failure stops the others before the lifespan closes the pool under them.
    async with asyncio.TaskGroup() as group:
        for k in range(concurrency):
            group.create_task(worker(k))


async def bench(
    url: str, users: int, tasks: int, requests: int, concurrency: int, rounds: int
) -> dict[str, Any]:
    devnull = os.open(os.devnull, os.O_WRONLY)
    app = create_app(Settings(database_url=url, better_auth_secret=SECRET), access_log_fd=devnull)
    people = [
        User(f"cpu-{i:04d}", f"Bearer {make_token(f'cpu-{i:04d}', ttl=3600)}".encode()) for i in range(users)
    ]
    results: dict[str, Any] = {"requests": requests, "concurrency": concurrency, "rounds": rounds}
    async with app.router.lifespan_context(app) as state:
        call = InProcess(app, dict(state or {}))
        for user in people:
            for n in range(tasks):
                status, body = await call("POST", f"/api/{user.id}/tasks", user, b'{"title":"seed %d"}' % n)
                assert status == 201, body
                user.tasks.append(json.loads(body)["data"]["id"])
        for operation in OPERATIONS:
            await _run(call, people, operation, min(requests, 2000), concurrency)  # warm up
            best = float("inf")
            for _ in range(rounds):
                started = time.process_time()
                await _run(call, people, operation, requests, concurrency)
                best = min(best, time.process_time() - started)
            results[operation] = {"cpu_us_per_request": round(best / requests * 1e6, 1)}
    os.close(devnull)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=20000, help="per operation and round")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--tasks", type=int, default=20, help="seeded per user")
    args = parser.parse_args()
    if args.concurrency > args.users:
        # Spread over at least as many users, no one exceeds MAX_INFLIGHT_PER_USER (8) and gets 429s.
        parser.error("--concurrency may not exceed --users")
    cluster = PgCluster()
    cluster.start()
    try:
        url = asyncio.run(create_database(cluster.url, "cpu"))
        asyncio.run(migrate(asyncpg_dsn(url)))
        figures = uvloop.run(bench(url, args.users, args.tasks, args.requests, args.concurrency, args.rounds))
        print(json.dumps(figures, indent=2))
    finally:
        cluster.destroy()


if __name__ == "__main__":
    main()
