"""A typed TypeScript client (openapi-typescript + openapi-fetch) runs a frontend's round on the live server:
tasks (create, list, conditional update, toggle, delete), then lists and subtasks (a list, a task in
it, a subtask, a move, tree order, the completion cascade, stats' `lists`, the list's deletion).

The npm packages are pinned in tests/clients/package-lock.json and installed on first use from the
npm registry into tests/clients/node_modules (ignored by git); without node and npm this skips.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.servers import LiveServer
from tests.support.tokens import make_token, new_user

CLIENTS = Path(__file__).resolve().parents[1] / "clients"


def _run(*command: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        command, cwd=CLIENTS, capture_output=True, text=True, timeout=300, check=False, env=env
    )
    assert result.returncode == 0, f"{' '.join(command)}:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"
    return result.stdout


@pytest.fixture(scope="module")
def npm_packages() -> None:
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are needed for the TypeScript client test")
    if not (CLIENTS / "node_modules" / "openapi-fetch").is_dir():
        _run("npm", "ci", "--no-audit", "--no-fund")


def test_openapi_fetch_runs_a_frontend_round(npm_packages: None, server: LiveServer) -> None:
    _run(
        "npx",
        "--no-install",
        "openapi-typescript",
        f"{server.base_url}/openapi.json",
        "--default-non-nullable",
        "false",
        "-o",
        "schema.d.ts",
    )
    # --strict, and round.ts holds a @ts-expect-error on a made-up code: if `error.code` were a
    # plain string, that directive would be unused and the compile would fail.
    _run("npx", "--no-install", "tsc", "-p", ".")
    user = new_user()
    env = {**os.environ, "API_URL": server.base_url, "USER_ID": user, "TOKEN": make_token(user)}
    seen = json.loads(_run("node", ".build/round.js", env=env).strip().splitlines()[-1])
    assert seen == {
        "created": {"status": 201, "title": "Buy milk", "etag": seen["created"]["etag"]},
        "listed": ["Buy milk"],
        "updated": "Buy oat milk",
        "stale": {"code": "PRECONDITION_FAILED", "advice": "reload: it changed elsewhere"},
        "toggled": True,
        "blank": [{"field": "title", "message": seen["blank"][0]["message"]}],
        "deleted": True,
        "gone": "it is gone",
        # Contract v3: a list, a task in it, a subtask (in its parent's list), a move under the
        # parent, tree order, completion cascading to the subtasks, each list's counts, deletion.
        "subtask": {"list": True, "parent": True},
        "moved": {"status": 200, "parent": True},
        "restructured": [{"field": "list_id", "message": "is not allowed"}],
        "tree": ["Bake a cake", "- Buy flour", "- Buy candles"],
        "lists": [
            {"list": "Inbox", "active": 0, "completed": 0},
            {"list": "Party", "active": 0, "completed": 3},
        ],
        "deletedList": 3,
    }
    assert seen["created"]["etag"].startswith('"')
