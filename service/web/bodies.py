"""Reading a request: its JSON body (size, media type, syntax, then schema) and its query string.

Both are decoded straight into a Struct of `schemas`; a broken rule becomes a 422 naming the
field, with the message the rule's `Meta` carries.
"""

from __future__ import annotations

import functools
import re
from typing import Any, Literal, TypeVar, overload
from urllib.parse import parse_qsl

import msgspec
from msgspec import inspect
from starlette.requests import ClientDisconnect, Request

from service.web.errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, ValidationFailed, invalid
from service.web.limits import MAX_BODY_BYTES

TOO_DEEP = "Request body nests too deeply to be a body of this API"
# Digits enough for any limit the API takes, few enough that int() never meets a huge number.
_MAX_INT_DIGITS = 9

S = TypeVar("S", bound=msgspec.Struct)

_AT_FIELD = re.compile(r" - at `\$\.([^`\[]+)")
_NAMED_FIELD = re.compile(r"field `([^`]*)`")
_EXPECTED = re.compile(r"^Expected `([^`]+)`")
_GOT = re.compile(r", got `([^`]+)`")
_TYPE_NAMES = {
    "str": "a string",
    "bool": "a boolean",
    "int": "an integer",
    "float": "a number",
    "object": "a JSON object",
    "array": "an array",
}


async def read_body(request: Request[Any]) -> bytes:
    """The whole body, refused as soon as it passes 64 KiB, however it is framed."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise PayloadTooLarge()
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > MAX_BODY_BYTES:
                raise PayloadTooLarge()
            chunks.append(chunk)
    except ClientDisconnect:
        raise BadRequest("The client closed the request before its body was complete") from None
    return b"".join(chunks)


def is_json_media_type(content_type: str) -> bool:
    media = content_type.partition(";")[0].strip().lower()
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


@functools.cache
def _fields(schema: type[msgspec.Struct]) -> dict[str, inspect.Type]:
    """The schema's fields by wire name, each without the null a field may also take."""
    info = inspect.type_info(schema)
    if not isinstance(info, inspect.StructType):
        raise TypeError(f"{schema!r} is not a Struct")
    found: dict[str, inspect.Type] = {}
    for field in info.fields:
        kind = field.type
        if isinstance(kind, inspect.UnionType):
            kept = [t for t in kind.types if not isinstance(t, inspect.NoneType)]
            kind = kept[0] if len(kept) == 1 else kind
        found[field.encode_name] = kind
    return found


@functools.cache
def rules(schema: type[msgspec.Struct]) -> dict[str, str]:
    """What each field of `schema` must be, in words: its Meta's `rule`, or its allowed values."""
    found: dict[str, str] = {}
    for name, kind in _fields(schema).items():
        rule = kind.extra.get("rule") if isinstance(kind, inspect.Metadata) and kind.extra else None
        base = kind.type if isinstance(kind, inspect.Metadata) else kind
        if rule is None and isinstance(base, inspect.LiteralType):
            rule = "must be one of " + ", ".join(map(str, base.values))
        if rule is not None:
            found[name] = rule
    return found


def _type_name(kind: str) -> str:
    kind = kind.strip()
    return _TYPE_NAMES.get(kind, kind)


def _field_error(
    exc: msgspec.ValidationError, schema: type[msgspec.Struct], *, query: bool
) -> ValidationFailed:
    """Turn msgspec's one-line error into a 422 naming the field; the field's rule says what it must be."""
    text = str(exc)
    named = _NAMED_FIELD.search(text)
    if text.startswith("Object contains unknown field") and named:
        return invalid(named.group(1), "is not allowed")
    if text.startswith("Object missing required field") and named:
        return invalid(named.group(1), "is required")
    at = _AT_FIELD.search(text)
    field = at.group(1) if at else "body"
    problem = text.partition(" - at ")[0]
    rule = rules(schema).get(field)
    # A wrong JSON type is said as such; any other broken constraint by the field's rule. A query
    # parameter is always text, so there its rule says it all.
    if rule is not None and (query or ", got `" not in problem):
        return invalid(field, rule)
    # "Expected `str | null`, got `int`" -> "must be a string or null, not an integer"
    problem = _EXPECTED.sub(
        lambda m: "must be " + " or ".join(_type_name(k) for k in m.group(1).split("|")), problem
    )
    problem = _GOT.sub(lambda m: f", not {_type_name(m.group(1))}", problem)
    return invalid(field, problem)


@overload
async def read_json(request: Request[Any], schema: type[S]) -> S: ...
@overload
async def read_json(request: Request[Any], schema: type[S], *, optional: Literal[True]) -> S | None: ...
async def read_json(request: Request[Any], schema: type[S], *, optional: bool = False) -> S | None:
    """Decode the body into `schema`; with `optional`, no body at all gives None."""
    body = await read_body(request)
    content_type = request.headers.get("content-type")
    if content_type is not None and not is_json_media_type(content_type):
        raise UnsupportedMediaType()
    if optional and not body.strip():
        return None
    try:
        return msgspec.json.decode(body, type=schema)
    except msgspec.ValidationError as exc:
        # msgspec stops at the first broken rule, maybe before the end of a truncated document:
        # a body that is not JSON at all is a 400 whatever its valid prefix said.
        _check_syntax(body)
        raise _field_error(exc, schema, query=False) from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        # msgspec reports invalid UTF-8 inside a string as a UnicodeDecodeError, not a DecodeError.
        raise BadRequest() from None
    except RecursionError:
        raise BadRequest(TOO_DEEP) from None


def _check_syntax(body: bytes) -> None:
    try:
        msgspec.json.decode(body)
    except (msgspec.DecodeError, UnicodeDecodeError):
        raise BadRequest() from None
    except RecursionError:
        # Arrays in arrays a thousand deep: valid JSON perhaps, but no body of ours nests so.
        raise BadRequest(TOO_DEEP) from None


def read_query(request: Request[Any], schema: type[S]) -> S:
    """Decode the query string into `schema`: each known parameter at most once (list fields may
    repeat) and never empty; unknown parameters are ignored."""
    fields = _fields(schema)
    values: dict[str, Any] = {}
    # Parsed as Starlette's `query_params` would, without building its multi-dict on every request.
    pairs = parse_qsl(request.scope["query_string"].decode("latin-1"), keep_blank_values=True)
    for name, value in pairs:
        kind = fields.get(name)
        if kind is None:
            continue
        if value == "":
            raise invalid(name, "must not be empty")
        base = kind.type if isinstance(kind, inspect.Metadata) else kind
        if isinstance(base, inspect.ListType):
            values.setdefault(name, []).append(value)
            continue
        if name in values:
            raise invalid(name, "must be given at most once")
        if isinstance(base, inspect.IntType):
            # Plain digits only: msgspec's lax mode would also take "1e2", Python's int() "٣" or "1_0".
            if not (value.isascii() and value.isdigit() and len(value) <= _MAX_INT_DIGITS):
                raise invalid(name, rules(schema).get(name, "must be an integer"))
            values[name] = int(value)
        else:
            values[name] = value
    try:
        return msgspec.convert(values, schema)
    except msgspec.ValidationError as exc:
        raise _field_error(exc, schema, query=True) from None
