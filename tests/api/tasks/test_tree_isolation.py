"""Contract v3 §11, attacked: another user's list or task named where one of one's own is expected.

Each attack is made by user A with A's own valid token on A's own paths, naming an id of user B's
(a list, a task at the top level, a subtask, a task four levels down, a completed one): the one
way past the 403 of a path naming someone else. Every one must be the documented 422 naming the
field, word for word the answer to an id nobody holds (no oracle of whether, or how deep, B's task
exists), must change nothing for either user (tasks, lists, ETags, counters), and must carry none
of B's data back beyond the id A sent.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests.api.lists.client import ListClient
from tests.support.assertions import assert_error, invalid_field
from tests.support.clients import UserClient

SECRET_WORD = "victim-secret"


@dataclass
class Side:
    """One user: their tasks, their lists, and the ids of what was made for them by name."""

    tasks: UserClient
    lists: ListClient
    ids: dict[str, str]
    baseline: dict[str, Any] = field(default_factory=dict)

    def state(self) -> dict[str, Any]:
        """Everything an attack must leave alone: every task and list with its ETag, and the stats."""
        listed = _pages(self.tasks, {"limit": 200})
        task_etags = {task["id"]: self.tasks.get(task["id"]).headers["etag"] for task in listed}
        lists = self.lists.all()
        list_etags = {found["id"]: self.lists.get(found["id"]).headers["etag"] for found in lists}
        stats = self.tasks.request("GET", "/stats")
        assert stats.status_code == 200, stats.text
        tree = [task["id"] for task in _pages(self.tasks, {"sort": "position", "limit": 200})]
        return {
            "tasks": sorted(listed, key=lambda task: task["id"]),
            "task_etags": task_etags,
            "lists": lists,
            "list_etags": list_etags,
            "stats": stats.json()["data"],
            "tree": tree,
        }


def _pages(user: UserClient, params: dict[str, Any]) -> list[dict[str, Any]]:
    """Every task the listing with `params` shows, following `next_cursor` to the end."""
    found: list[dict[str, Any]] = []
    query = {"limit": 200, **params}
    while True:
        response = user.request("GET", params=query)
        assert response.status_code == 200, response.text
        body = response.json()
        found += body["data"]
        if body["meta"]["next_cursor"] is None:
            return found
        query = {**query, "cursor": body["meta"]["next_cursor"]}


def _side(client: httpx.Client, word: str) -> Side:
    """A user holding a list with a four-level chain and a completed subtree, and Inbox tasks."""
    tasks = UserClient(client)
    lists = ListClient(client, tasks.id)
    ids: dict[str, str] = {}
    ids["list"] = lists.create(f"{word} list")["id"]
    ids["root"] = tasks.create(f"{word} root", list_id=ids["list"])["id"]
    ids["child"] = tasks.create(f"{word} child", parent_id=ids["root"])["id"]
    ids["grandchild"] = tasks.create(f"{word} grandchild", parent_id=ids["child"])["id"]
    ids["deep"] = tasks.create(f"{word} deep", parent_id=ids["grandchild"])["id"]  # level 4
    ids["done"] = tasks.create(f"{word} done", list_id=ids["list"])["id"]
    ids["done_child"] = tasks.create(f"{word} done child", parent_id=ids["done"])["id"]
    ids["inbox"] = tasks.create(f"{word} inbox")["id"]
    ids["inbox_child"] = tasks.create(f"{word} inbox child", parent_id=ids["inbox"])["id"]
    ids["inbox_done"] = tasks.create(f"{word} inbox done")["id"]
    ids["other_list"] = lists.create(f"{word} empty list")["id"]
    for done in ("done", "inbox_done"):  # completing "done" completes its child too
        completed = tasks.request("PATCH", f"/{ids[done]}/complete", json={"completed": True})
        assert completed.status_code == 200, completed.text
    assert tasks.task(ids["done_child"])["completed"] is True
    side = Side(tasks, lists, ids)
    side.baseline = side.state()
    return side


# Attacks change nothing, and each test checks it against the state the users had when made: the
# two users serve the whole module. The tests that clear their own completed tasks get fresh ones.
@pytest.fixture(scope="module")
def victim(app_client: httpx.Client) -> Side:
    return _side(app_client, SECRET_WORD)


@pytest.fixture(scope="module")
def attacker(app_client: httpx.Client) -> Side:
    return _side(app_client, "attacker's")


@pytest.fixture
def fresh_victim(app_client: httpx.Client) -> Side:
    return _side(app_client, SECRET_WORD)


@pytest.fixture
def fresh_attacker(app_client: httpx.Client) -> Side:
    return _side(app_client, "attacker's")


def _assert_no_leak(response: httpx.Response, victim: Side, sent: str | None) -> None:
    """Nothing of the victim's in the answer: no title, no list name, no id but the one sent."""
    text = response.text.lower()
    assert SECRET_WORD not in text
    assert victim.tasks.id.lower() not in text
    for name, victim_id in victim.ids.items():
        if victim_id != sent:
            assert victim_id.lower() not in text, f"the answer names the victim's {name}"


