"""Contract v3 §11 under races: one user's tree writes from several clients at once, round after round.

Each race sends its requests together, each on a client of its own (its own warmed connection) to
the live server, then reads the whole tree back and checks what no interleaving may break: every
parent exists and is in its child's list, no cycle, no task below level 4, the completion invariant
(a completed task never has an active descendant), and tree order (sort=position, one list at a
time) listing every task exactly once, each right under its parent's subtree.

Why the user's lock matters (sql/008's lock_user, taken first by every tree write through
service/tasks/tree/nodes.py's LOCKED): each write locks only its own task's row, then reads the
rest of the tree (the anchor or parent, the subtree's height, the ancestors, the descendants) with
plain reads. Without the user's lock two such writes read the tree before either commits and both
act on what they read; each race below is built so that both acting is the violation it checks.
And the writes that cross then take their rows in different orders (a task, its subtree, the
user's counters): PostgreSQL breaks the deadlocks by failing one, a 500, which no race allows.
Run against a copy whose lock_user takes no lock, each race fails within its first few rounds.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest

from service.tasks.fields import MAX_LEVELS
from tests.support.servers import LiveServer
from tests.support.tokens import auth, new_user

CLIENTS = 6
# What any race may answer: never a 5xx (a deadlock, a broken constraint, a lock wait run out).
SETTLED = frozenset({200, 201, 404, 409, 412, 422})


class Racer:
    """One user on several async clients: setup on the first, races spread over all of them."""

    def __init__(self, clients: list[httpx.AsyncClient], user_id: str | None = None) -> None:
        self.clients = clients
        self.id = user_id or new_user()
        self.headers = auth(self.id, ttl=3600)
        self.tasks_url = f"/api/{self.id}/tasks"
        self.lists_url = f"/api/{self.id}/lists"

    def fresh(self) -> Racer:
        """Another user on the same clients."""
        return Racer(self.clients)

    async def send(
        self, method: str, url: str, *, on: int = 0, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        client = self.clients[on % len(self.clients)]
        return await client.request(method, url, headers={**self.headers, **(headers or {})}, **kwargs)

    async def create(self, title: str, **body: Any) -> dict[str, Any]:
        response = await self.send("POST", self.tasks_url, json={"title": title, **body})
        assert response.status_code == 201, response.text
        return dict(response.json()["data"])

    async def new_list(self, name: str) -> str:
        response = await self.send("POST", self.lists_url, json={"name": name})
        assert response.status_code == 201, response.text
        return str(response.json()["data"]["id"])

    def move(self, task_id: str, body: dict[str, Any], on: int = 0) -> Awaitable[httpx.Response]:
        return self.send("POST", f"{self.tasks_url}/{task_id}/move", json=body, on=on)

    def complete(self, task_id: str, completed: bool, on: int = 0) -> Awaitable[httpx.Response]:
        return self.send(
            "PATCH", f"{self.tasks_url}/{task_id}/complete", json={"completed": completed}, on=on
        )

    def patch(
        self, task_id: str, body: dict[str, Any], on: int = 0, **headers: str
    ) -> Awaitable[httpx.Response]:
        return self.send("PATCH", f"{self.tasks_url}/{task_id}", json=body, on=on, headers=headers)

    async def settled(self, response: Awaitable[httpx.Response]) -> httpx.Response:
        """A setup write that must succeed."""
        answered = await response
        assert answered.status_code in (200, 201), answered.text
        return answered

    async def pages(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        query = {"limit": 200, **params}
        while True:
            response = await self.send("GET", self.tasks_url, params=query)
            assert response.status_code == 200, response.text
            body = response.json()
            found += body["data"]
            if body["meta"]["next_cursor"] is None:
                return found
            query = {**query, "cursor": body["meta"]["next_cursor"]}

    async def check(self) -> dict[str, dict[str, Any]]:
        """Read the user's whole tree and check every rule of it; returns the tasks by id."""
        listed = await self.pages({})
        tasks = {task["id"]: task for task in listed}
        assert len(tasks) == len(listed), "the listing showed a task twice"
        levels = _levels(tasks)
        assert max(levels.values(), default=0) <= MAX_LEVELS
        _assert_invariant(tasks)
        response = await self.send("GET", self.lists_url)
        assert response.status_code == 200, response.text
        for list_id in [None, *(found["id"] for found in response.json()["data"])]:
            listed = await self.pages(
                {"sort": "position", "list_id": "inbox" if list_id is None else list_id}
            )
            _assert_tree_order(listed, tasks, list_id)
        # Without a list filter, tree order is the Inbox's then each list's: every task once.
        everything = [task["id"] for task in await self.pages({"sort": "position"})]
        assert sorted(everything) == sorted(tasks), "tree order skipped or repeated a task"
        return tasks


