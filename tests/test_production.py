"""Issue 6: platform URLs, PgBouncer, outages and recovery, shutdown, logs, CORS, metrics, limits."""

from __future__ import annotations

import asyncio
import gc
import json
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.app import GC_YOUNG_THRESHOLD, create_app
from service.db.migrations import migrate
from service.db.pool import asyncpg_dsn
from service.middleware.cors import CorsMiddleware
from tests.support.assertions import assert_statement_timeout
from tests.support.clients import preflight
from tests.support.metrics import metric_samples
from tests.support.pg_cluster import PgCluster, system_bin_dir
from tests.support.pg_cluster import pgbouncer as bouncer
from tests.support.postgres import Database, create_database
from tests.support.servers import LiveServer, settings_for, start_service
from tests.support.tokens import SECRET, auth, make_token, new_user

APP = "https://app.example.com"


# --- logs ------------------------------------------------------------------------------------


def _access_lines(path: Path) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    return [line for line in lines if line["logger"] == "service.access"]


def test_one_json_line_per_request_without_secrets(database: Database, tmp_path: Path) -> None:
    user = new_user()
    token = make_token(user)
    title, description = "PRIVATE-TITLE-7f3a", "PRIVATE-DESCRIPTION-91bc"
    log_path = tmp_path / "access.log"
    settings = settings_for(database.url, cors_origins=(APP,))
    with (
        log_path.open("wb") as log,
        LiveServer(settings, create_app(settings, access_log_fd=log.fileno())) as live,
        live.client() as client,
    ):
        created = client.post(
            f"/api/{user}/tasks",
            json={"title": title, "description": description},
            headers={"Authorization": f"Bearer {token}", "X-Request-ID": "log-test-1"},
        )
        task = created.json()["data"]["id"]
        client.get(f"/api/{user}/tasks?q={title}", headers={"Authorization": f"Bearer {token}"})
        client.get(f"/api/{user}/tasks", headers={"Authorization": f"Bearer {token}x"})  # a bad token
        client.get(
            f"/api/{user}/tasks/{task}",
            headers={"Authorization": f"Bearer {make_token(user, secret='x' * 40)}"},
        )
        client.get(f"/api/{new_user()}/tasks/{task}", headers={"Authorization": f"Bearer {token}"})
        preflight(client, APP, f"/api/{user}/tasks/{task}/complete")
        client.get("/nowhere", headers={"Authorization": f"Bearer {token}"})
    lines = _access_lines(log_path)
    assert len(lines) == 7
    first = lines[0]
    assert first["message"] == "request"
    assert first["level"] == "info"
    assert first["method"] == "POST"
    assert first["route"] == "/api/{user_id}/tasks"  # the template: the raw path holds the user id
    assert first["status"] == 201
    assert first["request_id"] == "log-test-1"
    assert isinstance(first["duration_ms"], float)
    assert first["user"] and first["user"] != user
    assert first["user"] == lines[1]["user"]  # one user's requests correlate
    # Answered before routing, yet logged under the route they were for, not "unmatched".
    assert [(line["status"], line["route"]) for line in lines[2:]] == [
        (401, "/api/{user_id}/tasks"),
        (401, "/api/{user_id}/tasks/{task_id}"),
        (403, "/api/{user_id}/tasks/{task_id}"),
        (200, "/api/{user_id}/tasks/{task_id}/complete"),
        (404, "unmatched"),
    ]
    everything = log_path.read_text()
    for secret in (token, token.split(".")[2], SECRET, title, description, user, task):
        assert secret not in everything


def test_access_lines_reach_stdout_beside_the_other_records_and_survive_sigterm(
    database: Database, tmp_path: Path
) -> None:
    """`python -m service` as deployed: JSON lines on stdout, and a stop loses none of them."""
    output = tmp_path / "stdout"
    with output.open("w+b") as sink:
        env = {"BETTER_AUTH_SECRET": SECRET, "DATABASE_URL": database.url, "HOME": str(tmp_path)}
        proc, base = start_service(env, output=sink)
        user = new_user()
        try:
            with httpx.Client(base_url=base, headers=auth(user)) as client:
                ids = [client.get(f"/api/{user}/tasks").headers["x-request-id"] for _ in range(50)]
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    records = [json.loads(line) for line in output.read_text().splitlines()]  # every line is JSON
    logged = [
        r["request_id"] for r in records if r["logger"] == "service.access" and r["route"].startswith("/api/")
    ]
    assert logged == ids
    assert any(r["logger"].startswith("uvicorn") for r in records)


# --- CORS ------------------------------------------------------------------------------------


@pytest.fixture
def cors_server(make_server: Callable[..., LiveServer]) -> LiveServer:
    return make_server(cors_origins=(APP, "http://localhost:3000"))


