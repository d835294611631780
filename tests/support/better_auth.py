"""Runs the real better-auth npm package (tests/interop/) so tests can use the tokens it issues."""

from __future__ import annotations

import json
import os
import secrets
import select
import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

INTEROP = Path(__file__).resolve().parents[1] / "interop"
START_SECONDS = 30


class NodeUnavailable(Exception):
    """Node or npm is missing: the interop tests skip, saying so."""


def ensure_installed() -> None:
    """`npm ci` the pinned better-auth once, so a fresh clone needs no extra step."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        raise NodeUnavailable("node and npm are needed to run the real Better Auth")
    if (INTEROP / "node_modules" / "better-auth").is_dir():
        return
    result = subprocess.run(
        ["npm", "ci", "--no-audit", "--no-fund"],
        cwd=INTEROP,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"npm ci failed in {INTEROP}:\n{result.stderr[-2000:]}")


@dataclass
class BetterAuth:
    """One running Better Auth: sign users up, fetch their JWTs, switch outages on and off."""

    url: str
    jwks_url: str
    alg: str

    def sign_up(self) -> tuple[str, httpx.Client]:
        """A new user; returns their id and a client holding their session cookie."""
        client = httpx.Client(base_url=self.url, headers={"Origin": self.url}, timeout=30)
        email = f"{secrets.token_hex(6)}@example.com"
        response = client.post(
            "/api/auth/sign-up/email",
            json={"email": email, "password": "correct-horse-battery", "name": "Test"},
        )
        response.raise_for_status()
        return response.json()["user"]["id"], client

    def token(self, session: httpx.Client) -> str:
        """A JWT for the session's user, from the jwt plugin's /api/auth/token."""
        response = session.get("/api/auth/token")
        response.raise_for_status()
        token: str = response.json()["token"]
        return token

    def outage(self, down: bool) -> None:
        httpx.post(f"{self.url}/test/{'outage' if down else 'recover'}", timeout=10).raise_for_status()


@contextmanager
def better_auth(alg: str, **env: str) -> Iterator[BetterAuth]:
    """Start Better Auth with the `jwt` plugin signing with `alg`; stop it on exit."""
    ensure_installed()
    proc = subprocess.Popen(
        ["node", "better_auth_server.mjs"],
        cwd=INTEROP,
        env={"PATH": os.environ.get("PATH", ""), "BA_ALG": alg, **env},
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], START_SECONDS)
        line = proc.stdout.readline() if ready else ""
        if not line:
            raise RuntimeError(f"Better Auth did not start (exit code {proc.wait(timeout=10)})")
        info = json.loads(line)
        yield BetterAuth(url=info["url"], jwks_url=info["jwks_url"], alg=info["alg"])
    finally:
        proc.terminate()
        proc.wait(timeout=10)
