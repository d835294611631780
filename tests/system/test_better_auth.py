"""Interop with the real Better Auth (`jwt` plugin, memory adapter): the tokens it issues, and attacks on them.

Node runs the pinned better-auth package from tests/interop/; without Node these tests skip.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, Key, KeySet, OKPKey, RSAKey

from tests.support.better_auth import BetterAuth, NodeUnavailable, better_auth, ensure_installed
from tests.support.jwks_server import hs256_token, public_forms
from tests.support.servers import LiveServer
from tests.support.tokens import FakeClock, make_token

GENERATORS: dict[str, Callable[[], Key]] = {
    "EdDSA": lambda: OKPKey.generate_key("Ed25519"),
    "ES256": lambda: ECKey.generate_key("P-256"),
    "RS256": lambda: RSAKey.generate_key(2048),
    "PS256": lambda: RSAKey.generate_key(2048),
}


@pytest.fixture(scope="session", autouse=True)
def _node() -> None:
    try:
        ensure_installed()
    except NodeUnavailable as exc:
        pytest.skip(f"interop with Better Auth skipped: {exc}")


def _get(service: LiveServer, user: str, token: str) -> httpx.Response:
    with service.client() as client:
        return client.get(f"/api/{user}/tasks", headers={"Authorization": f"Bearer {token}"})


def _parts(token: str) -> tuple[dict, dict, str]:
    def decode(segment: str) -> dict:
        return json.loads(base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)))

    head, body, sig = token.split(".")
    return decode(head), decode(body), sig


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


@pytest.fixture(scope="module", params=list(GENERATORS))
def auth_server(request: pytest.FixtureRequest) -> Iterator[BetterAuth]:
    with better_auth(request.param) as server:
        yield server


@pytest.fixture
def service(auth_server: BetterAuth, make_server: Callable[..., LiveServer]) -> LiveServer:
    # The shared secret stays on as well: the worst case for algorithm confusion.
    return make_server(better_auth_url=auth_server.url, jwks_min_refetch_seconds=0.5)


def test_genuine_token_is_accepted(auth_server: BetterAuth, service: LiveServer) -> None:
    user_id, session = auth_server.sign_up()
    token = auth_server.token(session)
    header, claims, _ = _parts(token)
    assert header["alg"] == auth_server.alg
    assert claims["sub"] == user_id
    assert claims["iss"] == claims["aud"] == auth_server.url
    with service.client() as client:
        headers = {"Authorization": f"Bearer {token}"}
        created = client.post(f"/api/{user_id}/tasks", json={"title": "from Better Auth"}, headers=headers)
        assert created.status_code == 201, created.text
        assert created.json()["data"]["user_id"] == user_id
        assert client.get(f"/api/{user_id}/tasks", headers=headers).json()["meta"]["count"] == 1
        # The token's user is still confined to their own path.
        assert client.get("/api/someone-else/tasks", headers=headers).status_code == 403


def test_tampered_token_is_refused(auth_server: BetterAuth, service: LiveServer) -> None:
    user_id, session = auth_server.sign_up()
    victim_id, _ = auth_server.sign_up()
    header, claims, sig = _parts(auth_server.token(session))
    forged = f"{_b64(header)}.{_b64({**claims, 'sub': victim_id})}.{sig}"
    assert _get(service, victim_id, forged).status_code == 401
    resigned = f"{_b64(header)}.{_b64(claims)}.{sig[:-4]}AAAA"
    assert _get(service, user_id, resigned).status_code == 401


@pytest.mark.parametrize("setting", ["jwt_issuer", "jwt_audience"])
def test_wrong_issuer_or_audience_is_refused(
    auth_server: BetterAuth, make_server: Callable[..., LiveServer], setting: str
) -> None:
    service = make_server(better_auth_url=auth_server.url, **{setting: "https://someone-else.example"})
    user_id, session = auth_server.sign_up()
    assert _get(service, user_id, auth_server.token(session)).status_code == 401


def test_foreign_key_with_better_auths_kid_is_refused(auth_server: BetterAuth, service: LiveServer) -> None:
    user_id, session = auth_server.sign_up()
    header, claims, _ = _parts(auth_server.token(session))
    impostor = GENERATORS[auth_server.alg]()
    forged = jwt.encode(header, claims, impostor, algorithms=[auth_server.alg])
    assert _get(service, user_id, forged).status_code == 401


@pytest.mark.parametrize("form", ["pem", "der", "jwk", "raw"])
def test_hs256_signed_with_better_auths_public_key_is_refused(
    auth_server: BetterAuth, service: LiveServer, form: str
) -> None:
    user_id, session = auth_server.sign_up()
    header, claims, _ = _parts(auth_server.token(session))
    published = KeySet.import_key_set(httpx.get(auth_server.jwks_url).json())
    key = published.get_by_kid(header["kid"])
    token = hs256_token(public_forms(key)[form], claims, header["kid"])
    assert _get(service, user_id, token).status_code == 401


def test_expired_token_is_refused(make_server: Callable[..., LiveServer]) -> None:
    clock = FakeClock()
    with better_auth("EdDSA", BA_EXPIRES="60s") as server:
        service = make_server(better_auth_url=server.url, jwt_leeway=0, clock=clock)
        user_id, session = server.sign_up()
        token = server.token(session)
        assert _get(service, user_id, token).status_code == 200
        clock.advance(62)
        response = _get(service, user_id, token)  # cached a moment ago, and still refused
    assert response.status_code == 401
    assert "expired" in response.json()["error"]["message"].lower()


def test_key_rotation_is_picked_up(make_server: Callable[..., LiveServer]) -> None:
    clock = FakeClock()
    with better_auth("ES256") as server:
        service = make_server(better_auth_url=server.url, clock=clock)
        user_id, session = server.sign_up()
        old = server.token(session)
        assert _get(service, user_id, old).status_code == 200
        httpx.post(f"{server.url}/test/rotate", timeout=10).raise_for_status()
        clock.advance(31)  # past the default interval between refetches
        new = server.token(session)
        assert _parts(new)[0]["kid"] != _parts(old)[0]["kid"], "Better Auth did not rotate its key"
        assert _get(service, user_id, new).status_code == 200  # a kid first seen now: refetched
        assert _get(service, user_id, make_token(user_id)).status_code == 200


def test_outage_keeps_cached_keys_working_and_never_fails_open(
    make_server: Callable[..., LiveServer],
) -> None:
    clock = FakeClock()
    with better_auth("RS256") as server:
        service = make_server(better_auth_url=server.url, jwks_timeout=1.0, clock=clock)
        user_id, session = server.sign_up()
        warm = server.token(session)
        assert _get(service, user_id, warm).status_code == 200  # keys now cached
        unseen = server.token(session)  # same key, a token the service has not seen yet
        server.outage(True)
        try:
            clock.advance(31)  # an unknown kid may trigger a refetch now, and it will fail
            assert _get(service, user_id, unseen).status_code == 200
            header, claims, _ = _parts(unseen)
            stranger = jwt.encode(
                {**header, "kid": "not-published"}, claims, GENERATORS["RS256"](), algorithms=["RS256"]
            )
            assert _get(service, user_id, stranger).status_code == 401
        finally:
            server.outage(False)
