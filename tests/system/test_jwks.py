"""CONTRACT §2 and §7, the JWKS way: each algorithm, key choice, rotation, outage, and key confusion.

These run against a stand-in JWKS endpoint, each test with a service and an endpoint of its own;
test_better_auth.py beside this file runs the real Better Auth.
"""

from __future__ import annotations

import gc
import time
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, Key, OctKey, OKPKey, RSAKey

from tests.support.jwks_server import JwksServer, hs256_token, public_forms
from tests.support.servers import LiveServer
from tests.support.tokens import SECRET, FakeClock, make_token, new_user

ALGORITHMS: dict[str, Callable[[], Key]] = {
    "EdDSA": lambda: OKPKey.generate_key("Ed25519", auto_kid=True),
    "ES256": lambda: ECKey.generate_key("P-256", auto_kid=True),
    "RS256": lambda: RSAKey.generate_key(2048, auto_kid=True),
    "PS256": lambda: RSAKey.generate_key(2048, auto_kid=True),
}


def _sign(key: Key, alg: str, user: str, *, base: str, kid: str | None = "same", **claims: Any) -> str:
    now = int(time.time())
    body = {"sub": user, "iss": base, "aud": base, "iat": now, "exp": now + 900, **claims}
    header: dict[str, Any] = {"alg": alg}
    if kid == "same":
        header["kid"] = key.kid
    elif kid is not None:
        header["kid"] = kid
    return jwt.encode(header, body, key, algorithms=[alg])


@pytest.fixture(scope="module")
def keys() -> dict[str, Key]:
    return {alg: make() for alg, make in ALGORITHMS.items()}


@pytest.fixture
def jwks(keys: dict[str, Key]) -> Iterator[JwksServer]:
    with JwksServer(list(keys.values())) as server:
        yield server


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def service(make_server: Callable[..., LiveServer], jwks: JwksServer, clock: FakeClock) -> LiveServer:
    return make_server(
        better_auth_url=jwks.base_url,
        better_auth_jwks_url=jwks.url,
        jwks_min_refetch_seconds=30,
        jwks_refresh_seconds=3600,
        jwt_leeway=5,
        clock=clock,
    )


def _get(service: LiveServer, user: str, token: str) -> httpx.Response:
    with service.client() as client:
        return client.get(f"/api/{user}/tasks", headers={"Authorization": f"Bearer {token}"})


def _status(service: LiveServer, user: str, token: str) -> int:
    return _get(service, user, token).status_code


@pytest.mark.parametrize("alg", list(ALGORITHMS))
def test_each_algorithm_verifies_against_the_jwks(
    service: LiveServer, jwks: JwksServer, keys: dict[str, Key], alg: str
) -> None:
    user = new_user()
    assert _status(service, user, _sign(keys[alg], alg, user, base=jwks.base_url)) == 200


@pytest.mark.parametrize("alg", list(ALGORITHMS))
def test_without_kid_every_key_of_the_type_is_tried(
    service: LiveServer, jwks: JwksServer, keys: dict[str, Key], alg: str
) -> None:
    user = new_user()
    assert _status(service, user, _sign(keys[alg], alg, user, base=jwks.base_url, kid=None)) == 200


def test_shared_secret_still_works_beside_jwks(service: LiveServer) -> None:
    user = new_user()
    assert _status(service, user, make_token(user)) == 200


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"iss": "http://evil.test"}, "issuer"),
        ({"aud": "http://evil.test"}, "audience"),
        ({"exp": int(time.time()) - 60}, "expired"),
        ({"nbf": int(time.time()) + 600}, "not yet valid"),
    ],
    ids=["wrong-iss", "wrong-aud", "expired", "future-nbf"],
)
def test_claims_are_checked_against_better_auth(
    service: LiveServer, jwks: JwksServer, keys: dict[str, Key], claims: dict, reason: str
) -> None:
    user = new_user()
    response = _get(service, user, _sign(keys["EdDSA"], "EdDSA", user, base=jwks.base_url, **claims))
    assert response.status_code == 401
    assert reason in response.json()["error"]["message"]


def test_tampered_payload_is_refused(service: LiveServer, jwks: JwksServer, keys: dict[str, Key]) -> None:
    user, victim = new_user(), new_user()
    head, _, sig = _sign(keys["ES256"], "ES256", user, base=jwks.base_url).split(".")
    body = _sign(keys["ES256"], "ES256", victim, base=jwks.base_url).split(".")[1]
    assert _status(service, victim, f"{head}.{body}.{sig}") == 401


