"""CONTRACT §2, §3, §7: every way a token can be missing, forged or wrong, and the 403 rule."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.support.postgres import Database
from tests.support.servers import LiveServer, settings_for
from tests.support.tokens import SECRET, auth, make_token, new_user

NO_TOKEN = 'Bearer realm="api"'
BAD_TOKEN = 'Bearer realm="api", error="invalid_token"'
ANY_TASK = "00000000-0000-7000-8000-000000000000"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unsigned(header: dict, claims: dict, signature: str = "") -> str:
    return f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(claims).encode())}.{signature}"


def _get(client: httpx.Client, user: str, authorization: str | None) -> httpx.Response:
    headers = {} if authorization is None else {"Authorization": authorization}
    return client.get(f"/api/{user}/tasks", headers=headers)


def _assert_401(response: httpx.Response, challenge: str) -> None:
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == challenge
    body = response.json()
    assert body["data"] is None
    assert body["error"]["code"] == "UNAUTHORIZED"
    assert body["meta"]["request_id"] == response.headers["x-request-id"]


def test_valid_token_is_accepted(client: httpx.Client, user: str) -> None:
    assert _get(client, user, f"Bearer {make_token(user)}").status_code == 200


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "BeArEr"])
def test_scheme_word_is_case_insensitive(client: httpx.Client, user: str, scheme: str) -> None:
    assert _get(client, user, f"{scheme} {make_token(user)}").status_code == 200


def test_missing_authorization(client: httpx.Client, user: str) -> None:
    _assert_401(_get(client, user, None), NO_TOKEN)


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "Token abc", "abc"])
def test_other_schemes_are_no_token(client: httpx.Client, user: str, value: str) -> None:
    _assert_401(_get(client, user, value), NO_TOKEN)


@pytest.mark.parametrize(
    "token",
    ["\t", "garbage", "a.b.c", "a.b", "....", "eyJhbGciOiJIUzI1NiJ9.e30.", "a.b.c.d.e"],
    ids=["empty", "garbage", "three-junk-parts", "two-parts", "dots", "unsigned-hs", "jwe-shape"],
)
def test_malformed_tokens(client: httpx.Client, user: str, token: str) -> None:
    _assert_401(_get(client, user, f"Bearer {token}".strip()), BAD_TOKEN)


def test_bad_signature(client: httpx.Client, user: str) -> None:
    head, body, sig = make_token(user).split(".")
    flipped = sig[:-2] + ("AA" if sig[-2:] != "AA" else "BB")
    _assert_401(_get(client, user, f"Bearer {head}.{body}.{flipped}"), BAD_TOKEN)


def test_payload_swapped_under_a_valid_signature(client: httpx.Client, user: str) -> None:
    victim = new_user()
    head, _, sig = make_token(user).split(".")
    _, victim_body, _ = make_token(victim).split(".")
    _assert_401(_get(client, victim, f"Bearer {head}.{victim_body}.{sig}"), BAD_TOKEN)


def test_token_signed_with_another_secret(client: httpx.Client, user: str) -> None:
    token = make_token(user, secret="another-secret-0123456789abcdef0123456789")
    _assert_401(_get(client, user, f"Bearer {token}"), BAD_TOKEN)


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused(client: httpx.Client, user: str, alg: str) -> None:
    now = int(time.time())
    token = _unsigned({"alg": alg, "typ": "JWT"}, {"sub": user, "iat": now, "exp": now + 600})
    _assert_401(_get(client, user, f"Bearer {token}"), BAD_TOKEN)


def test_asymmetric_token_is_refused_when_only_the_secret_is_configured(
    client: httpx.Client, user: str
) -> None:
    key = RSAKey.generate_key(2048)
    now = int(time.time())
    token = jwt.encode({"alg": "RS256"}, {"sub": user, "iat": now, "exp": now + 600}, key)
    _assert_401(_get(client, user, f"Bearer {token}"), BAD_TOKEN)


@pytest.mark.parametrize("alg", ["HS384", "HS512"])
def test_other_hmac_algorithms_are_accepted(client: httpx.Client, user: str, alg: str) -> None:
    assert _get(client, user, f"Bearer {make_token(user, alg=alg)}").status_code == 200


@pytest.mark.parametrize(
    "header",
    [
        {"jku": "http://127.0.0.1:1/jwks.json"},
        {"x5u": "http://127.0.0.1:1/cert.pem"},
        {"jwk": {"kty": "oct", "k": _b64(SECRET.encode())}},
        {"cty": "JWT"},
    ],
    ids=["jku", "x5u", "jwk", "nested"],
)
def test_key_reference_headers_are_refused(client: httpx.Client, user: str, header: dict) -> None:
    _assert_401(_get(client, user, f"Bearer {make_token(user, header=header)}"), BAD_TOKEN)


@pytest.mark.parametrize("typ", ["better-auth.session-cache+jwt", "JWE", "dpop+jwt", "", 42, None])
def test_token_of_another_type_is_refused(client: httpx.Client, user: str, typ: object) -> None:
    now = int(time.time())
    claims = json.dumps({"sub": user, "iat": now, "exp": now + 600})
    response = _get(client, user, f"Bearer {_signed_raw(claims, header={'alg': 'HS256', 'typ': typ})}")
    _assert_401(response, BAD_TOKEN)
    assert "type" in response.json()["error"]["message"]


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+jwt", "AT+JWT", "application/at+jwt", "application/jwt"])
def test_access_token_types_are_accepted(client: httpx.Client, user: str, typ: str) -> None:
    assert _get(client, user, f"Bearer {make_token(user, header={'typ': typ})}").status_code == 200


def _signed_raw(payload: str, header: dict | None = None) -> str:
    """An HS256 token over a payload written by hand (JSON that json.dumps would never produce)."""
    signing_input = f"{_b64(json.dumps(header or {'alg': 'HS256'}).encode())}.{_b64(payload.encode())}"
    signature = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"


@pytest.mark.parametrize("claim", ["exp", "iat", "nbf"])
@pytest.mark.parametrize("literal", ["1" + "0" * 400, "-1" + "0" * 400, "1e400", "-1e400", "NaN", "Infinity"])
def test_time_claim_beyond_a_float_is_401_not_500(
    client: httpx.Client, user: str, claim: str, literal: str
) -> None:
    now = int(time.time())
    times = {"exp": str(now + 600), "iat": str(now), claim: literal}
    payload = "{" + ", ".join(f'"{k}": {v}' for k, v in {"sub": f'"{user}"', **times}.items()) + "}"
    _assert_401(_get(client, user, f"Bearer {_signed_raw(payload)}"), BAD_TOKEN)


@pytest.fixture(scope="module")
def max_age_server(database: Database) -> Iterator[LiveServer]:
    with LiveServer(settings_for(database.url, jwt_max_age=3600)) as live:
        yield live


@pytest.mark.parametrize(
    ("ttl", "drop", "status"),
    [(3600, (), 200), (3601, (), 401), (86400 * 365, (), 401), (3000, ("iat",), 200), (7200, ("iat",), 401)],
    ids=["at-the-limit", "a-second-over", "a-year", "no-iat-within", "no-iat-over"],
)
def test_max_age_bounds_a_tokens_lifetime(
    max_age_server: LiveServer, ttl: int, drop: tuple[str, ...], status: int
) -> None:
    user = new_user()
    with max_age_server.client() as client:
        response = _get(client, user, f"Bearer {make_token(user, ttl=ttl, drop=drop)}")
    assert response.status_code == status
    if status == 401:
        assert "3600 seconds" in response.json()["error"]["message"]


def test_old_token_with_a_long_life_is_refused_under_max_age(max_age_server: LiveServer) -> None:
    """Measured from iat, not from now: a day-long token issued 23 hours ago is still too long-lived."""
    user = new_user()
    now = int(time.time())
    token = make_token(user, iat=now - 23 * 3600, exp=now + 3600)
    with max_age_server.client() as client:
        _assert_401(_get(client, user, f"Bearer {token}"), BAD_TOKEN)


def test_expired_token(client: httpx.Client, user: str) -> None:
    response = _get(client, user, f"Bearer {make_token(user, exp=int(time.time()) - 60)}")
    _assert_401(response, BAD_TOKEN)
    assert "expired" in response.json()["error"]["message"].lower()


def test_expiry_within_leeway_is_accepted(client: httpx.Client, user: str) -> None:
    assert _get(client, user, f"Bearer {make_token(user, exp=int(time.time()) - 10)}").status_code == 200


def test_exp_is_required(client: httpx.Client, user: str) -> None:
    _assert_401(_get(client, user, f"Bearer {make_token(user, drop=('exp',))}"), BAD_TOKEN)


@pytest.mark.parametrize("exp", ["tomorrow", None, True, float("inf")], ids=["string", "null", "bool", "inf"])
def test_exp_must_be_a_number(client: httpx.Client, user: str, exp: object) -> None:
    _assert_401(_get(client, user, f"Bearer {make_token(user, exp=exp)}"), BAD_TOKEN)


def test_not_yet_valid(client: httpx.Client, user: str) -> None:
    _assert_401(_get(client, user, f"Bearer {make_token(user, nbf=int(time.time()) + 120)}"), BAD_TOKEN)


def test_nbf_within_leeway_is_accepted(client: httpx.Client, user: str) -> None:
    assert _get(client, user, f"Bearer {make_token(user, nbf=int(time.time()) + 10)}").status_code == 200


def test_issued_in_the_future(client: httpx.Client, user: str) -> None:
    _assert_401(_get(client, user, f"Bearer {make_token(user, iat=int(time.time()) + 120)}"), BAD_TOKEN)


def test_missing_sub(client: httpx.Client, user: str) -> None:
    _assert_401(_get(client, user, f"Bearer {make_token(user, drop=('sub',))}"), BAD_TOKEN)


@pytest.mark.parametrize("sub", ["", 42, ["u"], {"id": "u"}, None, True, "x" * 256, "nul\x00byte"], ids=repr)
def test_unusable_sub(client: httpx.Client, sub: object) -> None:
    token = make_token(None, sub=sub)
    _assert_401(_get(client, "anyone", f"Bearer {token}"), BAD_TOKEN)


def test_sub_of_255_characters_is_accepted(client: httpx.Client) -> None:
    user = "u" * 255
    assert _get(client, user, f"Bearer {make_token(user)}").status_code == 200


def test_oversized_token(client: httpx.Client, user: str) -> None:
    token = make_token(user, padding="p" * 8200)
    assert len(token) > 8192
    _assert_401(_get(client, user, f"Bearer {token}"), BAD_TOKEN)


def test_two_authorization_headers(client: httpx.Client, user: str) -> None:
    token = make_token(user)
    headers = [("Authorization", f"Bearer {token}"), ("Authorization", f"Bearer {token}")]
    _assert_401(client.get(f"/api/{user}/tasks", headers=headers), BAD_TOKEN)


def test_token_in_query_string_or_cookie_is_ignored(client: httpx.Client, user: str) -> None:
    token = make_token(user)
    _assert_401(client.get(f"/api/{user}/tasks", params={"access_token": token}), NO_TOKEN)
    _assert_401(client.get(f"/api/{user}/tasks", headers={"Cookie": f"token={token}"}), NO_TOKEN)


_ROUTES = [
    ("GET", "/tasks", None),
    ("POST", "/tasks", {"title": "mine now"}),
    ("GET", f"/tasks/{ANY_TASK}", None),
    ("PUT", f"/tasks/{ANY_TASK}", {"title": "mine now"}),
    ("PATCH", f"/tasks/{ANY_TASK}", {"completed": True}),
    ("DELETE", f"/tasks/{ANY_TASK}", None),
    ("PATCH", f"/tasks/{ANY_TASK}/complete", None),
    ("DELETE", "/tasks", None),  # 405 on one's own path, but 403 comes first
    ("GET", "/unknown", None),  # 404 on one's own path, but 403 comes first
]


@pytest.mark.parametrize(("method", "path", "body"), _ROUTES)
def test_foreign_path_is_403_on_every_route(
    client: httpx.Client, user: str, method: str, path: str, body: dict | None
) -> None:
    victim = new_user()
    response = client.request(method, f"/api/{victim}{path}", json=body, headers=auth(user))
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "FORBIDDEN"


@pytest.mark.parametrize(("method", "path", "body"), _ROUTES)
def test_foreign_path_is_403_whatever_the_body(
    client: httpx.Client, user: str, method: str, path: str, body
) -> None:
    victim = new_user()
    response = client.request(
        method,
        f"/api/{victim}{path}",
        content=b"{not json" + b"x" * 70000,
        headers={**auth(user), "Content-Type": "text/plain"},
    )
    assert response.status_code == 403


def test_foreign_path_writes_nothing(client: httpx.Client, user: str) -> None:
    victim = new_user()
    client.post(f"/api/{victim}/tasks", json={"title": "planted"}, headers=auth(user))
    listing = client.get(f"/api/{victim}/tasks", headers=auth(victim))
    assert listing.json()["data"] == []


def test_percent_encoded_foreign_path_is_403(client: httpx.Client) -> None:
    user = "alice/../bob"
    response = client.get("/api/alice%2F..%2Fbob/tasks", headers=auth("alice"))
    assert response.status_code == 403
    assert client.get(f"/api/{user}/tasks", headers=auth("alice")).status_code == 403


def _raw_get(client: httpx.Client, raw_path: str, user: str) -> httpx.Response:
    """GET with the path sent byte for byte as written (percent-escapes and all)."""
    url = httpx.URL(str(client.base_url)).copy_with(raw_path=raw_path.encode())
    return client.get(url, headers=auth(user))


@pytest.mark.parametrize(
    ("raw_path", "token_user"),
    [
        ("/%61pi/{victim}/tasks", "i"),  # the raw path cut after five bytes named "i"
        ("/%61%70%69/{victim}/tasks", "70i"),
        ("/api%2F{victim}/tasks", "2F{victim}"),
        ("/api/{victim}%2Ftasks/{task}", "{victim}/tasks"),
        ("/api/{victim}%2ftasks/{task}", "{victim}/tasks"),
        ("/api/x%2F..%2F{victim}/tasks", "x/../{victim}"),
    ],
    ids=[
        "encoded-prefix",
        "encoded-prefix-all",
        "encoded-slash-after-api",
        "encoded-slash-in-user",
        "encoded-slash-lower-case",
        "encoded-dot-dot",
    ],
)
def test_owner_is_decided_on_the_path_the_router_matches(
    client: httpx.Client, raw_path: str, token_user: str
) -> None:
    """Each path routes to the victim's tasks; each token's user matched the raw path the old way."""
    victim = new_user()
    planted = client.post(f"/api/{victim}/tasks", json={"title": "private"}, headers=auth(victim))
    assert planted.status_code == 201
    path = raw_path.format(victim=victim, task=planted.json()["data"]["id"])
    response = _raw_get(client, path, token_user.format(victim=victim))
    assert response.status_code == 403, (path, response.text)
    assert response.json()["error"]["code"] == "FORBIDDEN"


def test_double_encoding_is_decoded_once(client: httpx.Client) -> None:
    """`%252F` reaches the router as a literal `%2F`: a user id of its own, never a way up the tree."""
    victim = new_user()
    assert (
        client.post(f"/api/{victim}/tasks", json={"title": "private"}, headers=auth(victim)).status_code
        == 201
    )
    path = f"/api/x%252F..%252F{victim}/tasks"
    assert _raw_get(client, path, "x").status_code == 403
    own = _raw_get(client, path, f"x%2F..%2F{victim}")
    assert own.status_code == 200
    assert own.json()["data"] == []


@pytest.mark.parametrize("raw_path", ["/%61pi/{user}/tasks", "/api/{hex}/tasks", "/%61%70%69/{hex}/tasks"])
def test_encoded_own_path_is_the_users_own(client: httpx.Client, user: str, raw_path: str) -> None:
    hex_user = "".join(f"%{b:02x}" for b in user.encode())
    response = _raw_get(client, raw_path.format(user=user, hex=hex_user), user)
    assert response.status_code == 200
    assert response.json()["data"] == []


def test_encoded_slash_is_refused_even_on_ones_own_name(client: httpx.Client) -> None:
    owner = "team/alice"
    response = _raw_get(client, "/api/team%2Falice/tasks", owner)
    assert response.status_code == 403
    assert "encoded slash" in response.json()["error"]["message"]


@pytest.fixture(scope="module")
def strict_server(database: Database) -> Iterator[LiveServer]:
    settings = settings_for(
        database.url,
        jwt_issuer="http://auth.example.test",
        jwt_audience="http://auth.example.test",
        jwt_user_claim="uid",
        jwt_leeway=0,
    )
    with LiveServer(settings) as live:
        yield live


@pytest.fixture
def strict(strict_server: LiveServer) -> Callable[..., httpx.Response]:
    """GET the user's list from the strict server with a token whose claims can be changed or dropped."""

    def call(user: str, drop: tuple[str, ...] = (), **claims: object) -> httpx.Response:
        base: dict[str, object] = {
            "iss": "http://auth.example.test",
            "aud": "http://auth.example.test",
            "uid": user,
        }
        token = make_token("ignored-sub", drop=drop, **{**base, **claims})
        with strict_server.client() as c:
            return c.get(f"/api/{user}/tasks", headers={"Authorization": f"Bearer {token}"})

    return call