# An attack: A's request naming `target` (one of B's ids, or one nobody holds), given A's own ids.
Attack = Callable[[UserClient, dict[str, str], str], httpx.Response]


def _fill(values: dict[str, Any], own: dict[str, str], target: str) -> dict[str, Any]:
    """ "TARGET" becomes the id under attack, "own:NAME" the attacker's own id by that name."""
    filled = {}
    for key, value in values.items():
        if value == "TARGET":
            value = target
        elif isinstance(value, str) and value.startswith("own:"):
            value = own[value.removeprefix("own:")]
        filled[key] = value
    return filled


def _create(**body: Any) -> Attack:
    def send(me: UserClient, own: dict[str, str], target: str) -> httpx.Response:
        return me.request("POST", json={"title": "planted", **_fill(body, own, target)})

    return send


def _move(task: str, **body: Any) -> Attack:
    def send(me: UserClient, own: dict[str, str], target: str) -> httpx.Response:
        return me.request("POST", f"/{own[task]}/move", json=_fill(body, own, target))

    return send


def _listing(**params: str) -> Attack:
    def send(me: UserClient, own: dict[str, str], target: str) -> httpx.Response:
        return me.request("GET", params=_fill(params, own, target))

    return send


def _stats(me: UserClient, own: dict[str, str], target: str) -> httpx.Response:
    return me.request("GET", "/stats", params={"list_id": target})


def _clear(me: UserClient, own: dict[str, str], target: str) -> httpx.Response:
    return me.request("POST", "/clear-completed", json={"list_id": target})


LISTS = ("list", "other_list")
TASKS = ("root", "child", "deep", "done", "done_child", "inbox", "inbox_child")
EITHER = frozenset({"parent_id", "list_id"})

# (name, attack, the victim's ids it is tried with, the fields its 422 may name)
ATTACKS: list[tuple[str, Attack, tuple[str, ...], frozenset[str]]] = [
    ("create list_id", _create(list_id="TARGET"), LISTS, frozenset({"list_id"})),
    ("create parent_id", _create(parent_id="TARGET"), TASKS, frozenset({"parent_id"})),
    ("create parent_id with my list", _create(parent_id="TARGET", list_id="own:list"), TASKS, EITHER),
    ("create parent_id in the inbox", _create(parent_id="TARGET", list_id=None), TASKS, EITHER),
    ("create my parent_id, their list", _create(parent_id="own:root", list_id="TARGET"), LISTS, EITHER),
    ("move before", _move("root", before="TARGET"), TASKS, frozenset({"before"})),
    ("move after", _move("inbox", after="TARGET"), TASKS, frozenset({"after"})),
    ("move a subtask before", _move("child", before="TARGET"), TASKS, frozenset({"before"})),
    ("move parent_id", _move("inbox", parent_id="TARGET"), TASKS, frozenset({"parent_id"})),
    ("move parent_id of a subtask", _move("grandchild", parent_id="TARGET"), TASKS, frozenset({"parent_id"})),
    ("move parent_id with my list", _move("inbox", parent_id="TARGET", list_id="own:list"), TASKS, EITHER),
    ("move my parent_id, their list", _move("inbox", parent_id="own:root", list_id="TARGET"), LISTS, EITHER),
    ("move list_id", _move("root", list_id="TARGET"), LISTS, frozenset({"list_id"})),
    ("move a subtask's list_id", _move("child", list_id="TARGET"), LISTS, frozenset({"list_id"})),
    ("list list_id", _listing(list_id="TARGET"), LISTS, frozenset({"list_id"})),
    ("tree list_id", _listing(list_id="TARGET", sort="position"), LISTS, frozenset({"list_id"})),
    ("list parent_id", _listing(parent_id="TARGET"), TASKS, frozenset({"parent_id"})),
    ("tree parent_id", _listing(parent_id="TARGET", sort="position"), TASKS, frozenset({"parent_id"})),
    (
        "list parent_id in my list",
        _listing(parent_id="TARGET", list_id="own:list"),
        TASKS,
        frozenset({"parent_id"}),
    ),
    (
        "tree parent_id in the inbox",
        _listing(parent_id="TARGET", list_id="inbox", sort="position"),
        TASKS,
        frozenset({"parent_id"}),
    ),
    (
        "list their list, my parent",
        _listing(list_id="TARGET", parent_id="own:root"),
        LISTS,
        frozenset({"list_id"}),
    ),
    (
        "tree their list, my parent",
        _listing(list_id="TARGET", parent_id="own:root", sort="position"),
        LISTS,
        frozenset({"list_id"}),
    ),
    (
        "list their list, top level",
        _listing(list_id="TARGET", parent_id="none"),
        LISTS,
        frozenset({"list_id"}),
    ),
    ("stats list_id", _stats, LISTS, frozenset({"list_id"})),
    ("clear-completed list_id", _clear, LISTS, frozenset({"list_id"})),
]