@pytest.mark.parametrize("alg", list(ALGORITHMS))
def test_foreign_key_with_a_known_kid_is_refused(
    service: LiveServer, jwks: JwksServer, keys: dict[str, Key], alg: str
) -> None:
    user = new_user()
    impostor = ALGORITHMS[alg]()
    token = _sign(impostor, alg, user, base=jwks.base_url, kid=keys[alg].kid)
    assert _status(service, user, token) == 401


@pytest.mark.parametrize(
    ("alg", "key_alg"),
    [("ES256", "EdDSA"), ("RS256", "ES256"), ("EdDSA", "RS256"), ("PS256", "ES256")],
)
def test_algorithm_is_only_checked_with_its_own_key_type(
    service: LiveServer, jwks: JwksServer, keys: dict[str, Key], alg: str, key_alg: str
) -> None:
    # A header that names another type's kid finds no usable key: refused, not tried.
    user = new_user()
    signer = ALGORITHMS[alg]()
    token = _sign(signer, alg, user, base=jwks.base_url, kid=keys[key_alg].kid)
    assert _status(service, user, token) == 401


@pytest.mark.parametrize("alg", list(ALGORITHMS))
@pytest.mark.parametrize("form", ["pem", "der", "jwk", "raw"])
def test_hs256_signed_with_the_public_key_is_refused(
    service: LiveServer, jwks: JwksServer, keys: dict[str, Key], alg: str, form: str
) -> None:
    """The classic confusion attack: the public key, published in the JWKS, used as an HMAC secret."""
    user = new_user()
    token = hs256_token(public_forms(keys[alg])[form], _claims(user, jwks.base_url), keys[alg].kid)
    assert _status(service, user, token) == 401


def _jwks_only(make_server: Callable[..., LiveServer], jwks: JwksServer) -> LiveServer:
    """A service that knows no shared secret: Better Auth's JWKS is its only way to verify."""
    return make_server(
        better_auth_secret=None,
        cursor_secret=SECRET,
        better_auth_url=jwks.base_url,
        better_auth_jwks_url=jwks.url,
    )


def _claims(user: str, issuer: str) -> dict[str, Any]:
    now = int(time.time())
    return {"sub": user, "iss": issuer, "aud": issuer, "iat": now, "exp": now + 600}


def test_hs256_with_public_key_is_refused_in_jwks_only_mode(
    make_server: Callable[..., LiveServer], jwks: JwksServer, keys: dict[str, Key]
) -> None:
    live = _jwks_only(make_server, jwks)
    user = new_user()
    claims = _claims(user, jwks.base_url)
    for form in public_forms(keys["RS256"]).values():
        assert _status(live, user, hs256_token(form, claims, keys["RS256"].kid)) == 401
    assert _status(live, user, make_token(user)) == 401  # no secret configured: HS* is not accepted at all
    assert _status(live, user, _sign(keys["RS256"], "RS256", user, base=jwks.base_url)) == 200


def test_symmetric_key_in_the_jwks_is_never_used(
    make_server: Callable[..., LiveServer], keys: dict[str, Key]
) -> None:
    planted = OctKey.import_key(SECRET * 2, {"kid": "planted"})
    with JwksServer([planted, keys["EdDSA"]]) as server:
        live = _jwks_only(make_server, server)
        user = new_user()
        token = jwt.encode({"alg": "HS256", "kid": "planted"}, _claims(user, server.base_url), planted)
        assert _status(live, user, token) == 401


def test_rotation_is_picked_up_on_an_unknown_kid(
    service: LiveServer, jwks: JwksServer, clock: FakeClock
) -> None:
    user = new_user()
    fresh = ALGORITHMS["EdDSA"]()
    token = _sign(fresh, "EdDSA", user, base=jwks.base_url)
    assert _status(service, user, token) == 401  # not published yet
    jwks.keys.append(fresh)
    assert _status(service, user, token) == 401  # published, but the last fetch was too recent
    clock.advance(31)  # past the refetch interval
    assert _status(service, user, token) == 200


