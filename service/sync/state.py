"""The sync feature's slice of the lifespan state: the feed, its tokens, the change hub, the tombstone purge."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import TypedDict

from service.db.maintenance import HOURLY, every
from service.db.statements import Runner
from service.settings import Settings
from service.sync.hub import ChangeHub
from service.sync.store import ChangeStore
from service.sync.tokens import SyncTokens


class SyncState(TypedDict):
    changes: ChangeStore
    sync_tokens: SyncTokens
    sync_retention: int
    hub: ChangeHub


def tombstone_schedule(retention: int) -> tuple[float, timedelta]:
    """How often to purge tombstones, and how long to keep them: the retention plus a margin.

    A tombstone's time is taken before its transaction commits, so one may be a little older than
    a token that must still see it; the margin (at most 5 minutes) outlasts any transaction.
    """
    return min(HOURLY, retention / 2), timedelta(seconds=retention + min(300, retention))


@contextlib.asynccontextmanager
async def sync_state(runner: Runner, settings: Settings) -> AsyncIterator[SyncState]:
    """The slice, with deletions past SYNC_RETENTION forgotten while it is open (a token that old is a 410)."""
    changes = ChangeStore(runner)
    assert settings.listen_url is not None
    hub = ChangeHub(settings.listen_url, settings.db_connect_timeout, changes, settings.max_streams_per_user)
    interval, keep = tombstone_schedule(settings.sync_retention)
    try:
        most = settings.max_tombstones_per_user
        async with every(interval, "tombstone purge", lambda: changes.purge_tombstones(keep, most)):
            yield SyncState(
                changes=changes,
                sync_tokens=SyncTokens(settings.cursor_key),
                sync_retention=settings.sync_retention,
                hub=hub,
            )
    finally:
        await hub.close()
