"""Contract v3, Lists: another user's list is 404 exactly like a missing one, on every method.

Each attack is made with the attacker's own valid token on the attacker's own path, naming the
victim's list id: the one way past the 403 of a path naming someone else.
"""

from __future__ import annotations

import uuid

import pytest

from tests.api.lists.client import ListClient
from tests.support.assertions import assert_error, invalid_field


def _victims_view(victim: ListClient) -> tuple[list[dict], dict[str, str]]:
    """The victim's lists and their ETags: what no attack may change."""
    listed = victim.all()
    return listed, {found["id"]: victim.get(found["id"]).headers["etag"] for found in listed}


@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PUT", "", {"name": "pwned"}),
        ("PATCH", "", {"name": "pwned"}),
        ("DELETE", "", None),
        ("POST", "/move", "own"),
    ],
)
@pytest.mark.parametrize("if_match", [None, "*"])
def test_another_users_list_is_404_like_a_missing_one(
    mine: ListClient, theirs: ListClient, method: str, suffix: str, body: object, if_match: str | None
) -> None:
    target = theirs.create("victim's")
    theirs.create("victim's other")
    own = mine.create("attacker's")
    before = _victims_view(theirs)
    sent = {"after": own["id"]} if body == "own" else body
    headers = {} if if_match is None else {"If-Match": if_match}
    attack = mine.request(method, f"/{target['id']}{suffix}", json=sent, headers=headers)
    missing = mine.request(method, f"/{uuid.uuid4()}{suffix}", json=sent, headers=headers)
    assert_error(attack, 404, "NOT_FOUND")
    assert_error(missing, 404, "NOT_FOUND")
    # Indistinguishable: same status, same words, no trace of the victim's list.
    assert attack.json()["error"] == missing.json()["error"]
    assert "victim" not in attack.text
    assert target["id"] not in attack.text
    assert _victims_view(theirs) == before
    assert mine.all() == [own]


def test_the_victims_etag_does_not_help_either(mine: ListClient, theirs: ListClient) -> None:
    target = theirs.request("POST", json={"name": "victim's"})
    url = f"{mine.url}/{target.json()['data']['id']}"
    tag = target.headers["etag"]
    assert_error(mine.request("DELETE", url, headers={"If-Match": tag}), 404, "NOT_FOUND")
    assert mine.request("GET", url, headers={"If-None-Match": tag}).status_code == 404
    assert theirs.get(target.json()["data"]["id"]).headers["etag"] == tag


@pytest.mark.parametrize("side", ["before", "after"])
def test_another_users_list_as_anchor_is_422_like_a_missing_one(
    mine: ListClient, theirs: ListClient, side: str
) -> None:
    victims = [theirs.create(f"victim's {n}")["id"] for n in range(2)]
    made = [mine.create(f"mine {n}")["id"] for n in range(2)]
    before = _victims_view(theirs)
    answers = []
    for anchor in (victims[0], victims[1].upper(), str(uuid.uuid4())):
        response = mine.move(made[0], {side: anchor})
        assert invalid_field(response) == side
        assert "victim" not in response.text
        answers.append(response.json()["error"])
    assert answers[0] == answers[1] == answers[2]
    assert mine.ids() == made
    assert _victims_view(theirs) == before


def test_each_user_sees_only_their_own_lists(mine: ListClient, theirs: ListClient) -> None:
    own = [mine.create(f"mine {n}")["id"] for n in range(2)]
    other = [theirs.create(f"theirs {n}")["id"] for n in range(3)]
    assert mine.ids() == own
    assert theirs.ids() == other
