"""The request body is bounded in time: a stalled body is 408, and an answer given before its body
was read closes the connection, so no socket outlives its timers.

Raw sockets, so a body can arrive in pieces, late, or never.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable

import httpx

from tests.support import LiveServer, auth, new_user
from tests.support.raw_http import connect, parse, read_until_closed

# One more than MAX_CONNECTIONS' default: enough to refuse everyone if the sockets were kept.
ATTACKERS = 1100


def _address(live: LiveServer) -> tuple[str, int]:
    host, _, port = live.base_url.removeprefix("http://").partition(":")
    return host, int(port)


def test_sockets_answered_before_their_body_are_closed_and_the_service_keeps_answering(
    make_server: Callable[..., LiveServer],
) -> None:
    """The attack: a head and a piece of body, no token (401 at once), then one more body byte.

    Each such socket used to keep no timer at all; 1,005 of them made every request a 503.
    """
    live = make_server()
    start = (
        b"POST /api/someone/tasks HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )
    held: list[socket.socket] = []
    try:
        for _ in range(ATTACKERS):
            sock = socket.create_connection(_address(live), timeout=15)
            sock.sendall(start)
            held.append(sock)
        for sock in held:
            with contextlib.suppress(OSError):  # the server has closed it already
                sock.sendall(b'"')
        statuses = set()
        for sock in held:
            raw = read_until_closed(sock)  # the server closes every one of them
            statuses.add(parse(raw)[0])
        assert statuses <= {401, 503}
        assert 401 in statuses
        # The attacker still holds every socket open on its side; everyone else is served.
        with httpx.Client(base_url=live.base_url, timeout=10) as client:
            for _ in range(20):
                assert client.get("/healthz").status_code == 200
    finally:
        for sock in held:
            sock.close()


def test_a_stalled_body_is_408_and_closes_and_writes_nothing(make_server: Callable[..., LiveServer]) -> None:
    live = make_server(body_timeout=0.5)
    user = new_user()
    head = (
        f"POST /api/{user}/tasks HTTP/1.1\r\nHost: t\r\nAuthorization: {auth(user)['Authorization']}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    ).encode()
    with connect(live) as sock:
        sock.sendall(head + b'{"title": "never fin')
        status, headers, body = parse(read_until_closed(sock))
    assert status == 408
    assert body["error"]["code"] == "REQUEST_TIMEOUT"
    assert headers["connection"] == ["close"]
    with httpx.Client(base_url=live.base_url) as client:
        listed = client.get(f"/api/{user}/tasks", headers=auth(user)).json()
    assert listed["data"] == []


def test_the_body_timeout_is_idle_time_not_total_time(make_server: Callable[..., LiveServer]) -> None:
    """A slow but steady body is fine: each piece restarts the clock."""
    live = make_server(body_timeout=0.5)
    user = new_user()
    body = b'{"title": "arrives slowly"}'
    head = (
        f"POST /api/{user}/tasks HTTP/1.1\r\nHost: t\r\nAuthorization: {auth(user)['Authorization']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    with connect(live) as sock:
        sock.sendall(head)
        for i in range(0, len(body), 9):  # about a second in all, twice the timeout
            time.sleep(0.25)
            sock.sendall(body[i : i + 9])
        status, _, answer = parse(read_until_closed(sock))
    assert status == 201
    assert answer["data"]["title"] == "arrives slowly"
