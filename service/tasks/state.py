"""The tasks feature's slice of the lifespan state: its store and cursor codec, and the key purge."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TypedDict

from service.db.maintenance import HOURLY, every
from service.db.statements import Runner
from service.settings import Settings
from service.tasks import idempotency
from service.tasks.listing.cursors import CursorCodec
from service.tasks.store import TaskStore


class TasksState(TypedDict):
    store: TaskStore
    cursors: CursorCodec


@contextlib.asynccontextmanager
async def tasks_state(runner: Runner, settings: Settings) -> AsyncIterator[TasksState]:
    """The slice, with Idempotency-Keys past their 24 hours forgotten hourly while it is open."""
    async with every(HOURLY, "idempotency key purge", lambda: idempotency.purge(runner)):
        yield TasksState(
            store=TaskStore(runner, settings.max_tasks_per_user, settings.max_idempotency_keys),
            cursors=CursorCodec(settings.cursor_key),
        )
