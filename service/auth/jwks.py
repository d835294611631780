"""Better Auth's public keys (JWKS): fetched, cached, refreshed ahead of time, refetched sparingly."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import httpx
import msgspec
from joserfc.errors import JoseError
from joserfc.jwk import JWKRegistry, Key

logger = logging.getLogger("service.jwks")

MAX_JWKS_BYTES = 256 * 1024


class JwksClient:
    """Holds the last good key set; never lets a failed fetch erase it or let a token through.

    A background task refreshes the set every `refresh_seconds`. A token with an unknown `kid`
    may trigger one extra fetch, at most once per `min_refetch_seconds` however many arrive, so a
    flood of random kids cannot hammer Better Auth; concurrent callers share one fetch. `clock` is
    a monotonic clock, for that interval. A download is capped in bytes and in total time.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float,
        refresh_seconds: float,
        min_refetch_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self._timeout = timeout
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._min_refetch_seconds = min_refetch_seconds
        self._keys: tuple[Key, ...] = ()
        self._attempted_at = -math.inf
        self._inflight: asyncio.Task[bool] | None = None
        self._refresher: asyncio.Task[None] | None = None
        self._http: httpx.AsyncClient | None = None

    @property
    def keys(self) -> tuple[Key, ...]:
        return self._keys

    async def start(self) -> None:
        """First fetch (a failure is logged, not fatal: tokens are refused until keys arrive)."""
        self._http = httpx.AsyncClient(timeout=self._timeout, follow_redirects=False, trust_env=False)
        ok = await self.refresh()
        self._refresher = asyncio.create_task(self._refresh_forever(ok))

    async def close(self) -> None:
        for task in (self._refresher, self._inflight):
            if task is not None:
                task.cancel()
        if self._http is not None:
            await self._http.aclose()

    async def refresh(self) -> bool:
        """Fetch now, joining a fetch already under way; True when the set was replaced."""
        if self._inflight is None or self._inflight.done():
            self._attempted_at = self._clock()
            self._inflight = asyncio.create_task(self._fetch())
        # shield: one caller giving up (a client disconnect) must not cancel the others' fetch.
        return await asyncio.shield(self._inflight)

    async def refresh_for_unknown_kid(self) -> bool:
        """Refetch for a `kid` we do not know, unless we already tried within the interval."""
        in_flight = self._inflight is not None and not self._inflight.done()
        if not in_flight and self._clock() - self._attempted_at < self._min_refetch_seconds:
            return False
        return await self.refresh()

    async def _refresh_forever(self, ok: bool) -> None:
        # Wait first: start() has just fetched, and a second fetch at once would race the first's callers.
        while True:
            # After a failure, try again sooner: the cached keys are only as fresh as the last success.
            await asyncio.sleep(self._refresh_seconds if ok else min(self._refresh_seconds, 10.0))
            ok = await self.refresh()

    async def _fetch(self) -> bool:
        try:
            # The client's timeout bounds each read; this bounds the whole, against a slow drip.
            async with asyncio.timeout(self._timeout):
                body = await self._download()
            keys = _import_keys(msgspec.json.decode(body))
        except (httpx.HTTPError, ValueError, TypeError, TimeoutError, RecursionError) as exc:
            logger.warning(
                "JWKS fetch from %s failed (%s: %s); keeping %d cached keys",
                self.url,
                type(exc).__name__,
                exc,
                len(self._keys),
            )
            return False
        self._keys = keys
        return True

    async def _download(self) -> bytes:
        """The document's bytes, read as they stream and refused past MAX_JWKS_BYTES."""
        assert self._http is not None
        # Uncompressed only, so the bytes counted are the bytes held (no decompression bomb).
        headers = {"Accept": "application/json", "Accept-Encoding": "identity"}
        async with self._http.stream("GET", self.url, headers=headers) as response:
            response.raise_for_status()
            if response.headers.get("content-encoding", "identity").lower() != "identity":
                raise ValueError("JWKS document is compressed although identity was asked for")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and len(declared) < 20 and int(declared) > MAX_JWKS_BYTES:
                raise ValueError(f"JWKS document is larger than {MAX_JWKS_BYTES} bytes")
            body = bytearray()
            async for chunk in response.aiter_raw():
                body += chunk
                if len(body) > MAX_JWKS_BYTES:
                    raise ValueError(f"JWKS document is larger than {MAX_JWKS_BYTES} bytes")
        return bytes(body)


def _import_keys(document: Any) -> tuple[Key, ...]:
    """The public signing keys of a JWKS document; keys we cannot use are skipped, not fatal."""
    if not isinstance(document, dict) or not isinstance(document.get("keys"), list):
        raise ValueError("not a JWKS document")
    keys: list[Key] = []
    for entry in document["keys"]:
        if not isinstance(entry, dict) or entry.get("use", "sig") != "sig" or entry.get("kty") == "oct":
            # A symmetric key in a public key set is a misconfiguration we must never sign-check with.
            continue
        public = {k: v for k, v in entry.items() if k not in ("d", "p", "q", "dp", "dq", "qi", "oth")}
        try:
            keys.append(JWKRegistry.import_key(public))
        except (JoseError, ValueError, TypeError, KeyError) as exc:
            logger.warning("skipping unusable JWKS key %r: %s", entry.get("kid"), exc)
    return tuple(keys)
