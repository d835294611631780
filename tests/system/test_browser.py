"""A real browser: a page on another origin runs a frontend's calls through CORS (tasks, then lists
and subtasks); /docs renders.

Headless Chromium from Debian's `chromium` package (`.ci/run` installs it), driven by Playwright's
Python package with `executable_path`: Playwright never downloads a browser here. Where chromium
or playwright is missing, these tests skip and say so.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.app import create_app
from tests.support.postgres import Database
from tests.support.servers import LiveServer, settings_for
from tests.support.tokens import make_token, new_user

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# What a frontend does, run inside the page (so with its Origin): every CRUD route, reading the
# ETag the service exposes to it. Each step records its status, or the error the browser raised.
ROUND = """async ({api, user, token}) => {
  const base = `${api}/api/${user}/tasks`;
  const auth = {Authorization: `Bearer ${token}`};
  const json = {...auth, "Content-Type": "application/json"};
  const seen = {};
  const step = async (name, url, init) => {
    try {
      const r = await fetch(url, init);
      const body = await r.json();
      seen[name] = {status: r.status, etag: r.headers.get("ETag"), data: body.data, error: body.error};
      return body.data;
    } catch (e) {
      seen[name] = {failed: String(e)};
    }
  };
  const task = await step("create", base, {method: "POST", headers: json, body: JSON.stringify({title: "from the browser"})});
  if (!task) return seen;
  const item = `${base}/${task.id}`;
  await step("list", base, {headers: auth});
  await step("get", item, {headers: auth});
  await step("put", item, {method: "PUT", headers: {...json, "If-Match": seen.get.etag}, body: JSON.stringify({title: "renamed"})});
  await step("patch", item, {method: "PATCH", headers: json, body: JSON.stringify({description: "with a note"})});
  await step("complete", `${item}/complete`, {method: "PATCH", headers: auth});
  await step("delete", item, {method: "DELETE", headers: auth});
  return seen;
}"""

# Lists and subtasks, from the same page: a list, a task in it, a subtask under that task, then
# both read back: the list by its id, the list's tasks in tree order, the subtask by its id.
LISTS_ROUND = """async ({api, user, token}) => {
  const base = `${api}/api/${user}`;
  const auth = {Authorization: `Bearer ${token}`};
  const json = {...auth, "Content-Type": "application/json"};
  const seen = {};
  const step = async (name, url, init) => {
    try {
      const r = await fetch(url, init);
      const body = await r.json();
      seen[name] = {status: r.status, etag: r.headers.get("ETag"), location: r.headers.get("Location"),
                    data: body.data, meta: body.meta, error: body.error};
      return body.data;
    } catch (e) {
      seen[name] = {failed: String(e)};
    }
  };
  const post = (body) => ({method: "POST", headers: json, body: JSON.stringify(body)});
  const list = await step("create_list", `${base}/lists`, post({name: "from the browser"}));
  if (!list) return seen;
  const parent = await step("create_task", `${base}/tasks`, post({title: "parent", list_id: list.id}));
  if (!parent) return seen;
  const child = await step("create_subtask", `${base}/tasks`, post({title: "child", parent_id: parent.id}));
  if (!child) return seen;
  await step("get_list", `${base}/lists/${list.id}`, {headers: auth});
  await step("lists", `${base}/lists`, {headers: auth});
  await step("tree", `${base}/tasks?sort=position&list_id=${list.id}`, {headers: auth});
  await step("get_subtask", `${base}/tasks/${child.id}`, {headers: auth});
  await step("delete_list", `${base}/lists/${list.id}`, {method: "DELETE", headers: {...auth, "If-Match": seen.get_list.etag}});
  return seen;
}"""


@dataclass
class Recorder:
    """Wraps the app to see what the browser really sent: preflights included."""

    app: ASGIApp
    seen: list[dict[str, Any]] = field(default_factory=list)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        entry: dict[str, Any] = {
            "method": scope["method"],
            "path": scope["path"],
            "origin": headers.get("origin"),
            "preflight_for": headers.get("access-control-request-method"),
        }
        self.seen.append(entry)

        async def record(message: Message) -> None:
            if message["type"] == "http.response.start":
                entry["status"] = message["status"]
                entry["allow_origin"] = dict(message["headers"]).get(b"access-control-allow-origin")
            await send(message)

        await self.app(scope, receive, record)


class _Blank(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<!doctype html><title>frontend</title><p>frontend"
        self.send_response(200)
        self.send_header("content-type", "text/html")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def frontend() -> Iterator[int]:
    """A second local origin: a blank page the frontend's calls run in; returns its port."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Blank)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with tempfile.TemporaryDirectory(prefix="todo-chromium-") as profile, sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=FLAGS
        )
        try:
            yield context
        finally:
            context.close()


