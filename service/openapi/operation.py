"""What a route says about itself in the OpenAPI document: an `Operation` per method, kept beside the route."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from starlette.routing import Route

from service.web.conditional import ETAG_LIST_PATTERN
from service.web.schemas import FieldError, ResponseMeta

REF = "#/components/schemas/{name}"

# Statuses most routes share: any authenticated call can meet these, and a body brings these.
API_ERRORS = (401, 403, 429, 500, 503)
BODY_ERRORS = (400, 413, 415, 422)
# The `meta` of every example response.
EXAMPLE_META = ResponseMeta(request_id="5f0c6b1e2a9d4c7f8e3b1a0d9c8e7f6a")


@dataclass(frozen=True)
class Operation:
    """What the route table cannot say about one method of one path.

    `ok_type` is the envelope the handler encodes (None: not JSON; `ok_content` says what it is),
    and the examples are instances of the very Structs the handlers encode and decode.
    """

    operation_id: str
    summary: str
    ok: int
    ok_type: Any | None
    errors: Sequence[int]
    ok_example: msgspec.Struct | None = None
    ok_content: dict[str, Any] = field(default_factory=dict)
    body: Any | None = None
    body_example: msgspec.Struct | None = None
    body_required: bool = True
    # The field a typical 422 names; required when `errors` holds 422.
    invalid: FieldError | None = None
    parameters: Sequence[dict[str, Any]] = ()
    ok_headers: dict[str, Any] = field(default_factory=dict)
    links: dict[str, Any] = field(default_factory=dict)
    extra_responses: dict[str, Any] = field(default_factory=dict)
    authenticated: bool = True


class ApiRoute(Route):
    """A Starlette Route that carries the Operation of each method it serves, for the document builder."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **operations: Operation) -> None:
        # A class endpoint names its methods itself; a function serves exactly the documented ones.
        methods = None if isinstance(endpoint, type) else [m.upper() for m in operations]
        super().__init__(path, endpoint, methods=methods)
        self.operations: Mapping[str, Operation] = operations


def header(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"description": description, "schema": schema or {"type": "string"}}


def parameter(
    name: str, where: str, schema: dict[str, Any], description: str, required: bool = False
) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "schema": schema,
        "description": description,
    }


def if_match(resource: str) -> dict[str, Any]:
    """The If-Match header of a conditional write to one `resource` (task, list)."""
    return parameter(
        "If-Match",
        "header",
        {"type": "string", "pattern": ETAG_LIST_PATTERN},
        f"Write only if the {resource}'s ETag is one of these, or `*`",
    )


IF_NONE_MATCH = parameter(
    "If-None-Match", "header", {"type": "string"}, "Answer 304 if the ETag still matches"
)


def query_parameters(schema: type[msgspec.Struct]) -> list[dict[str, Any]]:
    """One query parameter per field of a query Struct, with the schema msgspec derives for it."""
    _, components = msgspec.json.schema_components([schema], ref_template=REF)
    found = []
    for name, prop in components[schema.__name__]["properties"].items():
        prop = dict(prop)
        description = prop.pop("description", "")
        if "enum" in prop and "type" not in prop:
            prop["type"] = "string"
        if prop.get("type") == "array":
            # A list field is the parameter repeated: ?tag=a&tag=b.
            found.append({**parameter(name, "query", prop, description), "explode": True})
        else:
            found.append(parameter(name, "query", prop, description))
    return found


REQUEST_ID = header("Equals `meta.request_id`: the client's `X-Request-ID` if well-formed, else a new one")
