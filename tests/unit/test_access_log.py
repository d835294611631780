"""The access log's writer: whole lines, written within one event-loop tick, in atomic-sized writes."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import Iterator

import pytest

from service.ops.access_log import MAX_WRITE, AccessLog


@pytest.fixture
def packets() -> Iterator[tuple[AccessLog, socket.socket]]:
    """An AccessLog writing into a SOCK_SEQPACKET pair, whose reader sees each write() as one packet."""
    writer, reader = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    reader.setblocking(False)
    with writer, reader:
        yield AccessLog(writer.fileno(), wall_clock=lambda: 1_700_000_000.1234567), reader


def _writes(reader: socket.socket) -> list[bytes]:
    received = []
    while True:
        try:
            received.append(reader.recv(1 << 16))
        except BlockingIOError:
            return received


def _log(log: AccessLog, n: int, status: int = 200) -> None:
    for i in range(n):
        log.write("GET", "/api/{user_id}/tasks", status, 0.0012345678, f"request-{i:04d}", "a1b2c3d4e5f6a7b8")


def test_a_tick_of_lines_is_one_write_on_the_next_tick(packets: tuple[AccessLog, socket.socket]) -> None:
    log, reader = packets

    async def scenario() -> tuple[list[bytes], list[bytes]]:
        _log(log, 3)
        before = _writes(reader)  # nothing yet: the lines wait for the end of this tick
        await asyncio.sleep(0)
        return before, _writes(reader)

    before, after = asyncio.run(scenario())
    assert before == []
    assert len(after) == 1
    lines = [json.loads(line) for line in after[0].splitlines()]
    assert [line["request_id"] for line in lines] == ["request-0000", "request-0001", "request-0002"]
    assert lines[0] == {
        "ts": 1700000000.123456,
        "level": "info",
        "logger": "service.access",
        "message": "request",
        "method": "GET",
        "route": "/api/{user_id}/tasks",
        "status": 200,
        "duration_ms": 1.234,
        "request_id": "request-0000",
        "user": "a1b2c3d4e5f6a7b8",
    }


def test_a_busy_tick_writes_whole_lines_no_larger_than_pipe_buf(
    packets: tuple[AccessLog, socket.socket],
) -> None:
    log, reader = packets

    async def scenario() -> list[bytes]:
        _log(log, 200)
        await asyncio.sleep(0)
        return _writes(reader)

    writes = asyncio.run(scenario())
    assert len(writes) > 1
    assert all(len(w) <= MAX_WRITE and w.endswith(b"\n") for w in writes)
    lines = b"".join(writes).splitlines()
    assert [json.loads(line)["request_id"] for line in lines] == [f"request-{i:04d}" for i in range(200)]


def test_close_flushes_what_the_tick_has_not(packets: tuple[AccessLog, socket.socket]) -> None:
    log, reader = packets

    async def scenario() -> None:
        log.start()
        _log(log, 2, status=503)
        log.close()

    asyncio.run(scenario())
    assert [json.loads(line)["status"] for line in b"".join(_writes(reader)).splitlines()] == [503, 503]


def test_a_closed_stdout_does_not_fail_the_request(packets: tuple[AccessLog, socket.socket]) -> None:
    log, reader = packets
    reader.close()  # nobody reads any more: writes get EPIPE

    async def scenario() -> None:
        _log(log, 2)
        await asyncio.sleep(0)

    asyncio.run(scenario())  # no exception
