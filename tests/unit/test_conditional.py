"""service.web.conditional.py: strong ETags, If-Match versions and If-None-Match's weak comparison."""

from __future__ import annotations

import re
import uuid

import pytest

from service.web.conditional import etag, if_match_versions, none_match
from service.web.errors import ValidationFailed

A = uuid.UUID("01934f2e-7c1a-7b3e-9f2d-5a6b7c8d9e0f")
B = uuid.UUID("01934f2e-7c1a-7b3e-9f2d-5a6b7c8d9e10")


def test_etags_differ_by_task_and_by_version() -> None:
    assert len({etag(A, 1), etag(B, 1), etag(A, 2)}) == 3
    assert re.fullmatch(r'"[0-9]+-[A-Za-z0-9_-]+"', etag(A, 1))


@pytest.mark.parametrize(
    ("header", "versions"),
    [
        (None, None),
        ("*", None),
        (" * ", None),
        (etag(A, 3), [3]),
        (f'{etag(A, 3)}, "junk", {etag(A, 5)}', [3, 5]),
        (f"W/{etag(A, 3)}", []),  # strong comparison: a weak tag never matches
        (etag(B, 3), []),  # another task's tag
        ('"3"', []),  # the old, id-less form
        ('""', []),
        ('"-1-x"', []),
        ('"' + "9" * 10 + etag(A, 1)[2:], []),  # past int4
    ],
)
def test_if_match_versions(header: str | None, versions: list[int] | None) -> None:
    assert if_match_versions(header, A) == versions


@pytest.mark.parametrize(
    "header",
    ["garbage", etag(A, 3)[:-1], f"{etag(A, 3)}x", f"{etag(A, 3)}, junk", "W/x", '"\u0663' + etag(A, 1)[2:]],
)
def test_an_if_match_that_is_no_entity_tag_is_a_422_naming_it(header: str) -> None:
    with pytest.raises(ValidationFailed) as raised:
        if_match_versions(header, A)
    assert raised.value.details[0].field == "If-Match"


@pytest.mark.parametrize(
    ("header", "matches"),
    [(None, False), ("*", True), ('"x", {tag}', True), ("W/{tag}", True), ('"other"', False)],
)
def test_none_match_uses_weak_comparison(header: str | None, matches: bool) -> None:
    tag = etag(A, 1)
    assert none_match(None if header is None else header.format(tag=tag), tag) is matches
