"""CONTRACT §4 and §7: ETags, If-None-Match (304) and If-Match (412), race-free."""

from __future__ import annotations

import httpx
import pytest

from tests.support.assertions import assert_error
from tests.support.clients import UserClient, burst
from tests.support.servers import LiveServer


@pytest.fixture
def task(me: UserClient) -> httpx.Response:
    response = me.request("POST", json={"title": "original"})
    assert response.status_code == 201
    return response


def test_get_has_a_strong_etag(me: UserClient, task: httpx.Response) -> None:
    tag = me.request("GET", task.headers["location"]).headers["etag"]
    assert tag.startswith('"')
    assert not tag.startswith("W/")
    assert tag == task.headers["etag"]


@pytest.mark.parametrize("form", ["{tag}", "W/{tag}", '"nope", {tag}', "*"])
def test_if_none_match_answers_304(me: UserClient, task: httpx.Response, form: str) -> None:
    tag = task.headers["etag"]
    headers = {"If-None-Match": form.format(tag=tag), "X-Request-ID": "cond-1"}
    response = me.request("GET", task.headers["location"], headers=headers)
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == tag
    assert response.headers["x-request-id"] == "cond-1"


def test_if_none_match_stale_answers_200(me: UserClient, task: httpx.Response) -> None:
    url = task.headers["location"]
    me.request("PATCH", url, json={"title": "changed"})
    response = me.request("GET", url, headers={"If-None-Match": task.headers["etag"]})
    assert response.status_code == 200
    assert response.json()["data"]["title"] == "changed"


WRITES = [
    ("PUT", "", {"title": "lost update"}),
    ("PATCH", "", {"completed": True}),
    ("PATCH", "/complete", None),
    ("DELETE", "", None),
]


@pytest.mark.parametrize(("method", "suffix", "body"), WRITES)
def test_stale_if_match_is_412_and_changes_nothing(
    me: UserClient, task: httpx.Response, method: str, suffix: str, body: dict | None
) -> None:
    url = task.headers["location"]
    current = me.request("PATCH", url, json={"title": "newer"})
    response = me.request(method, url + suffix, json=body, headers={"If-Match": task.headers["etag"]})
    assert_error(response, 412, "PRECONDITION_FAILED")
    after = me.request("GET", url)
    assert after.json()["data"] == current.json()["data"]
    assert after.headers["etag"] == current.headers["etag"]


# What each write leaves behind, as seen by a GET afterwards (None: the task is gone).
_WRITTEN = {
    ("PUT", ""): {"title": "lost update", "completed": False},
    ("PATCH", ""): {"title": "original", "completed": True},
    ("PATCH", "/complete"): {"title": "original", "completed": True},
    ("DELETE", ""): None,
}


@pytest.mark.parametrize(("method", "suffix", "body"), WRITES)
@pytest.mark.parametrize("form", ["{tag}", '"0", {tag}', "*"])
def test_matching_if_match_writes(
    me: UserClient, task: httpx.Response, method: str, suffix: str, body: dict | None, form: str
) -> None:
    url = task.headers["location"]
    response = me.request(
        method, url + suffix, json=body, headers={"If-Match": form.format(tag=task.headers["etag"])}
    )
    assert response.status_code == 200
    after = me.request("GET", url)
    expected = _WRITTEN[(method, suffix)]
    if expected is None:
        assert after.status_code == 404
        assert response.headers["etag"] == task.headers["etag"]  # the task as it was
    else:
        assert {k: after.json()["data"][k] for k in expected} == expected
        assert response.headers["etag"] == after.headers["etag"] != task.headers["etag"]


@pytest.mark.parametrize("value", ["garbage", "{tag}x", "{tag}, junk"])
def test_an_if_match_that_is_no_entity_tag_is_422_not_a_stale_copy(
    me: UserClient, task: httpx.Response, value: str
) -> None:
    headers = {"If-Match": value.format(tag=task.headers["etag"])}
    response = me.request("PATCH", task.headers["location"], json={"title": "x"}, headers=headers)
    assert_error(response, 422, "VALIDATION_ERROR")
    assert response.json()["error"]["details"][0]["field"] == "If-Match"
    assert me.request("GET", task.headers["location"]).json()["data"]["title"] == "original"


@pytest.mark.parametrize("value", ["W/{tag}", '""', '"-1"', '"1"'])
def test_weak_or_foreign_if_match_never_matches(me: UserClient, task: httpx.Response, value: str) -> None:
    headers = {"If-Match": value.format(tag=task.headers["etag"])}
    assert_error(
        me.request("PATCH", task.headers["location"], json={"title": "x"}, headers=headers),
        412,
        "PRECONDITION_FAILED",
    )
    assert me.request("GET", task.headers["location"]).json()["data"]["title"] == "original"


def test_an_etag_of_another_task_never_matches(me: UserClient, task: httpx.Response) -> None:
    other = me.request("POST", json={"title": "other"})
    # Both are at their first version, yet each ETag names its own task.
    assert other.headers["etag"] != task.headers["etag"]
    url = task.headers["location"]
    response = me.request("PATCH", url, json={"title": "x"}, headers={"If-Match": other.headers["etag"]})
    assert_error(response, 412, "PRECONDITION_FAILED")
    assert me.request("GET", url).json()["data"]["title"] == "original"
    assert me.request("GET", url, headers={"If-None-Match": other.headers["etag"]}).status_code == 200


def test_if_match_on_a_missing_task_is_404(me: UserClient) -> None:
    response = me.request(
        "PATCH", "/00000000-0000-7000-8000-000000000000", json={"title": "x"}, headers={"If-Match": "*"}
    )
    assert_error(response, 404, "NOT_FOUND")


def test_parallel_patches_with_one_if_match_let_exactly_one_through(
    server: LiveServer, live_me: UserClient
) -> None:
    created = live_me.request("POST", json={"title": "contested"})
    url = created.headers["location"]
    headers = {**live_me.headers, "If-Match": created.headers["etag"]}
    responses = burst(server, 10, lambda c, i: c.patch(url, json={"title": f"writer {i}"}, headers=headers))
    assert sorted(r.status_code for r in responses) == [200] + [412] * 9
    [winner] = [r for r in responses if r.status_code == 200]
    assert live_me.request("GET", url).json()["data"] == winner.json()["data"]
