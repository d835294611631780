"""One user's view of the API, and requests sent at once: bursts, walks under churn, racing workers."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from typing import Any

import httpx

from tests.support.servers import LiveServer
from tests.support.tokens import auth, new_user


class UserClient:
    """One user's side of the API over any httpx client: their token on every request, their paths."""

    def __init__(self, client: httpx.Client, user_id: str | None = None) -> None:
        self.client = client
        self.id = user_id or new_user()
        self.headers = auth(self.id)
        self.tasks_url = f"/api/{self.id}/tasks"

    def request(
        self, method: str, path: str = "", *, headers: Mapping[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """`path` below the user's task collection ("", "/{id}", "/{id}/complete"), or absolute."""
        url = path if path.startswith("/api/") else self.tasks_url + path
        return self.client.request(method, url, headers={**self.headers, **(headers or {})}, **kwargs)

    def create(self, title: str = "a task", **body: Any) -> dict[str, Any]:
        """Create a task and return it; fails the test unless the answer is 201."""
        response = self.request("POST", json={"title": title, **body})
        assert response.status_code == 201, response.text
        return dict(response.json()["data"])

    def get(self, task_id: str) -> httpx.Response:
        return self.request("GET", f"/{task_id}")

    def task(self, task_id: str) -> dict[str, Any]:
        response = self.get(task_id)
        assert response.status_code == 200, response.text
        return dict(response.json()["data"])

    def list(self, **params: Any) -> httpx.Response:
        return self.request("GET", params=params)

    def pages(
        self, params: Mapping[str, Any] | Sequence[tuple[str, Any]] = ()
    ) -> Iterator[list[dict[str, Any]]]:
        """Every page of the listing with `params`, following `next_cursor` to the end."""
        query = list(params.items()) if isinstance(params, Mapping) else list(params)
        cursor = None
        while True:
            response = self.request("GET", params=query if cursor is None else [*query, ("cursor", cursor)])
            assert response.status_code == 200, response.text
            body = response.json()
            assert body["meta"]["count"] == len(body["data"])
            yield body["data"]
            cursor = body["meta"]["next_cursor"]
            if cursor is None:
                return

    def ids(self, **params: Any) -> list[str]:
        """Ids of the first page, in the order listed."""
        response = self.list(**params)
        assert response.status_code == 200, response.text
        return [t["id"] for t in response.json()["data"]]

    def count(self) -> int:
        """How many tasks the user has (up to 200)."""
        return len(self.ids(limit=200))


def burst(
    live: LiveServer, count: int, send: Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]]
) -> list[httpx.Response]:
    """Send `count` requests at once (`send(client, i)`), over one connection pool; in order of i."""

    async def all_at_once() -> list[httpx.Response]:
        async with live.async_client() as client:
            return list(await asyncio.gather(*(send(client, i) for i in range(count))))

    return asyncio.run(all_at_once())


def create_task(client: httpx.Client, user_id: str, title: str = "a task", **body: Any) -> dict[str, Any]:
    """Create a task for `user_id` and return it; fails the test unless the answer is 201."""
    return UserClient(client, user_id).create(title, **body)


def walk_under_churn(
    server: LiveServer,
    body: Callable[[], dict[str, Any]],
    walk: Callable[[UserClient], Iterator[list[dict[str, Any]]]],
    *,
    tasks: int,
    doomed: int,
    seed: str,
) -> None:
    """Page through `tasks` tasks with `walk` while another client creates tasks and deletes `doomed`
    of them: no task may appear twice, and none that survives may be skipped."""
    rng = random.Random(seed)
    with server.client() as client, server.client() as other_client:
        me = UserClient(client)
        originals = [me.create(**body()) for _ in range(tasks)]
        to_delete = {t["id"] for t in rng.sample(originals, doomed)}
        writer_side = UserClient(other_client, me.id)
        stop = threading.Event()

        def churn() -> None:
            pending = list(to_delete)
            while not stop.is_set():
                writer_side.create(**body())
                if pending:
                    writer_side.request("DELETE", f"/{pending.pop()}")

        writer = threading.Thread(target=churn)
        writer.start()
        try:
            seen = [t["id"] for page in walk(me) for t in page]
        finally:
            stop.set()
            writer.join()
    assert len(seen) == len(set(seen)), "a task appeared twice"
    survivors = {t["id"] for t in originals} - to_delete
    assert survivors <= set(seen), "a surviving task was skipped"


def run_together(workers: Sequence[Callable[[], object]]) -> None:
    """Run each worker in a thread of its own, all released at the same moment; return once all are done."""
    start = threading.Barrier(len(workers))

    def released(worker: Callable[[], object]) -> None:
        start.wait()
        worker()

    threads = [threading.Thread(target=released, args=(worker,)) for worker in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def preflight(client: httpx.Client, origin: str, path: str) -> httpx.Response:
    """The CORS preflight a browser sends before a PATCH with a token, a JSON body and If-Match."""
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "PATCH",
            "Access-Control-Request-Headers": "authorization, content-type, if-match",
        },
    )
