"""HTTP over a raw socket, so a request head can arrive in pieces, slowly, or never end."""

from __future__ import annotations

import json
import select
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tests.support.servers import LiveServer

PLANNED = 2 * 1024 * 1024  # what an attacker would send; the answer must come long before
PIECE = 16 * 1024
STEP_SECONDS = 0.05  # how long the client waits for an answer between pieces (not an assertion)


@contextmanager
def connect(live: LiveServer) -> Iterator[socket.socket]:
    host, _, port = live.base_url.removeprefix("http://").partition(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    try:
        yield sock
    finally:
        sock.close()


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (a socket timeout fails the test)."""
    chunks = []
    while chunk := sock.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


def parse(raw: bytes) -> tuple[int, dict[str, list[str]], Any]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers.setdefault(name.strip().lower(), []).append(value.strip())
    return int(lines[0].split()[1]), headers, json.loads(body) if body else None


def send_until_answered(sock: socket.socket, start: bytes, piece: bytes) -> int:
    """Send `start`, then `piece` after piece up to PLANNED bytes, stopping once the server answers."""
    sock.sendall(start)
    sent = len(start)
    while sent < PLANNED:
        if select.select([sock], [], [], STEP_SECONDS)[0]:
            break
        try:
            sock.sendall(piece)
        except (BrokenPipeError, ConnectionResetError):
            break
        sent += len(piece)
    return sent


def assert_enveloped_refusal(raw: bytes, status: int, code: str) -> None:
    got, headers, body = parse(raw)
    assert got == status
    assert body["error"]["code"] == code
    assert body["meta"]["request_id"] == headers["x-request-id"][0]
    assert headers["connection"] == ["close"]
    assert headers["x-content-type-options"] == ["nosniff"]
    assert headers["cache-control"] == ["no-store"]
    assert headers["content-type"] == ["application/json"]
