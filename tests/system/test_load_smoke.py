"""The load suite works end to end: a few seconds of locust against a real service, no failures.

Timings are reported by `python -m tests.load.run`, never asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path


def test_load_suite_runs_without_failures(tmp_path: Path) -> None:
    command = ["tests.load.run", "--users", "5", "--duration", "4", "--seed-users", "20", "--seed-tasks", "5"]
    command += ["--workers", "2"]
    result = subprocess.run(
        [sys.executable, "-m", *command, "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    (only_round,) = report["rounds"]
    assert only_round["failures"] == []
    by_name = {e["name"]: e for e in only_round["endpoints"]}
    # The v2 frontend session too: each simulated user held an event stream that reached `ready`.
    assert by_name["GET /events"]["requests"] > 0
    for name in (
        "GET /tasks",
        "POST /tasks",
        "PATCH /tasks/{id}/complete",
        "GET /tasks (next page)",
        "POST /tasks/{id}/move",
        "GET /tasks/stats",
        "GET /tasks/changes",
    ):
        assert by_name[name]["requests"] > 0, name
    assert by_name["all"]["failures"] == 0
    # One figure per worker, not the supervisor's: memory is judged per worker.
    assert len(only_round["rss_mib"]) == 2
    assert all(rss > 0 for rss in only_round["rss_mib"])
    assert report["rss_growth_mib"] == [0.0, 0.0]
    assert "| GET /tasks |" in (tmp_path / "report.md").read_text()


def test_cpu_benchmark_runs_every_operation() -> None:
    """`python -m tests.load.cpu` end to end, tiny: each operation answered 2xx (it stops at any other)."""
    command = ["tests.load.cpu", "--requests", "100", "--rounds", "1", "--users", "4", "--tasks", "3"]
    result = subprocess.run(
        [sys.executable, "-m", *command, "--concurrency", "4"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads(result.stdout)
    for operation in ("list", "get", "create", "update"):
        assert figures[operation]["cpu_us_per_request"] > 0, operation


def test_scale_benchmark_loads_checks_and_times_every_operation(tmp_path: Path) -> None:
    """`python -m tests.load.scale` end to end, tiny: the load passes its SQL checks (it stops if
    not) and every operation is timed against both databases, none absent."""
    command = ["tests.load.scale", "--tasks", "3000", "--users", "20", "--heavy", "1200", "--lists", "8"]
    command += ["--small-tasks", "400", "--small-users", "4", "--requests", "2", "--out", str(tmp_path)]
    result = subprocess.run(
        [sys.executable, "-m", *command], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stderr.count("scale: checks pass") == 2
    report = json.loads((tmp_path / "report.json").read_text())
    for label in ("small", "large"):
        assert report[label]["absent"] == {}
        timings = report[label]["timings"]
        for operation in (
            "lists",
            "tree order, all lists, deep page across lists",
            "children (parent_id)",
            "stats, one list",
            "move, subtree to another list and back",
            "move, under a parent and back",
            "changes, caught up",
        ):
            assert timings[operation]["n"] == 2, (label, operation)