def test_preflight_from_the_frontend_needs_no_token(cors_server: LiveServer) -> None:
    with cors_server.client() as client:
        response = preflight(client, APP, "/api/u1/tasks/00000000-0000-7000-8000-000000000000")
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["access-control-allow-credentials"] == "true"
    assert "PATCH" in response.headers["access-control-allow-methods"]
    allowed = response.headers["access-control-allow-headers"].lower()
    for header in ("authorization", "content-type", "if-match", "idempotency-key"):
        assert header in allowed
    assert response.json()["meta"]["request_id"] == response.headers["x-request-id"]


def test_preflight_from_another_origin_gets_no_cors_headers_and_no_401(cors_server: LiveServer) -> None:
    with cors_server.client() as client:
        response = preflight(client, "https://evil.example", "/api/u1/tasks")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "FORBIDDEN"
    assert not [h for h in response.headers if h.startswith("access-control-")]


def test_preflight_without_cors_configured_is_refused_never_401(client: httpx.Client) -> None:
    response = preflight(client, APP, "/api/u1/tasks")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "FORBIDDEN"
    assert not [h for h in response.headers if h.startswith("access-control-")]


def test_an_options_request_that_is_no_preflight_needs_a_token(cors_server: LiveServer) -> None:
    # Without an Origin it is not CORS at all: nothing skips the token check for it.
    with cors_server.client() as client:
        response = client.options("/api/u1/tasks", headers={"Access-Control-Request-Method": "GET"})
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("method", "headers"),
    [("PURGE", "authorization"), ("TRACE", ""), ("PATCH", "authorization, x-smuggled"), ("GET", "cookie")],
)
def test_preflight_asking_for_more_than_the_policy_is_refused(
    cors_server: LiveServer, method: str, headers: str
) -> None:
    with cors_server.client() as client:
        response = client.options(
            "/api/u1/tasks",
            headers={
                "Origin": APP,
                "Access-Control-Request-Method": method,
                "Access-Control-Request-Headers": headers,
            },
        )
    assert response.status_code == 403
    assert not [h for h in response.headers if h.startswith("access-control-")]


def test_preflight_may_ask_for_safelisted_headers(cors_server: LiveServer) -> None:
    with cors_server.client() as client:
        response = client.options(
            "/api/u1/tasks",
            headers={
                "Origin": APP,
                "Access-Control-Request-Method": "DELETE",
                "Access-Control-Request-Headers": "Accept, Idempotency-Key,X-Request-ID",
            },
        )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["vary"] == "Origin"


def test_cors_appends_to_vary_instead_of_replacing_it() -> None:
    def negotiated(request: Request) -> Response:
        return Response("x", headers={"Vary": "Accept-Encoding"})

    app = Starlette(
        routes=[Route("/", negotiated)],
        middleware=[Middleware(CorsMiddleware, allow_origins=[APP], allow_methods=["GET"])],
    )
    with LiveServer(settings_for("postgresql://unused/db"), app) as live, live.client() as client:
        response = client.get("/", headers={"Origin": APP})
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["vary"] == "Accept-Encoding, Origin"


def test_responses_to_the_frontend_expose_headers(cors_server: LiveServer) -> None:
    user = new_user()
    with cors_server.client() as client:
        created = client.post(
            f"/api/{user}/tasks", json={"title": "x"}, headers={**auth(user), "Origin": APP}
        )
        other = client.get(f"/api/{user}/tasks", headers={**auth(user), "Origin": "https://evil.example"})
        denied = client.get(f"/api/{user}/tasks", headers={"Origin": APP})
    assert created.headers["access-control-allow-origin"] == APP
    exposed = created.headers["access-control-expose-headers"]
    for header in ("ETag", "Location", "X-Request-ID"):
        assert header in exposed
    assert "access-control-allow-origin" not in other.headers
    # Errors are readable by the frontend too, so it can show why.
    assert denied.status_code == 401
    assert denied.headers["access-control-allow-origin"] == APP


# --- metrics ---------------------------------------------------------------------------------


def test_metrics_are_off_by_default(client: httpx.Client) -> None:
    assert client.get("/metrics").status_code == 404


