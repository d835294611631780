"""Load-test the service end to end: fresh PostgreSQL, N workers, seeded data, locust, a report.

    python -m tests.load.run --workers 1 --users 50 --duration 60 --out /tmp/load-report

Starts a throwaway PostgreSQL (the pgserver wheel's binaries, on loopback), migrates and seeds it
(--seed-users x --seed-tasks), starts `python -m service` with --workers, runs the locustfile
headless for --duration seconds per round, and writes report.json and report.md to --out:
requests/s, p50/p95/p99 per endpoint, failures, and each worker's RSS after every round (a
second round shows whether memory grows). Everything binds to 127.0.0.1 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import secrets
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import asyncpg
import psutil

from service.db.migrations import migrate
from service.db.pool import asyncpg_dsn
from tests.support.pg_cluster import PgCluster
from tests.support.postgres import create_database
from tests.support.servers import start_service

HERE = Path(__file__).resolve().parent


async def prepare(admin_url: str, users: int, tasks: int) -> str:
    url = await create_database(admin_url, "load")
    await migrate(asyncpg_dsn(url))
    conn = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await conn.execute(
            # Positions newest first (service/tasks/order/positions.py's int_key(t)), with the users' counters to match.
            """INSERT INTO users (id, task_count, position_head)
               SELECT 'load-user-' || lpad(u::text, 5, '0'), $2, 1 FROM generate_series(0, $1 - 1) u;
               INSERT INTO tasks (user_id, id, title, description, completed, completed_at, created_at,
                                  updated_at, position)
               SELECT 'load-user-' || lpad(u::text, 5, '0'), gen_random_uuid(), 'seeded task ' || t,
                      CASE WHEN t % 3 = 0 THEN 'with a description' END, t % 4 = 0,
                      CASE WHEN t % 4 = 0 THEN now() - t * interval '1 minute' END,
                      now() - t * interval '1 minute', now() - t * interval '1 minute',
                      lpad(to_hex(t + 140737488355328), 12, '0')
               FROM generate_series(0, $1 - 1) u, generate_series(1, $2) t;
               ANALYZE;""".replace("$1", str(users)).replace("$2", str(tasks))
        )
    finally:
        await conn.close()
    return url


def worker_rss_mib(proc: subprocess.Popen[bytes]) -> list[float]:
    """RSS of each process that serves requests: the workers, or the one process when there are none."""
    parent = psutil.Process(proc.pid)
    # uvicorn spawns its workers through multiprocessing (`... --multiprocessing-fork`); its
    # resource tracker is a child as well, but serves nothing.
    workers = [p for p in parent.children() if "--multiprocessing-fork" in p.cmdline()]
    return [round(p.memory_info().rss / 2**20, 1) for p in (workers or [parent])]


def rss_growth_mib(rounds: list[dict[str, Any]]) -> list[float]:
    """Each worker's RSS change from the first round to the last: a leak shows as steady growth."""
    first, last = rounds[0]["rss_mib"], rounds[-1]["rss_mib"]
    return [round(b - a, 1) for a, b in zip(first, last, strict=True)]


def run_locust(base: str, args: argparse.Namespace, secret: str, prefix: Path) -> None:
    env = {**os.environ, "LOAD_SECRET": secret, "LOAD_USERS": str(args.seed_users)}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(HERE / "locustfile.py"),
            "--headless",
            "--host",
            base,
            "--users",
            str(args.users),
            "--spawn-rate",
            str(args.users),
            "--run-time",
            f"{args.duration}s",
            "--stop-timeout",
            "5",
            "--csv",
            str(prefix),
            "--only-summary",
            "--loglevel",
            "WARNING",
        ],
        env=env,
        check=False,  # locust exits 1 when any request failed; the report says which
        timeout=args.duration + 60,
    )


def read_stats(prefix: Path) -> dict[str, Any]:
    with open(f"{prefix}_stats.csv") as stats:
        rows = list(csv.DictReader(stats))
    endpoints = []
    for row in rows:
        endpoints.append(
            {
                "name": row["Name"] if row["Name"] != "Aggregated" else "all",
                "requests": int(row["Request Count"]),
                "failures": int(row["Failure Count"]),
                "rps": round(float(row["Requests/s"]), 1),
                "p50_ms": float(row["50%"] or 0),
                "p95_ms": float(row["95%"] or 0),
                "p99_ms": float(row["99%"] or 0),
                "max_ms": float(row["Max Response Time"] or 0),
            }
        )
    with open(f"{prefix}_failures.csv") as failed:
        failures = list(csv.DictReader(failed))
    return {"endpoints": endpoints, "failures": failures}


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# Load test: {report['workers']} worker(s), {report['users']} users, {report['duration_s']} s per round",
        "",
        f"Seed: {report['seed_users']} users x {report['seed_tasks']} tasks. Machine: {report['machine']}.",
        "",
    ]
    for number, round_ in enumerate(report["rounds"], 1):
        lines += [
            f"## Round {number}: worker RSS after it, MiB: {', '.join(map(str, round_['rss_mib']))}",
            "",
            "| endpoint | requests | failures | req/s | p50 ms | p95 ms | p99 ms | max ms |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for e in round_["endpoints"]:
            lines.append(
                f"| {e['name']} | {e['requests']} | {e['failures']} | {e['rps']} | {e['p50_ms']:g} | "
                f"{e['p95_ms']:g} | {e['p99_ms']:g} | {e['max_ms']:.0f} |"
            )
        lines.append("")
    if len(report["rounds"]) > 1:
        growth = ", ".join(f"{g:+g}" for g in report["rss_growth_mib"])
        lines += [f"Worker RSS change from round 1 to round {len(report['rounds'])}, MiB: {growth}", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--users", type=int, default=50, help="simulated users")
    parser.add_argument("--duration", type=int, default=30, help="seconds per round")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--seed-users", type=int, default=1000)
    parser.add_argument("--seed-tasks", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("load-report"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)

    cluster = PgCluster()
    proc = None
    try:
        cluster.start()
        database_url = asyncio.run(prepare(cluster.url, args.seed_users, args.seed_tasks))
        env = {
            "DATABASE_URL": database_url,
            "BETTER_AUTH_SECRET": secret,
            "WEB_CONCURRENCY": str(args.workers),
            "ACCESS_LOG": "false",
            "LOG_LEVEL": "warning",
        }
        proc, base = start_service(env)
        rounds = []
        for number in range(1, args.rounds + 1):
            prefix = args.out / f"round{number}"
            run_locust(base, args, secret, prefix)
            rounds.append({**read_stats(prefix), "rss_mib": worker_rss_mib(proc)})
        report = {
            "workers": args.workers,
            "users": args.users,
            "duration_s": args.duration,
            "seed_users": args.seed_users,
            "seed_tasks": args.seed_tasks,
            "machine": f"{os.cpu_count()} CPUs, {round(psutil.virtual_memory().total / 2**30)} GiB, Python {sys.version.split()[0]}",
            "rounds": rounds,
            "rss_growth_mib": rss_growth_mib(rounds),
        }
        (args.out / "report.json").write_text(json.dumps(report, indent=2))
        (args.out / "report.md").write_text(markdown(report))
        print(markdown(report))
        return 0 if not any(r["failures"] for r in rounds) else 1
    finally:
        if proc is not None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
        cluster.destroy()


if __name__ == "__main__":
    sys.exit(main())