def _chain(tasks: dict[str, dict[str, Any]], task_id: str) -> list[str]:
    """The task and its ancestors, by parent_id, up to the top; fails on a cycle, an orphan or depth > 4."""
    chain = [task_id]
    task = tasks[task_id]
    while task["parent_id"] is not None:
        parent = task["parent_id"]
        assert parent not in chain, f"a cycle of parent_id links: {[*chain, parent]}"
        assert parent in tasks, f"task {task['id']} has a parent_id that is no task"
        assert tasks[parent]["list_id"] == task["list_id"], f"task {task['id']} is not in its parent's list"
        chain.append(parent)
        assert len(chain) <= MAX_LEVELS, f"task {task_id} is at level {len(chain)} or deeper"
        task = tasks[parent]
    return chain


def _levels(tasks: dict[str, dict[str, Any]]) -> dict[str, int]:
    return {task_id: len(_chain(tasks, task_id)) for task_id in tasks}


def _assert_invariant(tasks: dict[str, dict[str, Any]]) -> None:
    """No completed task has an active descendant: every active task's ancestors are all active."""
    for task_id, task in tasks.items():
        if task["completed"]:
            continue
        done = [ancestor for ancestor in _chain(tasks, task_id)[1:] if tasks[ancestor]["completed"]]
        assert not done, (
            f"active task {task['title']!r} is under completed {[tasks[a]['title'] for a in done]}"
        )


def _assert_tree_order(
    listed: list[dict[str, Any]], tasks: dict[str, dict[str, Any]], list_id: str | None
) -> None:
    """One list's tree order: each of its tasks exactly once, each right under its parent's subtree."""
    ids = [task["id"] for task in listed]
    assert len(ids) == len(set(ids)), "tree order listed a task twice"
    assert set(ids) == {task_id for task_id, task in tasks.items() if task["list_id"] == list_id}
    path: list[str] = []  # the ancestors of the next task, if it is where tree order puts it
    for task in listed:
        while path and path[-1] != task["parent_id"]:
            path.pop()
        if task["parent_id"] is not None:
            assert path, f"{task['title']!r} is not listed within its parent's subtree"
        path.append(task["id"])


@asynccontextmanager
async def racer(server: LiveServer) -> AsyncIterator[Racer]:
    """A fresh user on CLIENTS clients, each with a connection already open."""
    async with AsyncExitStack() as stack:
        clients = [await stack.enter_async_context(server.async_client()) for _ in range(CLIENTS)]
        await asyncio.gather(*(client.get("/healthz") for client in clients))
        yield Racer(clients)


def run(server: LiveServer, race: Callable[[Racer], Awaitable[None]]) -> None:
    async def main() -> None:
        async with racer(server) as me:
            await race(me)

    asyncio.run(main())


def _field(response: httpx.Response) -> str:
    body = response.json()
    assert body["error"]["code"] == "VALIDATION_ERROR", response.text
    return str(body["error"]["details"][0]["field"])


