"""CONTRACT §6 and issue 5: the OpenAPI 3.1 document, and schema-driven fuzzing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig
from starlette.routing import Mount

from service.app import create_app
from service.openapi.document import route_operations
from service.ops import docs, health
from service.sync import changes, events
from service.tasks import routes as tasks
from service.web.errors import error_codes
from tests.support.servers import LiveServer, settings_for
from tests.support.tokens import auth, make_token, new_user


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
    assert set(create["properties"]) == {"title", "description", "due_at", "priority", "tags"}
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


FUZZ_USER = new_user()
ACCEPTED = ["2xx", "3xx", "401", "403", "404", "409", "412", "429"]
# Schemathesis' own list for negative_data_rejection.
REJECTED = ["400", "401", "403", "404", "405", "406", "409", "415", "422", "428", "429", "5xx"]


def _load(server: LiveServer, user: str, **generation: Any) -> Any:
    config = SchemathesisConfig.from_dict(
        {
            # As the security scheme, not a plain header, so the auth checks can tell a token from no token.
            "auth": {"openapi": {"bearerAuth": {"bearer": make_token(user, ttl=3600)}}},
            # An event stream never ends by itself: its first event is enough to check.
            "max-stream-events": 1,
            # CONTRACT §7: unknown query parameters are ignored, so extra ones are no violation.
            "generation": {
                "max-examples": 20,
                "database": "none",
                "allow-extra-parameters": True,
                **generation,
            },
            "checks": {
                "enabled": True,
                # A well-formed If-Match naming another version is a valid request that must fail: 412.
                "positive_data_acceptance": {"expected-statuses": ACCEPTED},
                # Invalid input may also be long enough to be refused for its size (many `tag`s).
                "negative_data_rejection": {"expected-statuses": [*REJECTED, "414", "431"]},
            },
            # A well-formed move may name an anchor that is none of the user's tasks (the schema
            # cannot know which ids exist): a valid request that must fail, 422 naming the field.
            "operations": [
                {
                    "include-operation-id": "moveTask",
                    "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "422"]}},
                }
            ],
        }
    )
    return schemathesis.openapi.from_url(f"{server.base_url}/openapi.json", config=config)


@pytest.fixture(scope="module")
def api_schema(server: LiveServer) -> Any:
    return _load(server, FUZZ_USER)


FUZZ_SETTINGS = settings(
    max_examples=25, deadline=None, database=None, suppress_health_check=list(HealthCheck)
)


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=str)
@pytest.mark.parametrize(
    ("method", "path"),
    sorted(route_operations([*changes.routes, *tasks.routes, *events.routes, *health.routes, *docs.routes])),
)
def test_every_operation_conforms(api_schema: Any, method: str, path: str, mode: GenerationMode) -> None:
    """Generated requests, valid and invalid, with every check on: no 5xx, statuses, schemas, headers."""
    operation = api_schema[path][method]
    # The path must name the token's user, or every request would stop at 403; fixed here, the
    # user id is never what a negative case mutates.
    fixed = {"path_parameters": {"user_id": FUZZ_USER}} if "{user_id}" in path else {}

    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    @FUZZ_SETTINGS
    def run(case: Any) -> None:
        if mode is GenerationMode.POSITIVE and case.query:
            # A cursor is valid only as the server signed it, for its own sort and filters, so no
            # generated string can be one (test_listing walks real cursors); garbage ones stay in
            # the negative cases, which must get 422.
            case.query.pop("cursor", None)
            case.query.pop("since", None)  # likewise a sync token (test_sync walks real ones)
        case.call_and_validate()

    try:
        run()
    except Unsatisfiable:
        pytest.skip(f"no {mode} input can be generated for {method.upper()} {path}")


def test_stateful_links(server: LiveServer) -> None:
    """create -> get/update/complete/delete, following the document's links from each 201.

    Schema-valid steps only: the path's user id is set after generation here, which could undo a
    negative step's only violation; test_every_operation_conforms covers negative inputs.
    """
    # A user of its own: the tasks and keys the other fuzz tests leave behind must not steer it.
    user = new_user()
    api_schema = _load(server, user, mode="positive")

    class Machine(api_schema.as_state_machine()):  # type: ignore[misc]
        def before_call(self, case: Any) -> None:
            if "user_id" in (case.path_parameters or {}):
                case.path_parameters["user_id"] = user
            if case.query:
                case.query.pop("cursor", None)  # see test_every_operation_conforms
                case.query.pop("since", None)
            if case.headers:
                # Hypothesis replays steps; a replayed key would replay a task deleted meanwhile and
                # make the run depend on history. Keys themselves are fuzzed per operation above.
                case.headers.pop("Idempotency-Key", None)
            super().before_call(case)

    Machine.run(
        settings=settings(
            max_examples=15, stateful_step_count=6, deadline=None, suppress_health_check=list(HealthCheck)
        )
    )


def test_error_code_is_a_closed_enum(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    code = document["components"]["schemas"]["ErrorBody"]["properties"]["code"]
    assert code["enum"] == error_codes()
    assert {"QUOTA_EXCEEDED", "SYNC_EXPIRED", "TOO_MANY_STREAMS", "TOO_MANY_REQUESTS"} <= set(code["enum"])
