"""A stand-in JWKS endpoint on loopback, for tests that need to rotate keys or fail on purpose; and tokens
forged with a public key as the HMAC secret (the key confusion attack)."""

from __future__ import annotations

import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from cryptography.hazmat.primitives import serialization
from joserfc.jwk import Key


class JwksServer:
    """Serves `keys` as a JWKS at `url`; `down` makes it answer 503; `hits` counts requests.

    Hostile modes: `body` replaces the document; `endless` streams bytes until the client hangs up,
    `drip` sends one byte every 0.1 s for ever; `hung_up` is set when the client ends such a stream.
    """

    def __init__(self, keys: list[Key]) -> None:
        self.keys = list(keys)
        self.down = False
        self.hits = 0
        self.body: bytes | None = None
        self.endless = False
        self.drip = False
        self.hung_up = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                owner.hits += 1
                if owner.down:
                    self.send_response(503)
                    self.end_headers()
                    return
                if owner.endless or owner.drip:
                    self._stream(b"x" * 65536 if owner.endless else b" ")
                    return
                body = (
                    owner.body
                    if owner.body is not None
                    else json.dumps({"keys": [k.as_dict(private=False) for k in owner.keys]}).encode()
                )
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _stream(self, chunk: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"keys": [')
                try:
                    while True:
                        self.wfile.write(chunk)
                        self.wfile.flush()
                        if owner.drip:
                            time.sleep(0.1)
                except OSError:
                    owner.hung_up.set()  # the client gave up on it, as it should

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/api/auth/jwks"
        self.base_url = self.url.removesuffix("/api/auth/jwks")
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    def __enter__(self) -> JwksServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def public_forms(key: Key) -> dict[str, bytes]:
    """A public key in each form an HMAC secret could be made of: PEM, DER, JWK and raw bytes."""
    public = key.get_op_key("verify")
    forms = {
        "pem": public.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "der": public.public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ),
        "jwk": json.dumps(key.as_dict(private=False)).encode(),
    }
    if key.key_type == "OKP":
        forms["raw"] = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    elif key.key_type == "EC":
        forms["raw"] = public.public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
    else:
        forms["raw"] = public.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
    return forms


def hs256_token(secret: bytes, claims: dict, kid: str | None) -> str:
    """An HS256 token signed with `secret` by hand, as an attacker holding a public key would."""
    import hashlib
    import hmac

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    header = {"alg": "HS256", "typ": "JWT", **({"kid": kid} if kid else {})}
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims).encode())}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"
