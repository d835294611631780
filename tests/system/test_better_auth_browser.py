"""The whole first-day round, as a new user wires it: a real Better Auth (the npm package, with its
jwt plugin) signs a user up from a page in a real browser; the page takes the JWT the plugin hands
out and calls this service on another origin, preflights and all; the service checks the token
against Better Auth's JWKS, with nothing configured but BETTER_AUTH_URL and CORS_ORIGINS."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from service.app import create_app
from tests.support import Database, LiveServer, settings_for
from tests.support.better_auth import BetterAuth, NodeUnavailable, better_auth
from tests.system.test_browser import ROUND, Recorder, browser  # noqa: F401 - `browser` is a fixture

# Run by the page, on Better Auth's own origin (as a Next.js app serving /api/auth would be):
# sign up with email and password (the session cookie is set), then ask the jwt plugin for a token.
SIGN_UP = """async () => {
  const email = `${crypto.randomUUID()}@example.com`;
  const signUp = await fetch("/api/auth/sign-up/email", {
    method: "POST",
    headers: {"Content-Type": "application/json"},
    body: JSON.stringify({email, password: "correct-horse-battery", name: "Browser"}),
  });
  const user = (await signUp.json()).user;
  const issued = await fetch("/api/auth/token");
  return {user: user.id, token: (await issued.json()).token, header: signUp.headers.get("set-auth-jwt")};
}"""


@pytest.fixture(scope="module")
def auth_server() -> Iterator[BetterAuth]:
    try:
        with better_auth("EdDSA") as server:
            yield server
    except NodeUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="module")
def api(database: Database, auth_server: BetterAuth) -> Iterator[tuple[LiveServer, Recorder]]:
    settings = settings_for(
        database.url,
        better_auth_secret=None,
        cursor_secret="cursor-secret-Zq3x7mKp2vN8rT4wYb6cJ1hL",
        better_auth_url=auth_server.url,
        cors_origins=(auth_server.url,),
    )
    recorder = Recorder(create_app(settings))
    with LiveServer(settings, app=recorder) as live:  # type: ignore[arg-type]
        yield live, recorder


def test_a_user_signed_up_in_the_browser_runs_a_round_on_the_api(
    browser: Any,  # noqa: F811 - the fixture
    auth_server: BetterAuth,
    api: tuple[LiveServer, Recorder],
) -> None:
    live, recorder = api
    page = browser.new_page()
    page.goto(f"{auth_server.url}/test/page")
    session: dict[str, Any] = page.evaluate(SIGN_UP)
    assert session["token"].count(".") == 2
    seen: dict[str, Any] = page.evaluate(ROUND, {"api": live.base_url, **session})
    page.close()

    statuses = {name: step.get("status", step.get("failed")) for name, step in seen.items()}
    assert statuses == {name: 201 if name == "create" else 200 for name in statuses}, (
        seen,
        recorder.seen[-3:],
    )
    assert set(statuses) == {"create", "list", "get", "put", "patch", "complete", "delete"}
    assert seen["create"]["data"]["user_id"] == session["user"]
    mine = [e for e in recorder.seen if f"/api/{session['user']}/" in e["path"]]
    preflights = [e for e in mine if e["method"] == "OPTIONS"]
    assert preflights and all(e["status"] == 200 for e in preflights)
    assert all(e["origin"] == auth_server.url for e in mine)
