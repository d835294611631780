"""CONTRACT §10, issue 10: the request head is bounded while it is read, in size, time and connections.

Most speak HTTP over raw sockets, so a head can arrive in pieces, slowly, or never end; the last
ones send an oversized URL or headers as any HTTP client would.
"""

from __future__ import annotations

import select
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from service.web.limits import MAX_HEADER_BYTES, MAX_URL_BYTES
from tests.support.raw_http import (
    PIECE,
    PLANNED,
    assert_enveloped_refusal,
    connect,
    parse,
    read_until_closed,
    send_until_answered,
)
from tests.support.servers import LiveServer
from tests.support.tokens import auth, new_user


@pytest.mark.parametrize(
    ("head", "filler", "status", "code"),
    [
        pytest.param(
            b"GET /healthz HTTP/1.1\r\nHost: t\r\n",
            b"".join(b"X-Pad-%d: %s\r\n" % (i, b"p" * 1000) for i in range(PIECE // 1000)),
            431,
            "HEADERS_TOO_LARGE",
            id="many-headers",
        ),
        # httptools holds a header until it ends, so only the bytes on the wire can tell.
        pytest.param(
            b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Long: ",
            b"v" * PIECE,
            431,
            "HEADERS_TOO_LARGE",
            id="one-endless-header",
        ),
        pytest.param(b"GET /healthz?q=", b"a" * PIECE, 414, "URI_TOO_LONG", id="url"),
    ],
)
def test_an_oversized_head_is_refused_long_before_it_ends(
    server: LiveServer, head: bytes, filler: bytes, status: int, code: str
) -> None:
    with connect(server) as sock:
        sent = send_until_answered(sock, head, filler)
        raw = read_until_closed(sock)
    assert_enveloped_refusal(raw, status, code)
    assert sent < PLANNED // 8


def _head(url_bytes: int, header_bytes: int) -> bytes:
    """A GET whose target is `url_bytes` long and whose headers count `header_bytes` (name + value + 4 each)."""
    url = b"/healthz?q=" + b"a" * (url_bytes - len(b"/healthz?q="))
    host = b"Host: t\r\n"  # counts 4 + 1 + 4
    pad = header_bytes - 9 - len(b"X-Pad") - 4
    return (
        b"GET " + url + b" HTTP/1.1\r\n" + host + b"X-Pad: " + b"p" * pad + b"\r\nConnection: close\r\n\r\n"
    )


def _send_in_pieces(
    live: LiveServer, request: bytes, size: int = 1000
) -> tuple[int, dict[str, list[str]], Any]:
    with connect(live) as sock:
        for start in range(0, len(request), size):
            sock.sendall(request[start : start + size])
        return parse(read_until_closed(sock))


def test_the_limits_are_exact_however_the_head_is_cut(server: LiveServer) -> None:
    close = len(b"Connection") + len(b"close") + 4
    assert _send_in_pieces(server, _head(MAX_URL_BYTES, MAX_HEADER_BYTES - close))[0] == 200
    status, _, body = _send_in_pieces(server, _head(MAX_URL_BYTES + 1, 100))
    assert (status, body["error"]["message"]) == (
        414,
        f"The request URL is longer than {MAX_URL_BYTES} bytes",
    )
    status, _, body = _send_in_pieces(server, _head(100, MAX_HEADER_BYTES - close + 1))
    assert (status, body["error"]["message"]) == (
        431,
        f"The request headers are larger than {MAX_HEADER_BYTES} bytes",
    )
    # The same heads in one piece.
    assert _send_in_pieces(server, _head(MAX_URL_BYTES, MAX_HEADER_BYTES - close), size=10**6)[0] == 200
    assert _send_in_pieces(server, _head(100, MAX_HEADER_BYTES - close + 1), size=10**6)[0] == 431


def test_a_slow_head_is_closed_after_the_head_timeout(make_server: Callable[..., LiveServer]) -> None:
    live = make_server(head_timeout=0.3)
    with connect(live) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: t\r\n")
        lines = 0
        # One header line every 0.1 s would keep stock uvicorn waiting for ever; 100 lines is 10 s.
        while lines < 100 and not select.select([sock], [], [], 0.1)[0]:
            sock.sendall(b"X-Drip-%d: x\r\n" % lines)
            lines += 1
        assert read_until_closed(sock) == b""  # closed, nothing answered
    assert lines < 100


def test_a_connection_that_sends_nothing_is_closed(make_server: Callable[..., LiveServer]) -> None:
    live = make_server(head_timeout=0.3)
    with connect(live) as sock:
        assert read_until_closed(sock) == b""


def test_keep_alive_and_pipelining_still_work(make_server: Callable[..., LiveServer]) -> None:
    live = make_server(head_timeout=0.3)
    user = new_user()
    token = auth(user)["Authorization"].encode()
    get = b"GET /api/%s/tasks HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\n\r\n" % (user.encode(), token)
    with connect(live) as sock:
        sock.sendall(get + get)  # pipelined
        received = b""
        while received.count(b"HTTP/1.1 200") < 2:
            received += sock.recv(65536)
        # Idle between requests for longer than the head timeout is up to the keep-alive timeout.
        select.select([sock], [], [], 0.5)
        sock.sendall(get[:20])
        sock.sendall(get[20:])
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")


def test_connections_past_the_limit_get_503_in_the_envelope(make_server: Callable[..., LiveServer]) -> None:
    live = make_server(max_connections=2)
    request = b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n"
    with connect(live) as first, connect(live) as second:
        for sock in (first, second):  # answered, so the server holds both connections open
            sock.sendall(request)
            assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        with connect(live) as third:
            third.sendall(request)
            status, headers, body = parse(read_until_closed(third))
    assert status == 503
    assert body["error"]["code"] == "SERVICE_UNAVAILABLE"
    assert headers["retry-after"] == ["1"]
    assert headers["x-content-type-options"] == ["nosniff"]


# --- the limits as an HTTP client meets them ----------------------------------------------------


def test_url_over_8_kib_is_414(client: httpx.Client, user: str) -> None:
    response = client.get(f"/api/{user}/tasks?q={'x' * 9000}", headers=auth(user))
    assert response.status_code == 414
    assert response.json()["error"]["code"] == "URI_TOO_LONG"


def test_headers_over_32_kib_are_431(client: httpx.Client, user: str) -> None:
    headers = {**auth(user), **{f"X-Pad-{i}": "p" * 1000 for i in range(40)}}
    response = client.get(f"/api/{user}/tasks", headers=headers)
    assert response.status_code == 431
    assert response.json()["error"]["code"] == "HEADERS_TOO_LARGE"
