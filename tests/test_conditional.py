"""CONTRACT §4 and §7: ETags, If-None-Match (304) and If-Match (412), race-free."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support import LiveServer, auth


@pytest.fixture
def task(client: httpx.Client, user: str) -> httpx.Response:
    response = client.post(f"/api/{user}/tasks", json={"title": "original"}, headers=auth(user))
    assert response.status_code == 201
    return response


def test_get_has_a_strong_etag(client: httpx.Client, user: str, task: httpx.Response) -> None:
    response = client.get(task.headers["location"], headers=auth(user))
    tag = response.headers["etag"]
    assert tag.startswith('"')
    assert not tag.startswith("W/")
    assert tag == task.headers["etag"]


@pytest.mark.parametrize("form", ["{tag}", "W/{tag}", '"nope", {tag}', "*"])
def test_if_none_match_answers_304(client: httpx.Client, user: str, task: httpx.Response, form: str) -> None:
    tag = task.headers["etag"]
    headers = {**auth(user), "If-None-Match": form.format(tag=tag), "X-Request-ID": "cond-1"}
    response = client.get(task.headers["location"], headers=headers)
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == tag
    assert response.headers["x-request-id"] == "cond-1"


def test_if_none_match_stale_answers_200(client: httpx.Client, user: str, task: httpx.Response) -> None:
    url = task.headers["location"]
    old = task.headers["etag"]
    client.patch(url, json={"title": "changed"}, headers=auth(user))
    response = client.get(url, headers={**auth(user), "If-None-Match": old})
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
    client: httpx.Client, user: str, task: httpx.Response, method: str, suffix: str, body: dict | None
) -> None:
    url = task.headers["location"]
    stale = task.headers["etag"]
    current = client.patch(url, json={"title": "newer"}, headers=auth(user))
    response = client.request(method, url + suffix, json=body, headers={**auth(user), "If-Match": stale})
    assert response.status_code == 412
    assert response.json()["error"]["code"] == "PRECONDITION_FAILED"
    after = client.get(url, headers=auth(user))
    assert after.json()["data"] == current.json()["data"]
    assert after.headers["etag"] == current.headers["etag"]


@pytest.mark.parametrize(("method", "suffix", "body"), WRITES)
@pytest.mark.parametrize("form", ["{tag}", '"0", {tag}', "*"])
def test_matching_if_match_writes(
    client: httpx.Client,
    user: str,
    task: httpx.Response,
    method: str,
    suffix: str,
    body: dict | None,
    form: str,
) -> None:
    url = task.headers["location"]
    headers = {**auth(user), "If-Match": form.format(tag=task.headers["etag"])}
    response = client.request(method, url + suffix, json=body, headers=headers)
    assert response.status_code == 200
    assert response.headers["etag"]


@pytest.mark.parametrize("value", ["W/{tag}", "garbage", '""', '"-1"'])
def test_weak_or_malformed_if_match_never_matches(
    client: httpx.Client, user: str, task: httpx.Response, value: str
) -> None:
    headers = {**auth(user), "If-Match": value.format(tag=task.headers["etag"])}
    response = client.patch(task.headers["location"], json={"title": "x"}, headers=headers)
    assert response.status_code == 412


def test_if_match_on_a_missing_task_is_404(client: httpx.Client, user: str) -> None:
    url = f"/api/{user}/tasks/00000000-0000-7000-8000-000000000000"
    response = client.patch(url, json={"title": "x"}, headers={**auth(user), "If-Match": '"1"'})
    assert response.status_code == 404


def test_parallel_patches_with_one_if_match_let_exactly_one_through(server: LiveServer, user: str) -> None:
    with server.client() as client:
        created = client.post(f"/api/{user}/tasks", json={"title": "contested"}, headers=auth(user))
    url = created.headers["location"]
    headers = {**auth(user), "If-Match": created.headers["etag"]}

    async def race() -> list[int]:
        async with httpx.AsyncClient(base_url=server.base_url, timeout=30) as client:
            responses = await asyncio.gather(
                *(client.patch(url, json={"title": f"writer {i}"}, headers=headers) for i in range(10))
            )
        return sorted(r.status_code for r in responses)

    assert asyncio.run(race()) == [200] + [412] * 9


def test_an_etag_of_another_task_never_matches(client: httpx.Client, user: str, task: httpx.Response) -> None:
    other = client.post(f"/api/{user}/tasks", json={"title": "other"}, headers=auth(user))
    # Both are at their first version, yet each ETag names its own task.
    assert other.headers["etag"] != task.headers["etag"]
    headers = {**auth(user), "If-Match": other.headers["etag"]}
    response = client.patch(task.headers["location"], json={"title": "x"}, headers=headers)
    assert response.status_code == 412
    assert client.get(task.headers["location"], headers=auth(user)).json()["data"]["title"] == "original"
    fresh = client.get(
        task.headers["location"], headers={**auth(user), "If-None-Match": other.headers["etag"]}
    )
    assert fresh.status_code == 200
