"""CONTRACT §6 and issue 5, schema-driven fuzzing: Schemathesis generates requests from the OpenAPI
document, valid and invalid, against the live server, and follows its links from create onwards."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from service.openapi.document import route_operations
from service.ops import docs, health
from service.sync import changes, events
from service.tasks import routes as tasks
from tests.support.servers import LiveServer
from tests.support.tokens import make_token, new_user

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
            # A well-formed id may name a task or list that is none of the user's (the schema cannot
            # know which ids exist): a valid request that must fail, 422 naming the field. So may a
            # move that would nest too deep, or a subtask in another list than its parent's.
            "operations": [
                {
                    "include-operation-id": operation,
                    "checks": {"positive_data_acceptance": {"expected-statuses": [*ACCEPTED, "422"]}},
                }
                for operation in (
                    "moveTask",
                    "listTasks",
                    "createTask",
                    "taskStats",
                    "clearCompleted",
                    "moveList",
                )
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
