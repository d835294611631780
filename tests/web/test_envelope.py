"""CONTRACT §1 and §6: the envelope, the request id, health, and errors outside /api/."""

from __future__ import annotations

import httpx
import pytest

from tests.support.tokens import auth


def _assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"data", "meta", "error"}
    assert body["data"] is None
    assert body["error"]["status"] == status
    assert body["error"]["code"] == code
    assert isinstance(body["error"]["message"], str) and body["error"]["message"]
    assert isinstance(body["error"]["details"], list)
    assert body["meta"]["request_id"] == response.headers["x-request-id"]
    return body


def test_success_has_data_and_meta_but_no_error_key(client: httpx.Client, user: str) -> None:
    response = client.post(f"/api/{user}/tasks", json={"title": "Buy milk"}, headers=auth(user))
    body = response.json()
    assert set(body) == {"data", "meta"}
    assert body["meta"]["request_id"] == response.headers["x-request-id"]
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"


def test_client_request_id_is_kept(client: httpx.Client, user: str) -> None:
    rid = "req-abc_123.XYZ~!" + "x" * 100
    response = client.get(f"/api/{user}/tasks", headers={**auth(user), "X-Request-ID": rid})
    assert response.headers["x-request-id"] == rid
    assert response.json()["meta"]["request_id"] == rid


@pytest.mark.parametrize(
    "bad",
    ["", "has space", "x" * 129, "tab\there", "ünï"],
    ids=["empty", "space", "long", "tab", "non-ascii"],
)
def test_malformed_request_id_is_replaced_not_rejected(client: httpx.Client, user: str, bad: str) -> None:
    response = client.get(f"/api/{user}/tasks", headers=[*auth(user).items(), ("X-Request-ID", bad.encode())])
    assert response.status_code == 200
    rid = response.headers["x-request-id"]
    assert rid != bad and 0 < len(rid) <= 128
    assert response.json()["meta"]["request_id"] == rid


def test_generated_request_ids_differ(client: httpx.Client) -> None:
    ids = {client.get("/healthz").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5


def test_request_id_on_errors(client: httpx.Client) -> None:
    response = client.get("/api/someone/tasks", headers={"X-Request-ID": "trace-401"})
    body = _assert_error(response, 401, "UNAUTHORIZED")
    assert body["meta"]["request_id"] == "trace-401"


def test_healthz_in_envelope_without_token(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["data"] == {"status": "ok"}
    assert response.json()["meta"]["request_id"] == response.headers["x-request-id"]


def test_readyz_answers_when_database_is_up(client: httpx.Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["data"] == {"status": "ready"}


def test_unknown_path_outside_api_is_enveloped_404(client: httpx.Client) -> None:
    _assert_error(client.get("/nowhere"), 404, "NOT_FOUND")


def test_unknown_api_path_with_token_is_404(client: httpx.Client, user: str) -> None:
    _assert_error(client.get(f"/api/{user}/nothing-here", headers=auth(user)), 404, "NOT_FOUND")


def test_unknown_api_path_without_token_is_401_before_routing(client: httpx.Client) -> None:
    _assert_error(client.get("/api/whoever/nothing-here"), 401, "UNAUTHORIZED")


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("DELETE", "/tasks", {"GET", "HEAD", "POST"}),
        ("PUT", "/tasks", {"GET", "HEAD", "POST"}),
        ("POST", "/tasks/00000000-0000-7000-8000-000000000000", {"GET", "HEAD", "PUT", "PATCH", "DELETE"}),
        ("GET", "/tasks/00000000-0000-7000-8000-000000000000/complete", {"PATCH"}),
        ("POST", "/tasks/00000000-0000-7000-8000-000000000000/complete", {"PATCH"}),
    ],
)
def test_method_not_allowed_lists_allow(
    client: httpx.Client, user: str, method: str, path: str, allowed: set[str]
) -> None:
    response = client.request(method, f"/api/{user}{path}", headers=auth(user))
    _assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert {m.strip() for m in response.headers["allow"].split(",")} == allowed


def test_health_method_not_allowed(client: httpx.Client) -> None:
    response = client.post("/healthz")
    _assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert "GET" in response.headers["allow"]