@pytest.mark.parametrize(
    ("attack", "target", "fields"),
    [
        pytest.param(attack, target, fields, id=f"{name}: {target}")
        for name, attack, targets, fields in ATTACKS
        for target in targets
    ],
)
def test_another_users_list_or_task_is_a_422_that_changes_and_tells_nothing(
    attacker: Side, victim: Side, attack: Attack, target: str, fields: frozenset[str]
) -> None:
    sent = victim.ids[target]
    answers = []
    # The victim's id as listed, upper-cased (UUIDs are case-insensitive), and an id nobody holds.
    for named in (sent, sent.upper(), str(uuid.uuid4())):
        response = attack(attacker.tasks, attacker.ids, named)
        assert invalid_field(response) in fields, response.text
        _assert_no_leak(response, victim, None if named.lower() != sent else sent)
        answers.append(response.json()["error"])
    # Word for word the answer to a missing id: the victim's id is no oracle.
    assert answers[0] == answers[1] == answers[2]
    assert victim.state() == victim.baseline
    assert attacker.state() == attacker.baseline


def test_the_victims_subtasks_cannot_be_read_by_parent_filter_in_any_order(
    attacker: Side, victim: Side
) -> None:
    for parent in ("root", "child", "done", "inbox"):
        for sort in ("position", "created_at", "-updated_at", "title", "priority", "due_at"):
            for extra in ({}, {"list_id": "inbox"}, {"list_id": attacker.ids["list"]}, {"limit": "1"}):
                params = {"parent_id": victim.ids[parent], "sort": sort, **extra}
                response = attacker.tasks.request("GET", params=params)
                assert invalid_field(response) == "parent_id", response.text
                _assert_no_leak(response, victim, victim.ids[parent])
    # Nor do the words a filter takes reach across users: the top level and the Inbox are one's own.
    for params in (
        {"parent_id": "none"},
        {"list_id": "inbox"},
        {"list_id": "inbox", "parent_id": "none", "sort": "position"},
        {"sort": "position"},
    ):
        seen = _pages(attacker.tasks, params)
        assert seen, params
        assert {task["id"] for task in seen} <= set(attacker.ids.values())
        assert all(SECRET_WORD not in task["title"] for task in seen)
    searched = attacker.tasks.request("GET", params={"q": SECRET_WORD})
    assert searched.status_code == 200, searched.text
    assert searched.json()["data"] == []
    assert victim.state() == victim.baseline


def test_the_attackers_own_subtasks_are_listed_and_the_victims_never(attacker: Side, victim: Side) -> None:
    """The same filters on one's own ids work: the 422s above are about ownership, not the shape."""
    children = attacker.tasks.ids(parent_id=attacker.ids["root"])
    assert children == [attacker.ids["child"]]
    tree = attacker.tasks.ids(list_id=attacker.ids["list"], sort="position")
    # A new task goes first among its siblings: the completed subtree, made later, comes first.
    order = ("done", "done_child", "root", "child", "grandchild", "deep")
    assert tree == [attacker.ids[name] for name in order]
    assert not set(tree) & set(victim.ids.values())


def test_clear_completed_without_a_list_never_touches_the_victims_completed_tasks(
    fresh_attacker: Side, fresh_victim: Side
) -> None:
    attacker, victim = fresh_attacker, fresh_victim
    own_completed = {attacker.ids[name] for name in ("done", "done_child", "inbox_done")}
    # The Inbox only first: the attacker's one completed Inbox task, none of the victim's.
    response = attacker.tasks.request("POST", "/clear-completed", json={"list_id": None})
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"deleted": 1}
    _assert_no_leak(response, victim, None)
    # Then every list, with no body and with {}: the attacker's two others, then nothing.
    for body, deleted in ((None, 2), ({}, 0)):
        response = attacker.tasks.request("POST", "/clear-completed", json=body)
        assert response.status_code == 200, response.text
        assert response.json()["data"] == {"deleted": deleted}
        _assert_no_leak(response, victim, None)
    left = {task["id"] for task in _pages(attacker.tasks, {"limit": 200})}
    assert left == set(attacker.ids.values()) - own_completed - {attacker.ids[name] for name in LISTS}
    assert victim.state() == victim.baseline
    for name in ("done", "done_child", "inbox_done"):
        assert victim.tasks.task(victim.ids[name])["completed"] is True


