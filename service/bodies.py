"""Reading a JSON request body: size limit while streaming, media type, syntax, then schema."""

from __future__ import annotations

import re
from typing import TypeVar

import msgspec
from starlette.requests import ClientDisconnect, Request

from .errors import BadRequest, PayloadTooLarge, UnsupportedMediaType, invalid
from .limits import MAX_BODY_BYTES

T = TypeVar("T")

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


async def read_body(request: Request) -> bytes:
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


def _field_error(exc: msgspec.ValidationError) -> tuple[str, str]:
    """Turn msgspec's one-line error into (field, message) for `details`."""
    text = str(exc)
    named = _NAMED_FIELD.search(text)
    if text.startswith("Object contains unknown field") and named:
        return named.group(1), "is not allowed"
    if text.startswith("Object missing required field") and named:
        return named.group(1), "is required"
    at = _AT_FIELD.search(text)
    problem = text.partition(" - at ")[0]
    # "Expected `str | null`, got `int`" -> "must be a string or null, not int"
    problem = _EXPECTED.sub(
        lambda m: "must be " + " or ".join(_type_name(k) for k in m.group(1).split("|")), problem
    )
    problem = _GOT.sub(lambda m: f", not {_type_name(m.group(1))}", problem)
    return (at.group(1) if at else "body"), problem


def _type_name(kind: str) -> str:
    kind = kind.strip()
    return _TYPE_NAMES.get(kind, kind)


async def read_json(request: Request, schema: type[T], *, optional: bool = False) -> T | None:
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
        raise invalid(*_field_error(exc)) from None
    except (msgspec.DecodeError, UnicodeDecodeError):
        # msgspec reports invalid UTF-8 inside a string as a UnicodeDecodeError, not a DecodeError.
        raise BadRequest() from None
