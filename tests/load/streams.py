"""Benchmark the event stream: idle streams the workers hold, RSS per stream, write-to-event latency.

    python -m tests.load.streams --streams 10000 --writes 200             # one worker
    python -m tests.load.streams --streams 1000 --writes 500 --workers 2  # latency across two

Starts a throwaway PostgreSQL and `python -m service` (WEB_CONCURRENCY=--workers, MAX_CONNECTIONS
raised above --streams: it bounds streams too), opens --streams idle streams (one user each, as
many devices would) over plain sockets, measures the workers' RSS before and after, then writes
--writes tasks one at a time, each for a random one of those users, and times from the write's
201 (its commit) to the `changed` event on that user's stream (0 when the event beats the 201),
and from the POST's start to the event (an upper bound that includes the write). Prints the figures as JSON.
Everything binds to 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil

from service.db.migrations import migrate
from service.db.pool import asyncpg_dsn
from tests.support.pg_cluster import PgCluster
from tests.support.postgres import create_database
from tests.support.servers import start_service
from tests.support.tokens import SECRET, make_token

# Connections opened at once: beyond the listen backlog a SYN waits a second to be retried.
OPENING = 200


class Listener:
    """One idle stream read over a raw socket (httpx costs too much CPU at 10,000 streams)."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.ready = asyncio.Event()
        self.changed: asyncio.Queue[float] = asyncio.Queue()

    async def open(self, host: str, port: int) -> asyncio.Task[None]:
        reader, writer = await asyncio.open_connection(host, port)
        token = make_token(self.user, ttl=3600)
        writer.write(
            f"GET /api/{self.user}/events HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {token}\r\nAccept: text/event-stream\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200"):
            raise RuntimeError(head.decode(errors="replace").splitlines()[0])
        return asyncio.create_task(self._read(reader, writer))

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                # An event is sent whole in one chunk, so its name is never split across reads.
                if b"event: ready" in data:
                    self.ready.set()
                for _ in range(data.count(b"event: changed")):
                    self.changed.put_nowait(time.perf_counter())
        finally:
            writer.close()


def _workers(pid: int) -> list[psutil.Process]:
    """The processes serving requests: uvicorn's workers, or the process itself with one."""
    proc = psutil.Process(pid)
    children = [c for c in proc.children() if "resource_tracker" not in " ".join(c.cmdline())]
    return children or [proc]


def _rss(workers: list[psutil.Process]) -> int:
    return sum(w.memory_info().rss for w in workers)


async def bench(base: str, pid: int, streams: int, writes: int) -> dict[str, Any]:
    parts = urlsplit(base)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    workers = _workers(pid)
    listeners = [Listener(f"bench-{i:05d}") for i in range(streams)]
    # Warm up the workers (pool, listener, code paths) before the baseline.
    warm = [Listener(f"bench-warm-{i}") for i in range(len(workers) * 4)]
    readers = [await w.open(host, port) for w in warm]
    for w in warm:
        await w.ready.wait()
    rss_before = _rss(workers)
    started = time.perf_counter()
    gate = asyncio.Semaphore(OPENING)

    async def open_one(listener: Listener) -> None:
        async with gate:
            readers.append(await listener.open(host, port))
            await listener.ready.wait()

    await asyncio.gather(*(open_one(listener) for listener in listeners))
    opened_in = time.perf_counter() - started
    await asyncio.sleep(3)  # let the workers settle
    rss_after = _rss(workers)
    latencies: list[float] = []
    from_request: list[float] = []
    rng = random.Random(1)
    async with httpx.AsyncClient(base_url=base, timeout=60) as writer:
        for i in range(writes):
            listener = rng.choice(listeners)
            headers = {"Authorization": f"Bearer {make_token(listener.user)}"}
            sent = time.perf_counter()
            response = await writer.post(
                f"/api/{listener.user}/tasks", json={"title": f"t{i}"}, headers=headers
            )
            committed = time.perf_counter()
            assert response.status_code == 201
            arrived = await asyncio.wait_for(listener.changed.get(), 10)
            # The event can beat the 201 to the client: count it as 0 from the commit.
            latencies.append(max(0.0, arrived - committed))
            from_request.append(arrived - sent)
    for task in readers:
        task.cancel()
    await asyncio.gather(*readers, return_exceptions=True)
    latencies.sort()
    from_request.sort()
    return {
        "workers": len(workers),
        "streams": streams,
        "opened_in_s": round(opened_in, 2),
        "rss_before_mib": round(rss_before / 2**20, 1),
        "rss_after_mib": round(rss_after / 2**20, 1),
        "rss_per_stream_kib": round((rss_after - rss_before) / streams / 1024, 1),
        "writes": writes,
        "latency_ms_p50": round(statistics.median(latencies) * 1000, 1),
        "latency_ms_p99": round(latencies[max(0, int(len(latencies) * 0.99) - 1)] * 1000, 1),
        "latency_ms_max": round(latencies[-1] * 1000, 1),
        # An upper bound: from the POST leaving the client, so including the write itself.
        "from_request_ms_p50": round(statistics.median(from_request) * 1000, 1),
        "from_request_ms_p99": round(from_request[max(0, int(len(from_request) * 0.99) - 1)] * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    # One descriptor per stream on both ends (the workers inherit the limit).
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    cluster = PgCluster()
    cluster.start()
    proc = None
    try:
        url = asyncio.run(create_database(cluster.url, "streams"))
        asyncio.run(migrate(asyncpg_dsn(url)))
        home = Path(tempfile.mkdtemp(prefix="todo-bench-"))
        env = {"BETTER_AUTH_SECRET": SECRET, "DATABASE_URL": url, "HOME": str(home), "ACCESS_LOG": "false"}
        env |= {"WEB_CONCURRENCY": str(args.workers), "MAX_CONNECTIONS": str(args.streams + 100)}
        proc, base = start_service({**env, "MAX_STREAMS_PER_USER": "5"})
        print(json.dumps(asyncio.run(bench(base, proc.pid, args.streams, args.writes)), indent=2))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        cluster.destroy()


if __name__ == "__main__":
    main()
