"""CONTRACT §6 and issue 5: the OpenAPI 3.1 document: valid, complete, and true to the structs and routes.

Schema-driven fuzzing against it is in tests/system/test_fuzzing.py."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from starlette.routing import Mount

from service.app import create_app
from service.openapi.document import route_operations
from service.web.errors import error_codes
from tests.support.servers import LiveServer, settings_for
from tests.support.tokens import auth


@pytest.fixture(scope="module")
def document(server: LiveServer) -> dict[str, Any]:
    response = httpx.get(f"{server.base_url}/openapi.json")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    return response.json()


def test_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_route_is_documented_and_nothing_else(document: dict[str, Any], database) -> None:  # type: ignore[no-untyped-def]
    app = create_app(settings_for(database.url))
    served = set(route_operations(app.routes))
    documented = {(method, path) for path, item in document["paths"].items() for method in item}
    assert served == documented
    # Only the static assets of the docs page are left out: they are files, not operations.
    unlisted = [r for r in app.routes if not any(path == getattr(r, "path", None) for _, path in served)]
    assert all(isinstance(r, Mount) and r.path == "/docs/assets" for r in unlisted)


def test_api_operations_need_the_bearer_scheme(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path, item in document["paths"].items():
        for operation in item.values():
            expected = [{"bearerAuth": []}] if path.startswith("/api/") else []
            assert operation["security"] == expected, path
            if path.startswith("/api/"):
                assert {"401", "403", "500", "503"} <= set(operation["responses"])


def conforms(document: dict[str, Any], schema: dict[str, Any], instance: Any) -> None:
    """Assert `instance` fits `schema`, resolving its `#/components/...` references in `document`."""
    Draft202012Validator({"components": document["components"], **schema}).validate(instance)


def test_size_limits_are_documented_on_every_operation(
    document: dict[str, Any], client: httpx.Client
) -> None:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            assert {"414", "431"} <= set(operation["responses"]), (method, path)
    # Answered before routing, even where no token is needed, and in the documented envelope.
    response = client.get("/openapi.json", params={"pad": "x" * 9000})
    assert response.status_code == 414
    documented = document["paths"]["/openapi.json"]["get"]["responses"]["414"]
    conforms(document, documented["content"]["application/json"]["schema"], response.json())


def test_bodies_and_responses_come_from_the_structs(document: dict[str, Any]) -> None:
    schemas = document["components"]["schemas"]
    create = schemas["TaskCreate"]
    assert create["additionalProperties"] is False
    assert set(create["properties"]) == {
        "title",
        "description",
        "due_at",
        "priority",
        "tags",
        "list_id",
        "parent_id",
    }
    assert create["required"] == ["title"]
    assert set(schemas["TaskRead"]["properties"]) == {
        "id",
        "title",
        "description",
        "completed",
        "user_id",
        "created_at",
        "updated_at",
        "due_at",
        "priority",
        "tags",
        "completed_at",
        "position",
        "list_id",
        "parent_id",
    }
    assert schemas["TaskMove"]["additionalProperties"] is False
    assert set(schemas["ErrorEnvelope"]["properties"]) == {"data", "meta", "error"}
    post = document["paths"]["/api/{user_id}/tasks"]["post"]
    assert set(post["responses"]["201"]["headers"]) >= {"ETag", "Location", "X-Request-ID"}
    assert {p["name"] for p in post["parameters"]} >= {"user_id", "Idempotency-Key", "X-Request-ID"}
    listing = document["paths"]["/api/{user_id}/tasks"]["get"]
    assert {p["name"] for p in listing["parameters"]} >= {"completed", "q", "sort", "limit", "cursor"}


def _json_media(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(where, media type object) of every JSON body and response in the document."""
    found = []
    for path, item in document["paths"].items():
        for method, operation in item.items():
            bodies = [("request", operation.get("requestBody", {}))]
            bodies += list(operation["responses"].items())
            for name, body in bodies:
                if "application/json" in body.get("content", {}) and path != "/openapi.json":
                    found.append((f"{method} {path} {name}", body["content"]["application/json"]))
    return found


def test_every_json_body_has_an_example_that_fits_its_schema(document: dict[str, Any]) -> None:
    media = _json_media(document)
    wheres = {where for where, _ in media}
    assert {"post /api/{user_id}/tasks request", "get /api/{user_id}/tasks 200", "get /healthz 431"} <= wheres
    for where, body in media:
        assert "example" in body, where
        conforms(document, body["schema"], body["example"])
        if where.endswith(" 422"):
            assert body["example"]["error"]["details"], where
        if where.split()[-1].isdigit() and int(where.split()[-1]) >= 400:
            assert body["example"]["error"]["status"] == int(where.split()[-1]), where


def test_request_examples_do_what_the_document_says(
    document: dict[str, Any], client: httpx.Client, user: str
) -> None:
    """Each request example, sent as documented, gets the documented status and takes effect."""
    headers = auth(user)
    create = document["paths"]["/api/{user_id}/tasks"]["post"]
    created = client.post(
        f"/api/{user}/tasks",
        json=create["requestBody"]["content"]["application/json"]["example"],
        headers=headers,
    )
    assert created.status_code == 201
    example = create["responses"]["201"]["content"]["application/json"]["example"]["data"]
    fields = ("title", "description", "completed", "due_at", "priority", "tags")
    assert {k: created.json()["data"][k] for k in fields} == {k: example[k] for k in fields}
    task_path = f"/api/{user}/tasks/{created.json()['data']['id']}"
    # The move example names a task of the example's user: here it is another task of ours.
    other = client.post(f"/api/{user}/tasks", json={"title": "anchor"}, headers=headers).json()["data"]
    sent = 0
    for path, item in document["paths"].items():
        if "{task_id}" not in path:
            continue
        for method, operation in item.items():
            if "requestBody" not in operation:
                continue
            body = operation["requestBody"]["content"]["application/json"]["example"]
            url = task_path + path.removeprefix("/api/{user_id}/tasks/{task_id}")
            if path.endswith("/move"):
                body = {side: other["id"] for side in body}
                response = client.request(method, url, json=body, headers=headers)
                assert response.status_code == 200, (method, path, response.text)
                assert (response.json()["data"]["position"] > other["position"]) == ("after" in body)
            else:
                response = client.request(method, url, json=body, headers=headers)
                assert response.status_code == 200, (method, path, response.text)
                assert {k: response.json()["data"][k] for k in body} == body, (method, path)
            sent += 1
    assert sent == 4  # PUT, PATCH, PATCH .../complete, POST .../move
    clear = document["paths"]["/api/{user_id}/tasks/clear-completed"]["post"]
    cleared = client.post(
        f"/api/{user}/tasks/clear-completed",
        json=clear["requestBody"]["content"]["application/json"]["example"],
        headers=headers,
    )
    assert cleared.status_code == 200, cleared.text
    assert cleared.json()["data"] == {"deleted": 1}  # the task the complete example completed


def test_error_code_is_a_closed_enum(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    code = document["components"]["schemas"]["ErrorBody"]["properties"]["code"]
    assert code["enum"] == error_codes()
    assert {"QUOTA_EXCEEDED", "SYNC_EXPIRED", "TOO_MANY_STREAMS", "TOO_MANY_REQUESTS"} <= set(code["enum"])
