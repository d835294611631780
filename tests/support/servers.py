"""The service served for tests: a live uvicorn server on loopback, the app in-process, `python -m service`."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from typing import Any, BinaryIO

import httpx
import uvicorn
from starlette.applications import Starlette

from service.app import create_app
from service.settings import Settings
from service.web.http_protocol import uvicorn_options
from tests.support.tokens import SECRET


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
