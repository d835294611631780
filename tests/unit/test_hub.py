"""service/sync/hub.py: how the change hub wakes a waiting stream, without a database."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import cast

from service.sync.hub import ChangeHub
from service.sync.store import ChangeStore
from service.sync.tokens import Position


def test_a_waiting_stream_wakes_at_once_and_a_wake_as_its_wait_times_out_is_harmless() -> None:
    """The hub wakes a stream by timing out its wait on receive(); one already timing out is left be."""
    hub = ChangeHub("postgresql://127.0.0.1/unused", 1.0, cast(ChangeStore, None), max_streams=5)
    later = Position(1, datetime.now(UTC))

    async def never_leaves() -> dict[str, str]:
        await asyncio.Event().wait()
        return {"type": "http.disconnect"}

    async def run() -> None:
        stream = hub.open("u")
        async with asyncio.timeout(10):  # a wake that never came fails here rather than hanging
            waiting = asyncio.create_task(stream.wait(never_leaves, 3600))
            await asyncio.sleep(0)  # the wait has begun
            stream.offer(later)
            await waiting
        assert stream.latest == later and not stream.gone
        # A wait whose time is up (its timeout is expiring, the task not yet resumed), woken then.
        timing_out = asyncio.create_task(stream.wait(never_leaves, 0))
        await asyncio.sleep(0)  # entered; the timeout's handler is due
        await asyncio.sleep(0)  # the handler ran: the wait is timing out
        stream.end()
        await timing_out
        assert stream.lost
        await stream.wait(never_leaves, 3600)  # an ended stream does not wait at all
        stream.close()

    asyncio.run(run())
