"""Benchmark the event stream: idle streams one worker holds, RSS per stream, write-to-event latency.

    python -m tests.load.streams --streams 1000 --writes 200

Starts a throwaway PostgreSQL and one `python -m service` worker, opens --streams idle streams
(one user each, as many devices would), measures the worker's RSS before and after, then writes
--writes tasks one at a time, each for a random one of those users, and times from the write's
201 (its commit) to the `changed` event on that user's stream. Prints the figures as JSON.
Everything binds to 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from service.db import asyncpg_dsn
from service.migrations import migrate
from tests.pg_cluster import PgCluster
from tests.support import SECRET, create_database, make_token, start_service


async def _open(
    client: httpx.AsyncClient, user: str, ready: asyncio.Event, inbox: asyncio.Queue[float]
) -> None:
    headers = {"Authorization": f"Bearer {make_token(user, ttl=3600)}"}
    async with client.stream("GET", f"/api/{user}/events", headers=headers) as response:
        assert response.status_code == 200, response.status_code
        async for line in response.aiter_lines():
            if line == "event: ready":
                ready.set()
            elif line == "event: changed":
                inbox.put_nowait(time.perf_counter())


async def bench(base: str, pid: int, streams: int, writes: int) -> dict[str, Any]:
    worker = psutil.Process(pid)
    users = [f"bench-{i:05d}" for i in range(streams)]
    limits = httpx.Limits(max_connections=streams + 10, max_keepalive_connections=streams + 10)
    async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as client:
        # Warm up the worker (pool, listener, code paths) before the baseline.
        warm_ready, warm_inbox = asyncio.Event(), asyncio.Queue[float]()
        warm = asyncio.create_task(_open(client, "bench-warm", warm_ready, warm_inbox))
        await warm_ready.wait()
        rss_before = worker.memory_info().rss
        ready = {u: asyncio.Event() for u in users}
        inbox = {u: asyncio.Queue[float]() for u in users}
        started = time.perf_counter()
        tasks = [asyncio.create_task(_open(client, u, ready[u], inbox[u])) for u in users]
        for event in ready.values():
            await event.wait()
        opened_in = time.perf_counter() - started
        await asyncio.sleep(2)  # let the worker settle
        rss_after = worker.memory_info().rss
        latencies = []
        rng = random.Random(1)
        async with httpx.AsyncClient(base_url=base, timeout=60) as writer:
            for i in range(writes):
                user = rng.choice(users)
                headers = {"Authorization": f"Bearer {make_token(user)}"}
                response = await writer.post(f"/api/{user}/tasks", json={"title": f"t{i}"}, headers=headers)
                committed = time.perf_counter()
                assert response.status_code == 201
                arrived = await asyncio.wait_for(inbox[user].get(), 10)
                latencies.append(max(0.0, arrived - committed))
        for task in [*tasks, warm]:
            task.cancel()
        await asyncio.gather(*tasks, warm, return_exceptions=True)
    latencies.sort()
    return {
        "streams": streams,
        "opened_in_s": round(opened_in, 2),
        "rss_before_mib": round(rss_before / 2**20, 1),
        "rss_after_mib": round(rss_after / 2**20, 1),
        "rss_per_stream_kib": round((rss_after - rss_before) / streams / 1024, 1),
        "writes": writes,
        "latency_ms_p50": round(statistics.median(latencies) * 1000, 1),
        "latency_ms_p99": round(latencies[int(len(latencies) * 0.99) - 1] * 1000, 1),
        "latency_ms_max": round(latencies[-1] * 1000, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--writes", type=int, default=200)
    args = parser.parse_args()
    cluster = PgCluster()
    cluster.start()
    proc = None
    try:
        url = asyncio.run(create_database(cluster.url, "streams"))
        asyncio.run(migrate(asyncpg_dsn(url)))
        home = Path(tempfile.mkdtemp(prefix="todo-bench-"))
        env = {"BETTER_AUTH_SECRET": SECRET, "DATABASE_URL": url, "HOME": str(home), "ACCESS_LOG": "false"}
        proc, base = start_service({**env, "MAX_STREAMS_PER_USER": "5"})
        print(json.dumps(asyncio.run(bench(base, proc.pid, args.streams, args.writes)), indent=2))
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=30)
        cluster.destroy()


if __name__ == "__main__":
    main()
