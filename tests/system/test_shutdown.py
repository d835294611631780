"""SIGTERM to `python -m service`: requests in flight finish, no log line is lost, open event streams
end and the process exits promptly."""

from __future__ import annotations

import asyncio
import json
import signal
import socket
import time
from pathlib import Path

import httpx

from tests.support.postgres import Database
from tests.support.servers import start_service
from tests.support.sse import EventStream, open_stream, stream_client
from tests.support.tokens import SECRET, auth, make_token, new_user


def test_sigterm_lets_an_in_flight_request_finish(database: Database, tmp_path: Path) -> None:
    proc, base = start_service(
        {"BETTER_AUTH_SECRET": SECRET, "DATABASE_URL": database.url, "HOME": str(tmp_path)}
    )
    port = int(base.rsplit(":", 1)[1])
    try:
        user = new_user()
        body = json.dumps({"title": "finished after SIGTERM"}).encode()
        head = (
            f"POST /api/{user}/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {make_token(user)}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(head + body[:10])  # the request is in flight: its body is not all here yet
            time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            conn.sendall(body[10:])
            reply = conn.recv(65536).decode()
        assert reply.startswith("HTTP/1.1 201"), reply[:200]
        assert proc.wait(timeout=30) == 0
        rows = database.query("SELECT title FROM tasks WHERE user_id = $1", user)
        assert [r["title"] for r in rows] == ["finished after SIGTERM"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_access_lines_reach_stdout_beside_the_other_records_and_survive_sigterm(
    database: Database, tmp_path: Path
) -> None:
    """`python -m service` as deployed: JSON lines on stdout, and a stop loses none of them."""
    output = tmp_path / "stdout"
    with output.open("w+b") as sink:
        env = {"BETTER_AUTH_SECRET": SECRET, "DATABASE_URL": database.url, "HOME": str(tmp_path)}
        proc, base = start_service(env, output=sink)
        user = new_user()
        try:
            with httpx.Client(base_url=base, headers=auth(user)) as client:
                ids = [client.get(f"/api/{user}/tasks").headers["x-request-id"] for _ in range(50)]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    records = [json.loads(line) for line in output.read_text().splitlines()]  # every line is JSON
    logged = [
        r["request_id"] for r in records if r["logger"] == "service.access" and r["route"].startswith("/api/")
    ]
    assert logged == ids
    assert any(r["logger"].startswith("uvicorn") for r in records)


def test_sigterm_ends_open_streams_and_exits_promptly(database: Database, tmp_path: Path) -> None:
    proc, base = start_service(
        {"BETTER_AUTH_SECRET": SECRET, "DATABASE_URL": database.url, "HOME": str(tmp_path)}
    )
    user = new_user()
    try:

        async def run() -> float:
            async with stream_client(base) as client:
                streams = [open_stream(client, user) for _ in range(3)]
                opened: list[EventStream] = [await s.__aenter__() for s in streams]
                for stream in opened:
                    await stream.until("ready")
                started = time.perf_counter()
                proc.send_signal(signal.SIGTERM)
                for stream in opened:
                    while await stream.next(wait=20) is not None:
                        pass
                code = await asyncio.to_thread(proc.wait, 30)
                assert code == 0
                for s in streams:
                    await s.__aexit__(None, None, None)
                return time.perf_counter() - started

        took = asyncio.run(run())
        print(f"SIGTERM with 3 open streams -> exit: {took:.2f} s")
        # uvicorn would wait up to 25 s for open responses; the streams must not hold it that long.
        assert took < 15
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