def test_unknown_kids_cannot_hammer_the_jwks(
    service: LiveServer, jwks: JwksServer, keys: dict[str, Key]
) -> None:
    user = new_user()
    before = jwks.hits
    with service.client() as client:
        for i in range(30):
            token = _sign(keys["EdDSA"], "EdDSA", user, base=jwks.base_url, kid=f"random-{i}")
            assert (
                client.get(f"/api/{user}/tasks", headers={"Authorization": f"Bearer {token}"}).status_code
                == 401
            )
    # 30 unknown kids within the refetch interval: the one fetch at start, no more.
    assert jwks.hits == before


def test_outage_keeps_cached_keys_and_refuses_unknown_ones(
    service: LiveServer, jwks: JwksServer, keys: dict[str, Key], clock: FakeClock
) -> None:
    user = new_user()
    jwks.down = True
    clock.advance(31)  # an unknown kid may now trigger a refetch, which fails
    hits = jwks.hits
    known = _sign(keys["RS256"], "RS256", user, base=jwks.base_url, jti="fresh-token")
    assert _status(service, user, known) == 200
    stranger = ALGORITHMS["RS256"]()
    assert _status(service, user, _sign(stranger, "RS256", user, base=jwks.base_url)) == 401
    assert _status(service, user, _sign(stranger, "RS256", user, base=jwks.base_url, kid=None)) == 401
    assert jwks.hits == hits + 1  # the refetch was tried, failed, and let nothing through


def test_service_starts_while_the_jwks_is_down_and_never_fails_open(
    make_server: Callable[..., LiveServer], keys: dict[str, Key], clock: FakeClock
) -> None:
    with JwksServer(list(keys.values())) as server:
        server.down = True
        live = make_server(
            better_auth_url=server.base_url,
            better_auth_jwks_url=server.url,
            jwks_min_refetch_seconds=30,
            jwks_timeout=1.0,
            clock=clock,
        )
        user = new_user()
        token = _sign(keys["ES256"], "ES256", user, base=server.base_url)
        assert _status(live, user, token) == 401
        with live.client() as client:
            assert client.get("/healthz").status_code == 200
        server.down = False
        clock.advance(31)  # past the refetch interval since the failed fetch at start
        assert _status(live, user, token) == 200


def test_unreachable_jwks_answers_401_promptly(
    make_server: Callable[..., LiveServer], keys: dict[str, Key]
) -> None:
    live = make_server(better_auth_url="http://127.0.0.1:1", jwks_timeout=1.0)
    user = new_user()
    token = _sign(keys["EdDSA"], "EdDSA", user, base="http://127.0.0.1:1")
    with live.client(timeout=10) as client:
        response = client.get(f"/api/{user}/tasks", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].endswith('error="invalid_token"')


def test_cached_token_is_refused_once_expired(
    make_server: Callable[..., LiveServer], clock: FakeClock
) -> None:
    live = make_server(jwt_leeway=0, clock=clock)
    user = new_user()
    token = make_token(user, exp=int(time.time()) + 20)
    with live.client() as client:
        url = f"/api/{user}/tasks"
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get(url, headers=headers).status_code == 200
        assert client.get(url, headers=headers).status_code == 200  # from the cache
        clock.advance(22)
        response = client.get(url, headers=headers)
        assert response.status_code == 401
        assert "expired" in response.json()["error"]["message"]


def test_refused_token_is_checked_afresh(make_server: Callable[..., LiveServer], clock: FakeClock) -> None:
    # Only verified tokens are remembered: a refusal must not outlive its reason.
    live = make_server(jwt_leeway=0, clock=clock)
    user = new_user()
    token = make_token(user, nbf=int(time.time()) + 20)
    with live.client() as client:
        url = f"/api/{user}/tasks"
        headers = {"Authorization": f"Bearer {token}"}
        assert client.get(url, headers=headers).status_code == 401  # not yet valid
        clock.advance(22)
        assert client.get(url, headers=headers).status_code == 200


def test_cached_token_still_owns_only_its_user(server: LiveServer) -> None:
    user, other = new_user(), new_user()
    headers = {"Authorization": f"Bearer {make_token(user)}"}
    with server.client() as client:
        assert client.get(f"/api/{user}/tasks", headers=headers).status_code == 200  # now cached
        for _ in range(2):
            response = client.get(f"/api/{other}/tasks", headers=headers)
            assert response.status_code == 403
            assert response.json()["error"]["code"] == "FORBIDDEN"


