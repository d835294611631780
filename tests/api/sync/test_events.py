"""CONTRACT §9, live updates: the event stream, reconnection, its limits, pings, expiry and memory.

With servers or clusters of their own, tests/system/ covers shutdown, database restarts, PgBouncer
and several processes."""

from __future__ import annotations

import asyncio
import gc
import socket
import time
import tracemalloc
from collections.abc import Callable

import pytest

from tests.support.servers import LiveServer
from tests.support.sse import json_body, open_stream, seq, stream_client, write_task
from tests.support.tokens import auth, make_token, new_user

APP = "https://app.example.com"


def test_ready_then_changed_after_a_write_and_none_for_other_users(server: LiveServer) -> None:
    user, other = new_user(), new_user()

    async def run() -> float:
        async with stream_client(server.base_url) as client, open_stream(client, user) as stream:
            assert stream.response.status_code == 200
            assert stream.response.headers["content-type"].startswith("text/event-stream")
            assert stream.response.headers["cache-control"] == "no-store"
            assert stream.response.headers["x-request-id"]
            ready = await stream.next()
            assert ready is not None
            assert ready.event == "ready"
            assert ready.id is None
            assert seq(user, ready.since) == 0
            for i in range(3):
                await write_task(client, other, f"not yours {i}")
            started = time.perf_counter()
            await write_task(client, user)
            changed = await stream.next()
            latency = time.perf_counter() - started
            # The first event after `ready` is about this user's write, not the other user's three.
            assert changed is not None
            assert changed.event == "changed"
            assert changed.id == changed.since
            assert seq(user, changed.since) == 1
            return latency

    latency = asyncio.run(run())
    print(f"write -> changed on loopback: {latency * 1000:.1f} ms")


def test_a_burst_of_writes_is_announced_and_the_token_reads_the_changes(server: LiveServer) -> None:
    user = new_user()

    async def run() -> None:
        async with stream_client(server.base_url) as client, open_stream(client, user) as stream:
            ready = await stream.until("ready")
            made = await asyncio.gather(*(write_task(client, user, f"burst {i}") for i in range(10)))
            last = 0
            while last < 10:  # coalesced into one or a few events, in increasing order
                event = await stream.until("changed")
                assert seq(user, event.since) > last
                last = seq(user, event.since)
            body = (
                await client.get(
                    f"/api/{user}/tasks/changes", params={"since": ready.since}, headers=auth(user)
                )
            ).json()
            assert {c["task"]["id"] for c in body["data"]} == {t["id"] for t in made}
            assert seq(user, body["meta"]["next_since"]) == last

    asyncio.run(run())


def test_reconnecting_with_last_event_id(server: LiveServer) -> None:
    user = new_user()

    async def run() -> None:
        async with stream_client(server.base_url) as client:
            async with open_stream(client, user) as stream:
                await stream.until("ready")
                await write_task(client, user)
                seen = await stream.until("changed")
            await write_task(client, user, "while away")
            async with open_stream(client, user, last_event_id=seen.id) as stream:
                await stream.until("ready")
                missed = await stream.next()  # at once: no write needed to trigger it
                assert missed is not None
                assert missed.event == "changed"
                assert seq(user, missed.since) == 2
            # Up to date: no `changed` until something really changes.
            async with open_stream(client, user, last_event_id=missed.id) as stream:
                await stream.until("ready")
                await write_task(client, user, "new")
                assert seq(user, (await stream.until("changed")).since) == 3
            # Another user's id, or garbage: treated as unknown, so the client is told to resync.
            stranger = new_user()
            async with open_stream(client, stranger) as stream:
                await stream.until("ready")
            async with open_stream(client, user, last_event_id="forged") as stream:
                await stream.until("ready")
                assert (await stream.next()).event == "changed"  # type: ignore[union-attr]

    asyncio.run(run())


def test_the_sixth_stream_is_429_and_a_closed_one_frees_its_slot(server: LiveServer) -> None:
    user = new_user()

    async def run() -> None:
        async with stream_client(server.base_url) as client:
            streams = [open_stream(client, user) for _ in range(5)]
            opened = [await s.__aenter__() for s in streams]
            for stream in opened:
                assert stream.response.status_code == 200
            async with open_stream(client, user) as sixth:
                assert sixth.response.status_code == 429
                await sixth.response.aread()
                body = json_body(sixth.response)
                assert body["error"]["code"] == "TOO_MANY_STREAMS"
                assert body["data"] is None
                assert int(sixth.response.headers["retry-after"]) > 0
            # Another user is not limited by this one's streams.
            async with open_stream(client, new_user()) as theirs:
                assert theirs.response.status_code == 200
            await streams[0].__aexit__(None, None, None)
            deadline = time.monotonic() + 5
            while True:
                async with open_stream(client, user) as again:
                    if again.response.status_code == 200:
                        break
                assert time.monotonic() < deadline, "a closed stream kept its slot"
                await asyncio.sleep(0.1)
            for stream in streams[1:]:
                await stream.__aexit__(None, None, None)

    asyncio.run(run())