def test_metrics_behind_their_own_token(make_server: Callable[..., LiveServer]) -> None:
    live = make_server(metrics_enabled=True, metrics_token="metrics-token-0123456789-Vq7hZ2kX")
    user = new_user()
    with live.client() as client:
        client.post(f"/api/{user}/tasks", json={"title": "counted"}, headers=auth(user))
        client.get(f"/api/{user}/tasks", headers=auth(user))
        client.get(f"/api/{user}/tasks")  # refused before routing, still counted under its route
        assert client.get("/metrics").status_code == 401
        assert client.get("/metrics", headers=auth(user)).status_code == 401  # an API token is not enough
        response = client.get(
            "/metrics", headers={"Authorization": "Bearer metrics-token-0123456789-Vq7hZ2kX"}
        )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = metric_samples(response.text)
    tasks = "/api/{user_id}/tasks"
    assert samples[("http_requests_total", (("method", "POST"), ("route", tasks), ("status", "201")))] == 1
    assert samples[("http_requests_total", (("method", "GET"), ("route", tasks), ("status", "401")))] == 1
    assert samples[("http_request_duration_seconds_bucket", (("le", "+Inf"), ("route", tasks)))] == 3
    assert samples[("db_pool_max_connections", ())] == 20
    assert ("db_pool_connections", (("state", "idle"),)) in samples
    assert user not in response.text


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


# --- limits and headers ----------------------------------------------------------------------


def test_url_over_8_kib_is_414(client: httpx.Client, user: str) -> None:
    response = client.get(f"/api/{user}/tasks?q={'x' * 9000}", headers=auth(user))
    assert response.status_code == 414
    assert response.json()["error"]["code"] == "URI_TOO_LONG"


def test_headers_over_32_kib_are_431(client: httpx.Client, user: str) -> None:
    headers = {**auth(user), **{f"X-Pad-{i}": "p" * 1000 for i in range(40)}}
    response = client.get(f"/api/{user}/tasks", headers=headers)
    assert response.status_code == 431
    assert response.json()["error"]["code"] == "HEADERS_TOO_LARGE"


# --- database URLs and PgBouncer -------------------------------------------------------------


def test_heroku_style_postgres_url_works(make_server: Callable[..., LiveServer], database: Database) -> None:
    url = database.url.replace("postgresql://", "postgres://", 1) + "&channel_binding=prefer"
    live = make_server(database_url=url)
    user = new_user()
    with live.client() as client:
        assert client.post(f"/api/{user}/tasks", json={"title": "x"}, headers=auth(user)).status_code == 201


def test_neon_style_url_uses_tls(make_server: Callable[..., LiveServer]) -> None:
    """sslmode=require&channel_binding=require, as Neon gives it: accepted, and the link is encrypted."""
    bin_dir = system_bin_dir()
    if bin_dir is None:
        pytest.skip("needs a PostgreSQL built with TLS (Debian's postgresql); pgserver's has none")
    pg = PgCluster(tls=True, bin_dir=bin_dir)
    try:
        pg.start()
        url = asyncio.run(create_database(pg.url, "todo_tls"))
        asyncio.run(migrate(asyncpg_dsn(url)))
        live = make_server(database_url=f"{url}?sslmode=require&channel_binding=require")
        user = new_user()
        with live.client() as client:
            assert (
                client.post(f"/api/{user}/tasks", json={"title": "over TLS"}, headers=auth(user)).status_code
                == 201
            )
        rows = Database(url=url, admin_url=pg.url).query(
            """SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid)
               WHERE a.datname = 'todo_tls' AND a.pid <> pg_backend_pid()"""
        )
        assert rows
        assert all(r["ssl"] for r in rows)  # every connection the service opened is encrypted
    finally:
        pg.destroy()


def test_sslmode_require_refuses_a_server_without_tls(
    make_server: Callable[..., LiveServer], cluster: PgCluster, cluster_db: str
) -> None:
    live = make_server(database_url=f"{cluster_db}?sslmode=require", db_connect_timeout=2.0)
    user = new_user()
    with live.client(timeout=20) as client:
        response = client.get(f"/api/{user}/tasks", headers=auth(user))
    assert response.status_code == 503


@pytest.fixture
def pgbouncer(cluster: PgCluster, cluster_db: str) -> Iterator[str]:
    with bouncer(cluster, "todo_cluster") as url:
        yield url


def test_behind_pgbouncer_in_transaction_mode(make_server: Callable[..., LiveServer], pgbouncer: str) -> None:
    live = make_server(database_url=pgbouncer, statement_cache_size=0, pool_size=10)
    user = new_user()

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=live.base_url, timeout=30) as client:
            made = await asyncio.gather(
                *(
                    client.post(f"/api/{user}/tasks", json={"title": f"t{i}"}, headers=auth(user))
                    for i in range(30)
                )
            )
            ids = [r.json()["data"]["id"] for r in made]
            others = await asyncio.gather(
                *(client.get(f"/api/{user}/tasks/{i}", headers=auth(user)) for i in ids),
                *(client.patch(f"/api/{user}/tasks/{i}/complete", headers=auth(user)) for i in ids),
                *(
                    client.get(f"/api/{user}/tasks", params={"limit": 7, "sort": "title"}, headers=auth(user))
                    for _ in ids
                ),
            )
            return [r.status_code for r in (*made, *others)]

    # Many statements over 4 server connections shared by transaction: none may rely on a prepared statement.
    assert set(asyncio.run(burst())) == {200, 201}


