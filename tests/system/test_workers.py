"""`python -m service` as deployed, in processes of its own: several workers answer as one service."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx

from tests.support.metrics import metric_samples
from tests.support.postgres import Database
from tests.support.servers import start_service
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