def test_the_victims_clear_completed_never_touches_the_attackers(
    fresh_attacker: Side, fresh_victim: Side
) -> None:
    """And the other way round: the victim clearing their own (the attacker's list id is theirs to refuse)."""
    attacker, victim = fresh_attacker, fresh_victim
    response = victim.tasks.request("POST", "/clear-completed", json={"list_id": attacker.ids["list"]})
    assert invalid_field(response) == "list_id"
    assert attacker.state() == attacker.baseline
    response = victim.tasks.request("POST", "/clear-completed")
    assert response.status_code == 200, response.text
    assert response.json()["data"] == {"deleted": 3}
    assert attacker.state() == attacker.baseline


@pytest.mark.parametrize("bad", ["not-a-uuid", "123", "inbox", "null", "%00", "x" * 300])
@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PUT", "", {"name": "renamed"}),
        ("PATCH", "", {"name": "renamed"}),
        ("DELETE", "", None),
        ("POST", "/move", "own"),
    ],
)
def test_a_list_id_in_the_path_that_is_not_a_uuid_is_404(
    attacker: Side, method: str, suffix: str, body: object, bad: str
) -> None:
    sent = {"after": attacker.ids["list"]} if body == "own" else body
    response = attacker.lists.request(method, f"/{bad}{suffix}", json=sent)
    assert_error(response, 404, "NOT_FOUND")
    # The same words as a UUID nobody holds.
    missing = attacker.lists.request(method, f"/{uuid.uuid4()}{suffix}", json=sent)
    assert response.json()["error"] == missing.json()["error"]
    assert attacker.state() == attacker.baseline


def test_the_victims_list_id_in_the_attackers_list_path_is_404(attacker: Side, victim: Side) -> None:
    target = victim.ids["list"]
    for method, body in (("GET", None), ("PATCH", {"name": "pwned"}), ("DELETE", None)):
        response = attacker.lists.request(method, f"/{target}", json=body)
        assert_error(response, 404, "NOT_FOUND")
        _assert_no_leak(response, victim, target)
    assert victim.state() == victim.baseline


MALFORMED_IDS = [
    "abc",
    "",
    "1234",
    "00000000-0000-0000-0000-00000000000",  # one digit short
    "00000000-0000-0000-0000-0000000000000",  # one digit long
    "g0000000-0000-0000-0000-000000000000",
    "{00000000-0000-0000-0000-000000000000}",
    "urn:uuid:00000000-0000-0000-0000-000000000000",
    " inbox",
    "null",
    "'; DROP TABLE tasks; --",
]


@pytest.mark.parametrize("value", [*MALFORMED_IDS, "none", "inboxx", "INBOX "])
def test_a_malformed_list_id_query_value_is_422(attacker: Side, value: str) -> None:
    for path, params in (
        ("", {"list_id": value}),
        ("", {"list_id": value, "sort": "position"}),
        ("/stats", {"list_id": value}),
    ):
        response = attacker.tasks.request("GET", path, params=params)
        assert invalid_field(response) == "list_id", (path, params, response.text)


@pytest.mark.parametrize("value", [*MALFORMED_IDS, "inbox", "nonee", "top"])
def test_a_malformed_parent_id_query_value_is_422(attacker: Side, value: str) -> None:
    for params in ({"parent_id": value}, {"parent_id": value, "sort": "position"}):
        response = attacker.tasks.request("GET", params=params)
        assert invalid_field(response) == "parent_id", (params, response.text)


def test_a_filter_given_twice_is_422_even_when_one_is_ones_own(attacker: Side, victim: Side) -> None:
    """Two values for one filter never widen it to both users' tasks."""
    for name, own, theirs in (
        ("list_id", attacker.ids["list"], victim.ids["list"]),
        ("parent_id", attacker.ids["root"], victim.ids["root"]),
    ):
        for sort in ("position", "created_at"):
            query = [(name, own), (name, theirs), ("sort", sort)]
            response = attacker.tasks.request("GET", params=query)
            assert invalid_field(response) == name, response.text
            _assert_no_leak(response, victim, theirs)


@pytest.mark.parametrize(
    "body",
    [
        {"list_id": "not-a-uuid"},
        {"parent_id": "not-a-uuid"},
        {"list_id": "inbox"},
        {"parent_id": "none"},
        {"list_id": 1},
        {"parent_id": ["00000000-0000-0000-0000-000000000000"]},
    ],
)
def test_a_malformed_id_in_a_create_is_422_and_creates_nothing(attacker: Side, body: dict[str, Any]) -> None:
    response = attacker.tasks.request("POST", json={"title": "planted", **body})
    assert invalid_field(response) == next(iter(body))
    assert attacker.state() == attacker.baseline