def test_statement_timeout_holds_behind_pgbouncer(
    make_server: Callable[..., LiveServer], pgbouncer: str, cluster_db: str
) -> None:
    # PgBouncer forwards asyncpg's cancel request to the server connection the statement runs on.
    live = make_server(database_url=pgbouncer, statement_cache_size=0, pool_size=2, db_statement_timeout=1.0)
    user = new_user()
    assert_statement_timeout(live, cluster_db, user)
    # A search runs in a transaction of its own (SET LOCAL for its plan): fine in transaction mode.
    with live.client() as client:
        found = client.get(f"/api/{user}/tasks", params={"q": "later"}, headers=auth(user))
    assert [t["title"] for t in found.json()["data"]] == ["later"]


# --- outage and recovery ---------------------------------------------------------------------


def test_database_outage_answers_503_and_recovers_without_restart(
    make_server: Callable[..., LiveServer], cluster: PgCluster, cluster_db: str
) -> None:
    live = make_server(database_url=cluster_db, db_connect_timeout=2.0, db_acquire_timeout=2.0)
    user = new_user()
    with live.client(timeout=20) as client:
        acknowledged = [
            client.post(f"/api/{user}/tasks", json={"title": f"before {i}"}, headers=auth(user)).json()[
                "data"
            ]["id"]
            for i in range(5)
        ]
        cluster.stop()
        try:
            for _ in range(3):
                down = client.get(f"/api/{user}/tasks", headers=auth(user))
                assert down.status_code == 503
                assert down.headers["retry-after"].isdigit()
                assert down.json()["error"]["code"] == "SERVICE_UNAVAILABLE"
            assert (
                client.post(f"/api/{user}/tasks", json={"title": "lost"}, headers=auth(user)).status_code
                == 503
            )
            assert client.get("/readyz").status_code == 503
            assert client.get("/healthz").status_code == 200
        finally:
            cluster.start()
        deadline = time.monotonic() + 20
        while client.get("/readyz").status_code != 200:
            assert time.monotonic() < deadline, "the service did not recover"
            time.sleep(0.2)
        listed = client.get(f"/api/{user}/tasks", headers=auth(user))
        assert listed.status_code == 200
        assert {t["id"] for t in listed.json()["data"]} == set(acknowledged)
        assert (
            client.post(f"/api/{user}/tasks", json={"title": "after"}, headers=auth(user)).status_code == 201
        )


def test_restart_between_requests_surfaces_no_error(
    make_server: Callable[..., LiveServer], cluster: PgCluster, cluster_db: str
) -> None:
    """Pooled connections killed by a restart are replaced before use, not handed to a request."""
    live = make_server(database_url=cluster_db)
    user = new_user()
    with live.client(timeout=20) as client:
        for _ in range(3):
            assert client.get(f"/api/{user}/tasks", headers=auth(user)).status_code == 200
        cluster.stop()
        cluster.start()
        time.sleep(0.2)
        statuses = [client.get(f"/api/{user}/tasks", headers=auth(user)).status_code for _ in range(5)]
    assert statuses == [200] * 5


# --- shutdown --------------------------------------------------------------------------------


def test_sigterm_lets_an_in_flight_request_finish(database: Database, tmp_path: Path) -> None:
    proc, base = start_service(
        {"BETTER_AUTH_SECRET": SECRET, "DATABASE_URL": database.url, "HOME": str(tmp_path)}
    )
    port = int(base.rsplit(":", 1)[1])
    try:
        user = new_user()
        body = json.dumps({"title": "finished after SIGTERM"}).encode()
        head = (
            f"POST /api/{user}/tasks HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {make_token(user)}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(head + body[:10])  # the request is in flight: its body is not all here yet
            time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            conn.sendall(body[10:])
            reply = conn.recv(65536).decode()
        assert reply.startswith("HTTP/1.1 201"), reply[:200]
        assert proc.wait(timeout=30) == 0
        rows = database.query("SELECT title FROM tasks WHERE user_id = $1", user)
        assert [r["title"] for r in rows] == ["finished after SIGTERM"]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_started_worker_keeps_its_start_objects_out_of_the_collector(
    make_server: Callable[..., LiveServer],
) -> None:
    """Full collections would walk every module and table made at start (see README, Performance)."""
    gc.unfreeze()
    gc.set_threshold(700, 10, 10)
    server = make_server()
    with server.client() as client:
        assert client.get("/healthz").status_code == 200
    assert gc.get_freeze_count() > 10_000
    assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