@pytest.fixture(scope="module")
def api(database: Database, frontend: int) -> Iterator[tuple[LiveServer, Recorder]]:
    settings = settings_for(database.url, cors_origins=(f"http://127.0.0.1:{frontend}",))
    recorder = Recorder(create_app(settings))
    with LiveServer(settings, app=recorder) as live:  # type: ignore[arg-type]
        yield live, recorder


def _round(browser: Any, page_url: str, live: LiveServer, user: str) -> dict[str, Any]:
    """The frontend's round of calls, run by a page loaded from `page_url`; what each call saw."""
    page = browser.new_page()
    page.goto(page_url)
    seen: dict[str, Any] = page.evaluate(
        ROUND, {"api": live.base_url, "user": user, "token": make_token(user)}
    )
    page.close()
    return seen


def test_a_frontend_round_through_cors(browser: Any, frontend: int, api: tuple[LiveServer, Recorder]) -> None:
    live, recorder = api
    user = new_user()
    seen = _round(browser, f"http://127.0.0.1:{frontend}/", live, user)

    statuses = {name: step.get("status", step.get("failed")) for name, step in seen.items()}
    assert statuses == {
        "create": 201,
        "list": 200,
        "get": 200,
        "put": 200,
        "patch": 200,
        "complete": 200,
        "delete": 200,
    }
    assert seen["get"]["etag"] is not None  # exposed to the page, so If-Match can be sent
    assert seen["put"]["data"]["title"] == "renamed"
    assert seen["complete"]["data"]["completed"] is True

    origin = f"http://127.0.0.1:{frontend}"
    mine = [e for e in recorder.seen if f"/api/{user}/" in e["path"]]
    preflights = {(e["preflight_for"], e["path"].replace(seen["create"]["data"]["id"], "ID")) for e in mine}
    base = f"/api/{user}/tasks"
    # Chromium caches a preflight per URL, so the first non-simple request to each URL is preflighted.
    for method, path in (("POST", base), ("GET", f"{base}/ID"), ("PATCH", f"{base}/ID/complete")):
        assert (method, path) in preflights, preflights
    for entry in mine:
        assert entry["origin"] == origin
        assert entry["allow_origin"] == origin.encode()
        if entry["method"] == "OPTIONS":
            assert entry["status"] == 200
    assert {e["method"] for e in mine} == {"OPTIONS", "GET", "POST", "PUT", "PATCH", "DELETE"}


def test_lists_and_subtasks_through_cors(
    browser: Any, frontend: int, api: tuple[LiveServer, Recorder]
) -> None:
    live, recorder = api
    user = new_user()
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{frontend}/")
    seen: dict[str, Any] = page.evaluate(
        LISTS_ROUND, {"api": live.base_url, "user": user, "token": make_token(user)}
    )
    page.close()

    statuses = {name: step.get("status", step.get("failed")) for name, step in seen.items()}
    assert statuses == {
        "create_list": 201,
        "create_task": 201,
        "create_subtask": 201,
        "get_list": 200,
        "lists": 200,
        "tree": 200,
        "get_subtask": 200,
        "delete_list": 200,
    }, seen
    task_list = seen["create_list"]["data"]
    parent, child = seen["create_task"]["data"], seen["create_subtask"]["data"]
    # Location and ETag are exposed to the page for lists as for tasks.
    assert seen["create_list"]["location"] == f"/api/{user}/lists/{task_list['id']}"
    assert seen["get_list"]["etag"] == seen["create_list"]["etag"] is not None
    assert seen["get_list"]["data"] == task_list
    assert [entry["id"] for entry in seen["lists"]["data"]] == [task_list["id"]]
    assert (parent["list_id"], parent["parent_id"]) == (task_list["id"], None)
    # The subtask was given only its parent, and went into the parent's list.
    assert (child["list_id"], child["parent_id"]) == (task_list["id"], parent["id"])
    assert [(t["title"], t["parent_id"]) for t in seen["tree"]["data"]] == [
        ("parent", None),
        ("child", parent["id"]),
    ]
    assert seen["get_subtask"]["data"] == child
    assert seen["delete_list"]["meta"]["deleted_tasks"] == 2

    origin = f"http://127.0.0.1:{frontend}"
    mine = [e for e in recorder.seen if f"/api/{user}/" in e["path"]]
    assert all(e["origin"] == origin and e["allow_origin"] == origin.encode() for e in mine)
    assert ("POST", f"/api/{user}/lists") in {(e["preflight_for"], e["path"]) for e in mine}