def test_moving_two_tasks_under_each_other_at_once_never_makes_a_cycle(server: LiveServer) -> None:
    """A under B and B under A, twice each, at once: one direction applies, the other is 422.

    Without the user's lock each move locks only its own task and reads the other as it was, at the
    top level: neither holds the other, so both apply and A and B become each other's parents (and
    each one's tree key is under the other's old one: the walk up never ends, tree order breaks),
    or the two crossing writes deadlock and one answers 500.
    """

    async def race(me: Racer) -> None:
        somewhere = await me.new_list("somewhere")
        a = await me.create("A")
        b = await me.create("B")
        a1 = await me.create("A1", parent_id=a["id"])
        b1 = await me.create("B1", parent_id=b["id"])
        for round_ in range(30):
            home = None if round_ % 2 else somewhere
            for task in (a, b):  # reset: both at the top of this round's list
                await me.settled(me.move(task["id"], {"list_id": home}))
            # Into the other's subtree by its id, or (odd rounds of four) beside its child.
            by_anchor = round_ % 4 >= 2
            a_under_b = {"after": b1["id"]} if by_anchor else {"parent_id": b["id"]}
            b_under_a = {"before": a1["id"]} if by_anchor else {"parent_id": a["id"]}
            sends = [
                me.move(a["id"], a_under_b, on=0),
                me.move(b["id"], b_under_a, on=1),
                me.move(a["id"], a_under_b, on=2),
                me.move(b["id"], b_under_a, on=3),
            ]
            answers = await asyncio.gather(*sends)
            assert {r.status_code for r in answers} <= {200, 422}, [r.text for r in answers]
            applied = {name for name, r in zip("ABAB", answers, strict=True) if r.status_code == 200}
            assert len(applied) == 1, f"round {round_}: moves applied {applied}"
            for response in answers:
                if response.status_code == 422:
                    assert _field(response) in {"parent_id", "after", "before"}
            tasks = await me.check()
            assert {a["id"], b["id"], a1["id"], b1["id"]} <= set(tasks)
            parents = {tasks[a["id"]]["parent_id"], tasks[b["id"]]["parent_id"]}
            expected = {None, b["id"]} if applied == {"A"} else {None, a["id"]}
            assert parents == expected, f"round {round_}: the winning move did not stay applied"

    run(server, race)


def test_two_moves_that_each_fit_never_nest_five_levels(server: LiveServer) -> None:
    """T; P > Q > Q1; R > S. P under T (T>P>Q>Q1) and R under Q (P>Q>R>S) each fit 4 levels; both
    make T>P>Q>R>S, 5.

    Without the user's lock each move measures only its own subtree's height against the parent as
    it reads it: both pass, and S ends at level 5 by its parent_id links (or the depth CHECK fails a
    move with a 500, when the second rewrite of the subtree sees the first).
    """

    async def race(me: Racer) -> None:
        for round_ in range(24):
            me = me.fresh()
            home = await me.new_list("home") if round_ % 3 == 0 else None
            t = await me.create("T", list_id=home)
            p = await me.create("P", list_id=home)
            q = await me.create("Q", parent_id=p["id"])
            q1 = await me.create("Q1", parent_id=q["id"])  # level 3: P's subtree is 3 levels tall
            r = await me.create("R", list_id=home)
            s = await me.create("S", parent_id=r["id"])
            # P under T makes T>P>Q>Q1 (4 levels); R beside Q1 or under Q makes P>Q>R>S (4 levels).
            r_under_q = {"before": q1["id"]} if round_ % 2 else {"parent_id": q["id"]}
            sends = [me.move(p["id"], {"parent_id": t["id"]}, on=0), me.move(r["id"], r_under_q, on=1)]
            if round_ % 2:
                sends.reverse()
            answers = await asyncio.gather(*sends)
            statuses = sorted(response.status_code for response in answers)
            assert statuses == [200, 422], [response.text for response in answers]
            refused = next(response for response in answers if response.status_code == 422)
            assert _field(refused) in {"parent_id", "before"}
            tasks = await me.check()
            assert s["id"] in tasks
            assert len(_chain(tasks, s["id"])) <= MAX_LEVELS

    run(server, race)


