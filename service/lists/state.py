"""The lists feature's slice of the lifespan state: its store."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TypedDict

from service.db.statements import Runner
from service.lists.store import ListStore
from service.settings import Settings


class ListsState(TypedDict):
    lists: ListStore


@contextlib.asynccontextmanager
async def lists_state(runner: Runner, settings: Settings) -> AsyncIterator[ListsState]:
    """The slice; a context like the others', so a list job (none yet) has a place to run."""
    yield ListsState(lists=ListStore(runner, settings.max_lists_per_user))