def test_better_auths_session_cache_token_is_not_an_access_token(
    make_server: Callable[..., LiveServer], jwks: JwksServer, keys: dict[str, Key]
) -> None:
    """Better Auth signs its session-cache cookie with the JWKS keys and its own issuer: `typ` tells them apart."""
    live = make_server(better_auth_jwks_url=jwks.url, jwt_issuer=jwks.base_url)
    user = new_user()
    now = int(time.time())
    claims = {
        "sub": user,
        "iss": jwks.base_url,
        "aud": "better-auth:session-cache",
        "iat": now,
        "exp": now + 300,
    }
    key = keys["EdDSA"]
    cookie = jwt.encode(
        {"alg": "EdDSA", "kid": key.kid, "typ": "better-auth.session-cache+jwt"},
        claims,
        key,
        algorithms=["EdDSA"],
    )
    response = _get(live, user, cookie)
    assert response.status_code == 401
    assert "type" in response.json()["error"]["message"]
    for typ in ("JWT", "at+jwt", "application/at+jwt"):
        token = jwt.encode({"alg": "EdDSA", "kid": key.kid, "typ": typ}, claims, key, algorithms=["EdDSA"])
        assert _status(live, user, token) == 200


def test_any_issuer_only_when_the_operator_says_so(
    make_server: Callable[..., LiveServer], jwks: JwksServer, keys: dict[str, Key]
) -> None:
    live = make_server(better_auth_jwks_url=jwks.url, jwt_allow_any_issuer=True)
    user = new_user()
    token = _sign(keys["ES256"], "ES256", user, base="https://anyone.example")
    assert _status(live, user, token) == 200


def _hostile_jwks(make_server: Callable[..., LiveServer], server: JwksServer) -> LiveServer:
    # The first fetch happens while the service starts: a fetch that never ended would hang the start.
    return make_server(better_auth_url=server.base_url, jwks_timeout=0.5, jwks_min_refetch_seconds=3600)


def test_endless_key_set_is_cut_off_while_it_streams(
    make_server: Callable[..., LiveServer], keys: dict[str, Key]
) -> None:
    with JwksServer(list(keys.values())) as server:
        server.endless = True
        live = _hostile_jwks(make_server, server)
        user = new_user()
        assert _status(live, user, _sign(keys["ES256"], "ES256", user, base=server.base_url)) == 401
        assert _status(live, user, make_token(user)) == 200  # the service itself is fine
        # Refused past 256 KiB: the service hung up rather than read on (a reader to the end never would).
        assert server.hung_up.wait(timeout=30)


def test_dripping_key_set_is_cut_off_in_total_time(
    make_server: Callable[..., LiveServer], keys: dict[str, Key]
) -> None:
    """One byte per 0.1 s never trips a per-read timeout; only a bound on the whole fetch ends it."""
    with JwksServer(list(keys.values())) as server:
        server.drip = True
        live = _hostile_jwks(make_server, server)
        user = new_user()
        assert _status(live, user, _sign(keys["ES256"], "ES256", user, base=server.base_url)) == 401
        with live.client() as client:
            assert client.get("/healthz").status_code == 200
        assert server.hung_up.wait(timeout=30)


@pytest.mark.parametrize(
    "body", [b"[" * 200_000, b'{"keys": 5}', b"\xff\xfe", b"null"], ids=["deep", "shape", "bytes", "null"]
)
def test_malformed_key_set_refuses_tokens_without_a_500(
    make_server: Callable[..., LiveServer], keys: dict[str, Key], body: bytes
) -> None:
    with JwksServer(list(keys.values())) as server:
        server.body = body
        live = _hostile_jwks(make_server, server)
        user = new_user()
        response = _get(live, user, _sign(keys["RS256"], "RS256", user, base=server.base_url))
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "UNAUTHORIZED"


def test_verified_token_cache_keeps_no_tokens(make_server: Callable[..., LiveServer]) -> None:
    """200 tokens of 7.5 KB each, all verified and cached: what stays behind is a few KiB, not the tokens."""
    live = make_server()
    user = new_user()
    tokens = [make_token(user, padding=f"{i:05d}" + "p" * 5500) for i in range(200)]
    with live.client() as client:
        client.get(f"/api/{user}/tasks", headers={"Authorization": f"Bearer {make_token(user)}"})  # warm up
        gc.collect()
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            for token in tokens:
                response = client.get(f"/api/{user}/tasks", headers={"Authorization": f"Bearer {token}"})
                assert response.status_code == 200
            gc.collect()
            retained = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
    # Whole tokens and their claims would hold 200 x ~16 KB = ~3 MB.
    assert retained < 1_000_000, retained
