"""A fault run: steady writers while the service is killed with -9 and PostgreSQL's postmaster too.

    python -m tests.load.faults --service-kills 10 --postmaster-kills 3

Several clients write at once: creates with an Idempotency-Key (retried with the same key until
answered), updates with If-Match, and moves; a syncing client follows the changes feed. Meanwhile
the service (one worker, so a kill takes every request in flight) is killed with SIGKILL and
restarted, and so is PostgreSQL's postmaster (fsync on, crash recovery on restart). Afterwards:
every write answered 2xx must be in the table, every retried create must exist exactly once, and
the syncing client's copy must equal the table. Prints the report as JSON; exit code 1 if a write
was lost or duplicated. Everything binds to 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import httpx

from service.db.migrations import migrate
from service.db.pool import asyncpg_dsn
from tests.support import SECRET, auth, create_database, free_port, new_user
from tests.support.pg_cluster import PgCluster


@dataclass
class Ledger:
    """What the clients were told: only a 2xx answer counts as acknowledged."""

    created: dict[str, str] = field(default_factory=dict)  # title -> task id
    versions: dict[str, int] = field(default_factory=dict)  # task id -> highest acknowledged version
    updates: int = 0  # PATCHes and moves answered 200
    lock: threading.Lock = field(default_factory=threading.Lock)


class Service:
    """`python -m service` on a loopback port, killed and restarted at will."""

    def __init__(self, database_url: str) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "DATABASE_URL": database_url,
            "BETTER_AUTH_SECRET": SECRET,
            "PORT": str(self.port),
            "ACCESS_LOG": "false",
            "DB_CONNECT_TIMEOUT": "2",
            "MAX_INFLIGHT_PER_USER": "64",
        }
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - it lives as long as the processes write to it
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "service"], env=self.env, stdout=self.log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError("the service did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(timeout=10)


def _request(
    client: httpx.Client, stop: threading.Event, method: str, url: str, **kwargs: Any
) -> httpx.Response | None:
    """Send until answered (not 5xx, not a transport error), as a client would retry; None if stopped."""
    while not stop.is_set():
        try:
            response = client.request(method, url, **kwargs)
        except httpx.TransportError:
            time.sleep(0.05)
            continue
        if response.status_code >= 500 or response.status_code == 429:
            time.sleep(0.05)
            continue
        return response
    return None


def writer(base: str, user: str, ledger: Ledger, stop: threading.Event, seed: int) -> None:
    rng = random.Random(seed)
    headers = auth(user)
    url = f"{base}/api/{user}/tasks"
    mine: list[str] = []
    with httpx.Client(timeout=5) as client:
        n = 0
        while not stop.is_set():
            n += 1
            roll = rng.random()
            if roll < 0.5 or len(mine) < 3:
                title = f"{user}-{n}"
                key = str(uuid.uuid4())
                r = _request(
                    client,
                    stop,
                    "POST",
                    url,
                    json={"title": title},
                    headers={**headers, "Idempotency-Key": key},
                )
                if r is not None and r.status_code == 201:
                    task = r.json()["data"]
                    with ledger.lock:
                        ledger.created[title] = task["id"]
                        ledger.versions[task["id"]] = 1
                    mine.append(task["id"])
            elif roll < 0.85:
                task_id = rng.choice(mine)
                current = _request(client, stop, "GET", f"{url}/{task_id}", headers=headers)
                if current is None or current.status_code != 200:
                    continue
                r = _request(
                    client,
                    stop,
                    "PATCH",
                    f"{url}/{task_id}",
                    json={"description": f"edit {n}"},
                    headers={**headers, "If-Match": current.headers["etag"]},
                )
                if r is not None and r.status_code == 200:
                    version = int(r.headers["etag"].strip('"').partition("-")[0])
                    with ledger.lock:
                        ledger.versions[task_id] = max(ledger.versions.get(task_id, 0), version)
                        ledger.updates += 1
            else:
                task_id, anchor = rng.sample(mine, 2)
                r = _request(
                    client, stop, "POST", f"{url}/{task_id}/move", json={"after": anchor}, headers=headers
                )
                if r is not None and r.status_code == 200:
                    version = int(r.headers["etag"].strip('"').partition("-")[0])
                    with ledger.lock:
                        ledger.versions[task_id] = max(ledger.versions.get(task_id, 0), version)
                        ledger.updates += 1


def sync_until_current(base: str, user: str, local: dict[str, Any], since: str | None) -> str | None:
    """Apply the changes feed from `since` until it has no more; the token to continue from."""
    with httpx.Client(timeout=5) as client:
        while True:
            params = {} if since is None else {"since": since}
            try:
                r = client.get(f"{base}/api/{user}/tasks/changes", params=params, headers=auth(user))
            except httpx.TransportError:
                time.sleep(0.1)
                continue
            if r.status_code >= 500:
                time.sleep(0.1)
                continue
            if r.status_code == 410:
                local.clear()
                since = None
                continue
            body = r.json()
            for change in body["data"]:
                if change["op"] == "upsert":
                    local[change["task"]["id"]] = change["task"]
                else:
                    local.pop(str(change["id"]), None)
            since = body["meta"]["next_since"]
            if not body["meta"]["has_more"]:
                return since


def _restart(cluster: PgCluster) -> None:
    """Start PostgreSQL again after its postmaster was killed: once its orphaned backends are gone."""
    deadline = time.monotonic() + 30
    while True:
        try:
            cluster.start()  # crash recovery
            return
        except subprocess.CalledProcessError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--service-kills", type=int, default=10)
    parser.add_argument("--postmaster-kills", type=int, default=3)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--interval", type=float, default=1.5, help="seconds between kills")
    args = parser.parse_args()

    cluster = PgCluster()
    cluster.options = cluster.options.replace("fsync=off", "fsync=on")
    cluster.start()
    try:
        url = asyncio.run(create_database(cluster.url, "todo_faults"))
        asyncio.run(migrate(asyncpg_dsn(url)))
        service = Service(url)
        service.start()
        users = [new_user() for _ in range(args.writers)]
        ledger, stop = Ledger(), threading.Event()
        threads = [
            threading.Thread(target=writer, args=(service.base, user, ledger, stop, i), daemon=True)
            for i, user in enumerate(users)
        ]
        for thread in threads:
            thread.start()
        local: dict[str, Any] = {}
        since = sync_until_current(service.base, users[0], local, None)
        kills = ["service"] * args.service_kills + ["postmaster"] * args.postmaster_kills
        random.Random(7).shuffle(kills)
        for kind in kills:
            time.sleep(args.interval)
            since = sync_until_current(service.base, users[0], local, since)
            if kind == "service":
                service.kill()
                service.start()
            else:
                pid = int((cluster.data / "postmaster.pid").read_text().split()[0])
                os.kill(pid, signal.SIGKILL)
                _restart(cluster)
        time.sleep(args.interval)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        since = sync_until_current(service.base, users[0], local, since)

        async def table() -> list[dict[str, Any]]:
            conn = await asyncpg.connect(asyncpg_dsn(url))
            try:
                rows = await conn.fetch("SELECT id::text, user_id, title, version FROM tasks")
                return [dict(r) for r in rows]
            finally:
                await conn.close()

        rows = asyncio.run(table())
        by_id = {r["id"]: r for r in rows}
        titles = Counter(r["title"] for r in rows)
        lost_creates = [t for t, task_id in ledger.created.items() if task_id not in by_id]
        lost_updates = [t for t, v in ledger.versions.items() if t in by_id and by_id[t]["version"] < v]
        duplicates = [t for t, n in titles.items() if n > 1]
        mirrored = {r["id"] for r in rows if r["user_id"] == users[0]}
        report = {
            "kills": {"service": args.service_kills, "postmaster": args.postmaster_kills},
            "acknowledged": {"creates": len(ledger.created), "updates_and_moves": ledger.updates},
            "lost": len(lost_creates) + len(lost_updates),
            "duplicates": len(duplicates),
            "sync_client_matches_table": set(local) == mirrored,
        }
        service.kill()
        print(json.dumps(report, indent=2))
        return (
            0
            if not report["lost"] and not report["duplicates"] and report["sync_client_matches_table"]
            else 1
        )
    finally:
        cluster.destroy()


if __name__ == "__main__":
    sys.exit(main())
