"""CONTRACT §10, issue 10: one user's requests in flight are capped per worker, so others never wait on them.

A request is held in flight without sleeping in the server: its head asks `Expect: 100-continue`,
the server's `100 Continue` shows the handler has started reading the body, and the body never comes.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager

import httpx

from tests.support.servers import LiveServer
from tests.support.tokens import auth, new_user

LIMIT = 8


@contextmanager
def held_request(live: LiveServer, user: str) -> Iterator[socket.socket]:
    """A create by `user` whose handler is waiting for a body that is not sent (until the caller sends it)."""
    host, _, port = live.base_url.removeprefix("http://").partition(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    try:
        sock.sendall(
            b"POST /api/%s/tasks HTTP/1.1\r\nHost: t\r\nAuthorization: %s\r\n"
            b"Content-Type: application/json\r\nContent-Length: 16\r\nExpect: 100-continue\r\n\r\n"
            % (user.encode(), auth(user)["Authorization"].encode())
        )
        assert sock.recv(65536) == b"HTTP/1.1 100 Continue\r\n\r\n"
        yield sock
    finally:
        sock.close()


def test_one_user_cannot_hold_more_than_the_cap_and_others_never_wait(
    make_server: Callable[..., LiveServer],
) -> None:
    live = make_server(max_inflight_per_user=LIMIT)
    greedy, other = new_user(), new_user()
    with ExitStack() as stack, live.client(timeout=10) as client:
        held = [stack.enter_context(held_request(live, greedy)) for _ in range(LIMIT)]
        # The ninth and tenth requests of the same user are refused at once, in the envelope.
        for _ in range(2):
            refused = client.get(f"/api/{greedy}/tasks", headers=auth(greedy))
            assert refused.status_code == 429
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["error"]["code"] == "TOO_MANY_REQUESTS"
        # Another user is served meanwhile, writes included.
        assert (
            client.post(f"/api/{other}/tasks", json={"title": "mine"}, headers=auth(other)).status_code == 201
        )
        assert client.get(f"/api/{other}/tasks", headers=auth(other)).status_code == 200
        # The held requests finish normally once their bodies arrive, and free their places.
        for sock in held:
            sock.sendall(b'{"title":"held"}')
            assert sock.recv(65536).startswith(b"HTTP/1.1 201 ")
        assert client.get(f"/api/{greedy}/tasks", headers=auth(greedy)).status_code == 200


def test_a_request_whose_client_vanishes_frees_its_place(make_server: Callable[..., LiveServer]) -> None:
    live = make_server(max_inflight_per_user=LIMIT)
    user = new_user()
    with ExitStack() as stack:
        for _ in range(LIMIT):
            stack.enter_context(held_request(live, user))
    # All eight clients hung up mid-body; the server notices each as it reads on, and the count falls.
    with live.client(timeout=10) as client:
        for _ in range(200):
            response = client.get(f"/api/{user}/tasks", headers=auth(user))
            if response.status_code != 429:
                break
        assert response.status_code == 200
    with ExitStack() as stack:
        for _ in range(LIMIT):  # a full set of places again
            stack.enter_context(held_request(live, user))


def test_requests_without_a_user_are_not_counted(make_server: Callable[..., LiveServer]) -> None:
    live = make_server(max_inflight_per_user=1)
    user = new_user()
    with held_request(live, user), live.client(timeout=10) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get(f"/api/{user}/tasks").status_code == 401
        assert client.get(f"/api/{user}/tasks", headers=auth(user)).status_code == 429


def test_the_cap_is_per_user(make_server: Callable[..., LiveServer]) -> None:
    live = make_server(max_inflight_per_user=1)
    first, second = new_user(), new_user()
    with (
        held_request(live, first),
        held_request(live, second),
        httpx.Client(base_url=live.base_url) as client,
    ):
        assert client.get(f"/api/{first}/tasks", headers=auth(first)).status_code == 429
        assert client.get(f"/api/{second}/tasks", headers=auth(second)).status_code == 429
