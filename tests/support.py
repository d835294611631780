"""Test helpers: a live uvicorn server on loopback, tokens, and a real PostgreSQL."""

from __future__ import annotations

import asyncio
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, BinaryIO

import asyncpg
import httpx
import uvicorn
from joserfc import jwt
from joserfc.jwk import OctKey
from starlette.applications import Starlette

from service.app import create_app
from service.db.migrations import migrate
from service.db.pool import asyncpg_dsn
from service.settings import Settings
from service.web.http_protocol import uvicorn_options

SECRET = "test-secret-0123456789abcdef0123456789abcdef"


def new_user() -> str:
    return f"user_{secrets.token_hex(8)}"


def make_token(
    user_id: str | None,
    *,
    secret: str = SECRET,
    alg: str = "HS256",
    ttl: int = 600,
    header: Mapping[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    **claims: Any,
) -> str:
    """An HS* token; any claim can be overridden, and `drop` removes claims."""
    now = int(time.time())
    body: dict[str, Any] = {"sub": user_id, "iat": now, "exp": now + ttl, **claims}
    for name in drop:
        body.pop(name, None)
    return jwt.encode({"alg": alg, **(header or {})}, body, OctKey.import_key(secret), algorithms=[alg])


class FakeClock:
    """Wall and monotonic clocks a test can move forward: the real ones plus an offset, never slept."""

    def __init__(self) -> None:
        self.offset = 0.0

    def advance(self, seconds: float) -> None:
        self.offset += seconds

    def time(self) -> float:
        return time.time() + self.offset

    def monotonic(self) -> float:
        return time.monotonic() + self.offset


def auth(user_id: str, **kwargs: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {make_token(user_id, **kwargs)}"}


@dataclass(frozen=True)
class Database:
    """A migrated database on a real PostgreSQL server."""

    url: str
    admin_url: str

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        conn = await asyncpg.connect(asyncpg_dsn(self.url))
        try:
            return await conn.fetch(sql, *args)
        finally:
            await conn.close()

    def query(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        return asyncio.run(self.fetch(sql, *args))

    def script(self, sql: str) -> None:
        """Run several `;`-separated statements, with no parameters."""

        async def run() -> None:
            conn = await asyncpg.connect(asyncpg_dsn(self.url))
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(run())


@asynccontextmanager
async def row_locked(url: str, user_id: str, task_id: str) -> AsyncIterator[None]:
    """Hold a write lock on one task from a connection of the test's own, as a slow writer would."""
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        async with conn.transaction():
            await conn.execute(
                "SELECT 1 FROM tasks WHERE user_id = $1 AND id = $2 FOR UPDATE", user_id, uuid.UUID(task_id)
            )
            yield
    finally:
        await conn.close()


def _with_database(url: str, name: str) -> str:
    """The same server URL, naming another database (pgserver URLs carry the socket in the query)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


async def create_database(admin_url: str, name: str) -> str:
    conn = await asyncpg.connect(asyncpg_dsn(admin_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return _with_database(admin_url, name)


@contextmanager
def postgres_server(base: Path) -> Iterator[str]:
    """A PostgreSQL server: TEST_DATABASE_URL's if set, else an embedded pgserver in `base`."""
    external = os.environ.get("TEST_DATABASE_URL")
    if external:
        yield external
        return
    import pgserver

    server = pgserver.get_server(base, cleanup_mode="stop")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def fresh_database(admin_url: str, name: str) -> Database:
    url = asyncio.run(create_database(admin_url, name))
    asyncio.run(migrate(asyncpg_dsn(url)))
    return Database(url=url, admin_url=admin_url)


def settings_for(database_url: str, **overrides: Any) -> Settings:
    # Bursts of one user's requests here test the database; the per-user cap has tests of its own.
    base = Settings(
        database_url=database_url, better_auth_secret=SECRET, pool_size=20, max_inflight_per_user=1000
    )
    return replace(base, **overrides)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_service(
    env: Mapping[str, str], *, timeout: float = 60, output: BinaryIO | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """`python -m service` as a platform runs it, on a free loopback port; returns once /readyz answers 200.

    Its stdout and stderr go to `output` (a file the caller reads afterwards) or a temporary file.
    """
    port = free_port()
    # A file, not a pipe: a chatty server must never block on a full one.
    output = output or tempfile.TemporaryFile()  # noqa: SIM115 - it lives as long as the process writes to it
    proc = subprocess.Popen(
        [sys.executable, "-m", "service"],
        env={"PATH": os.environ.get("PATH", ""), **env, "PORT": str(port)},
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                return proc, base
        except httpx.TransportError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            output.seek(0)
            raise RuntimeError(
                f"the service did not come up:\n{output.read().decode(errors='replace')[-3000:]}"
            )
        time.sleep(0.1)


# The access log is on, as by default, but its lines would land between pytest's captures.
_DEVNULL = os.open(os.devnull, os.O_WRONLY)


class LiveServer:
    """The real app on uvicorn, on 127.0.0.1 and a free port, in a background thread."""

    def __init__(self, settings: Settings, app: Starlette | None = None) -> None:
        config = uvicorn.Config(
            app or create_app(settings, access_log_fd=_DEVNULL),
            host="127.0.0.1",
            port=0,
            log_level="warning",
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=5,
            # The same HTTP protocol and limits as `python -m service`, so tests exercise them.
            **uvicorn_options(settings),
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="live-server", daemon=True)
        self.base_url = ""

    def __enter__(self) -> LiveServer:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the test server did not start")
            time.sleep(0.01)
        port = self._server.servers[0].sockets[0].getsockname()[1]
        self.base_url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=30)

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, **{"timeout": 30, **kwargs})

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, **{"timeout": 30, **kwargs})


def assert_statement_timeout(live: LiveServer, database_url: str, user: str) -> None:
    """A write blocked on a row lock past DB_STATEMENT_TIMEOUT: 503 with Retry-After, nothing changed."""
    with live.client() as client:
        created = client.post(f"/api/{user}/tasks", json={"title": "original"}, headers=auth(user))
        url, task_id = created.headers["location"], created.json()["data"]["id"]

        async def blocked_patch() -> httpx.Response:
            async with row_locked(database_url, user, task_id), live.async_client() as blocked:
                return await blocked.patch(url, json={"title": "changed"}, headers=auth(user))

        response = asyncio.run(blocked_patch())
        assert response.status_code == 503, response.text
        assert response.headers["retry-after"].isdigit()
        assert response.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
        # The statement was cancelled, not left to finish once the lock went: the task is as it was,
        # and the pool's connection answers the next request.
        after = client.get(url, headers=auth(user))
        assert after.json()["data"] == created.json()["data"]
        assert after.headers["etag"] == created.headers["etag"]
        patched = client.patch(url, json={"title": "later"}, headers=auth(user))
        assert patched.json()["data"]["title"] == "later"


class InProcessApp:
    """The real app called in-process through httpx.ASGITransport: no socket, no HTTP parser.

    Its own event loop runs in a thread, so sync tests use it like any httpx.Client; the lifespan
    (pool, store) runs there too, and its state reaches each request as a server would pass it.
    """

    def __init__(self, app: Starlette) -> None:
        self._app = app
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="in-process-app", daemon=True)
        self._lifespan: Any = None
        self._state: dict[str, Any] = {}

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def __enter__(self) -> InProcessApp:
        self._thread.start()
        self._lifespan = self._app.router.lifespan_context(self._app)
        self._state = dict(self._run(self._lifespan.__aenter__()) or {})
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._run(self._lifespan.__aexit__(None, None, None))
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)

    async def _with_state(self, scope: Any, receive: Any, send: Any) -> None:
        await self._app({**scope, "state": dict(self._state)}, receive, send)

    def client(self) -> httpx.Client:
        transport = httpx.ASGITransport(
            app=self._with_state, client=("127.0.0.1", 50000), raise_app_exceptions=False
        )
        outer = self

        class Bridge(httpx.BaseTransport):
            def handle_request(self, request: httpx.Request) -> httpx.Response:
                body = request.read()
                forwarded = httpx.Request(request.method, request.url, headers=request.headers, content=body)
                response: httpx.Response = outer._run(self._send(forwarded))
                return httpx.Response(
                    response.status_code, headers=response.headers, content=response.content
                )

            async def _send(self, request: httpx.Request) -> httpx.Response:
                response = await transport.handle_async_request(request)
                await response.aread()
                return response

        return httpx.Client(transport=Bridge(), base_url="http://127.0.0.1")


# --- one user's view of the API, and the asserts every test repeats ------------------------------


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """The response is this error, in the envelope; returns its `error` object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert body["data"] is None
    assert body["error"]["code"] == code
    assert body["error"]["status"] == status
    assert body["meta"]["request_id"] == response.headers["x-request-id"]
    return dict(body["error"])


def invalid_field(response: httpx.Response) -> str:
    """The response is a 422 whose details all say something; returns the first field it names."""
    details = assert_error(response, 422, "VALIDATION_ERROR")["details"]
    assert details
    assert all(set(d) == {"field", "message"} and d["message"] for d in details)
    return str(details[0]["field"])


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


def run_cli(args: list[str], env: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`python -m service ARGS` with only PATH and `env` in its environment; its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "service", *args],
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
