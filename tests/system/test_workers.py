"""`python -m service` as deployed, in processes of its own: several workers answer as one service,
another process announces a write, and the workers serve with the same HTTP protocol and limits."""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from pathlib import Path

import httpx

from tests.support.metrics import metric_samples
from tests.support.postgres import Database
from tests.support.raw_http import (
    PIECE,
    PLANNED,
    assert_enveloped_refusal,
    read_until_closed,
    send_until_answered,
)
from tests.support.servers import LiveServer, start_service
from tests.support.sse import open_stream, seq, stream_client, write_task
from tests.support.tokens import SECRET, auth, new_user


def test_metrics_sum_every_worker(database: Database, tmp_path: Path) -> None:
    """Behind one port the kernel picks the worker a scrape reaches: each must answer for all of them."""
    env = {
        "BETTER_AUTH_SECRET": SECRET,
        "DATABASE_URL": database.url,
        "HOME": str(tmp_path),
        "WEB_CONCURRENCY": "2",
        "DB_POOL_SIZE": "3",
        "METRICS_ENABLED": "true",
    }
    proc, base = start_service(env)
    max_connections = ("db_pool_max_connections", ())
    try:
        # Both workers are up once both pools are in the sum (each adds its 3 at start).
        deadline = time.monotonic() + 30
        while metric_samples(httpx.get(f"{base}/metrics").text).get(max_connections) != 6:
            assert time.monotonic() < deadline, "the second worker never reported its pool"
            time.sleep(0.1)
        user = new_user()
        for _ in range(30):  # a new connection each: the kernel spreads them over the workers
            assert httpx.get(f"{base}/api/{user}/tasks", headers=auth(user)).status_code == 200
        key = (
            "http_requests_total",
            (("method", "GET"), ("route", "/api/{user_id}/tasks"), ("status", "200")),
        )
        scrapes = [metric_samples(httpx.get(f"{base}/metrics").text) for _ in range(6)]
        assert [scrape[key] for scrape in scrapes] == [30] * 6
        assert all(scrape[max_connections] == 6 for scrape in scrapes)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_a_write_through_one_process_is_announced_by_another(
    server: LiveServer, database: Database, tmp_path: Path
) -> None:
    proc, base = start_service(
        {"BETTER_AUTH_SECRET": SECRET, "DATABASE_URL": database.url, "HOME": str(tmp_path)}
    )
    user = new_user()
    try:

        async def run() -> None:
            async with (
                stream_client(base) as elsewhere,
                stream_client(server.base_url) as here,
                open_stream(elsewhere, user) as stream,
            ):
                await stream.until("ready")
                await write_task(here, user)
                assert seq(user, (await stream.until("changed")).since) == 1

        asyncio.run(run())
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_python_m_service_serves_with_the_same_protocol(database: Database) -> None:
    env = {"DATABASE_URL": database.url, "BETTER_AUTH_SECRET": SECRET, "HEAD_TIMEOUT_SECONDS": "0.3"}
    proc, base = start_service(env)
    try:
        host, _, port = base.removeprefix("http://").partition(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            pad = b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 1000) for i in range(PIECE // 1000))
            sent = send_until_answered(sock, b"GET /healthz HTTP/1.1\r\nHost: t\r\n", pad)
            assert_enveloped_refusal(read_until_closed(sock), 431, "HEADERS_TOO_LARGE")
        assert sent < PLANNED // 8
        with socket.create_connection((host, int(port)), timeout=10) as idle:
            assert read_until_closed(idle) == b""  # HEAD_TIMEOUT_SECONDS reached the workers
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