def test_completing_a_parent_while_its_subtasks_reopen_keeps_the_invariant(server: LiveServer) -> None:
    """P > (C1 done, C2, C3 > G done). At once: complete P; reopen C1 (PATCH); reopen G (.../complete);
    a new active child under P; and P completed again by PUT.

    Without the user's lock, completing P reads P's descendants in one snapshot and reopening C1
    reads C1's ancestors in another: P's cascade skips C1 (still completed when it looked) and
    C1's skips P (still active when it looked), so P ends completed over an active C1. (The new
    child locks P's row, so it alone would not race; it is here for the interleavings with the others.)
    """

    async def race(me: Racer) -> None:
        for round_ in range(24):
            me = me.fresh()
            home = await me.new_list("home") if round_ % 2 else None
            p = await me.create("P", list_id=home)
            c1 = await me.create("C1", parent_id=p["id"])
            await me.create("C2", parent_id=p["id"])
            c3 = await me.create("C3", parent_id=p["id"])
            g = await me.create("G", parent_id=c3["id"])
            await me.settled(me.complete(c1["id"], True))
            await me.settled(me.complete(g["id"], True))
            sends = [
                me.complete(p["id"], True, on=0),
                me.patch(c1["id"], {"completed": False}, on=1),
                me.complete(g["id"], False, on=2),
                me.send("POST", me.tasks_url, json={"title": "new", "parent_id": p["id"]}, on=3),
                me.send("PUT", f"{me.tasks_url}/{p['id']}", json={"completed": True}, on=4),
            ]
            if round_ % 2:
                sends.reverse()
            answers = await asyncio.gather(*sends)
            assert all(response.status_code in (200, 201) for response in answers), [r.text for r in answers]
            tasks = await me.check()
            assert len(tasks) == 6

    run(server, race)


def test_moving_an_active_task_under_a_parent_being_completed_keeps_the_invariant(server: LiveServer) -> None:
    """P > C; X > Y, active. At once: complete P, and move X under P (or under C, or beside C).

    Without the user's lock the move reads P as active (nothing to reopen) while the completion
    reads P's subtree without X (nothing of X's to complete): P ends completed over active X and Y.
    """

    async def race(me: Racer) -> None:
        for round_ in range(24):
            me = me.fresh()
            there = await me.new_list("there") if round_ % 3 else None
            elsewhere = await me.new_list("elsewhere") if round_ % 3 == 2 else there
            p = await me.create("P", list_id=there)
            c = await me.create("C", parent_id=p["id"])
            x = await me.create("X", list_id=elsewhere)
            await me.create("Y", parent_id=x["id"])
            placement = [{"parent_id": p["id"]}, {"parent_id": c["id"]}, {"after": c["id"]}][round_ % 3]
            sends = [me.complete(p["id"], True, on=0), me.move(x["id"], placement, on=1)]
            if round_ % 2:
                sends.reverse()
            answers = await asyncio.gather(*sends)
            assert all(response.status_code == 200 for response in answers), [r.text for r in answers]
            tasks = await me.check()
            assert tasks[x["id"]]["parent_id"] == placement.get("parent_id", p["id"])
            assert tasks[x["id"]]["list_id"] == there

    run(server, race)


