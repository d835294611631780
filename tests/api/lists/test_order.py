"""Contract v3, Lists: the user's order of lists; a move rewrites one row, and rarely renumbers them all."""

from __future__ import annotations

import random

import httpx
import pytest

from service.tasks.order import positions
from tests.api.lists.client import ListClient
from tests.support.clients import burst
from tests.support.servers import LiveServer
from tests.support.tokens import auth


def _snapshot(mine: ListClient) -> dict[str, tuple[str, str]]:
    """Each list's position and ETag."""
    return {found["id"]: (found["position"], mine.get(found["id"]).headers["etag"]) for found in mine.all()}


@pytest.fixture
def four(mine: ListClient) -> list[str]:
    """Four lists, a b c d in that order (new lists go last)."""
    return [mine.create(name)["id"] for name in "abcd"]


def test_move_before_and_after(mine: ListClient, four: list[str]) -> None:
    a, b, c, d = four
    assert mine.move(d, {"before": a}).status_code == 200
    assert mine.ids() == [d, a, b, c]
    assert mine.move(d, {"after": b}).status_code == 200
    assert mine.ids() == [a, b, d, c]
    assert mine.move(a, {"after": c}).status_code == 200
    assert mine.ids() == [b, d, c, a]
    assert mine.move(c, {"before": b}).status_code == 200
    assert mine.ids() == [c, b, d, a]


def test_a_move_answers_the_list_with_its_new_position_and_etag(mine: ListClient, four: list[str]) -> None:
    a, _, _, d = four
    before = mine.get(a)
    response = mine.move(a, {"after": d})
    assert response.status_code == 200, response.text
    moved = response.json()["data"]
    assert moved["position"] > mine.get(d).json()["data"]["position"]
    assert moved["name"] == "a"
    assert moved["updated_at"] > before.json()["data"]["updated_at"]
    assert response.headers["etag"] != before.headers["etag"]
    assert mine.get(a).json()["data"] == moved
    assert mine.get(a).headers["etag"] == response.headers["etag"]


def test_a_move_leaves_every_other_list_as_it_was(mine: ListClient, four: list[str]) -> None:
    a, b, c, d = four
    for moved, body in ((b, {"after": d}), (d, {"before": a}), (c, {"after": a})):
        before = _snapshot(mine)
        assert mine.move(moved, body).status_code == 200
        after = _snapshot(mine)
        assert after[moved] != before[moved]
        assert {k: v for k, v in after.items() if k != moved} == {
            k: v for k, v in before.items() if k != moved
        }


def test_a_move_to_where_the_list_already_is_keeps_the_order(mine: ListClient, four: list[str]) -> None:
    a, b, _, _ = four
    assert mine.move(b, {"after": a}).status_code == 200
    assert mine.move(a, {"before": b}).status_code == 200
    assert mine.ids() == four


def test_random_moves_match_a_model_list(mine: ListClient) -> None:
    rng = random.Random("lists")
    model = [mine.create(f"l{n}")["id"] for n in range(6)]
    for _ in range(120):
        moved, anchor = rng.sample(model, 2)
        side = rng.choice(("before", "after"))
        assert mine.move(moved, {side: anchor}).status_code == 200
        model.remove(moved)
        model.insert(model.index(anchor) + (side == "after"), moved)
        assert mine.ids() == model


def test_keys_that_grow_too_long_renumber_the_lists(mine: ListClient) -> None:
    """Moves into one gap lengthen its keys; past the bound, the user's lists are renumbered."""
    first, *rest = [mine.create(f"l{n}")["id"] for n in range(5)]
    model = [first, *rest]
    first_tag = mine.get(first).headers["etag"]
    renumbered, moves = False, 0
    while moves < 400:
        moves += 1
        # Always right after the first list: the gap there halves each time.
        moved = model[2]
        response = mine.move(moved, {"after": first})
        assert response.status_code == 200, response.text
        model.remove(moved)
        model.insert(1, moved)
        listed = mine.all()
        assert [found["id"] for found in listed] == model
        assert all(len(found["position"]) <= positions.REBALANCE_ABOVE for found in listed)
        if mine.get(first).headers["etag"] != first_tag:
            # The first list never moved: only a renumbering gives it a new version.
            renumbered = True
            assert all(len(found["position"]) <= positions.INT_WIDTH + 1 for found in listed)
            assert mine.get(first).json()["data"]["updated_at"] == listed[0]["updated_at"]
            break
    assert renumbered, "no renumbering in 400 moves into one gap"
    assert moves > 20
    # Moves and creates go on as before after it.
    assert mine.move(model[-1], {"before": first}).status_code == 200
    newest = mine.create("newest")["id"]
    assert mine.ids() == [model[-1], *model[:-1], newest]


def test_concurrent_moves_renames_and_creates_keep_one_place_per_list(server: LiveServer) -> None:
    with server.client() as client:
        mine = ListClient(client)
        made = [mine.create(f"l{n}")["id"] for n in range(6)]
    rng = random.Random("racing lists")
    plan = [rng.sample(made, 2) for _ in range(30)]

    async def write(client: httpx.AsyncClient, n: int) -> httpx.Response:
        url, headers = f"{mine.url}/{plan[n][0]}", auth(mine.id)
        if n % 5 == 0:
            return await client.post(mine.url, json={"name": f"new {n}"}, headers=headers)
        if n % 5 == 1:
            return await client.patch(url, json={"name": f"renamed {n}"}, headers=headers)
        return await client.post(f"{url}/move", json={"after": plan[n][1]}, headers=headers)

    answers = burst(server, len(plan), write)
    assert all(r.status_code in (200, 201) for r in answers), [
        r.text for r in answers if r.status_code >= 300
    ]
    with server.client() as client:
        listed = ListClient(client, mine.id).all()
    assert len(listed) == 6 + 6
    assert set(made) <= {found["id"] for found in listed}
    assert len({found["position"] for found in listed}) == len(listed)