def test_an_origin_not_allowed_is_refused(
    browser: Any, frontend: int, api: tuple[LiveServer, Recorder]
) -> None:
    live, recorder = api
    user = new_user()
    # Same page, other origin: `localhost` is not the configured `127.0.0.1`.
    seen = _round(browser, f"http://localhost:{frontend}/", live, user)
    assert "failed" in seen["create"], seen  # the browser kept the answer from the page
    mine = [e for e in recorder.seen if f"/api/{user}/" in e["path"]]
    # Only the preflight reached the service; it was refused without CORS headers, so no POST followed.
    assert [(e["method"], e["status"], e["allow_origin"]) for e in mine] == [("OPTIONS", 403, None)]


def test_docs_render_every_operation(browser: Any, api: tuple[LiveServer, Recorder], tmp_path: Path) -> None:
    live, _ = api
    page = browser.new_page()
    page.goto(f"{live.base_url}/docs")
    page.wait_for_selector(".opblock-summary-path", timeout=20_000)
    shot = Path(os.environ.get("DOCS_SCREENSHOT") or tmp_path / "docs.png")
    page.screenshot(path=str(shot), full_page=True)
    shown = {
        (
            block.query_selector(".opblock-summary-method").inner_text().lower(),
            block.query_selector(".opblock-summary-path").get_attribute("data-path"),
        )
        for block in page.query_selector_all(".opblock")
    }
    page.close()
    with live.client() as client:
        document = client.get("/openapi.json").json()
    expected = {(method, path) for path, methods in document["paths"].items() for method in methods}
    assert shown == expected
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


# A frontend's live updates: the event stream read with fetch (EventSource cannot send the Bearer
# header), then a write from the same page, which must arrive as a `changed` event.
EVENTS = """async ({api, user, token}) => {
  const auth = {Authorization: `Bearer ${token}`};
  const response = await fetch(`${api}/api/${user}/events`, {headers: auth});
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const events = [];
  let buffer = "";
  const next = async () => {
    while (!buffer.includes("\\n\\n")) {
      const {value, done} = await reader.read();
      if (done) throw new Error("the stream ended");
      buffer += value;
    }
    const [frame, ...rest] = buffer.split("\\n\\n");
    buffer = rest.join("\\n\\n");
    return frame;
  };
  const named = async () => {
    for (;;) {
      const frame = await next();
      const name = frame.split("\\n").find((l) => l.startsWith("event:"));
      if (name) return name.slice(6).trim();
    }
  };
  // Bounded: a missing event fails the test instead of hanging it.
  const nextEvent = () => Promise.race([
    named(), new Promise((resolve) => setTimeout(() => resolve("(none within 10 s)"), 10000)),
  ]);
  events.push(await nextEvent());
  await fetch(`${api}/api/${user}/tasks`, {
    method: "POST", headers: {...auth, "Content-Type": "application/json"}, body: JSON.stringify({title: "live"}),
  });
  events.push(await nextEvent());
  await reader.cancel();
  return {status: response.status, type: response.headers.get("content-type"), events};
}"""


def test_live_updates_reach_the_page(browser: Any, frontend: int, api: tuple[LiveServer, Recorder]) -> None:
    live, _ = api
    with live.client() as client:
        paths = client.get("/openapi.json").json()["paths"]
    if "/api/{user_id}/events" not in paths:
        pytest.skip("this build has no event stream (GET /api/{user_id}/events)")
    user = new_user()
    page = browser.new_page()
    page.goto(f"http://127.0.0.1:{frontend}/")
    seen = page.evaluate(EVENTS, {"api": live.base_url, "user": user, "token": make_token(user)})
    page.close()
    assert seen["status"] == 200 and seen["type"].startswith("text/event-stream")
    assert seen["events"] == ["ready", "changed"]