def test_configured_issuer_and_audience_accept_a_matching_token(
    strict: Callable[..., httpx.Response],
) -> None:
    assert strict(new_user()).status_code == 200


def test_audience_may_be_a_list_containing_ours(strict: Callable[..., httpx.Response]) -> None:
    assert strict(new_user(), aud=["other", "http://auth.example.test"]).status_code == 200


@pytest.mark.parametrize(
    ("claims", "drop"),
    [
        ({"iss": "http://evil.example.test"}, ()),
        ({"aud": "http://evil.example.test"}, ()),
        ({"aud": ["a", "b"]}, ()),
        ({}, ("iss",)),
        ({}, ("aud",)),
    ],
    ids=["wrong-iss", "wrong-aud", "aud-list-without-ours", "no-iss", "no-aud"],
)
def test_wrong_issuer_or_audience(
    strict: Callable[..., httpx.Response], claims: dict, drop: tuple[str, ...]
) -> None:
    _assert_401(strict(new_user(), drop=drop, **claims), BAD_TOKEN)


def test_configured_user_claim_is_the_identity(strict: Callable[..., httpx.Response]) -> None:
    user = new_user()
    # The token's sub names someone else: only the configured claim counts.
    assert strict(user, sub="someone-else").status_code == 200


def test_zero_leeway_refuses_just_expired(strict: Callable[..., httpx.Response]) -> None:
    _assert_401(strict(new_user(), exp=int(time.time()) - 2), BAD_TOKEN)
