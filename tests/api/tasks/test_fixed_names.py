"""The fixed names below /tasks/ are routes, never task ids: a method they do not take is 405 with
their own Allow, whatever the method, and changes nothing."""

from __future__ import annotations

import pytest
from starlette.routing import Route

from service.app import create_app
from service.tasks.routes import FIXED_NAMES
from tests.support import Database, UserClient, assert_error, settings_for

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
SERVED = {"changes": {"GET"}, "stats": {"GET"}, "clear-completed": {"POST"}}


def _allow(methods: set[str]) -> set[str]:
    return methods | ({"HEAD"} if "GET" in methods else set())


@pytest.mark.parametrize(
    ("name", "method"), [(n, m) for n in sorted(SERVED) for m in METHODS if m not in SERVED[n]]
)
def test_a_method_a_fixed_name_does_not_take_is_405(me: UserClient, name: str, method: str) -> None:
    task = me.create("untouched")
    response = me.request(method, f"/{name}", json={"title": "x"})
    assert_error(response, 405, "METHOD_NOT_ALLOWED")
    assert set(response.headers["allow"].replace(" ", "").split(",")) == _allow(SERVED[name])
    assert me.task(task["id"]) == task
    assert me.list().json()["meta"]["count"] == 1


def test_every_fixed_name_under_tasks_is_known_to_the_task_routes(database: Database) -> None:
    """A route added later under /tasks/ must join FIXED_NAMES, or its other methods reach the task route."""
    app = create_app(settings_for(database.url))
    prefix = "/api/{user_id}/tasks/"
    literal = {
        route.path.removeprefix(prefix).split("/")[0]
        for route in app.routes
        if isinstance(route, Route) and route.path.startswith(prefix)
    } - {"{task_id}"}
    assert literal == set(FIXED_NAMES) == set(SERVED)