def test_the_stream_ends_with_expired_when_the_token_does(server: LiveServer) -> None:
    user = new_user()

    async def run() -> None:
        async with stream_client(server.base_url) as client, open_stream(client, user, ttl=1) as stream:
            await stream.until("ready")
            expired = await stream.until("expired", wait=15)
            assert expired.data == "{}"
            assert await stream.next() is None  # closed

    asyncio.run(run())


def test_pings_come_as_comment_lines_and_every_write_between_them_is_announced(
    make_server: Callable[..., LiveServer], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pings this frequent keep the stream busy: a wake-up that lands while one is being sent, or
    as the wait times out, must not be lost."""
    monkeypatch.setattr("service.sync.events.PING_SECONDS", 0.0001)
    live = make_server()
    user = new_user()

    async def run() -> None:
        async with stream_client(live.base_url) as client, open_stream(client, user) as stream:
            await stream.until("ready")
            ping = await stream.next(pings=True)
            assert ping is not None
            assert ping.comments == ["ping"]
            for i in range(1, 31):
                await write_task(client, user, f"write {i}")
                assert seq(user, (await stream.until("changed")).since) == i

    asyncio.run(run())


def test_a_preflight_allows_last_event_id(make_server: Callable[..., LiveServer]) -> None:
    live = make_server(cors_origins=(APP,))
    with live.client() as client:
        response = client.options(
            "/api/u1/events",
            headers={
                "Origin": APP,
                "Access-Control-Request-Method": "GET",
                "Access-Control-Request-Headers": "authorization, last-event-id",
            },
        )
    assert response.status_code == 200
    assert "last-event-id" in response.headers["access-control-allow-headers"].lower()


def test_open_streams_do_not_use_up_the_users_requests_in_flight(
    make_server: Callable[..., LiveServer],
) -> None:
    """A stream is in flight for hours; it counts against MAX_STREAMS_PER_USER, not MAX_INFLIGHT_PER_USER."""
    live = make_server(max_inflight_per_user=2)
    user = new_user()

    async def run() -> None:
        async with stream_client(live.base_url) as client:
            streams = [open_stream(client, user) for _ in range(3)]
            for stream in [await s.__aenter__() for s in streams]:
                assert stream.response.status_code == 200
            response = await client.get(f"/api/{user}/tasks", headers=auth(user))
            assert response.status_code == 200
            for s in streams:
                await s.__aexit__(None, None, None)

    asyncio.run(run())


# What the server may allocate per idle stream. tests/load/streams.py measures the worker's RSS at
# 10,000 streams (the target is under 20 KiB each); this pins the Python side of it in the suite.
MAX_BYTES_PER_IDLE_STREAM = 20 * 1024


def _open_raw_stream(host: str, port: int, user: str) -> socket.socket:
    """An event stream read over a bare socket until `ready`, so the client allocates next to nothing."""
    sock = socket.create_connection((host, port))
    sock.sendall(
        f"GET /api/{user}/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {make_token(user)}\r\n"
        "Accept: text/event-stream\r\n\r\n".encode()
    )
    received = b""
    while b"event: ready" not in received:
        chunk = sock.recv(65536)
        assert chunk, received
        received += chunk
    assert received.startswith(b"HTTP/1.1 200"), received
    return sock


def test_an_idle_stream_holds_under_20_kib_of_the_server(server: LiveServer) -> None:
    """The test server runs in this process, so tracemalloc sees what it keeps for each open stream."""
    host, port = "127.0.0.1", int(server.base_url.rsplit(":", 1)[1])
    count = 200
    # The first streams start the worker's listener connection; it is not a per-stream cost.
    sockets = [_open_raw_stream(host, port, new_user()) for _ in range(4)]
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    try:
        gc.collect()
        before = tracemalloc.take_snapshot()
        sockets += [_open_raw_stream(host, port, new_user()) for _ in range(count)]
        gc.collect()
        after = tracemalloc.take_snapshot()
    finally:
        if not tracing:
            tracemalloc.stop()
        for sock in sockets:
            sock.close()
    # The client's own share (its sockets, this list) is left out.
    client_side = (tracemalloc.Filter(False, __file__), tracemalloc.Filter(False, socket.__file__))
    grown = sum(
        stat.size_diff
        for stat in after.filter_traces(client_side).compare_to(before.filter_traces(client_side), "filename")
    )
    per_stream = grown / count
    print(f"server allocations per idle stream: {per_stream:.0f} B")
    assert per_stream < MAX_BYTES_PER_IDLE_STREAM