def test_edits_racing_with_cascades_deletes_and_moves_never_answer_5xx(server: LiveServer) -> None:
    """Title edits of subtasks at once with completes, deletes and moves of their ancestors and the
    deletion of their list: every answer is one the contract gives (never a 5xx), many rounds.

    Without the user's lock these writes take their rows in different orders: a completion locks
    its task, then its descendants, then the user's counters (sql/006's triggers); a delete its
    task, its subtree and the user's row; a list's deletion the list, its tasks and the user's row;
    an edit its own row. Two that cross wait on each other, PostgreSQL breaks the deadlock by
    failing one (a 500), and two moves to the front of one parent take the same position (a
    unique violation, a 500 too).
    """

    async def race(me: Racer) -> None:
        for round_ in range(20):
            me = me.fresh()
            home = await me.new_list("home")
            r = await me.create("R", list_id=home)
            c1 = await me.create("C1", parent_id=r["id"])
            c2 = await me.create("C2", parent_id=c1["id"])
            c3 = await me.create("C3", parent_id=c2["id"])
            d1 = await me.create("D1", parent_id=r["id"])
            d2 = await me.create("D2", parent_id=d1["id"])
            x = await me.create("X")
            x1 = await me.create("X1", parent_id=x["id"])
            stale = (await me.settled(me.patch(c3["id"], {"title": "C3 renamed once"}))).headers["etag"]
            await me.settled(me.patch(c3["id"], {"title": "C3 renamed twice"}))
            edits = [
                me.patch(task["id"], {"title": f"{task['title']} edited {n}"}, on=n)
                for n, task in enumerate((c2, c3, d2, x1, c1, d1))
            ]
            structure = [
                me.complete(r["id"], True, on=0),
                me.complete(c1["id"], round_ % 2 == 0, on=1),
                me.send("DELETE", f"{me.tasks_url}/{d1['id']}", on=2),
                me.move(c1["id"], {"parent_id": x["id"]}, on=3),
                me.move(x["id"], {"list_id": home}, on=4),
                me.move(d2["id"], {"parent_id": None}, on=5),
                me.move(x1["id"], {"parent_id": c2["id"]}, on=0),
                me.patch(c3["id"], {"title": "stale"}, on=1, **{"If-Match": stale}),
                me.send("POST", f"{me.tasks_url}/clear-completed", json={"list_id": home}, on=2),
                me.send("DELETE", f"{me.lists_url}/{home}", on=3),
            ]
            if round_ % 3 == 1:
                structure.append(me.send("DELETE", f"{me.tasks_url}/{r['id']}", on=4))
            sends = [*edits, *structure]
            if round_ % 2:
                sends.reverse()
            answers = await asyncio.gather(*sends)
            unsettled = [
                (r.request.method, r.request.url.path, r.status_code, r.text)
                for r in answers
                if r.status_code not in SETTLED
            ]
            assert not unsettled, f"round {round_}: {unsettled}"
            for response in answers[: len(edits)] if round_ % 2 == 0 else answers[-len(edits) :]:
                if response.status_code == 200:
                    assert "edited" in response.json()["data"]["title"]
            await me.check()

    run(server, race)


def test_the_race_helpers_see_a_broken_tree() -> None:
    """The checks the races rely on do fail on the trees a missing lock would leave."""
    a, b = str(uuid.uuid4()), str(uuid.uuid4())

    def task(task_id: str, parent: str | None, completed: bool = False) -> dict[str, Any]:
        return {
            "id": task_id,
            "title": task_id[:4],
            "parent_id": parent,
            "list_id": None,
            "completed": completed,
        }

    with pytest.raises(AssertionError, match="cycle"):
        _levels({a: task(a, b), b: task(b, a)})
    chain = [str(uuid.uuid4()) for _ in range(MAX_LEVELS + 1)]
    with pytest.raises(AssertionError, match="level 5"):
        _levels({tid: task(tid, chain[n - 1] if n else None) for n, tid in enumerate(chain)})
    broken = {a: task(a, None, completed=True), b: task(b, a)}
    with pytest.raises(AssertionError, match="is under completed"):
        _assert_invariant(broken)
    with pytest.raises(AssertionError, match="not listed within its parent"):
        _assert_tree_order([broken[b], broken[a]], broken, None)
