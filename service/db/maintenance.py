"""Maintenance statements each worker runs on a timer, so a deploy needs no cron job."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable

from service.db.pool import UNAVAILABLE_ERRORS
from service.web.errors import ServiceUnavailable

logger = logging.getLogger("service")

HOURLY = 3600.0
# A job that cannot reach the database, or runs past the statement timeout, waits for the next round.
_SKIPPED: tuple[type[BaseException], ...] = (*UNAVAILABLE_ERRORS, ServiceUnavailable)


async def _every(interval: float, name: str, job: Callable[[], Awaitable[object]]) -> None:
    while True:
        # Jittered, so the workers of one deploy do not all purge at the same moment.
        await asyncio.sleep(interval * random.uniform(0.5, 1.0))  # noqa: S311 - jitter only
        try:
            await job()
        except _SKIPPED:
            logger.warning("%s skipped: database unavailable or too slow", name)


@contextlib.asynccontextmanager
async def every(interval: float, name: str, job: Callable[[], Awaitable[object]]) -> AsyncIterator[None]:
    """Run `job` about every `interval` seconds while the context is open; cancelled when it closes."""
    task = asyncio.create_task(_every(interval, name, job))
    try:
        yield
    finally:
        task.cancel()
